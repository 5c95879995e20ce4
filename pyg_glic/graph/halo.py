r"""Halo graph (GLIC's local graph): window queries, halo-patch candidates."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ._blocks import halo_blocks, window_blocks
from ._checks import as_map, check_int, check_map
from ._module import GraphBuilder
from ._select import graph_in_blocks
from .base import ImageGraph
from .options import SelectionOptions


@torch.no_grad()
def halo_graph(x: Tensor, k: int = 64, *, window: int = 8, halo: int = 4,
               adaptive: bool = False, k_min: int = 1, k_max: Optional[int] = None,
               similarity: str = "cosine", score: Optional[Tensor] = None,
               backend: Optional[str] = None, pos_weight: float = 0.0,
               pos_scale: Optional[float] = None, redistribute: bool = True,
               size: Optional[Tuple[int, int]] = None,
               chunk_elements: Optional[int] = None, check_finite: bool = True,
               return_blocks: bool = True) -> ImageGraph:
    r"""GLIC's local graph: queries in windows, candidates in the halo patch around them.

    From GLIC (arXiv 2603.25316): the map is cut into ``window x window`` query
    windows; the candidates of every query of a window are the nodes of the
    ``(window + 2 halo)``-sided patch centred on the window (GLIC: 8 and 4, so
    256 candidates, the query itself included); each query keeps its ``k``
    most similar candidates (:mod:`~pyg_glic.graph.similarity`).

    .. math::
        \mathcal{N}(i) = \operatorname{top-}k_{j \in \mathrm{patch}(\mathrm{win}(i))} \; s_{ij}

    Patch positions outside the map are padding and never become neighbours:
    near the border a query has fewer candidates and keeps
    ``min(k, candidates)`` neighbours; maps whose sides are not multiples of
    ``window`` get clipped windows at the right and bottom.

    With ``adaptive=True`` node :math:`i` keeps its top-:math:`d_i`, with
    :math:`d_i` from :func:`~pyg_glic.graph.allocate_degrees` (``k`` = mean
    degree, the query window = the budget group of 64 nodes, bounds
    ``[k_min, min(k_max, candidates)]``); the score is
    :func:`~pyg_glic.graph.complexity_map` of ``x`` unless ``score`` is given
    (which implies ``adaptive=True``).

    Backends: ``"torch"`` (default) scores each chunk of windows against its
    gathered candidates with one batched matrix product and a top-k
    (:class:`~pyg_glic.graph.CandidateBlocks` form, memory bounded by
    ``chunk_elements``); ``"torch_cluster"`` runs :func:`torch_cluster.knn`
    with one batch id per window over a per-window copy of the candidates
    (``(window + 2 halo)**2 / window**2`` times the node features; 4x for GLIC),
    which expresses the overlapping patches but is slow on CPUs in high dimension.

    Args:
        x (Tensor): feature map ``(B, C, H, W)`` (or nodes with ``size``).
        k (int): neighbours per node (mean degree when adaptive),
            ``1 <= k <= (window + 2 halo)**2``.
        window (int): query window side.
        halo (int): halo width around the window.
        adaptive (bool): GLIC's adaptive degree.
        k_min, k_max (int): degree bounds when adaptive (default ``k_max`` = all
            candidates).
        similarity (str): ``"cosine"`` (GLIC) or ``"euclidean"``.
        score (Tensor, optional): complexity ``(B, 1, H, W)``.
        backend (str, optional): ``"torch"``, ``"torch_cluster"`` or ``None``/``"auto"``.
        pos_weight, pos_scale (float): relative-position term.
        redistribute (bool): see :func:`~pyg_glic.graph.allocate_degrees`.
        size (tuple, optional): ``(H, W)`` for node input ``(B*H*W, C)``.
        chunk_elements (int, optional): most elements (scores, top-k output, gathered
            features) of one chunk; default per device (CPU ``2**21``, CUDA ``2**26``).
        check_finite (bool): raise on NaN/Inf features.
        return_blocks (bool): fill ``blocks``: ``query_index (nb, window**2)``,
            ``cand_index (nb, (window + 2 halo)**2)``, ``mask``.

    Returns:
        :class:`~pyg_glic.graph.ImageGraph`, ``num_src = num_dst = B*H*W``,
        edges of a target by decreasing similarity.

    Shapes:
        - **input:** ``(B, C, H, W)``
        - **output:** ``edge_index (2, E)``, ``ptr (B*H*W + 1,)``, ``edge_attr (E, 2)``
    """
    x = as_map(x, size)
    B, C, H, W = check_map(x, check_finite=check_finite)
    check_int("window", window, 1)
    check_int("halo", halo, 0)
    options = SelectionOptions(
        k=k, adaptive=adaptive or score is not None, k_min=k_min, k_max=k_max,
        similarity=similarity, backend=backend, pos_weight=pos_weight, pos_scale=pos_scale,
        redistribute=redistribute, chunk_elements=chunk_elements, check_finite=check_finite,
        return_blocks=return_blocks,
    ).for_candidates((window + 2 * halo) ** 2, f"halo graph (window={window}, halo={halo})")
    qidx = window_blocks(B, H, W, window, x.device)
    cidx = halo_blocks(B, H, W, window, halo, x.device)
    return graph_in_blocks(x, qidx, cidx, options, score=score)


class HaloGraph(GraphBuilder):
    r"""Module form of :func:`halo_graph` (no parameters).

    Args:
        k (int): neighbours per node (mean degree when adaptive).
        window (int): query window side.
        halo (int): halo width.
        **kwargs: the keyword arguments of :func:`halo_graph`.
    """

    builder = staticmethod(halo_graph)
    arg_names = ("k", "window", "halo")

    def __init__(self, k: int = 64, window: int = 8, halo: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.k = k
        self.window = window
        self.halo = halo
