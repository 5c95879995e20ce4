r"""Neighbour selection among candidate blocks and :class:`ImageGraph` assembly (private).

:func:`graph_in_blocks` is the one selection routine of the window, halo and
global builders: each builder only lays out its candidates. Its pure-torch
engine, :func:`blocked_topk` (the learnable graph reuses its chunks): queries
come in blocks that share a candidate set (``query_index (nb, Q)``,
``cand_index (nb, K)``); for a chunk of blocks the candidate features are
gathered, scored against the queries with one batched matrix product, and each
query keeps its best candidates (top-k) or those over a threshold. The chunk
size bounds the memory: at most about ``chunk_elements`` scores, gathered
features and top-k outputs exist at once.
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor

from .. import typing as _t
from ..convert.csr import degree_to_ptr
from ..ops.knn import knn
from ._blocks import grid_positions, node_to_block
from ._checks import map_nodes, node_scores, pos_dtype
from .adaptive import allocate_degrees
from .base import CandidateBlocks, ImageGraph
from .options import SelectionOptions
from .similarity import block_scores, knn_features, normalize

#: Default bound on the number of elements (scores, top-k output, gathered features)
#: of one chunk, per device type. On CPUs small chunks stay in cache and below
#: glibc's mmap threshold (32 MiB), so their buffers are reused instead of being
#: page-faulted in afresh: ``2**21`` (8 MiB of float32). On GPUs larger chunks
#: amortise kernel launches: ``2**26`` (256 MiB).
DEFAULT_CHUNK_ELEMENTS = {"cpu": 2 ** 21, "cuda": 2 ** 26}


def chunk_budget(chunk_elements: Optional[int], device) -> int:
    r"""``chunk_elements`` or the device's default."""
    if chunk_elements is not None:
        if isinstance(chunk_elements, bool) or not isinstance(chunk_elements, int) \
                or chunk_elements < 1:
            raise ValueError(f"chunk_elements must be a positive int, got {chunk_elements!r}")
        return chunk_elements
    return DEFAULT_CHUNK_ELEMENTS.get(torch.device(device).type, 2 ** 24)


def iter_chunks(nb: int, Q: int, K: int, C: int, chunk_elements: int,
                blocks_per_group: Optional[int] = None) -> Iterator[Tuple[int, int, int, int]]:
    r"""Yield ``(b0, b1, q0, q1)`` chunks of blocks / queries within the element budget.

    With ``blocks_per_group``, a chunk never straddles two groups of that many
    consecutive blocks (the global graph's images, whose blocks share candidates).
    """
    gathered_c = 0 if blocks_per_group else K * C
    per_block = 2 * Q * K + gathered_c + Q * C
    if per_block <= chunk_elements:
        nbc, qc = max(1, chunk_elements // per_block), Q
    else:
        nbc = 1
        qc = max(1, (chunk_elements - gathered_c) // (2 * K + C))
    group = blocks_per_group or nb
    for g0 in range(0, nb, max(group, 1)):
        g1 = min(nb, g0 + group)
        for b0 in range(g0, g1, nbc):
            b1 = min(g1, b0 + nbc)
            for q0 in range(0, Q, qc):
                yield b0, b1, q0, min(Q, q0 + qc)


def _rows(t: Tensor, index: Tensor) -> Tensor:
    r"""``t[index]`` for a 2-D ``t`` through ``index_select`` (row copies, much faster on CPU
    than advanced indexing)."""
    return t.index_select(0, index.reshape(-1)).view(*index.shape, t.size(1))


def chunk_scores(qn: Tensor, cn: Tensor, qi: Tensor, ci: Tensor, similarity: str,
                 pq: Optional[Tensor], pc: Optional[Tensor], pos_weight: float,
                 shared: bool, cache: Optional[dict] = None, key=None) -> Tensor:
    r"""Scores ``(nbc, qc, K)`` of a chunk; padded candidates score ``-inf``.

    ``cache``/``key``: the gathered candidates of the last chunk are reused when
    the next chunk has the same blocks (one large block split into query chunks).
    """
    Xq = _rows(qn, qi.clamp_min(0))
    cv = ci >= 0
    if cache is not None and cache.get("key") == key:
        Xc, Pc, cidx = cache["Xc"], cache["Pc"], cache["cidx"]
    else:
        if shared:  # every block of the chunk has the candidates of its first block:
            cidx = ci[0].clamp_min(0)  # (K,) -> one (nbc*qc, C) x (C, K) product, no copies
        else:
            cidx = ci.clamp_min(0)
        Xc = _rows(cn, cidx)
        Pc = _rows(pc, cidx) if pos_weight else None
        if cache is not None:
            cache.update(key=key, Xc=Xc, Pc=Pc, cidx=cidx)
    Pq = _rows(pq, qi.clamp_min(0)) if pos_weight else None
    S = block_scores(Xq, Xc, similarity, Pq, Pc, pos_weight)
    if not bool(cv.all()):
        S.masked_fill_(~(cv[:1] if shared else cv).unsqueeze(1), float("-inf"))
    return S


def blocked_topk(qn: Tensor, cn: Tensor, query_index: Tensor, cand_index: Tensor,
                 degree: Tensor, *, similarity: str, pq: Optional[Tensor] = None,
                 pc: Optional[Tensor] = None, pos_weight: float = 0.0,
                 chunk_elements: Optional[int] = None,
                 blocks_per_group: Optional[int] = None,
                 return_mask: bool = True) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    r"""Every query keeps its ``degree[i]`` best-scoring candidates.

    Args:
        qn (Tensor): normalised query features ``(num_dst, C)``.
        cn (Tensor): normalised candidate features ``(num_src, C)``.
        query_index (LongTensor): ``(nb, Q)``; every target appears exactly once.
        cand_index (LongTensor): ``(nb, K)``.
        degree (LongTensor): ``(num_dst,)``, at most the number of valid
            candidates of the node's block.
        blocks_per_group (int, optional): set when each run of that many
            consecutive blocks shares one candidate set (pooled global graph: the
            blocks of an image): it is then scored without copies.

    Returns:
        ``(src, ptr, mask)``: sources ``(E,)`` sorted by target and, within a
        target, by decreasing score; ``ptr (num_dst + 1,)``; ``mask (nb, Q, K)``.
    """
    nb, Q = query_index.shape
    K = cand_index.size(1)
    N = degree.numel()
    ptr = degree_to_ptr(degree)
    E = int(ptr[-1])
    src_out = torch.empty(E, dtype=torch.long, device=qn.device)
    mask = torch.zeros(nb, Q, K, dtype=torch.bool, device=qn.device) if return_mask else None
    if E == 0:
        return src_out, ptr, mask
    # all targets with the same degree (the non-adaptive case away from borders): the
    # output is an (N, k) table, filled row by row without a per-edge scatter
    uniform = bool(degree.min() == degree.max())
    table = src_out.view(N, -1) if uniform else None
    cache: dict = {}
    budget = chunk_budget(chunk_elements, qn.device)
    for b0, b1, q0, q1 in iter_chunks(nb, Q, K, qn.size(1), budget, blocks_per_group):
        qi = query_index[b0:b1, q0:q1]
        qv = qi >= 0
        qc = qi.clamp_min(0)
        d = torch.where(qv, degree[qc], 0)
        kk = int(d.max())
        if kk == 0:
            continue
        S = chunk_scores(qn, cn, qi, cand_index[b0:b1], similarity, pq, pc, pos_weight,
                         blocks_per_group is not None, cache, (b0, b1))
        _, idx = S.topk(kk, dim=-1, largest=True, sorted=True)
        del S
        ci = cand_index[b0:b1]
        src = ci.gather(1, idx.reshape(idx.size(0), -1)).view_as(idx)
        full = bool(qv.all())
        if uniform:
            if full:
                table[qi.reshape(-1)] = src.reshape(-1, kk)
            else:
                table[qi[qv]] = src[qv]
            keep = qv.unsqueeze(-1).expand_as(idx)
        else:
            rank = torch.arange(kk, device=qn.device)
            keep = rank < d.unsqueeze(-1)
            flat = keep.reshape(-1).nonzero().squeeze(1)
            pos = (ptr[qc].unsqueeze(-1) + rank).reshape(-1)
            src_out[pos[flat]] = src.reshape(-1)[flat]
        if mask is not None:
            mask[b0:b1, q0:q1].scatter_(2, idx, keep)
    if E and int(src_out.min()) < 0:  # pragma: no cover - guarded by the callers
        raise RuntimeError("internal error: a padded candidate was selected")
    return src_out, ptr, mask


def place_ranked(src: Tensor, dst: Tensor, rank: Tensor, degree: Tensor, ptr: Tensor) -> Tensor:
    r"""Ranked candidate lists (any order) -> sources sorted by target, the first
    ``degree`` of each."""
    keep = rank < degree[dst]
    E = int(ptr[-1])
    if int(keep.sum()) != E:  # pragma: no cover - the k-NN backends return enough
        raise RuntimeError("internal error: the k-NN backend returned too few neighbours")
    out = torch.empty(E, dtype=torch.long, device=src.device)
    out[ptr[dst[keep]] + rank[keep]] = src[keep]
    return out


def rank_in_query(query: Tensor, num_queries: int) -> Tensor:
    r"""Rank of each entry inside its query, for a list grouped by query (ordered within)."""
    counts = torch.bincount(query, minlength=num_queries)
    start = torch.zeros_like(counts)
    start[1:] = counts.cumsum(0)[:-1]
    return torch.arange(query.numel(), device=query.device) - start[query]


def mask_from_edges(query_index: Tensor, cand_index: Tensor, src: Tensor, dst: Tensor,
                    num_src: int, num_dst: int) -> Tensor:
    r"""The ``(nb, Q, K)`` edge mask of the blocks, from an edge list (blocks partition targets)."""
    nb, Q = query_index.shape
    K = cand_index.size(1)
    mask = torch.zeros(nb, Q, K, dtype=torch.bool, device=src.device)
    if src.numel() == 0:
        return mask
    blk, slot = node_to_block(query_index, num_dst)
    if cand_index is query_index:  # candidates = the block's own queries (windows)
        mask[blk[dst], slot[dst], slot[src]] = True
        return mask
    cv = cand_index >= 0
    bid = torch.arange(nb, device=src.device).view(nb, 1).expand(nb, K)
    keys = (bid * num_src + cand_index)[cv]
    kslots = torch.arange(K, device=src.device).view(1, K).expand(nb, K)[cv]
    keys, order = keys.sort()
    kslots = kslots[order]
    eb = blk[dst]
    ekey = eb * num_src + src
    at = torch.searchsorted(keys, ekey).clamp_max(keys.numel() - 1)
    if not torch.equal(keys[at], ekey):  # pragma: no cover
        raise RuntimeError("internal error: an edge leaves its block's candidates")
    mask[eb, slot[dst], kslots[at]] = True
    return mask


def make_graph(src: Tensor, ptr: Tensor, pos_src: Tensor, pos_dst: Tensor,
               *, blocks: Optional[CandidateBlocks] = None,
               edge_weight: Optional[Tensor] = None) -> ImageGraph:
    r"""Assemble an :class:`ImageGraph` from sources sorted by target and ``ptr``."""
    num_dst = ptr.numel() - 1
    dst = torch.arange(num_dst, device=src.device).repeat_interleave(ptr[1:] - ptr[:-1],
                                                                     output_size=src.numel())
    edge_index = torch.stack([src, dst])
    edge_attr = pos_src.index_select(0, src) - pos_dst.index_select(0, dst)
    return ImageGraph(edge_index=edge_index, ptr=ptr, edge_attr=edge_attr,
                      num_src=pos_src.size(0), num_dst=num_dst, edge_weight=edge_weight,
                      blocks=blocks, pos_src=pos_src, pos_dst=pos_dst)


def empty_graph(num_src: int, num_dst: int, pos_src: Tensor, pos_dst: Tensor,
                blocks: Optional[CandidateBlocks] = None) -> ImageGraph:
    ptr = torch.zeros(num_dst + 1, dtype=torch.long, device=pos_dst.device)
    src = torch.empty(0, dtype=torch.long, device=pos_dst.device)
    return make_graph(src, ptr, pos_src, pos_dst, blocks=blocks)


def target_degrees(k: int, cap: Tensor, groups: Tensor, *, adaptive: bool,
                   score: Optional[Tensor], k_min: int, k_max: int,
                   redistribute: bool) -> Tensor:
    r"""Per-target degree: ``min(k, cap)``, or the adaptive allocation with ``k`` as the mean.

    ``cap (N,)`` is the number of valid candidates of each target, ``groups (N,)``
    its budget group.
    """
    if not adaptive:
        return cap.clamp_max(k)
    hi = cap.clamp_max(k_max)
    return allocate_degrees(score, groups, k, k_min, hi, redistribute=redistribute,
                            is_ptr=False)


def graph_in_blocks(x: Tensor, qidx: Tensor, cidx: Tensor, options: SelectionOptions, *,
                    score: Optional[Tensor] = None, source: Optional[Tensor] = None,
                    pos_src: Optional[Tensor] = None,
                    blocks_per_group: Optional[int] = None) -> ImageGraph:
    r"""The graph of a candidate layout: every builder with candidate blocks ends here.

    The targets are the ``B*H*W`` nodes of the map ``x``, in query blocks
    ``qidx (nb, Q)`` (every target exactly once, ``-1`` = padding) that share the
    candidates ``cidx (nb, K)`` (``-1`` = padding). The sources are the nodes of
    ``x`` too (window, halo, strided global), or, bipartite, the ``source`` nodes
    ``(num_src, C)`` at ``pos_src (num_src, 2)`` (pooled global). ``cidx is qidx``
    says that each block's candidates are its own queries (windows).
    ``blocks_per_group`` says that each run of that many consecutive blocks has one
    candidate set (pooled global: the blocks of an image), scored without copies.

    Each target keeps its ``options.k`` best-scoring valid candidates
    (:mod:`~pyg_glic.graph.similarity`, with the position term), or its adaptive
    degree with its block as the budget group (:func:`target_degrees`, ``score``
    the complexity or ``None`` for :func:`~pyg_glic.graph.complexity_map` of
    ``x``); ``options`` already checked against ``K``
    (:meth:`SelectionOptions.for_candidates`). With the ``"torch"`` backend each
    chunk of blocks is scored against its gathered candidates
    (:func:`blocked_topk`); another backend, or any backend when candidates are
    queries, runs :func:`pyg_glic.ops.knn` with one batch id per candidate set,
    over a copy of the candidates of each set (the windows' are their queries:
    no copy). Edges of a target come by decreasing score; ``edge_attr`` is in
    pixels (``pos_src[src] - pos_dst[dst]``).
    """
    o = options
    B, _, H, W = x.shape
    backend = _t.resolve_backend("knn", o.backend, x.device)
    N = B * H * W
    pos_dst = grid_positions(B, H, W, x.device, pos_dtype(x))
    bipartite = source is not None
    if not bipartite:
        pos_src = pos_dst
    num_src = pos_src.size(0)
    if N == 0:
        blocks = CandidateBlocks(qidx, cidx, torch.zeros(qidx.size(0), qidx.size(1),
                                                         cidx.size(1), dtype=torch.bool,
                                                         device=x.device))
        return empty_graph(num_src, N, pos_src, pos_dst, blocks if o.return_blocks else None)
    blk, _ = node_to_block(qidx, N)
    cap = (cidx >= 0).sum(1)[blk]
    degree = target_degrees(o.k, cap, blk, adaptive=o.adaptive,
                            score=node_scores(x, score, o.adaptive), k_min=o.k_min,
                            k_max=o.k_max, redistribute=o.redistribute)
    scale = float(o.pos_scale) if o.pos_scale is not None else float(max(H, W))
    nodes = map_nodes(x)

    if backend == "torch" and cidx is not qidx:
        qn = normalize(nodes)
        cn = normalize(source) if bipartite else qn
        pq = pos_dst / scale
        pc = pos_src / scale if bipartite else pq
        src, ptr, mask = blocked_topk(qn, cn, qidx, cidx, degree, similarity=o.similarity,
                                      pq=pq, pc=pc, pos_weight=o.pos_weight,
                                      chunk_elements=o.chunk_elements,
                                      blocks_per_group=blocks_per_group,
                                      return_mask=o.return_blocks)
    else:
        ptr = degree_to_ptr(degree)
        fq = knn_features(nodes, o.similarity, pos_dst, o.pos_weight, scale)
        fc = knn_features(source, o.similarity, pos_src, o.pos_weight, scale) \
            if bipartite else fq
        g = blocks_per_group or 1
        sets = cidx[::g] if g > 1 else cidx  # one row per candidate set
        cv = sets >= 0
        cand = sets[cv]  # the candidates of each set, set-major
        bx = torch.arange(sets.size(0), device=x.device).view(-1, 1).expand_as(sets)[cv]
        perm = qidx[qidx >= 0]  # the targets, block-major: sorted set ids
        by = blk[perm] if g == 1 else blk[perm] // g
        kk = int(degree.max())
        if kk == 0:
            src = torch.empty(0, dtype=torch.long, device=x.device)
        else:
            yq = fq[perm]
            xc = yq if cidx is qidx else fc[cand]  # windows: the candidates are the queries
            out = knn(xc, yq, kk, bx, by, backend=backend,
                      chunk_elements=chunk_budget(o.chunk_elements, x.device))
            rank = rank_in_query(out[0], perm.numel())
            src = place_ranked(cand[out[1]], perm[out[0]], rank, degree, ptr)
        mask = None
        if o.return_blocks:
            dst = torch.arange(N, device=x.device).repeat_interleave(degree,
                                                                     output_size=src.numel())
            mask = mask_from_edges(qidx, cidx, src, dst, num_src, N)
    blocks = CandidateBlocks(qidx, cidx, mask) if o.return_blocks else None
    return make_graph(src, ptr, pos_src, pos_dst, blocks=blocks)
