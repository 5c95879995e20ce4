r"""The downsampled view of a feature map used by the global graph.

Two reductions, both average pooling over rectangular cells:

- ``grid=g`` (GLIC): a fixed ``g x g`` grid whatever the image size, by
  adaptive average pooling: cell ``i`` of a side of length ``H`` covers rows
  ``floor(i H / g)`` to ``ceil((i + 1) H / g) - 1`` (cells overlap by one row
  when ``g`` does not divide ``H``). A side shorter than ``g`` is pooled to its
  own length (the grid is clamped to the map, so no cell repeats another).
- ``factor=r`` (ViG's pyramid graph reduction): cells of ``r x r`` nodes,
  ``ceil(H / r) x ceil(W / r)`` of them; the last row / column of cells is
  clipped at the border and averages only the nodes it covers. For maps
  divisible by ``r`` this is :func:`torch.nn.functional.avg_pool2d` ``(r, r)``.

A pooled node sits at the centre of its cell, in full-resolution pixels:
``((first_row + last_row) / 2, (first_col + last_col) / 2)``.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import _pair

IntOrPair = Union[int, Tuple[int, int]]


def pooled_size(height: int, width: int, grid: Optional[IntOrPair] = None,
                factor: Optional[IntOrPair] = None) -> Tuple[int, int]:
    r"""``(g_h, g_w)`` of the pooled map; exactly one of ``grid`` / ``factor``."""
    if (grid is None) == (factor is None):
        raise ValueError("give exactly one of grid (fixed g x g grid) and factor "
                         f"(reduction ratio), got grid={grid!r}, factor={factor!r}")
    if height < 1 or width < 1:
        raise ValueError(f"cannot pool an empty map of size ({height}, {width})")
    if grid is not None:
        gh, gw = _pair(grid, "grid")
        if gh < 1 or gw < 1:
            raise ValueError(f"grid must be >= 1, got {grid!r}")
        return min(gh, height), min(gw, width)
    rh, rw = _pair(factor, "factor")
    if rh < 1 or rw < 1:
        raise ValueError(f"factor must be >= 1, got {factor!r}")
    return math.ceil(height / rh), math.ceil(width / rw)


def _cells(length: int, n: int, factor: Optional[int]) -> Tuple[Tensor, Tensor]:
    i = torch.arange(n)
    if factor is None:
        start = (i * length) // n
        end = ((i + 1) * length + n - 1) // n
    else:
        start = i * factor
        end = torch.clamp((i + 1) * factor, max=length)
    return start, end


def pool_map(x: Tensor, grid: Optional[IntOrPair] = None,
             factor: Optional[IntOrPair] = None) -> Tensor:
    r"""Average-pool a feature map to the global graph's downsampled view.

    Args:
        x (Tensor): feature map ``(B, C, H, W)``.
        grid (int or tuple, optional): fixed output grid (GLIC: 16).
        factor (int or tuple, optional): reduction ratio (ViG: 4, 2, 1, 1).

    Returns:
        Tensor ``(B, C, g_h, g_w)``, see :func:`pooled_size`.

    Shapes:
        - **input:** ``(B, C, H, W)``
        - **output:** ``(B, C, g_h, g_w)``
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a feature map of shape (B, C, H, W), got {shape}")
    B, C, H, W = x.shape
    gh, gw = pooled_size(H, W, grid, factor)
    if grid is not None:
        return F.adaptive_avg_pool2d(x, (gh, gw))
    rh, rw = _pair(factor, "factor")
    if H % rh == 0 and W % rw == 0:
        return F.avg_pool2d(x, (rh, rw), (rh, rw))
    ph, pw = gh * rh - H, gw * rw - W
    xs = F.pad(x, (0, pw, 0, ph)).view(B, C, gh, rh, gw, rw).sum(dim=(3, 5))
    ys, ye = _cells(H, gh, rh)
    xs_, xe = _cells(W, gw, rw)
    count = ((ye - ys).view(-1, 1) * (xe - xs_).view(1, -1)).to(device=x.device, dtype=x.dtype)
    return xs / count


def pooled_pos(height: int, width: int, grid: Optional[IntOrPair] = None,
               factor: Optional[IntOrPair] = None, *, batch_size: int = 1, device=None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Positions of the pooled nodes (cell centres, full-resolution pixels).

    Args:
        height, width (int): size of the full-resolution map.
        grid, factor: as in :func:`pool_map`.
        batch_size (int): number of images (positions repeat per image).

    Returns:
        Tensor ``(batch_size * g_h * g_w, 2)`` of ``(row, col)``, pooled nodes in
        pyg_glic's node order (image-major, row-major).
    """
    gh, gw = pooled_size(height, width, grid, factor)
    fh = fw = None
    if factor is not None:
        fh, fw = _pair(factor, "factor")
    ys, ye = _cells(height, gh, fh)
    xs, xe = _cells(width, gw, fw)
    cy = (ys + ye - 1).to(torch.float64) / 2
    cx = (xs + xe - 1).to(torch.float64) / 2
    pos = torch.stack(torch.meshgrid(cy, cx, indexing="ij"), dim=-1).reshape(-1, 2)
    return pos.to(device=device, dtype=dtype).repeat(batch_size, 1)
