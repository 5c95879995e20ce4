r"""Segment reductions over target-sorted CSR graphs: :func:`csr_max`, the
max-aggregation of :class:`~pyg_glic.nn.conv.MRConv` given the graph's pointer.

It walks the edges in chunks of at most
:data:`pyg_glic.nn.attention.backend.CHUNK_ELEMENTS` gathered values (the same
switch as the attention executors' chunks).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .attention import backend
from .attention.contract import uniform_degree

__all__ = ["csr_max"]


def _target_chunks(ptr: Tensor, row_elements: int):
    # (t0, t1) target ranges whose edges hold at most ~CHUNK_ELEMENTS gathered values
    n = ptr.numel() - 1
    if torch.compiler.is_compiling() or n == 0:
        return [(0, n)]
    step = max(1, backend.CHUNK_ELEMENTS // max(1, row_elements))
    marks = torch.arange(0, int(ptr[-1]) + step, step, device=ptr.device)
    cuts = torch.searchsorted(ptr, marks, right=True).clamp(max=n).tolist()
    bounds = sorted(set([0] + cuts + [n]))
    return list(zip(bounds[:-1], bounds[1:]))


def _segment_max_chunk(rows: Tensor, ptr: Tensor, uniform: int) -> Tensor:
    # per-segment channel max of (e, C) rows; empty segments give -inf
    if uniform:
        return rows.view(-1, uniform, rows.size(1)).amax(1)
    return torch.segment_reduce(rows, "max", offsets=ptr - ptr[0], axis=0)


class _CSRMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, ptr: Tensor, src: Tensor) -> Tensor:
        n, C = ptr.numel() - 1, x.size(1)
        uniform = uniform_degree(ptr)
        out = x.new_empty(n, C)
        for t0, t1 in _target_chunks(ptr, C):
            e0, e1 = int(ptr[t0]), int(ptr[t1])
            out[t0:t1] = _segment_max_chunk(x.index_select(0, src[e0:e1]), ptr[t0:t1 + 1],
                                            uniform)
        ctx.save_for_backward(x, ptr, src, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        # the gradient of each (target, channel) maximum goes to the sources that
        # attain it, split evenly between ties (as torch.amax does)
        x, ptr, src, out = ctx.saved_tensors
        grad_x = torch.zeros_like(x)
        deg = ptr[1:] - ptr[:-1]
        for t0, t1 in _target_chunks(ptr, x.size(1)):
            e0, e1 = int(ptr[t0]), int(ptr[t1])
            if e1 == e0:
                continue
            s = src[e0:e1]
            d = deg[t0:t1]
            hit = x.index_select(0, s) == out[t0:t1].repeat_interleave(d, dim=0,
                                                                       output_size=e1 - e0)
            hit = hit.to(x.dtype)
            ties = torch.segment_reduce(hit, "sum", offsets=ptr[t0:t1 + 1] - e0, axis=0)
            share = (grad[t0:t1] / ties.clamp(min=1)).repeat_interleave(d, dim=0,
                                                                      output_size=e1 - e0)
            grad_x.index_add_(0, s, hit.mul_(share))
        return grad_x, None, None


def csr_max(x: Tensor, ptr: Tensor, src: Tensor) -> Tensor:
    r"""Per-channel maximum over each target's sources in a target-sorted CSR graph.

    .. math::
        \mathbf{m}_i = \max_{j \in \mathcal{N}(i)} \mathbf{x}_j

    with 0 for a target without edges (PyG's ``"max"`` aggregation). The
    sources are gathered in chunks of at most
    :data:`pyg_glic.nn.attention.backend.CHUNK_ELEMENTS` values and
    nothing per edge is kept for backward, which recomputes the chunk's
    arg-maxima (the gradient of a tie is split evenly, as :func:`torch.amax`
    does).

    Args:
        x (Tensor): source features ``(N_src, C)``.
        ptr (LongTensor): ``(N_dst + 1,)``; the edges into target ``i`` are
            ``ptr[i]:ptr[i+1]``.
        src (LongTensor): ``(E,)`` the source of every edge, in that order.

    Returns:
        Tensor ``(N_dst, C)``.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (N_src, C), got shape {tuple(x.shape)}")
    if int(ptr[-1]) != src.numel():
        raise ValueError(f"ptr must end at the number of edges {src.numel()}, "
                         f"got {int(ptr[-1])}")
    m = _CSRMax.apply(x, ptr, src)
    return m.masked_fill((ptr[1:] == ptr[:-1]).unsqueeze(-1), 0.0)
