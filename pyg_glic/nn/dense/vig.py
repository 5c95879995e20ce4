r"""Dense references for the ViG-style convolutions, written the way ViG's code works.

ViG keeps node features as ``(B, C, N)`` (``N = H * W``) and the graph as a dense
neighbour index ``(B, N, k)``; it gathers the neighbours into ``(B, C, N, k)``
and reduces over the last axis. These functions reuse the parameters of the
sparse layer they mirror, so the two can be compared number for number.
Variable degrees are padded with ``-1`` (see
:func:`pyg_glic.convert.edge_index_to_knn_index`); padded slots take no part in
the reduction, and a node with no neighbour aggregates to 0, as in the sparse
layers.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..conv.mr_conv import MRConv
from ..conv.weighted_conv import WeightedConv

__all__ = ["gather_neighbors", "dense_mr_conv", "dense_weighted_conv"]


def gather_neighbors(x: Tensor, knn_index: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Gather neighbour features, ViG's ``batched_index_select``.

    Args:
        x (Tensor): node features ``(B, C, N)``.
        knn_index (LongTensor): ``(B, N, k)`` local ids, ``-1`` for an empty slot.

    Returns:
        ``(x_j, valid)``: ``(B, C, N, k)`` neighbour features (an empty slot
        holds node 0's features) and the ``(B, N, k)`` mask of filled slots.
    """
    B, C, N = x.shape
    if knn_index.dim() != 3 or knn_index.shape[:2] != (B, N):
        raise ValueError(f"knn_index must have shape ({B}, {N}, k), got {tuple(knn_index.shape)}")
    k = knn_index.size(-1)
    valid = knn_index >= 0
    flat = knn_index.clamp(min=0) + (torch.arange(B, device=x.device) * N).view(B, 1, 1)
    nodes = x.transpose(1, 2).reshape(B * N, C)
    x_j = nodes[flat.reshape(-1)].view(B, N, k, C).permute(0, 3, 1, 2)
    return x_j, valid


def _reduce(msg: Tensor, valid: Tensor, aggr: str) -> Tensor:
    # msg (B, C, N, k), valid (B, N, k) -> (B, C, N)
    mask = valid.unsqueeze(1)
    if aggr == "max":
        out = msg.masked_fill(~mask, float("-inf")).max(dim=-1).values
        return torch.where(valid.any(-1).unsqueeze(1), out, torch.zeros_like(out))
    out = msg.masked_fill(~mask, 0.).sum(dim=-1)
    if aggr == "mean":
        out = out / valid.sum(-1).clamp(min=1).unsqueeze(1).to(out.dtype)
    return out


def _linear(lin, h: Tensor) -> Tensor:
    # apply a node-wise linear map to (B, C, N)
    return lin(h.transpose(1, 2)).transpose(1, 2)


def dense_mr_conv(layer: MRConv, x: Tensor, knn_index: Tensor) -> Tensor:
    r"""Dense :class:`~pyg_glic.nn.conv.MRConv` with ``layer``'s parameters.

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W} \left[ \mathbf{x}_i \,\Big\|\,
        \max_{s} \left( \mathbf{x}_{\mathrm{idx}[i, s]} - \mathbf{x}_i \right) \right]
        + \mathbf{b}

    Args:
        layer (MRConv): the sparse layer whose parameters are used.
        x (Tensor): node features ``(B, C, N)``.
        knn_index (LongTensor): neighbours ``(B, N, k)``, ``-1`` for none.

    Returns:
        Tensor ``(B, F_out, N)``.
    """
    x_j, valid = gather_neighbors(x, knn_index)
    rel = x_j - x.unsqueeze(-1)
    agg = _reduce(rel, valid, "max")
    return _linear(layer.lin, torch.cat([x, agg], dim=1))


def dense_weighted_conv(layer: WeightedConv, x: Tensor, knn_index: Tensor,
                        weight: Optional[Tensor] = None) -> Tensor:
    r"""Dense :class:`~pyg_glic.nn.conv.WeightedConv` with ``layer``'s parameters.

    Args:
        layer (WeightedConv): the sparse layer whose parameters are used.
        x (Tensor): node features ``(B, C, N)``.
        knn_index (LongTensor): neighbours ``(B, N, k)``, ``-1`` for none.
        weight (Tensor, optional): ``(B, N, k)`` weight of each slot's edge.

    Returns:
        Tensor ``(B, F_out, N)``.
    """
    x_j, valid = gather_neighbors(x, knn_index)
    msg = x_j - x.unsqueeze(-1) if layer.relative else x_j
    if weight is not None:
        msg = msg * weight.unsqueeze(1).to(msg.dtype)
    agg = _reduce(msg, valid, layer.aggr)
    h = torch.cat([x, agg], dim=1) if layer.root_weight else agg
    return _linear(layer.lin, h)
