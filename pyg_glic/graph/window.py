r"""Local window graph: k-NN inside non-overlapping windows."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ._blocks import window_blocks
from ._checks import as_map, check_int, check_map
from ._module import GraphBuilder
from ._select import graph_in_blocks
from .base import ImageGraph
from .options import SelectionOptions


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
    :func:`pyg_glic.ops.knn` with one batch id per image and window (whatever
    the backend: the candidates are the queries, no copy is made). A map whose
    sides are not multiples of ``window`` gets clipped windows at the right and
    bottom border: their nodes have fewer
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
    options = SelectionOptions(
        k=k, adaptive=adaptive or score is not None, k_min=k_min, k_max=k_max,
        similarity=similarity, backend=backend, pos_weight=pos_weight, pos_scale=pos_scale,
        redistribute=redistribute, chunk_elements=chunk_elements, check_finite=check_finite,
        return_blocks=return_blocks,
    ).for_candidates(window * window, f"window graph (window={window})")
    qidx = window_blocks(B, H, W, window, x.device)
    # candidates = the window's own queries (cand_index is query_index)
    return graph_in_blocks(x, qidx, qidx, options, score=score)


class WindowGraph(GraphBuilder):
    r"""Module form of :func:`window_graph` (no parameters).

    Args:
        k (int): neighbours per node (mean degree when adaptive).
        window (int): window side.
        **kwargs: the keyword arguments of :func:`window_graph`.
    """

    builder = staticmethod(window_graph)
    arg_names = ("k", "window")

    def __init__(self, k: int, window: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.k = k
        self.window = window
