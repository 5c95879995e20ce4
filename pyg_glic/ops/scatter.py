r"""Scatter reductions with a torch-scatter and a pure-torch backend."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import typing as _t

REDUCTIONS = ("sum", "mean", "max", "min")


def scatter(src: Tensor, index: Tensor, dim: int = 0, dim_size: Optional[int] = None,
            reduce: str = "sum", *, backend: Optional[str] = None) -> Tensor:
    r"""Reduce the slices of ``src`` along ``dim`` that share an ``index``.

    .. math::
        \mathrm{out}_i = \mathrm{reduce}_{j : \mathrm{index}_j = i} \; \mathrm{src}_j

    Groups that receive nothing are 0 for every reduction (torch-scatter's and
    PyG's convention), so a node without incoming edges aggregates to zero.

    Args:
        src (Tensor): values; ``src.size(dim) == index.numel()``.
        index (LongTensor): 1-D group ids, ``(src.size(dim),)``.
        dim (int): the dimension reduced.
        dim_size (int, optional): number of groups; default ``index.max() + 1``.
        reduce (str): ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``.
        backend (str, optional): ``"torch_scatter"``, ``"torch"`` or ``None``/``"auto"``.

    Shapes:
        - **input:** ``src (..., E, ...)``, ``index (E,)``
        - **output:** ``(..., dim_size, ...)``
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    dim = dim + src.dim() if dim < 0 else dim
    if index.dim() != 1 or index.numel() != src.size(dim):
        raise ValueError(f"index must have shape ({src.size(dim)},) to match src.size({dim}), "
                         f"got {tuple(index.shape)}")
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() > 0 else 0
    backend = _t.resolve_backend("scatter", backend, src.device)
    if backend == "torch_scatter":
        return _t.torch_scatter.scatter(src, index, dim=dim, dim_size=dim_size, reduce=reduce)

    size = list(src.shape)
    size[dim] = dim_size
    view = [1] * src.dim()
    view[dim] = -1
    idx = index.view(view).expand_as(src)
    out = src.new_zeros(size)
    if reduce == "sum":
        return out.scatter_add_(dim, idx, src)
    red = {"mean": "mean", "max": "amax", "min": "amin"}[reduce]
    return out.scatter_reduce_(dim, idx, src, red, include_self=False)
