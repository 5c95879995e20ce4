r"""The blocked-dense executor: attention over a graph's candidate blocks.

GLIC's graphs come with a candidate structure
(:class:`~pyg_glic.graph.base.CandidateBlocks`): blocks of ``Q`` queries that
share ``K`` candidates (an 8x8 window and its 16x16 halo patch, or the pooled
grid of the global graph). :func:`blocked_attention` computes all ``Q x K``
scores of a block with batched matrix products and masks the pairs that are not
edges; :func:`block_edge_slots` says where every edge sits in that layout (or
that the edges do not fit it). The contract is
:mod:`pyg_glic.nn.attention.contract`; the dispatcher
(:func:`pyg_glic.nn.attention.dispatch.attention`) runs this executor when the
graph is dense enough in its blocks.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import backend

__all__ = ["block_edge_slots", "blocked_attention"]


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
    # Not replaced by the EdgeIndex's cache: the slots depend on the candidate
    # blocks as much as on the edges (an edge's block, query slot and candidate
    # slot), and EdgeIndex caches only pointers and the transpose of the edges.
    # Keyed by the identity of the plain edge tensor, which for an ImageGraph is
    # its EdgeIndex's data (``as_tensor()``, the same object on every call). One
    # tuple assignment: a concurrent reader sees the old entry or the new one.
    cache = getattr(blocks, "edge_slots", None)  # a CandidateBlocks field; duck-typed
    if cache is not None and cache[0] is edge_index and cache[1] == num_dst:
        return cache[2]
    res = _block_edge_slots(blocks.query_index, blocks.cand_index, edge_index, num_dst)
    if hasattr(blocks, "edge_slots"):
        blocks.edge_slots = (edge_index, num_dst, res)
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
    r"""Blocked-dense attention: the contract of :mod:`pyg_glic.nn.attention.contract`,
    the result of the sparse executors up to rounding.

    For every block of ``Q`` queries and its ``K`` candidates
    (:class:`~pyg_glic.graph.base.CandidateBlocks`), all ``Q x K`` scores per
    head are computed with batched matrix products, the per-edge ``bias`` (and
    ``edge_weight``) are scattered to their pairs, the pairs that are not
    edges get ``-inf`` (a row without edges gives 0) and the masked softmax
    weights the candidates' values. This wastes the arithmetic of the
    non-edges but runs on dense matrix units; whether it pays is what
    :func:`pyg_glic.nn.attention.dispatch.choose_attention_execution` decides.

    The mask is rebuilt from ``edge_index`` (:func:`block_edge_slots`), so the
    result is that of the sparse core on the same edges, up to rounding;
    raises ``ValueError`` when the edges do not fit the blocks.

    Args:
        q, k, v, bias, edge_index, num_dst, edge_weight: as in
            :func:`~pyg_glic.nn.attention.sparse_attention`.
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
        step = max(1, (4 * backend.CHUNK_ELEMENTS) // max(1, H * Q * K))
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
