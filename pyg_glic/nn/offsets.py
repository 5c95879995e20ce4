r"""Relative position offsets of GLIC's attention: log spacing and the distinct offsets.

:func:`log_spaced` is the input transform of
:class:`~pyg_glic.nn.conv.GLICAttention`'s position MLP;
:func:`compress_offsets` lets the MLP run on the few distinct offsets of an image
graph instead of on every edge (what :class:`~pyg_glic.nn.blocks.GLICStage`
does with ``compress_offsets=True``).
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

__all__ = ["log_spaced", "compress_offsets"]


def log_spaced(offset: Tensor) -> Tensor:
    r"""Log-spaced relative offsets, :math:`\mathrm{sign}(d)\,\log(1 + |d|)`, elementwise."""
    return torch.sign(offset) * torch.log1p(offset.abs())


def compress_offsets(edge_attr: Tensor) -> Tuple[Tensor, Tensor]:
    r"""The distinct rows of ``edge_attr`` and, per edge, the index of its row.

    Image graphs repeat few relative offsets (a halo graph has at most
    ``(window + 2 halo - 1)^2`` different ``(dy, dx)``), so a position MLP run on
    the distinct offsets and gathered per edge costs ``U`` rows instead of
    ``E`` (see the ``offset_index`` argument of
    :class:`~pyg_glic.nn.conv.GLICAttention`).

    Args:
        edge_attr (Tensor): ``(E, F)``.

    Returns:
        ``(unique, index)``: ``(U, F)`` and ``(E,)`` with
        ``unique[index] == edge_attr``.
    """
    if edge_attr.size(0) == 0:
        return edge_attr, torch.zeros(0, dtype=torch.long, device=edge_attr.device)
    # ``torch.unique(dim=0)`` compares rows one by one on the CPU (it took 44%
    # of a glic-lite training step); ranking each column with the 1-D sort-based
    # ``unique`` and folding the ranks into one integer key per row is
    # equivalent (same lexicographic order) and vectorised.
    key = None
    for j in range(edge_attr.size(1)):
        _, rank = torch.unique(edge_attr[:, j], return_inverse=True)
        if key is None:
            key = rank
        else:
            _, key = torch.unique(key * (int(rank.max()) + 1) + rank, return_inverse=True)
    if key is None:  # F == 0: every row is the same empty row
        key = torch.zeros(edge_attr.size(0), dtype=torch.long, device=edge_attr.device)
    _, index = torch.unique(key, return_inverse=True)
    first = torch.full((int(index.max()) + 1,), edge_attr.size(0), dtype=torch.long,
                       device=edge_attr.device)
    first.scatter_reduce_(0, index, torch.arange(edge_attr.size(0), device=edge_attr.device),
                          reduce="amin")
    return edge_attr[first], index
