r"""Global graph: dilated query sets, with GLIC's strided lattice of real nodes or a
pooled view (bipartite) as candidates."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ._blocks import dilated_groups, strided_blocks, strided_steps
from ._checks import as_map, check_int, check_map, map_nodes, pos_dtype, work_dtype
from ._module import GraphBuilder
from ._select import graph_in_blocks
from .base import ImageGraph
from .downsample import pool_map, pooled_pos, pooled_size
from .options import SelectionOptions

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
    if candidates not in CANDIDATES:
        raise ValueError(f"candidates must be one of {CANDIDATES}, got {candidates!r}")
    if H < 1 or W < 1:
        raise ValueError(f"global_graph needs a non-empty map, got shape {tuple(x.shape)}")
    options = SelectionOptions(
        k=k, adaptive=adaptive or score is not None, k_min=k_min, k_max=k_max,
        similarity=similarity, backend=backend, pos_weight=pos_weight, pos_scale=pos_scale,
        redistribute=redistribute, chunk_elements=chunk_elements, check_finite=check_finite,
        return_blocks=return_blocks)
    if candidates == "strided":
        if factor is not None:
            raise ValueError("candidates='strided' places a grid x grid lattice of nodes; "
                             "give grid, not factor (factor is for candidates='pooled')")
        if pooled is not None:
            raise ValueError("pooled is only used by candidates='pooled'")
        return _strided_graph(x, grid, group, options, score)
    if factor is not None:
        grid = None
    if pooled is None:
        pooled = pool_map(x, grid, factor)
    gh, gw = pooled_size(H, W, grid, factor)
    if not isinstance(pooled, Tensor) or tuple(pooled.shape) != (B, C, gh, gw):
        raise ValueError(f"pooled must have shape (B, C, g_h, g_w) = ({B}, {C}, {gh}, {gw}), "
                         f"got {tuple(pooled.shape) if isinstance(pooled, Tensor) else pooled!r}")
    K = gh * gw
    options = options.for_candidates(K, f"global graph ({gh}x{gw} pooled nodes)")
    pos_src = pooled_pos(H, W, grid, factor, batch_size=B, device=x.device, dtype=pos_dtype(x))
    qidx, cidx = global_candidates(B, H, W, K, group, x.device)
    # bipartite: the sources are the pooled nodes; all blocks of an image share them
    return graph_in_blocks(x, qidx, cidx, options, score=score,
                           source=map_nodes(pooled.to(work_dtype(x))), pos_src=pos_src,
                           blocks_per_group=qidx.size(0) // max(B, 1))


def _strided_graph(x: Tensor, grid, group: int, options: SelectionOptions,
                   score: Optional[Tensor]) -> ImageGraph:
    r"""``global_graph(..., candidates="strided")`` on a checked map."""
    B, C, H, W = x.shape
    check_int("grid", grid, 1)
    if grid % group:
        raise ValueError(f"candidates='strided' needs grid divisible by group (the query "
                         f"strides are grid // group lattice steps), got grid={grid}, "
                         f"group={group}")
    options = options.for_candidates(grid * grid, f"strided global graph ({grid}x{grid} lattice)")
    qidx, cidx = strided_blocks(B, H, W, grid, group, x.device)
    g = graph_in_blocks(x, qidx, cidx, options, score=score)
    # offsets in lattice steps: every edge joins two nodes of one lattice, so dy and dx
    # are exact multiples of ty and tx
    ty, tx, _, _ = strided_steps(H, W, grid, group)
    g.edge_attr = g.edge_attr / torch.tensor([ty, tx], dtype=g.edge_attr.dtype,
                                             device=x.device)
    return g


class GlobalGraph(GraphBuilder):
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

    builder = staticmethod(global_graph)
    arg_names = ("k", "grid", "factor", "group", "candidates")

    def __init__(self, k: int = 64, grid: Optional[int] = 16, factor: Optional[int] = None,
                 group: int = 8, candidates: str = "pooled", **kwargs):
        super().__init__(**kwargs)
        if candidates not in CANDIDATES:
            raise ValueError(f"candidates must be one of {CANDIDATES}, got {candidates!r}")
        self.k = k
        self.grid = grid
        self.factor = factor
        self.group = group
        self.candidates = candidates

    def repr_args(self) -> List[str]:
        red = f"factor={self.factor!r}" if self.factor is not None else f"grid={self.grid!r}"
        cand = [] if self.candidates == "pooled" else [f"candidates={self.candidates!r}"]
        return [f"k={self.k!r}", red, f"group={self.group!r}"] + cand
