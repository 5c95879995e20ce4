r"""Sparse graph attention on the CPU as sampled and sparse matrix products.

The CPU execution of :func:`pyg_glic.nn.functional.sparse_attention` when the
graph comes with its CSR pointer. Every step is one library call over all
edges and heads, and no per-edge copy of the features (``E x C``) is ever
made:

1. scores: a sampled dense-dense product (SDDMM,
   :func:`torch.sparse.sampled_addmm`), :math:`s_{e,h} = \langle \mathbf{q}_{i,h},
   \mathbf{k}_{j,h} \rangle` computed for the edges only, all heads in one
   batched call;
2. softmax over each target's CSR segment (:func:`torch.segment_reduce` for
   the maximum and the sum);
3. aggregation: a sparse-dense product (SpMM, :func:`torch.sparse.mm`, which
   runs on MKL's sparse BLAS where PyTorch is built with it) of the
   attention matrix with the values, the heads laid out block-diagonally
   ``(H N_dst, H N_src)`` so that one call does all of them.

The backward pass is written by hand from the same three operations: SDDMM
for the gradient of the attention weights (``<do_i, v_j>``), the softmax's
segment formula, and SpMM with the attention matrix and its transpose (the
CSC view of :func:`~pyg_glic.nn.kernels.csr_transpose`) for the gradients of
``q``, ``k`` and ``v``.

Memory: per edge only ``(H, E)`` scalars live (scores and weights; the saved
attention weights are the one per-edge tensor kept for backward, as in the
chunked gather form) plus the int64 index structure of the head-blocked
pattern, which depends only on the graph and is cached for the last graphs
seen (the layers of a stage share one graph): ``H E`` column indices, and in
backward the same for the transpose.

Limits: CPU tensors in float32 or float64 (what PyTorch's CPU sparse kernels
implement); no :func:`torch.compile` (sparse CSR tensors are not traced);
double backward is not supported. :func:`csr_attention_available` says when
it applies; elsewhere :func:`~pyg_glic.nn.functional.sparse_attention` keeps
its other executions.
"""
from __future__ import annotations

import warnings
import weakref
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .triton_attention import csr_transpose

__all__ = ["csr_sparse_attention", "csr_attention_available", "cached_pattern_bytes",
           "clear_cache"]

_DTYPES = (torch.float32, torch.float64)


def csr_attention_available(q: Tensor) -> bool:
    r"""Whether :func:`csr_sparse_attention` runs for tensors like ``q``: on the
    CPU, in float32 or float64, outside :func:`torch.compile`."""
    return (q.device.type == "cpu" and q.dtype in _DTYPES
            and not torch.compiler.is_compiling())


class _Pattern:
    r"""The head-blocked CSR structure of one graph for ``H`` heads, and (built
    on first use, in backward) its transpose."""

    def __init__(self, ptr: Tensor, src: Tensor, num_dst: int, num_src: int, heads: int):
        E = src.numel()
        dev = src.device
        if int(ptr[-1]) != E or (E and int(ptr[0]) != 0):
            raise ValueError(f"ptr must run from 0 to the number of edges {E}, "
                             f"got {int(ptr[0])}..{int(ptr[-1])}")
        self.num_dst, self.num_src, self.heads, self.E = num_dst, num_src, heads, E
        self._ptr, self._src = ptr, src
        h = torch.arange(heads, device=dev, dtype=torch.long)
        # batched (H, N_dst, N_src) for the SDDMM: the same rows for every head
        self.crow_b = ptr.view(1, -1).expand(heads, -1).contiguous()
        self.col_b = src.view(1, -1).expand(heads, -1).contiguous()
        # block-diagonal (H N_dst, H N_src) for the SpMM, int32 where it fits (the
        # sparse BLAS takes int32 indices; int64 ones would be converted every call)
        self.index_dtype = (torch.int32 if max(heads * E, heads * max(num_dst, num_src))
                            < 2 ** 31 - 1 else torch.long)
        self.crow = torch.cat([(ptr[:-1].view(1, -1) + h.view(-1, 1) * E).reshape(-1),
                               ptr.new_full((1,), heads * E)])
        self.col = (self.col_b + h.view(-1, 1) * num_src).view(-1).to(self.index_dtype)
        self.crow_i = self.crow.to(self.index_dtype)
        deg = ptr[1:] - ptr[:-1]
        # every target with the same degree: the segments are the rows of a view
        self.uniform = int(deg[0]) if num_dst and E and bool((deg == deg[0]).all()) else 0
        # the (head, target) row of every entry, to spread per-row values to entries
        self.rows = None if self.uniform else torch.repeat_interleave(
            torch.arange(heads * num_dst, device=dev), deg.repeat(heads), output_size=heads * E)
        self._t = None

    def nbytes(self) -> int:
        r"""Bytes held by the cached index structure (what a graph costs beyond
        its own ``ptr`` and ``edge_index``)."""
        ts = [self.crow_b, self.col_b, self.crow, self.crow_i, self.col, self.rows]
        ts += list(self._t or ())
        return sum(t.numel() * t.element_size() for t in ts if t is not None)

    def transpose(self) -> Tuple[Tensor, Tensor, Tensor]:
        r"""``(crow_t, col_t, perm)`` of the block-diagonal transpose: row ``h
        N_src + j`` holds the edges out of source ``j``; ``values[perm]``
        reorders values of this pattern into it."""
        if self._t is None:
            H, E = self.heads, self.E
            cptr, perm, rows = csr_transpose(self._ptr, self._src, self.num_src)
            h = torch.arange(H, device=perm.device, dtype=torch.long).view(-1, 1)
            crow_t = torch.cat([(cptr[:-1].view(1, -1) + h * E).reshape(-1),
                                cptr.new_full((1,), H * E)])
            col_t = (rows.view(1, -1) + h * self.num_dst).view(-1)
            perm_b = (perm.view(1, -1) + h * E).view(-1)
            self._t = (crow_t.to(self.index_dtype), col_t.to(self.index_dtype), perm_b)
        return self._t

    def matrix(self, values: Tensor, transpose: bool = False) -> Tensor:
        H = self.heads
        if transpose:
            crow, col, perm = self.transpose()
            return _csr(crow, col, values.reshape(-1).index_select(0, perm),
                        (H * self.num_src, H * self.num_dst))
        return _csr(self.crow_i, self.col, values.reshape(-1),
                    (H * self.num_dst, H * self.num_src))

    def sddmm(self, a: Tensor, b: Tensor) -> Tensor:
        r"""``(H, E)``: ``<a[h, i], b[h, j]>`` for every edge ``j -> i`` and head;
        ``a`` is ``(H, N_dst, D)``, ``b`` is ``(H, N_src, D)``."""
        H, E = self.heads, self.E
        if E == 0:
            return a.new_zeros(H, 0)
        values = a.new_zeros(H, E)
        pattern = _csr(self.crow_b, self.col_b, values, (H, self.num_dst, self.num_src))
        # written in place (out= self): no copy of the index structure per call
        torch.sparse.sampled_addmm(pattern, a, b.transpose(1, 2), beta=0.0, out=pattern)
        return values

    def segment(self, values: Tensor, reduce: str) -> Tensor:
        r"""Per-(head, target) ``"sum"`` or ``"max"`` of ``(H, E)`` values, spread
        back to ``(H, E)``."""
        H, E = self.heads, self.E
        if self.uniform:
            rows = values.view(H, self.num_dst, self.uniform)
            red = rows.sum(-1, keepdim=True) if reduce == "sum" else rows.amax(-1, keepdim=True)
            return red.expand_as(rows).reshape(H, E)
        red = torch.segment_reduce(values.reshape(-1), reduce, offsets=self.crow, axis=0)
        return red.index_select(0, self.rows).view(H, E)


def _csr(crow: Tensor, col: Tensor, values: Tensor, size) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


# The patterns of the last graphs seen, keyed by the identity of their index
# tensors (a stage's layers share one graph; a codec alternates two).
_CACHE_SIZE = 4
_cache: list = []


def _pattern(ptr: Tensor, src: Tensor, num_dst: int, num_src: int, heads: int) -> _Pattern:
    # ``src`` is usually a fresh view ``edge_index[0]``: identify it by its storage,
    # layout and version counter, and ``ptr`` (the graph's own tensor) by identity
    key = (src.data_ptr(), src.numel(), src.stride(0) if src.dim() else 0, src._version,
           ptr._version, num_dst, num_src, heads)
    for i, (ref, k, pat) in enumerate(_cache):
        if ref() is ptr and k == key:
            if i:
                _cache.insert(0, _cache.pop(i))
            return pat
    pat = _Pattern(ptr.to(torch.long), src.to(torch.long), num_dst, num_src, heads)
    _cache.insert(0, (weakref.ref(ptr), key, pat))
    del _cache[_CACHE_SIZE:]
    return pat


def cached_pattern_bytes() -> int:
    r"""Bytes held by the index structures cached for the last graphs seen."""
    return sum(pat.nbytes() for _, _, pat in _cache)


def clear_cache() -> None:
    r"""Drop the cached index structures."""
    _cache.clear()


def _heads_first(t: Tensor) -> Tensor:
    return t.transpose(0, 1).contiguous()  # (N, H, D) -> (H, N, D)


def _spmm(pat: _Pattern, values: Tensor, dense: Tensor, transpose: bool) -> Tensor:
    # (H, E) weights times (H, N, D) rows -> (H, N', D)
    H, N, D = dense.shape
    out = torch.sparse.mm(pat.matrix(values, transpose), dense.reshape(H * N, D))
    return out.view(H, -1, D)


class _CSRAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                edge_weight: Optional[Tensor], pat: _Pattern) -> Tensor:
        qh, kh, vh = _heads_first(q), _heads_first(k), _heads_first(v)
        score = pat.sddmm(qh, kh)  # (H, E)
        if bias is not None:
            score.add_(bias.t())  # head-major bias (GLICAttention's layout): contiguous
        if pat.E:
            p = score.sub_(pat.segment(score, "max")).exp_()
            p = p.div_(pat.segment(p, "sum"))
        else:
            p = score
        alpha = p if edge_weight is None else p * edge_weight.to(p.dtype).view(1, -1)
        out = _spmm(pat, alpha, vh, transpose=False)  # (H, N_dst, Dv)
        ctx.pat = pat
        ctx.has_bias = bias is not None
        ctx.save_for_backward(qh, kh, vh, p, edge_weight)
        ctx.dtypes = (q.dtype, k.dtype, v.dtype, None if bias is None else bias.dtype)
        return out.transpose(0, 1).contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        qh, kh, vh, p, w = ctx.saved_tensors
        pat = ctx.pat
        need_q, need_k, need_v, need_b, need_w, _ = ctx.needs_input_grad
        go = _heads_first(grad_out.to(vh.dtype))  # (H, N_dst, Dv)
        grad_q = grad_k = grad_v = grad_b = grad_w = None
        if need_v:
            alpha = p if w is None else p * w.to(p.dtype).view(1, -1)
            grad_v = _spmm(pat, alpha, go, transpose=True).transpose(0, 1)
        if need_q or need_k or need_b or need_w:
            d_alpha = pat.sddmm(go, vh)  # (H, E): <do_i, v_j>
            if w is not None:
                if need_w:
                    grad_w = (d_alpha * p).sum(0).to(w.dtype)
                d_alpha = d_alpha * w.to(d_alpha.dtype).view(1, -1)
            pd = p * d_alpha
            ds = pd.sub_(p * pat.segment(pd, "sum")) if pat.E else pd  # softmax backward
            if need_b:
                grad_b = ds.t().to(ctx.dtypes[3])
            if need_q:
                grad_q = _spmm(pat, ds, kh, transpose=False).transpose(0, 1)
            if need_k:
                grad_k = _spmm(pat, ds, qh, transpose=True).transpose(0, 1)
        dq, dk, dv = ctx.dtypes[:3]
        return (None if grad_q is None else grad_q.to(dq),
                None if grad_k is None else grad_k.to(dk),
                None if grad_v is None else grad_v.to(dv), grad_b, grad_w, None)


def csr_sparse_attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                         ptr: Tensor, src: Tensor, num_dst: int,
                         edge_weight: Optional[Tensor] = None) -> Tensor:
    r"""Multi-head attention over the edges of a target-sorted CSR graph, by
    sampled and sparse matrix products (see the module docs).

    Same contract as :func:`pyg_glic.nn.functional.sparse_attention`:

    Args:
        q (Tensor): queries ``(N_dst, H, D)``, already scaled.
        k (Tensor): keys ``(N_src, H, D)``.
        v (Tensor): values ``(N_src, H, D_v)``.
        bias (Tensor, optional): additive logit bias ``(E, H)``.
        ptr (LongTensor): ``(N_dst + 1,)``; the edges into target ``i`` are
            ``ptr[i]:ptr[i+1]``.
        src (LongTensor): ``(E,)`` the source of every edge, in that order.
        num_dst (int): ``N_dst``.
        edge_weight (Tensor, optional): ``(E,)``, multiplies the attention
            weights after the softmax.

    Returns:
        Tensor ``(N_dst, H, D_v)``; 0 for a target without edges.
    """
    if not csr_attention_available(q):
        raise RuntimeError("csr_sparse_attention runs on CPU float32/float64 tensors outside "
                           f"torch.compile; got {q.device.type} {q.dtype}")
    if ptr.numel() != num_dst + 1:
        raise ValueError(f"ptr must have num_dst + 1 = {num_dst + 1} entries, got {ptr.numel()}")
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    if dtype not in _DTYPES:
        raise RuntimeError(f"csr_sparse_attention needs float32/float64 inputs, got {dtype}")
    pat = _pattern(ptr, src, num_dst, k.size(0), q.size(1))
    out = _CSRAttention.apply(q.to(dtype), k.to(dtype), v.to(dtype), bias, edge_weight, pat)
    return out.to(v.dtype)
