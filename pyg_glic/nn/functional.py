r"""Functional building blocks of the sparse layers: per-edge products and graph attention.

The attention core :func:`sparse_attention` is the one place where the
aggregation happens; the layers compute their projections outside it, so that a
fused kernel (or a dense/sparse execution policy) can replace it without
touching the layers.

Memory: :func:`edge_dot` and :func:`edge_spmm` are autograd functions that save
only their node-level inputs (and the ``(E, H)`` attention weights) for the
backward pass and gather the per-edge rows again there. Plain gather-based code
(``(q[dst] * k[src]).sum(-1)``) keeps three ``E x C`` tensors alive per layer
until the backward pass; these keep none. In eager mode they also walk the
edges in chunks of at most :data:`CHUNK_ELEMENTS` gathered elements, so no
``E x C`` tensor exists even transiently; under :func:`torch.compile` the
compiler fuses the gathers instead. What remains per edge is ``(E, H)``
(scores, attention weights) and, in :class:`~pyg_glic.nn.conv.GLICAttention`,
the position MLP's ``(E, pos_hidden)`` activations. Double backward is not
supported.

Given the graph's CSR pointer, :func:`sparse_attention` does not gather at
all: on the CPU it runs as sampled and sparse matrix products
(:mod:`pyg_glic.nn.kernels.csr_attention`), on CUDA as a fused Triton kernel
(:mod:`pyg_glic.nn.kernels.triton_attention`); the chunked gathers remain the
fallback (other dtypes, :func:`torch.compile`, no ``ptr``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch_geometric.utils import softmax

__all__ = ["log_spaced", "compress_offsets", "edge_dot", "edge_spmm", "sparse_attention",
           "block_edge_slots", "blocked_attention", "CHUNK_ELEMENTS", "FUSED_ATTENTION",
           "CSR_ATTENTION", "csr_max", "uniform_degree"]


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


#: Upper bound on the elements of one transient per-edge tensor in eager mode
#: (``2**22`` float32 values are 16 MiB); under :func:`torch.compile` the
#: gathers are fused by the compiler and not chunked.
CHUNK_ELEMENTS = 2 ** 22


def _row(t: Tensor) -> int:
    n = 1
    for s in t.shape[1:]:
        n *= s
    return n


def _chunks(num_edges: int, row_elements: int):
    if torch.compiler.is_compiling():
        return [(0, num_edges)]
    step = max(1, CHUNK_ELEMENTS // max(1, row_elements))
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


#: Where :func:`sparse_attention` runs the fused Triton kernel: ``"auto"`` (on
#: CUDA devices when Triton is importable, not while :func:`torch.compile`
#: traces, where the kernel would be a graph break), ``"always"`` (wherever
#: :func:`~pyg_glic.nn.kernels.fused_attention_available` says it can run,
#: including Triton's CPU interpreter under ``TRITON_INTERPRET=1``: slow, for
#: tests) or ``"never"`` (always the chunked gather form).
FUSED_ATTENTION = "auto"


#: Whether :func:`sparse_attention` runs the CPU sparse-matrix-product core
#: (:func:`pyg_glic.nn.kernels.csr_sparse_attention`: SDDMM, segment softmax,
#: SpMM) when given ``ptr``: ``"auto"`` (CPU float32/float64 tensors outside
#: :func:`torch.compile`) or ``"never"`` (the chunked gather form).
CSR_ATTENTION = "auto"


def _use_csr(q: Tensor) -> bool:
    mode = CSR_ATTENTION
    if mode not in ("auto", "never"):
        raise ValueError(f"CSR_ATTENTION must be 'auto' or 'never', got {mode!r}")
    if mode == "never":
        return False
    from .kernels import csr_attention_available
    return csr_attention_available(q)


def _use_fused(q: Tensor) -> bool:
    mode = FUSED_ATTENTION
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"FUSED_ATTENTION must be 'auto', 'always' or 'never', got {mode!r}")
    if mode == "never" or torch.compiler.is_compiling():
        return False
    if mode == "auto" and q.device.type != "cuda":
        return False
    from .kernels import fused_attention_available
    return fused_attention_available(q.device)


def sparse_attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                     edge_index: Tensor, ptr: Optional[Tensor], num_dst: int,
                     edge_weight: Optional[Tensor] = None) -> Tensor:
    r"""Multi-head attention restricted to the edges of a graph.

    .. math::
        \alpha_{ji,h} = \operatorname{softmax}_{j \in \mathcal{N}(i)}
            \left(\langle \mathbf{q}_{i,h}, \mathbf{k}_{j,h} \rangle + b_{ji,h}\right),
        \qquad
        \mathbf{o}_{i,h} = \sum_{j \in \mathcal{N}(i)} w_{ji}\, \alpha_{ji,h}\,
            \mathbf{v}_{j,h}

    Scaling (GLIC's cosine logits times a per-head scale) is the caller's job:
    normalise and scale ``q`` and ``k`` before calling. A target without
    incoming edges (``N(i)`` empty) gets :math:`\mathbf{o}_i = 0`; ``E = 0``
    gives all zeros.

    This is the replaceable aggregation core of
    :class:`~pyg_glic.nn.conv.GLICAttention`. Three executions, equal to rounding:

    - on the CPU, sampled and sparse matrix products over the CSR graph
      (:func:`pyg_glic.nn.kernels.csr_sparse_attention`: SDDMM for the
      scores, a segment softmax, SpMM for the aggregation; no ``E x C``
      tensor), used when ``ptr`` is given, the tensors are float32/float64
      and :data:`CSR_ATTENTION` allows it;
    - the fused CSR kernel
      (:func:`pyg_glic.nn.kernels.fused_sparse_attention`, Triton, online
      softmax, no ``E x C`` tensor at all), used when ``ptr`` is given, the
      tensors are on a CUDA device where Triton runs, and
      :data:`FUSED_ATTENTION` allows it (see there);
    - otherwise per-edge gathers in bounded chunks (:func:`edge_dot`, PyG's
      :func:`~torch_geometric.utils.softmax`, :func:`edge_spmm`), which do not
      use ``ptr``.

    Args:
        q (Tensor): queries ``(N_dst, H, D)``.
        k (Tensor): keys ``(N_src, H, D)``.
        v (Tensor): values ``(N_src, H, D_v)``.
        bias (Tensor, optional): additive logit bias ``(E, H)``.
        edge_index (LongTensor): ``(2, E)``, row 0 source, row 1 target.
        ptr (LongTensor, optional): ``(N_dst + 1,)`` CSR pointer of the
            targets when ``edge_index`` is sorted by target.
        num_dst (int): ``N_dst``.
        edge_weight (Tensor, optional): ``(E,)`` multiplies the attention
            weights after the softmax (learned graphs).

    Returns:
        Tensor ``(N_dst, H, D_v)``.
    """
    if ptr is not None and _use_fused(q):
        from .kernels import fused_sparse_attention
        return fused_sparse_attention(q, k, v, bias, ptr, edge_index[0], None, edge_weight)
    if ptr is not None and _use_csr(q):
        from .kernels import csr_sparse_attention
        return csr_sparse_attention(q, k, v, bias, ptr, edge_index[0], num_dst, edge_weight)
    score = edge_dot(q, k, edge_index)
    if bias is not None:
        score = score + bias
    alpha = softmax(score, edge_index[1], num_nodes=num_dst, dim=0)
    if edge_weight is not None:
        alpha = alpha * edge_weight.unsqueeze(-1).to(alpha.dtype)
    return edge_spmm(alpha, v, edge_index, num_dst)



@torch.compiler.disable
def block_edge_slots(blocks, edge_index: Tensor, num_dst: int
                     ) -> Optional[Tuple[Tensor, Tensor, Tensor, Tensor]]:
    r"""Where every edge sits in the blocked-dense layout of ``blocks``.

    Args:
        blocks (CandidateBlocks): ``query_index (nb, Q)``, ``cand_index (nb, K)``
            (``-1`` padding).
        edge_index (LongTensor): ``(2, E)``.
        num_dst (int): number of targets.

    Returns:
        ``(block, query_slot, cand_slot, mask)``: three ``(E,)`` index tensors
        and the ``(nb, Q, K)`` edge mask built from them, or ``None`` when the
        edges do not fit the blocks (an edge whose target is the query of no
        block or whose source is not among its block's candidates, a target
        that is the query of two blocks, or a repeated edge): blocked-dense
        execution would then compute something else, and callers fall back to
        the sparse core.

    The result is cached on ``blocks`` for the last ``edge_index`` object it
    was computed for (the layers of a stage share one graph).
    """
    cache = getattr(blocks, "_pyg_glic_slots", None)
    if cache is not None and cache[0] is edge_index and cache[1] == num_dst:
        return cache[2]
    res = _block_edge_slots(blocks.query_index, blocks.cand_index, edge_index, num_dst)
    try:
        blocks._pyg_glic_slots = (edge_index, num_dst, res)
    except Exception:  # pragma: no cover - frozen container
        pass
    return res


@torch.no_grad()
def _block_edge_slots(qi: Tensor, ci: Tensor, edge_index: Tensor, num_dst: int):
    nb, Q = qi.shape
    K = ci.size(1)
    dev = edge_index.device
    src, dst = edge_index[0], edge_index[1]
    mask = torch.zeros(nb * Q * K, dtype=torch.bool, device=dev)
    vq = qi >= 0
    ids = qi[vq]
    if ids.numel() and (int(ids.max()) >= num_dst
                        or int(torch.bincount(ids, minlength=num_dst).max()) > 1):
        return None
    if src.numel() == 0:
        e = torch.zeros(0, dtype=torch.long, device=dev)
        return e, e, e, mask.view(nb, Q, K)
    blk = torch.full((num_dst,), -1, dtype=torch.long, device=dev)
    slot = torch.full((num_dst,), -1, dtype=torch.long, device=dev)
    blk[ids] = torch.arange(nb, device=dev).view(nb, 1).expand(nb, Q)[vq]
    slot[ids] = torch.arange(Q, device=dev).view(1, Q).expand(nb, Q)[vq]
    eb = blk[dst]
    if bool((eb < 0).any()):
        return None
    num_src = int(max(int(src.max()), int(ci.max())) + 1)
    cv = ci >= 0
    keys = (torch.arange(nb, device=dev).view(nb, 1) * num_src + ci)[cv]
    kslots = torch.arange(K, device=dev).view(1, K).expand(nb, K)[cv]
    keys, order = keys.sort()
    kslots = kslots[order]
    ekey = eb * num_src + src
    if keys.numel() == 0:
        return None
    at = torch.searchsorted(keys, ekey).clamp_max(keys.numel() - 1)
    if not torch.equal(keys[at], ekey):
        return None
    eq, ek = slot[dst], kslots[at]
    mask[(eb * Q + eq) * K + ek] = True
    if int(mask.sum()) != src.numel():  # repeated edges
        return None
    return eb, eq, ek, mask.view(nb, Q, K)


def blocked_attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                      edge_index: Tensor, blocks, num_dst: int,
                      edge_weight: Optional[Tensor] = None, slots=None) -> Tensor:
    r"""Blocked-dense execution of :func:`sparse_attention`: same contract, same result.

    For every block of ``Q`` queries and its ``K`` candidates
    (:class:`~pyg_glic.graph.base.CandidateBlocks`), all ``Q x K`` scores per
    head are computed with batched matrix products, the per-edge ``bias`` (and
    ``edge_weight``) are scattered to their pairs, the pairs that are not
    edges get ``-inf`` (a row without edges gives 0) and the masked softmax
    weights the candidates' values. This wastes the arithmetic of the
    non-edges but runs on dense matrix units; whether it pays is what
    :mod:`pyg_glic.nn.policy` decides.

    The mask is rebuilt from ``edge_index`` (:func:`block_edge_slots`), so the
    result is that of the sparse core on the same edges, up to rounding;
    raises ``ValueError`` when the edges do not fit the blocks.

    Args:
        q, k, v, bias, edge_index, num_dst, edge_weight: as in
            :func:`sparse_attention`.
        blocks (CandidateBlocks): the candidate structure of the graph.
        slots (tuple, optional): :func:`block_edge_slots` of the graph.

    Returns:
        Tensor ``(N_dst, H, D_v)``.
    """
    if slots is None:
        slots = block_edge_slots(blocks, edge_index, num_dst)
    if slots is None:
        raise ValueError("the edges do not fit the candidate blocks; use the sparse core")
    eb, eq, ek, mask = slots
    qi, ci = blocks.query_index, blocks.cand_index
    nb, Q = qi.shape
    K = ci.size(1)
    H = q.shape[1]
    out = v.new_zeros(num_dst, H, v.shape[2])
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (q, k, v, bias, edge_weight))
    step = nb
    if not grad and not torch.compiler.is_compiling():
        # inference: walk the blocks in chunks, so that the (H, nb, Q, K) scores never
        # exist at once (autograd would keep them all anyway)
        step = max(1, (4 * CHUNK_ELEMENTS) // max(1, H * Q * K))
    if step >= nb:
        return _blocked_chunk(q, k, v, bias, edge_weight, qi, ci, eb, eq, ek, mask, out)
    for b0 in range(0, nb, step):
        b1 = min(nb, b0 + step)
        sel = ((eb >= b0) & (eb < b1)).nonzero().view(-1)
        _blocked_chunk(q, k, v, None if bias is None else bias.index_select(0, sel),
                       None if edge_weight is None else edge_weight.index_select(0, sel),
                       qi[b0:b1], ci[b0:b1], eb.index_select(0, sel) - b0,
                       eq.index_select(0, sel), ek.index_select(0, sel), mask[b0:b1], out)
    return out


def _blocked_chunk(q, k, v, bias, edge_weight, qi, ci, eb, eq, ek, mask, out) -> Tensor:
    # blocked-dense attention of the blocks qi / ci, written into out's query rows
    nb, Q = qi.shape
    K = ci.size(1)
    H, D = q.shape[1], q.shape[2]
    Dv = v.shape[2]
    # head-major layout (H, nb, Q|K, D): the gathers land contiguous for bmm
    qflat, cflat = qi.clamp(min=0).reshape(-1), ci.clamp(min=0).reshape(-1)
    qb = q.transpose(0, 1).index_select(1, qflat).view(H * nb, Q, D)
    kb = k.transpose(0, 1).index_select(1, cflat).view(H * nb, K, D)
    vb = v.transpose(0, 1).index_select(1, cflat).view(H * nb, K, Dv)
    # additive mask and bias in one tensor: -inf on the non-edges, the sparse path's
    # per-edge bias on the edges (0 without bias), fused into the score product
    flat = (eb * Q + eq) * K + ek
    base = q.new_full((H, nb * Q * K), float("-inf"))
    empty = ~mask.any(dim=-1).reshape(-1)  # (nb * Q,) rows without edges
    has_empty = bool(empty.any())
    if has_empty:  # finite rows (uniform softmax), their outputs zeroed below
        base.view(H, nb * Q, K)[:, empty] = 0.
    heads = torch.arange(H, device=q.device).view(H, 1)
    if bias is not None:
        base.index_put_((heads, flat.view(1, -1)), bias.to(base.dtype).t())
    else:
        base[:, flat] = 0.
    score = torch.baddbmm(base.view(H * nb, Q, K), qb, kb.transpose(1, 2))  # (H*nb, Q, K)
    attn = score.softmax(dim=-1)
    if edge_weight is not None:
        w = attn.new_zeros(nb * Q * K).index_put((flat,), edge_weight.to(attn.dtype))
        attn = attn * w.view(1, nb, Q, K).expand(H, nb, Q, K).reshape(H * nb, Q, K)
    ob = torch.bmm(attn, vb).view(H, nb * Q, Dv)
    if has_empty:
        ob = ob.masked_fill(empty.view(1, -1, 1), 0.)
    vq = qi.reshape(-1) >= 0
    if torch.is_grad_enabled():
        return out.index_put((qi.reshape(-1)[vq],), ob[:, vq].transpose(0, 1))
    out[qi.reshape(-1)[vq]] = ob[:, vq].transpose(0, 1)
    return out


def _target_chunks(ptr: Tensor, row_elements: int):
    # (t0, t1) target ranges whose edges hold at most ~CHUNK_ELEMENTS gathered values
    n = ptr.numel() - 1
    if torch.compiler.is_compiling() or n == 0:
        return [(0, n)]
    step = max(1, CHUNK_ELEMENTS // max(1, row_elements))
    marks = torch.arange(0, int(ptr[-1]) + step, step, device=ptr.device)
    cuts = torch.searchsorted(ptr, marks, right=True).clamp(max=n).tolist()
    bounds = sorted(set([0] + cuts + [n]))
    return list(zip(bounds[:-1], bounds[1:]))


def uniform_degree(ptr: Tensor) -> int:
    r"""The degree every target of a CSR graph has, or 0 when degrees differ (or
    there are no targets or no edges)."""
    n = ptr.numel() - 1
    if n == 0 or int(ptr[-1]) == 0:
        return 0
    d = int(ptr[1] - ptr[0])
    return d if int(ptr[-1] - ptr[0]) == d * n and bool(((ptr[1:] - ptr[:-1]) == d).all()) else 0


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
    sources are gathered in chunks of at most :data:`CHUNK_ELEMENTS` values and
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
