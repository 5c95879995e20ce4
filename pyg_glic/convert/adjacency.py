r"""Dense weighted adjacency ``(B, N, N)`` <-> ``edge_index`` + ``edge_weight``.

The dense direction uses PyG's :func:`~torch_geometric.utils.to_dense_adj`.
The sparse direction does not use PyG's ``dense_to_sparse``: for a batched
``(B, N, N)`` input (torch-geometric 2.8.1) it shifts the index it used for the
gather in place, so backpropagating into ``adj`` fails. Gradients flow through
the weights in both directions here.

Orientation: with ``rows="source"`` (PyG's), ``adj[b, j, i]`` is the weight of
the edge ``j -> i``; with ``rows="target"`` (attention matrices, where row ``i``
holds what node ``i`` receives), ``adj[b, i, j]`` is.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_adj

_ROWS = ("source", "target")


def _check_rows(rows: str) -> None:
    if rows not in _ROWS:
        raise ValueError(f"rows must be one of {_ROWS}, got {rows!r}")


def dense_to_edge_index(adj: Tensor, rows: str = "source") -> Tuple[Tensor, Tensor]:
    r"""Non-zero entries of a batched adjacency -> edges, sorted by target.

    Args:
        adj (Tensor): ``(B, N, N)`` (or ``(N, N)``, read as ``B = 1``).
        rows (str): ``"source"`` or ``"target"``, see the module docstring.

    Returns:
        ``(edge_index, edge_weight)``: ``(2, E)`` global ids ``b * N + i`` and
        ``(E,)`` weights, differentiable with respect to ``adj``.
    """
    _check_rows(rows)
    if adj.dim() == 2:
        adj = adj.unsqueeze(0)
    if adj.dim() != 3 or adj.size(1) != adj.size(2):
        raise ValueError(f"adj must have shape (B, N, N), got {tuple(adj.shape)}")
    if rows == "target":
        adj = adj.transpose(1, 2)
    b, src, dst = adj.nonzero(as_tuple=True)
    edge_weight = adj[b, src, dst]
    N = adj.size(1)
    edge_index = torch.stack([b * N + src, b * N + dst])
    perm = torch.argsort(edge_index[1], stable=True)
    return edge_index[:, perm], edge_weight[perm]


def edge_index_to_dense(edge_index: Tensor, edge_weight: Optional[Tensor],
                        batch_size: int, num_nodes: int, rows: str = "source") -> Tensor:
    r"""Edges -> batched adjacency ``(B, N, N)``; repeated edges add up.

    Args:
        edge_index (LongTensor): ``(2, E)`` global ids in ``[0, B*N)``, never
            joining two images.
        edge_weight (Tensor, optional): ``(E,)``; default ones.
        batch_size (int): ``B``.
        num_nodes (int): ``N``.
        rows (str): ``"source"`` or ``"target"``.
    """
    _check_rows(rows)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
    E = edge_index.size(1)
    if edge_weight is not None and (edge_weight.dim() != 1 or edge_weight.numel() != E):
        raise ValueError(f"edge_weight must have shape ({E},), got {tuple(edge_weight.shape)}")
    total = batch_size * num_nodes
    if E and (int(edge_index.min()) < 0 or int(edge_index.max()) >= total):
        raise ValueError(f"edge_index entries must lie in [0, B*N) = [0, {total})")
    src_img = edge_index[0] // max(num_nodes, 1)
    if bool((src_img != edge_index[1] // max(num_nodes, 1)).any()):
        raise ValueError("edge_index joins nodes of different images")
    batch = torch.arange(batch_size, device=edge_index.device).repeat_interleave(num_nodes)
    adj = to_dense_adj(edge_index, batch=batch, edge_attr=edge_weight,
                       max_num_nodes=num_nodes, batch_size=batch_size)
    return adj.transpose(1, 2) if rows == "target" else adj
