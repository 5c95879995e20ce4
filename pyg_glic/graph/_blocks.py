r"""Candidate structures (query blocks and their candidate sets), private.

All ids follow pyg_glic's node order (``b * H * W + y * W + x``); ``-1`` marks
a slot that falls outside the map (padding). Blocks are ordered image-major,
then row-major over the block grid; slots row-major inside a block.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor


def _ids(B: int, H: int, W: int, y: Tensor, x: Tensor) -> Tensor:
    r"""``y``/``x`` broadcast to ``(nby, nbx, a, b)``; returns ``(B * nby * nbx, a * b)``."""
    y, x = torch.broadcast_tensors(y, x)
    valid = (y >= 0) & (y < H) & (x >= 0) & (x < W)
    local = torch.where(valid, y * W + x, -1)
    offset = (torch.arange(B, device=y.device) * (H * W)).view(B, 1, 1, 1, 1)
    ids = torch.where(valid.unsqueeze(0), local.unsqueeze(0) + offset, -1)
    return ids.reshape(B * y.size(0) * y.size(1), y.size(2) * y.size(3))


def window_grid(H: int, W: int, window: int) -> Tuple[int, int]:
    return math.ceil(H / window), math.ceil(W / window)


def window_blocks(B: int, H: int, W: int, window: int, device=None) -> Tensor:
    r"""Query ids of the non-overlapping ``window x window`` windows: ``(nb, window**2)``."""
    nwy, nwx = window_grid(H, W, window)
    wy = torch.arange(nwy, device=device).view(nwy, 1, 1, 1)
    wx = torch.arange(nwx, device=device).view(1, nwx, 1, 1)
    i = torch.arange(window, device=device)
    return _ids(B, H, W, wy * window + i.view(1, 1, window, 1),
                wx * window + i.view(1, 1, 1, window))


def halo_blocks(B: int, H: int, W: int, window: int, halo: int, device=None) -> Tensor:
    r"""Candidate ids of the ``(window + 2 halo)**2`` patch centred on each window,
    ``(nb, P*P)``."""
    nwy, nwx = window_grid(H, W, window)
    P = window + 2 * halo
    wy = torch.arange(nwy, device=device).view(nwy, 1, 1, 1)
    wx = torch.arange(nwx, device=device).view(1, nwx, 1, 1)
    i = torch.arange(P, device=device) - halo
    return _ids(B, H, W, wy * window + i.view(1, 1, P, 1), wx * window + i.view(1, 1, 1, P))


def dilated_groups(B: int, H: int, W: int, group: int, device=None) -> Tensor:
    r"""GLIC's dilated query sets: ``(nb, group**2)``.

    With strides ``sy = ceil(H / group)``, ``sx = ceil(W / group)``, set ``(a, b)``
    holds the nodes ``(a + i * sy, b + j * sx)``, ``0 <= i, j < group`` (those
    inside the map), i.e. the nodes with ``(y mod sy, x mod sx) == (a, b)``.
    """
    sy, sx = math.ceil(H / group), math.ceil(W / group)
    a = torch.arange(sy, device=device).view(sy, 1, 1, 1)
    b = torch.arange(sx, device=device).view(1, sx, 1, 1)
    i = torch.arange(group, device=device)
    return _ids(B, H, W, a + i.view(1, 1, group, 1) * sy, b + i.view(1, 1, 1, group) * sx)


def strided_steps(H: int, W: int, grid: int, group: int) -> Tuple[int, int, int, int]:
    r"""``(ty, tx, sy, sx)`` of the strided global layout: lattice strides
    ``ty = ceil(H / grid)``, ``tx = ceil(W / grid)`` and query strides
    ``sy = ty * (grid // group)``, ``sx = tx * (grid // group)``."""
    ty, tx = math.ceil(H / grid), math.ceil(W / grid)
    r = grid // group
    return ty, tx, ty * r, tx * r


def strided_blocks(B: int, H: int, W: int, grid: int, group: int, device=None
                   ) -> Tuple[Tensor, Tensor]:
    r"""GLIC's global query sets and their lattices of real nodes:
    ``(query_index (nb, group**2), cand_index (nb, grid**2))``.

    With :func:`strided_steps`, set ``(a, b)`` (``0 <= a < min(sy, H)``,
    ``0 <= b < min(sx, W)``: the sets that hold a node) holds the nodes
    ``(a + i * sy, b + j * sx)``, ``0 <= i, j < group``, i.e. those with
    ``(y mod sy, x mod sx) == (a, b)``; its candidates are the lattice nodes
    ``(a mod ty + i * ty, b mod tx + j * tx)``, ``0 <= i, j < grid``. Slots
    outside the map are ``-1``. Needs ``grid % group == 0``; every query is a
    candidate of its own set.
    """
    ty, tx, sy, sx = strided_steps(H, W, grid, group)
    ny, nx = min(sy, H), min(sx, W)
    a = torch.arange(ny, device=device).view(ny, 1, 1, 1)
    b = torch.arange(nx, device=device).view(1, nx, 1, 1)
    i = torch.arange(group, device=device)
    qidx = _ids(B, H, W, a + i.view(1, 1, group, 1) * sy, b + i.view(1, 1, 1, group) * sx)
    j = torch.arange(grid, device=device)
    cidx = _ids(B, H, W, a % ty + j.view(1, 1, grid, 1) * ty, b % tx + j.view(1, 1, 1, grid) * tx)
    return qidx, cidx


def image_blocks(B: int, n: int, device=None) -> Tensor:
    r"""One block per image holding all its ``n`` nodes: ``(B, n)``."""
    return torch.arange(B * n, device=device).view(B, n)


def batch_blocks(batch: Tensor, num_graphs: int) -> Tensor:
    r"""One block per graph of a sorted ``batch`` vector, padded with ``-1``: ``(G, max_n)``."""
    counts = torch.bincount(batch, minlength=num_graphs)
    n = int(counts.max()) if counts.numel() else 0
    start = torch.zeros(num_graphs, dtype=torch.long, device=batch.device)
    start[1:] = counts.cumsum(0)[:-1]
    slot = torch.arange(n, device=batch.device)
    ids = start.view(-1, 1) + slot.view(1, -1)
    return torch.where(slot.view(1, -1) < counts.view(-1, 1), ids, -1)


def node_to_block(query_index: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
    r"""For blocks that partition the nodes: block id and slot of every node, ``(N,)`` each."""
    nb, Q = query_index.shape
    valid = query_index >= 0
    blk = torch.full((num_nodes,), -1, dtype=torch.long, device=query_index.device)
    slot = torch.full((num_nodes,), -1, dtype=torch.long, device=query_index.device)
    ids = query_index[valid]
    blk[ids] = torch.arange(nb, device=query_index.device).view(nb, 1).expand(nb, Q)[valid]
    slot[ids] = torch.arange(Q, device=query_index.device).view(1, Q).expand(nb, Q)[valid]
    return blk, slot


def grid_positions(B: int, H: int, W: int, device=None, dtype=torch.float32) -> Tensor:
    r"""Float ``(row, col)`` of every node, ``(B*H*W, 2)``."""
    ys = torch.arange(H, device=device, dtype=dtype)
    xs = torch.arange(W, device=device, dtype=dtype)
    pos = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
    return pos.repeat(B, 1)
