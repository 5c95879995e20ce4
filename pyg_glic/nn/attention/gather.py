r"""The gather executor: per-edge gathers in bounded chunks (any device and dtype,
:func:`torch.compile`), and the same rule as PyG messages.

The contract is :mod:`pyg_glic.nn.attention.contract`. :func:`gather_attention`
runs it as three steps: per-edge scores (:func:`edge_dot`), PyG's
:func:`~torch_geometric.utils.softmax` over each target's edges, and the
weighted sum of the sources' values (:func:`edge_spmm`). It needs no ``ptr``.

Memory: :func:`edge_dot` and :func:`edge_spmm` are autograd functions that save
only their node-level inputs (and the ``(E, H)`` attention weights) for the
backward pass and gather the per-edge rows again there. Plain gather-based code
(``(q[dst] * k[src]).sum(-1)``) keeps three ``E x C`` tensors alive per layer
until the backward pass; these keep none. In eager mode they also walk the
edges in chunks of at most :data:`pyg_glic.nn.attention.backend.CHUNK_ELEMENTS`
gathered elements, so no ``E x C`` tensor exists even transiently; under
:func:`torch.compile` the compiler fuses the gathers instead. What remains per
edge is ``(E, H)`` (scores, attention weights). Double backward is not
supported.

:func:`attention_message` is the same rule written on PyG's per-edge tensors
(``q_i``, ``k_j``, ``v_j``), for
:meth:`GLICAttention.message <pyg_glic.nn.conv.GLICAttention.message>`
(``impl="propagate"``): the plain form, ``E x C`` messages and all.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch_geometric.utils import softmax

from . import backend

__all__ = ["edge_dot", "edge_spmm", "gather_attention", "attention_message"]


def _row(t: Tensor) -> int:
    n = 1
    for s in t.shape[1:]:
        n *= s
    return n


def _chunks(num_edges: int, row_elements: int):
    if torch.compiler.is_compiling():
        return [(0, num_edges)]
    step = max(1, backend.CHUNK_ELEMENTS // max(1, row_elements))
    return [(e0, min(num_edges, e0 + step)) for e0 in range(0, num_edges, step)] or [(0, 0)]


class _EdgeDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        ctx.save_for_backward(q, k, src, dst)
        parts = []
        for e0, e1 in _chunks(src.numel(), _row(q)):
            prod = q.index_select(0, dst[e0:e1])
            prod.mul_(k.index_select(0, src[e0:e1]))
            parts.append(prod.sum(-1))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        q, k, src, dst = ctx.saved_tensors
        grad = grad.unsqueeze(-1)
        grad_q = torch.zeros_like(q) if ctx.needs_input_grad[0] else None
        grad_k = torch.zeros_like(k) if ctx.needs_input_grad[1] else None
        for e0, e1 in _chunks(src.numel(), _row(q)):
            s, d, g = src[e0:e1], dst[e0:e1], grad[e0:e1]
            if grad_q is not None:
                grad_q.index_add_(0, d, k.index_select(0, s).mul_(g))
            if grad_k is not None:
                grad_k.index_add_(0, s, q.index_select(0, d).mul_(g))
        return grad_q, grad_k, None, None


class _EdgeSpmm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha: Tensor, v: Tensor, src: Tensor, dst: Tensor,
                num_dst: int) -> Tensor:
        ctx.save_for_backward(alpha, v, src, dst)
        out = v.new_zeros((num_dst,) + tuple(v.shape[1:]))
        for e0, e1 in _chunks(src.numel(), _row(v)):
            msg = v.index_select(0, src[e0:e1]).mul_(alpha[e0:e1].unsqueeze(-1))
            out.index_add_(0, dst[e0:e1], msg)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        alpha, v, src, dst = ctx.saved_tensors
        parts = []
        grad_v = torch.zeros_like(v) if ctx.needs_input_grad[1] else None
        for e0, e1 in _chunks(src.numel(), _row(v)):
            s, d = src[e0:e1], dst[e0:e1]
            g = grad.index_select(0, d)  # (e, H, D)
            if ctx.needs_input_grad[0]:
                parts.append(v.index_select(0, s).mul_(g).sum(-1))
            if grad_v is not None:
                grad_v.index_add_(0, s, g.mul_(alpha[e0:e1].unsqueeze(-1)))
        grad_alpha = None
        if ctx.needs_input_grad[0]:
            grad_alpha = parts[0] if len(parts) == 1 else torch.cat(parts)
        return grad_alpha, grad_v, None, None, None


def edge_dot(q: Tensor, k: Tensor, edge_index: Tensor) -> Tensor:
    r"""Per-edge, per-head dot products (a sampled dense-dense product, SDDMM).

    .. math::
        s_{e,h} = \langle \mathbf{q}_{i,h}, \mathbf{k}_{j,h} \rangle
        \quad\text{for edge } e = (j \rightarrow i)

    Args:
        q (Tensor): target rows ``(N_dst, H, D)``.
        k (Tensor): source rows ``(N_src, H, D)``.
        edge_index (LongTensor): ``(2, E)``, row 0 source ``j``, row 1 target ``i``.

    Returns:
        Tensor ``(E, H)``.
    """
    return _EdgeDot.apply(q, k, edge_index[0], edge_index[1])


def edge_spmm(alpha: Tensor, v: Tensor, edge_index: Tensor, num_dst: int) -> Tensor:
    r"""Weighted sum of source rows into targets (a sparse-dense product, SpMM).

    .. math::
        \mathbf{o}_{i,h} = \sum_{e = (j \rightarrow i)} \alpha_{e,h}\, \mathbf{v}_{j,h}

    A target without incoming edges gets 0.

    Args:
        alpha (Tensor): per-edge, per-head weights ``(E, H)``.
        v (Tensor): source rows ``(N_src, H, D)``.
        edge_index (LongTensor): ``(2, E)``.
        num_dst (int): number of targets.

    Returns:
        Tensor ``(num_dst, H, D)``.
    """
    return _EdgeSpmm.apply(alpha, v, edge_index[0], edge_index[1], num_dst)


def gather_attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                     edge_index: Tensor, num_dst: int,
                     edge_weight: Optional[Tensor] = None) -> Tensor:
    r"""Attention over the edges by chunked per-edge gathers (see the module docs;
    arguments and result as in :mod:`pyg_glic.nn.attention.contract`)."""
    score = edge_dot(q, k, edge_index)
    if bias is not None:
        score = score + bias
    # no ``ptr`` for PyG's softmax here: the dispatcher runs this executor when
    # no pointer executor applies (a pointer, if any, is then still at hand, but
    # the scatter softmax keeps this executor's operations those of every
    # device, dtype and torch.compile, where it is the one that runs)
    alpha = softmax(score, edge_index[1], num_nodes=num_dst, dim=0)
    if edge_weight is not None:
        alpha = alpha * edge_weight.unsqueeze(-1).to(alpha.dtype)
    return edge_spmm(alpha, v, edge_index, num_dst)


def attention_message(q_i: Tensor, k_j: Tensor, v_j: Tensor, bias: Optional[Tensor],
                      edge_weight: Optional[Tensor], index: Tensor,
                      size_i: Optional[int], ptr: Optional[Tensor] = None) -> Tensor:
    r"""The per-edge messages ``(E, H, D_v)`` of the contract, from PyG's lifted
    tensors: ``q_i`` ``(E, H, D)`` (target rows), ``k_j``, ``v_j`` (source rows),
    ``index`` ``(E,)`` the targets, ``size_i`` their number, ``ptr`` PyG's CSR
    pointer of the targets when the edges are sorted by target (PyG's softmax
    then reduces over segments). Summed into the targets (``aggr="add"``), they
    give the attention output."""
    score = (q_i * k_j).sum(dim=-1)
    if bias is not None:
        score = score + bias
    alpha = softmax(score, index, ptr, size_i, dim=0)
    if edge_weight is not None:
        alpha = alpha * edge_weight.unsqueeze(-1).to(alpha.dtype)
    return v_j * alpha.unsqueeze(-1)
