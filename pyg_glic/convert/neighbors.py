r"""ViG's dense neighbour index ``(B, N, k)`` <-> PyG's ``edge_index``.

In the dense layout, ``index[b, i, :]`` lists the neighbours of node ``i`` of
image ``b`` (local ids in ``[0, N)``); ``-1`` marks an empty slot, so variable
degrees fit. In ``edge_index``, row 0 is the neighbour (source) and row 1 the
centre (target), with global node ids ``b * N + i`` (PyG's ``source_to_target``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def knn_index_to_edge_index(index: Tensor) -> Tensor:
    r"""Dense neighbour index -> ``edge_index``, sorted by target.

    Args:
        index (LongTensor): ``(B, N, k)`` local neighbour ids, ``-1`` for none.

    Returns:
        LongTensor ``(2, E)``, ``E`` = number of entries ``>= 0``; edges of a
        target keep the slot order of ``index``.
    """
    if index.dim() != 3:
        raise ValueError(f"index must have shape (B, N, k), got {tuple(index.shape)}")
    B, N, k = index.shape
    if index.numel() and (bool((index >= N).any()) or bool((index < -1).any())):
        raise ValueError(f"index entries must lie in [-1, N) = [-1, {N})")
    offset = (torch.arange(B, device=index.device) * N).view(B, 1, 1)
    target = torch.arange(B * N, device=index.device).view(B, N, 1).expand(B, N, k)
    valid = index >= 0
    source = (index + offset)[valid]
    return torch.stack([source, target[valid]]).long()


def edge_index_to_knn_index(edge_index: Tensor, batch_size: int, num_nodes: int,
                            k: Optional[int] = None) -> Tensor:
    r"""``edge_index`` -> dense neighbour index, padded with ``-1``.

    Args:
        edge_index (LongTensor): ``(2, E)`` with global ids in ``[0, B*N)``; an
            edge must not join two images.
        batch_size (int): ``B``.
        num_nodes (int): ``N``, nodes per image.
        k (int, optional): slots per node; default the largest in-degree. A
            node with more than ``k`` incoming edges raises ``ValueError``.

    Returns:
        LongTensor ``(B, N, k)``; a node's neighbours in edge order, then ``-1``.
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
    total = batch_size * num_nodes
    src, dst = edge_index
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= total):
        raise ValueError(f"edge_index entries must lie in [0, B*N) = [0, {total})")
    if bool((src // max(num_nodes, 1) != dst // max(num_nodes, 1)).any()):
        raise ValueError("edge_index joins nodes of different images; the dense "
                         "(B, N, k) layout cannot hold such edges")
    deg = torch.bincount(dst, minlength=total)
    max_deg = int(deg.max()) if total else 0
    if k is None:
        k = max_deg
    elif max_deg > k:
        raise ValueError(f"a node has {max_deg} neighbours, more than k={k}")
    perm = torch.argsort(dst, stable=True)
    src, dst = src[perm], dst[perm]
    ptr = torch.zeros(total + 1, dtype=torch.long, device=dst.device)
    ptr[1:] = deg.cumsum(0)
    slot = torch.arange(dst.numel(), device=dst.device) - ptr[dst]
    out = torch.full((total, k), -1, dtype=torch.long, device=edge_index.device)
    out[dst, slot] = src % max(num_nodes, 1)
    return out.view(batch_size, num_nodes, k)
