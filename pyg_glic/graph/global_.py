r"""Global graph: dilated query sets, with GLIC's strided lattice of real nodes or a
pooled view (bipartite) as candidates."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .. import typing as _t
from ..convert.csr import degree_to_ptr
from ..ops.knn import knn
from ._blocks import (dilated_groups, grid_positions, node_to_block, strided_blocks,
                      strided_steps)
from ._checks import (as_map, check_degree_bounds, check_int, check_k, check_map,
                      check_similarity, map_nodes, node_scores, pos_dtype, work_dtype)
from ._select import (blocked_topk, empty_graph, make_graph, mask_from_edges, place_ranked,
                      rank_in_query, graph_in_blocks, target_degrees)
from .base import CandidateBlocks, ImageGraph
from .downsample import pool_map, pooled_pos, pooled_size
from .similarity import knn_features, normalize

#: Candidate layouts of :func:`global_graph`.
CANDIDATES = ("pooled", "strided")


def global_candidates(B: int, H: int, W: int, num_pooled: int, group: int, device=None
                      ) -> Tuple[Tensor, Tensor]:
    r"""``(query_index (nb, group**2), cand_index (nb, num_pooled))`` of the global graph."""
    qidx = dilated_groups(B, H, W, group, device)
    per_image = qidx.size(0) // max(B, 1)
    base = (torch.arange(B, device=device) * num_pooled).repeat_interleave(per_image)
    cidx = base.view(-1, 1) + torch.arange(num_pooled, device=device).view(1, -1)
    return qidx, cidx


@torch.no_grad()
def global_graph(x: Tensor, k: int = 64, *, grid: Optional[int] = 16,
                 factor: Optional[int] = None, group: int = 8, candidates: str = "pooled",
                 adaptive: bool = False,
                 k_min: int = 1, k_max: Optional[int] = None, similarity: str = "cosine",
                 score: Optional[Tensor] = None, backend: Optional[str] = None,
                 pos_weight: float = 0.0, pos_scale: Optional[float] = None,
                 redistribute: bool = True, pooled: Optional[Tensor] = None,
                 size: Optional[Tuple[int, int]] = None,
                 chunk_elements: Optional[int] = None, check_finite: bool = True,
                 return_blocks: bool = True) -> ImageGraph:
    r"""Global graph: every node's ``k`` most similar nodes among distant candidates.

    GLIC's global graph (arXiv 2603.25316), in two candidate layouts.

    ``candidates="strided"`` (GLIC's published code): queries and candidates
    are real nodes of the same map (``num_src = num_dst = B*H*W``, like
    :func:`halo_graph`). With lattice strides ``ty = ceil(H / grid)``,
    ``tx = ceil(W / grid)`` and query strides ``sy = ty * (grid // group)``,
    ``sx = tx * (grid // group)`` (``grid % group == 0`` is required), query
    set ``(a, b)``, ``0 <= a < sy``, ``0 <= b < sx``, holds the nodes with
    ``(y mod sy, x mod sx) == (a, b)`` (up to ``group x group`` nodes spread
    over the map; sets without a node are dropped), and its candidates are
    the ``grid x grid`` lattice nodes
    ``(a mod ty + i * ty, b mod tx + j * tx)``, ``0 <= i, j < grid``, that lie
    inside the map: distant individual nodes, the set's own queries (so each
    node itself) included; ``(grid // group)**2`` sets share each lattice.
    For ``H``, ``W`` multiples of ``grid`` this is the published layout
    (GLIC: ``grid=16``, ``group=8`` on the ``H/8`` map: ``sy = H/8``,
    ``ty = H/16``); any other size works, lattice positions outside the map
    being padding that never becomes a neighbour (a query keeps
    ``min(k, candidates)`` neighbours). ``edge_attr`` is then in **lattice
    steps**, ``(dy / ty, dx / tx)`` (integers in ``[-(grid - 1), grid - 1]``),
    so that a relative-position bias keeps its meaning across image sizes;
    ``pos_src``/``pos_dst`` stay pixel positions (so here
    ``edge_attr == (pos_src[src] - pos_dst[dst]) / (ty, tx)``).

    ``candidates="pooled"`` (default; ViG's pyramid graph reduction): the map
    is average-pooled (:func:`~pyg_glic.graph.pool_map`) to a fixed
    ``grid x grid`` view (whatever the image size) or by a ``factor`` (ViG);
    each full-resolution node (query) keeps its ``k`` most similar pooled
    nodes (a bipartite k-NN). Messages flow pooled -> full-resolution:
    sources are the ``B * g_h * g_w`` pooled nodes (numbered image-major,
    row-major), targets the ``B * H * W`` nodes; ``edge_attr`` in pixels. The
    queries are grouped in dilated ``group x group`` sets: with strides
    ``sy = ceil(H / group)``, ``sx = ceil(W / group)`` the nodes with equal
    ``(y mod sy, x mod sx)``.

    .. math::
        \mathcal{N}(i) = \operatorname{top-}k_{j \in \mathrm{cand}(\mathrm{set}(i))} \; s_{ij}

    In both layouts the query sets are the
    :class:`~pyg_glic.graph.CandidateBlocks` (``Q = group**2`` queries sharing
    ``K = grid**2`` lattice nodes or ``K = g_h * g_w`` pooled nodes) and the
    budget groups of the adaptive degree (``adaptive=True``: node :math:`i`
    keeps its top-:math:`d_i`, :math:`d_i` from
    :func:`~pyg_glic.graph.allocate_degrees` with ``k`` as the mean and
    ``[k_min, min(k_max, candidates)]`` as bounds; ``score`` implies
    ``adaptive=True``). Time and memory grow linearly with the number of nodes.

    Backends: ``"torch"`` (default) scores each chunk of query sets against
    their candidates with a batched matrix product (pooled: the image's pooled
    features, without copies) and takes a top-k; ``"torch_cluster"`` runs
    :func:`torch_cluster.knn` with one batch id per image (pooled) or per query
    set over a per-set copy of its lattice (strided:
    ``grid**2 / group**2`` times the node features, 4x for GLIC).

    Args:
        x (Tensor): feature map ``(B, C, H, W)`` (or nodes with ``size``).
        k (int): neighbours per node (mean degree when adaptive),
            ``1 <= k <= grid**2`` (strided) or ``g_h * g_w`` (pooled).
        grid (int, optional): lattice side (strided) or pooled grid (pooled;
            clamped to the map's sides, ignored when ``factor`` is given).
            GLIC: 16.
        factor (int, optional): pooled only: reduction ratio instead of a grid.
        group (int): side of the query sets (GLIC: 8).
        candidates (str): ``"pooled"`` or ``"strided"`` (see above).
        adaptive, k_min, k_max, score, redistribute: adaptive degree.
        similarity (str): ``"cosine"`` (GLIC) or ``"euclidean"``.
        backend (str, optional): ``"torch"``, ``"torch_cluster"`` or ``None``/``"auto"``.
        pos_weight, pos_scale (float): relative-position term of the scores, in
            pixels (pooled nodes at their cell centres).
        pooled (Tensor, optional): pooled only: precomputed
            ``pool_map(x, grid, factor)``.
        size (tuple, optional): ``(H, W)`` for node input.
        chunk_elements (int, optional): most elements (scores, top-k output, gathered
            features) of one chunk; default per device (CPU ``2**21``, CUDA ``2**26``).
        check_finite (bool): raise on NaN/Inf features.
        return_blocks (bool): fill ``blocks``.

    Returns:
        :class:`~pyg_glic.graph.ImageGraph`, edges of a target by decreasing
        similarity. Strided: ``num_src = num_dst = B*H*W``, ``edge_attr`` in
        lattice steps. Pooled: bipartite, ``num_src = B*g_h*g_w``,
        ``num_dst = B*H*W``, ``pos_src`` the cell centres.

    Shapes:
        - **input:** ``(B, C, H, W)``
        - **output:** ``edge_index (2, E)``, ``ptr (B*H*W + 1,)``, ``edge_attr (E, 2)``
    """
    x = as_map(x, size)
    B, C, H, W = check_map(x, check_finite=check_finite)
    check_int("group", group, 1)
    check_similarity(similarity)
    if candidates not in CANDIDATES:
        raise ValueError(f"candidates must be one of {CANDIDATES}, got {candidates!r}")
    if H < 1 or W < 1:
        raise ValueError(f"global_graph needs a non-empty map, got shape {tuple(x.shape)}")
    if candidates == "strided":
        if factor is not None:
            raise ValueError("candidates='strided' places a grid x grid lattice of nodes; "
                             "give grid, not factor (factor is for candidates='pooled')")
        if pooled is not None:
            raise ValueError("pooled is only used by candidates='pooled'")
        return _strided_graph(x, k, grid, group, adaptive=adaptive, k_min=k_min, k_max=k_max,
                              similarity=similarity, score=score, backend=backend,
                              pos_weight=pos_weight, pos_scale=pos_scale,
                              redistribute=redistribute, chunk_elements=chunk_elements,
                              return_blocks=return_blocks)
    if factor is not None:
        grid = None
    if pooled is None:
        pooled = pool_map(x, grid, factor)
    gh, gw = pooled_size(H, W, grid, factor)
    if not isinstance(pooled, Tensor) or tuple(pooled.shape) != (B, C, gh, gw):
        raise ValueError(f"pooled must have shape (B, C, g_h, g_w) = ({B}, {C}, {gh}, {gw}), "
                         f"got {tuple(pooled.shape) if isinstance(pooled, Tensor) else pooled!r}")
    K = gh * gw
    adaptive = adaptive or score is not None
    check_k(k, K, f"global graph ({gh}x{gw} pooled nodes)")
    if adaptive:
        k_min, k_max = check_degree_bounds(k, k_min, k_max, K)
    backend = _t.resolve_backend("knn", backend, x.device)
    N = B * H * W
    pd = pos_dtype(x)
    pos_dst = grid_positions(B, H, W, x.device, pd)
    pos_src = pooled_pos(H, W, grid, factor, batch_size=B, device=x.device, dtype=pd)
    qidx, cidx = global_candidates(B, H, W, K, group, x.device)
    if N == 0:
        blocks = CandidateBlocks(qidx, cidx, torch.zeros(qidx.size(0), group ** 2, K,
                                                         dtype=torch.bool, device=x.device))
        return empty_graph(B * K, N, pos_src, pos_dst, blocks if return_blocks else None)
    blk, _ = node_to_block(qidx, N)
    cap = torch.full((N,), K, dtype=torch.long, device=x.device)
    degree = target_degrees(k, cap, blk, adaptive=adaptive, score=node_scores(x, score, adaptive),
                            k_min=k_min, k_max=k_max, redistribute=redistribute)
    scale = float(pos_scale) if pos_scale is not None else float(max(H, W))
    pooled = pooled.to(work_dtype(x))

    if backend == "torch":
        xn = normalize(map_nodes(x))
        pn = normalize(map_nodes(pooled))
        src, ptr, mask = blocked_topk(xn, pn, qidx, cidx, degree, similarity=similarity,
                                      pq=pos_dst / scale, pc=pos_src / scale,
                                      pos_weight=pos_weight, chunk_elements=chunk_elements,
                                      blocks_per_image=qidx.size(0) // B,
                                      return_mask=return_blocks)
    else:
        ptr = degree_to_ptr(degree)
        fq = knn_features(map_nodes(x), similarity, pos_dst, pos_weight, scale)
        fc = knn_features(map_nodes(pooled), similarity, pos_src, pos_weight, scale)
        bq = torch.arange(B, device=x.device).repeat_interleave(H * W)
        bc = torch.arange(B, device=x.device).repeat_interleave(K)
        out = knn(fc, fq, int(degree.max()), bc, bq, backend=backend)
        rank = rank_in_query(out[0], N)
        src = place_ranked(out[1], out[0], rank, degree, ptr)
        mask = None
        if return_blocks:
            dst = torch.arange(N, device=x.device).repeat_interleave(degree,
                                                                     output_size=src.numel())
            mask = mask_from_edges(qidx, cidx, src, dst, B * K, N)
    blocks = CandidateBlocks(qidx, cidx, mask) if return_blocks else None
    return make_graph(src, ptr, pos_src, pos_dst, blocks=blocks)


def _strided_graph(x: Tensor, k: int, grid, group: int, *, adaptive: bool, k_min: int,
                   k_max: Optional[int], similarity: str, score: Optional[Tensor],
                   backend: Optional[str], pos_weight: float, pos_scale: Optional[float],
                   redistribute: bool, chunk_elements: Optional[int],
                   return_blocks: bool) -> ImageGraph:
    r"""``global_graph(..., candidates="strided")`` on a checked map."""
    B, C, H, W = x.shape
    check_int("grid", grid, 1)
    if grid % group:
        raise ValueError(f"candidates='strided' needs grid divisible by group (the query "
                         f"strides are grid // group lattice steps), got grid={grid}, "
                         f"group={group}")
    K = grid * grid
    adaptive = adaptive or score is not None
    check_k(k, K, f"strided global graph ({grid}x{grid} lattice)")
    if adaptive:
        k_min, k_max = check_degree_bounds(k, k_min, k_max, K)
    qidx, cidx = strided_blocks(B, H, W, grid, group, x.device)
    g = graph_in_blocks(x, qidx, cidx, k, adaptive=adaptive, k_min=k_min, k_max=k_max,
                        score=score, redistribute=redistribute, similarity=similarity,
                        backend=backend, pos_weight=pos_weight, pos_scale=pos_scale,
                        chunk_elements=chunk_elements, return_blocks=return_blocks)
    # offsets in lattice steps: every edge joins two nodes of one lattice, so dy and dx
    # are exact multiples of ty and tx
    ty, tx, _, _ = strided_steps(H, W, grid, group)
    g.edge_attr = g.edge_attr / torch.tensor([ty, tx], dtype=g.edge_attr.dtype,
                                             device=x.device)
    return g


class GlobalGraph(torch.nn.Module):
    r"""Module form of :func:`global_graph` (no parameters).

    Args:
        k (int): neighbours per node (mean degree when adaptive).
        grid (int, optional): lattice side (strided) or pooled grid (pooled).
        factor (int, optional): pooled only: reduction ratio instead of ``grid``.
        group (int): side of the query sets.
        candidates (str): ``"pooled"`` (default) or ``"strided"`` (GLIC's
            published layout).
        **kwargs: the keyword arguments of :func:`global_graph`.
    """

    def __init__(self, k: int = 64, grid: Optional[int] = 16, factor: Optional[int] = None,
                 group: int = 8, candidates: str = "pooled", **kwargs):
        super().__init__()
        if candidates not in CANDIDATES:
            raise ValueError(f"candidates must be one of {CANDIDATES}, got {candidates!r}")
        self.k = k
        self.grid = grid
        self.factor = factor
        self.group = group
        self.candidates = candidates
        self.kwargs = kwargs

    def forward(self, x: Tensor, score: Optional[Tensor] = None) -> ImageGraph:
        kw = dict(self.kwargs)
        if score is not None:
            kw["score"] = score
        return global_graph(x, self.k, grid=self.grid, factor=self.factor, group=self.group,
                            candidates=self.candidates, **kw)

    def extra_repr(self) -> str:
        red = f"factor={self.factor}" if self.factor is not None else f"grid={self.grid}"
        cand = "" if self.candidates == "pooled" else f", candidates={self.candidates!r}"
        extra = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return (f"k={self.k}, {red}, group={self.group}{cand}"
                f"{extra}")
