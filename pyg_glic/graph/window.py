r"""Local window graph: k-NN inside non-overlapping windows."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .. import typing as _t
from ..convert.csr import degree_to_ptr
from ..ops.knn import knn
from ._blocks import grid_positions, node_to_block, window_blocks
from ._checks import (as_map, check_degree_bounds, check_int, check_k, check_map,
                      check_similarity, map_nodes, node_scores, pos_dtype)
from ._select import (chunk_budget, empty_graph, make_graph, mask_from_edges,
                      place_ranked, rank_in_query, target_degrees)
from .base import CandidateBlocks, ImageGraph
from .similarity import knn_features


@torch.no_grad()
def window_graph(x: Tensor, k: int, *, window: int = 8, adaptive: bool = False,
                 k_min: int = 1, k_max: Optional[int] = None, similarity: str = "cosine",
                 score: Optional[Tensor] = None, backend: Optional[str] = None,
                 pos_weight: float = 0.0, pos_scale: Optional[float] = None,
                 redistribute: bool = True, size: Optional[Tuple[int, int]] = None,
                 chunk_elements: Optional[int] = None, check_finite: bool = True,
                 return_blocks: bool = True) -> ImageGraph:
    r"""The local window graph: every node's ``k`` most similar nodes of its window.

    The map is cut into non-overlapping ``window x window`` windows (row-major
    from the top-left corner); every node is a query whose candidates are the
    nodes of its own window (itself included), ranked by
    :mod:`~pyg_glic.graph.similarity`. The search runs through
    :func:`pyg_glic.ops.knn` with one batch id per image and window, so both
    k-NN backends work. A map whose sides are not multiples of ``window`` gets
    clipped windows at the right and bottom border: their nodes have fewer
    candidates and keep ``min(k, candidates)`` neighbours; a window larger than
    the map is one clipped window (a full k-NN graph per image).

    .. math::
        \mathcal{N}(i) = \operatorname{top-}k_{j \in \mathrm{win}(i)} \; s_{ij}

    With ``adaptive=True`` node :math:`i` keeps its top-:math:`d_i` candidates,
    :math:`d_i` from :func:`~pyg_glic.graph.allocate_degrees` with ``k`` as the
    mean degree, the window as the budget group and
    ``[k_min, min(k_max, candidates)]`` as bounds; the complexity score is
    :func:`~pyg_glic.graph.complexity_map` of ``x`` unless ``score`` is given
    (giving ``score`` implies ``adaptive=True``).

    Args:
        x (Tensor): feature map ``(B, C, H, W)``, or nodes ``(B*H*W, C)`` with ``size``.
        k (int): neighbours per node (mean degree when adaptive), ``1 <= k <= window**2``.
        window (int): window side.
        adaptive (bool): GLIC's adaptive degree.
        k_min, k_max (int): degree bounds when adaptive (default ``k_max = window**2``).
        similarity (str): ``"cosine"`` or ``"euclidean"``.
        score (Tensor, optional): complexity ``(B, 1, H, W)``.
        backend (str, optional): k-NN backend, ``"torch"``, ``"torch_cluster"``
            or ``None``/``"auto"``.
        pos_weight, pos_scale (float): relative-position term
            (``pos_scale`` defaults to ``max(H, W)``).
        redistribute (bool): see :func:`~pyg_glic.graph.allocate_degrees`.
        size (tuple, optional): ``(H, W)`` for node input.
        chunk_elements (int, optional): memory bound of the pure-torch k-NN
            (default per device, as for
            :func:`halo_graph`: CPU ``2**21``, CUDA ``2**26``).
        check_finite (bool): raise on NaN/Inf features.
        return_blocks (bool): fill ``blocks`` (windows as ``Q = K = window**2`` blocks).

    Returns:
        :class:`~pyg_glic.graph.ImageGraph` with ``num_src = num_dst = B*H*W``;
        within a target, edges are ordered by decreasing similarity.

    Shapes:
        - **input:** ``(B, C, H, W)``
        - **output:** ``edge_index (2, E)``, ``ptr (B*H*W + 1,)``, ``edge_attr (E, 2)``
    """
    x = as_map(x, size)
    B, C, H, W = check_map(x, check_finite=check_finite)
    check_int("window", window, 1)
    check_similarity(similarity)
    adaptive = adaptive or score is not None
    K = window * window
    check_k(k, K, f"window graph (window={window})")
    if adaptive:
        k_min, k_max = check_degree_bounds(k, k_min, k_max, K)
    backend = _t.resolve_backend("knn", backend, x.device)
    N = B * H * W
    pos = grid_positions(B, H, W, x.device, pos_dtype(x))
    qidx = window_blocks(B, H, W, window, x.device)
    blocks = None
    if N == 0:
        if return_blocks:
            blocks = CandidateBlocks(qidx, qidx, torch.zeros(qidx.size(0), K, K,
                                                             dtype=torch.bool, device=x.device))
        return empty_graph(N, N, pos, pos, blocks)
    blk, _ = node_to_block(qidx, N)
    cap = (qidx >= 0).sum(1)[blk]
    degree = target_degrees(k, cap, blk, adaptive=adaptive, score=node_scores(x, score, adaptive),
                            k_min=k_min, k_max=k_max, redistribute=redistribute)
    ptr = degree_to_ptr(degree)

    scale = float(pos_scale) if pos_scale is not None else float(max(H, W))
    feats = knn_features(map_nodes(x), similarity, pos, pos_weight, scale)
    perm = qidx[qidx >= 0]  # nodes in window-major order: sorted batch ids for knn
    bid = blk[perm]
    kk = int(degree.max())
    if kk == 0:
        src = torch.empty(0, dtype=torch.long, device=x.device)
    else:
        f = feats[perm]
        kw = dict(chunk_elements=chunk_budget(chunk_elements, x.device))
        out = knn(f, f, kk, bid, bid, backend=backend, **kw)
        rank = rank_in_query(out[0], perm.numel())
        src = place_ranked(perm[out[1]], perm[out[0]], rank, degree, ptr)
    if return_blocks:
        dst = torch.arange(N, device=x.device).repeat_interleave(degree, output_size=src.numel())
        blocks = CandidateBlocks(qidx, qidx, mask_from_edges(qidx, qidx, src, dst, N, N))
    return make_graph(src, ptr, pos, pos, blocks=blocks)


class WindowGraph(torch.nn.Module):
    r"""Module form of :func:`window_graph` (no parameters).

    Args:
        k (int): neighbours per node (mean degree when adaptive).
        window (int): window side.
        **kwargs: the keyword arguments of :func:`window_graph`.
    """

    def __init__(self, k: int, window: int = 8, **kwargs):
        super().__init__()
        self.k = k
        self.window = window
        self.kwargs = kwargs

    def forward(self, x: Tensor, score: Optional[Tensor] = None) -> ImageGraph:
        kw = dict(self.kwargs)
        if score is not None:
            kw["score"] = score
        return window_graph(x, self.k, window=self.window, **kw)

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"k={self.k}, window={self.window}{extra}"
