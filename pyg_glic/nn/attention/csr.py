r"""The CPU CSR executor: graph attention as sampled and sparse matrix products.

The CPU execution of :func:`pyg_glic.nn.attention.sparse_attention` when the
graph comes with its CSR pointer (contract:
:mod:`pyg_glic.nn.attention.contract`). Every step is a library call over all
edges of a head, and no per-edge copy of the features (``E x C``) is ever
made:

1. scores: a sampled dense-dense product (SDDMM,
   :func:`torch.sparse.sampled_addmm`), :math:`s_{e,h} = \langle \mathbf{q}_{i,h},
   \mathbf{k}_{j,h} \rangle` computed for the edges only, written in place
   into one ``(H, E)`` buffer;
2. softmax over each target's CSR segment, in place (a view ``(H, N, d)``
   when every target has the same degree ``d``, else
   :func:`torch.segment_reduce` for the maximum and the sum);
3. aggregation: a sparse-dense product (SpMM, :func:`torch.mm` with a sparse
   CSR matrix, which runs on MKL's sparse BLAS where PyTorch is built with it)
   of the attention matrix with the values.

Every head is one call of each product on the same indices (the graph's own
``ptr`` and sources for the SDDMM, int32 copies for the SpMM), so the index
structure does not grow with the number of heads.

The backward pass is written by hand from the same three operations: SDDMM
for the gradient of the attention weights (``<do_i, v_j>``), the softmax's
segment formula, and SpMM with the attention matrix and its transpose (the
CSC view of :func:`~pyg_glic.nn.attention.contract.csr_transpose`) for the gradients of
``q``, ``k`` and ``v``.

Memory: per edge only ``(H, E)`` scalars live (scores, then weights, in one
buffer; the weights are the one per-edge tensor kept for backward, as in the
chunked gather form). The index structure depends only on the graph and is
cached for the last graphs seen (the layers of a stage share one graph):
int32 copies of ``ptr`` and the sources, the target of every edge when the
degrees differ, and after the first backward the transpose (int32 pointer and
rows, int64 permutation): 4-20 bytes per edge in all
(:func:`cached_pattern_bytes`).

Limits: CPU tensors in float32 or float64 (what PyTorch's CPU sparse kernels
implement); no :func:`torch.compile` (sparse CSR tensors are not traced);
double backward is not supported. :func:`csr_attention_available` says when
it applies; elsewhere :func:`~pyg_glic.nn.attention.sparse_attention` picks
another executor.
"""
from __future__ import annotations

import warnings
import weakref
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .contract import csr_transpose, plain_index, uniform_degree

__all__ = ["csr_sparse_attention", "csr_attention_available", "cached_pattern_bytes",
           "clear_cache"]

_DTYPES = (torch.float32, torch.float64)


def csr_attention_available(q: Tensor) -> bool:
    r"""Whether :func:`csr_sparse_attention` runs for tensors like ``q``: on the
    CPU, in float32 or float64, outside :func:`torch.compile`."""
    return (q.device.type == "cpu" and q.dtype in _DTYPES
            and not torch.compiler.is_compiling())


class _Pattern:
    r"""What the sparse kernels need of one graph beyond its own ``ptr`` and
    sources, shared by all heads (each head is one call on the same indices),
    and (built on first use, in backward) its transpose.

    It holds no reference to the caller's tensors, so a graph that is dropped
    frees its cache entry (:func:`_pattern`); the methods take the graph's
    int64 ``ptr`` and ``src`` (:meth:`indices`) as arguments.
    """

    def __init__(self, ptr: Tensor, src: Tensor, num_dst: int, num_src: int):
        E = src.numel()
        if ptr.numel() != num_dst + 1:
            raise ValueError(f"ptr must have num_dst + 1 = {num_dst + 1} entries, "
                             f"got {ptr.numel()}")
        if int(ptr[-1]) != E or (E and int(ptr[0]) != 0):
            raise ValueError(f"ptr must run from 0 to the number of edges {E}, "
                             f"got {int(ptr[0])}..{int(ptr[-1])}")
        self.num_dst, self.num_src, self.E = num_dst, num_src, E
        # SDDMM: int64 indices, the graph's own tensors unless they are not int64
        # or not contiguous (then copies, kept here)
        ptr64, src64 = _long(ptr), _long(src)
        self._ptr = ptr64 if ptr64.data_ptr() != ptr.data_ptr() else None
        self._src = src64 if src64.data_ptr() != src.data_ptr() else None
        # SpMM: int32 copies where they fit (the sparse BLAS takes int32 indices;
        # int64 ones would be converted on every call)
        self.index_dtype = (torch.int32 if max(E, num_dst, num_src) < 2 ** 31 - 1
                            else torch.long)
        self.ptr_i = ptr64.to(self.index_dtype)
        self.src_i = src64.to(self.index_dtype)
        # every target with the same degree: the segments are the rows of a view
        self.uniform = uniform_degree(ptr64)
        # else the target of every edge, to spread per-target values to the edges
        self.dst = None if self.uniform else torch.repeat_interleave(
            torch.arange(num_dst, device=src.device, dtype=self.index_dtype),
            ptr64[1:] - ptr64[:-1], output_size=E)
        self._t = None

    def indices(self, ptr: Tensor, src: Tensor) -> Tuple[Tensor, Tensor]:
        r"""The int64 contiguous ``(ptr, src)`` of the graph given as ``(ptr, src)``."""
        return (self._ptr if self._ptr is not None else ptr,
                self._src if self._src is not None else src)

    def nbytes(self) -> int:
        r"""Bytes held by the cached structure (what a graph costs beyond its own
        ``ptr`` and ``edge_index``)."""
        ts = [self._ptr, self._src, self.ptr_i, self.src_i, self.dst] + list(self._t or ())
        return sum(t.numel() * t.element_size() for t in ts if t is not None)

    def transpose(self, ptr: Tensor, src: Tensor, csc=None) -> Tuple[Tensor, Tensor, Tensor]:
        r"""``(ptr_t, col_t, perm)``: the CSR of the transposed graph (row ``j``
        holds the edges out of source ``j``); ``values[:, perm]`` reorders
        per-edge values into it. ``csc``: the graph's
        :func:`~pyg_glic.nn.attention.contract.csr_transpose` (or a callable
        giving it), e.g. the cached transpose of the layers' EdgeIndex
        (:func:`pyg_glic.nn.edge_index.target_transpose`); else it is computed
        here. Either way only its int32 copies are kept here: the sort itself
        lives in the EdgeIndex, which caches int64 indices only, while the
        sparse BLAS takes int32 ones (converted on every call otherwise)."""
        if self._t is None:
            if csc is not None:
                cptr, perm, rows = csc() if callable(csc) else csc
            else:
                cptr, perm, rows = csr_transpose(ptr, src, self.num_src)
            self._t = (cptr.to(self.index_dtype), rows.to(self.index_dtype), perm)
        return self._t

    def sddmm(self, ptr: Tensor, src: Tensor, a: Tensor, b: Tensor) -> Tensor:
        r"""``(H, E)``: ``<a[i, h], b[j, h]>`` for every edge ``j -> i`` and head;
        ``a`` is ``(N_dst, H, D)``, ``b`` is ``(N_src, H, D)`` (any strides)."""
        H = a.size(1)
        values = a.new_zeros(H, self.E)
        if self.E == 0:
            return values
        for h in range(H):
            pattern = _csr(ptr, src, values[h], (self.num_dst, self.num_src))
            # written in place (out= the pattern): no copy of the indices per call
            torch.sparse.sampled_addmm(pattern, a[:, h], b[:, h].t(), beta=0.0, out=pattern)
        return values

    def spmm(self, values: Tensor, dense: Tensor, transposed=None) -> Tensor:
        r"""``(N', H, D)``: the ``(H, E)`` weights as per-head sparse matrices
        (the transpose if ``transposed``, :meth:`transpose`'s result, is given)
        times the rows of ``dense`` ``(N, H, D)`` (any strides: each head's
        ``(N, D)`` slice is read in place)."""
        _, H, D = dense.shape
        if transposed is not None:
            crow, col, perm = transposed
            values = values.index_select(1, perm)
            size = (self.num_src, self.num_dst)
        else:
            crow, col = self.ptr_i, self.src_i
            size = (self.num_dst, self.num_src)
        out = dense.new_empty(size[0], H, D)
        for h in range(H):
            out[:, h] = torch.mm(_csr(crow, col, values[h], size), dense[:, h])
        return out

    # -- per-target (segment) reductions of (H, E) values -----------------------
    def rows(self, values: Tensor) -> Tensor:
        r"""``values`` shaped so that :meth:`spread` broadcasts against it."""
        if self.uniform:
            return values.view(values.size(0), self.num_dst, self.uniform)
        return values

    def reduce(self, ptr: Tensor, values: Tensor, how: str) -> Tensor:
        r"""``(H, N_dst)`` per-target ``"sum"`` or ``"max"`` of ``(H, E)`` values."""
        if self.uniform:
            r = self.rows(values)
            return r.sum(-1) if how == "sum" else r.amax(-1)
        return torch.stack([torch.segment_reduce(v, how, offsets=ptr, axis=0)
                            for v in values])

    def spread(self, red: Tensor) -> Tensor:
        r"""``(H, N_dst)`` per-target values, broadcastable against :meth:`rows`."""
        if self.uniform:
            return red.unsqueeze(-1)
        return red.index_select(1, self.dst)

    def softmax_(self, ptr: Tensor, score: Tensor) -> Tensor:
        r"""Per-(head, target) softmax of ``(H, E)`` scores, in place."""
        if self.E:
            r = self.rows(score)
            r.sub_(self.spread(self.reduce(ptr, score, "max"))).exp_()
            r.div_(self.spread(self.reduce(ptr, score, "sum")))
        return score


def _long(t: Tensor) -> Tensor:
    return t.to(torch.long).contiguous()


def _csr(crow: Tensor, col: Tensor, values: Tensor, size) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


# The patterns of the last graphs seen, keyed by the identity of their index
# tensors (a stage's layers share one graph; a codec alternates two).
#
# Not replaced by the EdgeIndex's cache: what a pattern holds (int32 copies of
# the pointer, sources and transpose for the sparse BLAS, the per-edge target
# in int32, the uniform degree) is not among what EdgeIndex caches (its own
# dtype's pointer, the transpose: which the pattern now takes from it, see
# ``csc``), this executor is also called with plain ``(ptr, src)`` tensors
# (no EdgeIndex to hang anything on), and storing undeclared attributes on
# PyG's objects is what the issue asks to stop. Thread-safety is as before:
# the list is only reassigned/updated under the GIL, and two threads that miss
# build equal patterns.
_CACHE_SIZE = 4
_cache: list = []


def _pattern(ptr: Tensor, src: Tensor, num_dst: int, num_src: int) -> _Pattern:
    # ``ptr`` (the graph's own tensor) is identified by identity through a weak
    # reference (an entry whose graph is gone is dropped); ``src``, usually a fresh
    # view ``edge_index[0]``, by its storage, layout and version counter
    _cache[:] = [e for e in _cache if e[0]() is not None]
    key = (src.data_ptr(), src.numel(), src.stride(0) if src.dim() else 0, src._version,
           ptr._version, num_dst, num_src)
    for i, (ref, k, pat) in enumerate(_cache):
        if ref() is ptr and k == key:
            if i:
                _cache.insert(0, _cache.pop(i))
            return pat
    pat = _Pattern(ptr, src, num_dst, num_src)
    _cache.insert(0, (weakref.ref(ptr), key, pat))
    del _cache[_CACHE_SIZE:]
    return pat


def cached_pattern_bytes() -> int:
    r"""Bytes held by the index structures cached for the last graphs seen."""
    return sum(pat.nbytes() for _, _, pat in _cache)


def clear_cache() -> None:
    r"""Drop the cached index structures."""
    _cache.clear()


class _CSRAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                edge_weight: Optional[Tensor], pat: _Pattern, ptr: Tensor,
                src: Tensor, csc=None) -> Tensor:
        score = pat.sddmm(ptr, src, q, k)  # (H, E)
        if bias is not None:
            score.add_(bias.t())  # head-major bias (GLICAttention's layout): contiguous
        p = pat.softmax_(ptr, score)
        alpha = p if edge_weight is None else p * edge_weight.to(p.dtype).view(1, -1)
        out = pat.spmm(alpha, v)  # (N_dst, H, Dv)
        del alpha
        ctx.pat = pat
        ctx.csc = csc
        ctx.save_for_backward(q, k, v, p, edge_weight, ptr, src)
        ctx.bias_dtype = None if bias is None else bias.dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        q, k, v, p, w, ptr, src = ctx.saved_tensors
        pat = ctx.pat
        need_q, need_k, need_v, need_b, need_w = ctx.needs_input_grad[:5]
        go = grad_out.to(v.dtype)  # (N_dst, H, Dv)
        grad_q = grad_k = grad_v = grad_b = grad_w = None
        if need_v or need_k:
            t = pat.transpose(ptr, src, ctx.csc)
        if need_v:
            alpha = p if w is None else p * w.to(p.dtype).view(1, -1)
            grad_v = pat.spmm(alpha, go, t)
            del alpha
        if need_q or need_k or need_b or need_w:
            ds = pat.sddmm(ptr, src, go, v)  # (H, E): d alpha = <do_i, v_j>
            if w is not None:
                if need_w:
                    grad_w = (ds * p).sum(0).to(w.dtype)
                ds.mul_(w.to(ds.dtype).view(1, -1))
            ds.mul_(p)  # softmax backward: ds = p (dp - sum_j p dp)
            if pat.E:
                pat.rows(ds).sub_(pat.rows(p) * pat.spread(pat.reduce(ptr, ds, "sum")))
            if need_b:
                grad_b = ds.t().to(ctx.bias_dtype)
            if need_q:
                grad_q = pat.spmm(ds, k)
            if need_k:
                grad_k = pat.spmm(ds, q, t)
        return grad_q, grad_k, grad_v, grad_b, grad_w, None, None, None, None


def csr_sparse_attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                         ptr: Tensor, src: Tensor, num_dst: int,
                         edge_weight: Optional[Tensor] = None, *,
                         csc=None) -> Tensor:
    r"""Multi-head attention over the edges of a target-sorted CSR graph, by
    sampled and sparse matrix products (see the module docs).

    Same contract as :func:`pyg_glic.nn.attention.sparse_attention`:

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
        csc (tuple or callable, optional): the graph's transpose ``(cptr, perm,
            rows)`` (:func:`~pyg_glic.nn.attention.contract.csr_transpose`) or a
            callable giving it, used by the first backward pass on this graph
            (the layers pass their EdgeIndex's cached one); else computed there.

    Returns:
        Tensor ``(N_dst, H, D_v)``; 0 for a target without edges.
    """
    if not csr_attention_available(q):
        raise RuntimeError("csr_sparse_attention runs on CPU float32/float64 tensors outside "
                           f"torch.compile; got {q.device.type} {q.dtype}")
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    if dtype not in _DTYPES:
        raise RuntimeError(f"csr_sparse_attention needs float32/float64 inputs, got {dtype}")
    ptr, src = plain_index(ptr), plain_index(src)
    pat = _pattern(ptr, src, num_dst, k.size(0))
    ptr64, src64 = pat.indices(ptr, src)
    out = _CSRAttention.apply(q.to(dtype), k.to(dtype), v.to(dtype), bias, edge_weight, pat,
                              ptr64, src64, csc)
    return out.to(v.dtype)
