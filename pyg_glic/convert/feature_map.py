r"""Dense feature maps ``(B, C, H, W)`` <-> node features and PyG batches.

Node order everywhere in pyg_glic: image-major, then row-major inside an image,
so node ``b * H * W + y * W + x`` is pixel ``(y, x)`` of image ``b``.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data


def _check_map(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a feature map of shape (B, C, H, W), got {shape}")


def grid_pos(height: int, width: int, device=None) -> Tensor:
    r"""Integer grid positions ``(H*W, 2)`` as ``(row, col)`` in row-major order."""
    ys = torch.arange(height, device=device)
    xs = torch.arange(width, device=device)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def map_to_nodes(x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Flatten a feature map into graph nodes.

    Works for contiguous and ``channels_last`` maps alike (for the latter the
    node features are a view, no copy).

    Args:
        x (Tensor): feature map ``(B, C, H, W)``.

    Returns:
        ``(nodes, batch, pos)``: node features ``(B*H*W, C)``, image ids
        ``(B*H*W,)`` (long) and integer grid positions ``(B*H*W, 2)`` as
        ``(row, col)`` (long).
    """
    _check_map(x)
    B, C, H, W = x.shape
    nodes = x.permute(0, 2, 3, 1).reshape(B * H * W, C)
    batch = torch.arange(B, device=x.device).repeat_interleave(H * W)
    pos = grid_pos(H, W, x.device).repeat(B, 1)
    return nodes, batch, pos


def nodes_to_map(nodes: Tensor, batch_size: int, height: int, width: int) -> Tensor:
    r"""Inverse of :func:`map_to_nodes`.

    Args:
        nodes (Tensor): node features ``(B*H*W, C)`` in pyg_glic's node order.
        batch_size, height, width (int): ``B``, ``H``, ``W``.

    Returns:
        Tensor ``(B, C, H, W)`` (a ``channels_last``-strided view of ``nodes``).
    """
    n = batch_size * height * width
    if nodes.dim() != 2 or nodes.size(0) != n:
        raise ValueError(f"nodes must have shape (B*H*W, C) = ({n}, C) for "
                         f"B={batch_size}, H={height}, W={width}, got {tuple(nodes.shape)}")
    C = nodes.size(1)
    return nodes.reshape(batch_size, height, width, C).permute(0, 3, 1, 2)


def map_to_batch(x: Tensor) -> Batch:
    r"""A PyG :class:`~torch_geometric.data.Batch` with one :class:`Data` per image.

    Each ``Data`` holds ``x`` ``(H*W, C)``, ``pos`` ``(H*W, 2)`` (row, col) and
    an empty ``edge_index`` ``(2, 0)``; the batch's node order is pyg_glic's.

    Args:
        x (Tensor): feature map ``(B, C, H, W)``.
    """
    nodes, _, _ = map_to_nodes(x)
    B, _, H, W = x.shape
    pos = grid_pos(H, W, x.device)
    empty = torch.empty(2, 0, dtype=torch.long, device=x.device)
    data = [Data(x=nodes[b * H * W:(b + 1) * H * W], pos=pos, edge_index=empty,
                 height=H, width=W) for b in range(B)]
    return Batch.from_data_list(data)


def batch_to_map(batch: Batch, height: int, width: int) -> Tensor:
    r"""Inverse of :func:`map_to_batch`: node features of equally sized graphs -> ``(B, C, H, W)``.

    Raises:
        ValueError: if some graph does not have ``height * width`` nodes.
    """
    num_graphs = batch.num_graphs
    counts = torch.bincount(batch.batch, minlength=num_graphs) if batch.x.size(0) else \
        torch.zeros(num_graphs, dtype=torch.long)
    if bool((counts != height * width).any()):
        raise ValueError(f"every graph must have height*width = {height * width} nodes, "
                         f"got {counts.tolist()}")
    return nodes_to_map(batch.x, num_graphs, height, width)
