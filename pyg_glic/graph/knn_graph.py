r"""ViG's k-NN graph over all nodes of each image, with dilation."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .. import typing as _t
from ..convert.csr import degree_to_ptr
from ..ops.knn import knn
from ._blocks import grid_positions
from ._checks import check_int, check_map, map_nodes, parse_nodes, pos_dtype
from ._module import GraphBuilder
from ._select import chunk_budget, empty_graph, make_graph, rank_in_query
from .base import ImageGraph
from .options import SelectionOptions
from .similarity import knn_features


@torch.no_grad()
def knn_graph(x: Tensor, k: int, *, dilation: int = 1, batch: Optional[Tensor] = None,
              similarity: str = "euclidean", backend: Optional[str] = None,
              pos: Optional[Tensor] = None, size: Optional[Tuple[int, int]] = None,
              pos_weight: float = 0.0, pos_scale: Optional[float] = None, loop: bool = True,
              chunk_elements: Optional[int] = None,
              check_finite: bool = True) -> ImageGraph:
    r"""ViG's (dilated) k-NN graph over all nodes of each image.

    From "Vision GNN" (Han et al., NeurIPS 2022): each node connects to its
    ``k * dilation`` nearest nodes of the same image, ranked by
    :mod:`~pyg_glic.graph.similarity` (ViG: Euclidean distance of
    L2-normalised features, optionally with a relative-position term), and
    keeps every ``dilation``-th of them (ranks ``0, d, 2d, ...``).

    .. math::
        \mathcal{N}(i) = \{ j_{(0)}, j_{(d)}, \dots, j_{((k-1) d)} \},
        \quad j_{(r)} = \text{the } r\text{-th most similar node of the image}

    As in ViG the node itself is its first neighbour (``loop=True``); with
    ``loop=False`` it is excluded from the ranking.

    Input is a feature map ``(B, C, H, W)`` or node features ``(N, C)`` with
    an optional sorted ``batch`` (images may then differ in size) and either
    ``pos (N, 2)`` or ``size=(H, W)`` (for ``edge_attr``). An image with
    fewer than ``k * dilation`` candidates gives its nodes all of them before
    the dilation (documented clamping, as :func:`torch_cluster.knn`); for map
    input ``k * dilation`` above ``H * W`` (minus one without loops) raises.

    Args:
        x (Tensor): ``(B, C, H, W)`` map or ``(N, C)`` nodes.
        k (int): neighbours per node.
        dilation (int): keep every ``dilation``-th of the ``k * dilation`` nearest.
        batch (LongTensor, optional): node input: sorted image ids ``(N,)``.
        similarity (str): ``"euclidean"`` (ViG) or ``"cosine"``.
        backend (str, optional): ``"torch"``, ``"torch_cluster"`` or ``None``/``"auto"``.
        pos (Tensor, optional): node input: positions ``(N, 2)`` (row, col).
        size (tuple, optional): node input: ``(H, W)`` of every image.
        pos_weight, pos_scale (float): relative-position term (``pos_scale``
            defaults to ``max(H, W)`` or to the largest position extent).
        loop (bool): include the node itself.
        chunk_elements (int, optional): memory bound of the pure-torch k-NN
            (default per device, as for
            :func:`halo_graph`: CPU ``2**21``, CUDA ``2**26``).
        check_finite (bool): raise on NaN/Inf features.

    Returns:
        :class:`~pyg_glic.graph.ImageGraph` without ``blocks``; edges of a target
        by decreasing similarity.

    Shapes:
        - **input:** ``(B, C, H, W)`` or ``(N, C)``, ``batch (N,)``
        - **output:** ``edge_index (2, E)`` with ``E <= N * k``
    """
    # the selection keywords it shares with the block builders, checked in one place
    SelectionOptions(k=k, similarity=similarity, backend=backend, pos_weight=pos_weight,
                     pos_scale=pos_scale, chunk_elements=chunk_elements,
                     check_finite=check_finite, return_blocks=False)
    check_int("dilation", dilation, 1)
    if isinstance(x, Tensor) and x.dim() == 4:
        if batch is not None or pos is not None:
            raise ValueError("batch and pos are for node input (N, C); a feature map "
                             "(B, C, H, W) carries its own")
        B, C, H, W = check_map(x, check_finite=check_finite)
        nodes = map_nodes(x)
        batch = torch.arange(B, device=x.device).repeat_interleave(H * W)
        pos = grid_positions(B, H, W, x.device, pos_dtype(x))
        avail = H * W - (0 if loop else 1)
        if k * dilation > avail:
            raise ValueError(f"k * dilation = {k * dilation} is larger than the {avail} "
                             f"candidates per node of a {H}x{W} map; expected "
                             f"k * dilation <= {avail}")
        default_scale = float(max(H, W))
    elif isinstance(x, Tensor) and x.dim() == 2:
        nodes, batch, pos, default_scale = parse_nodes(x, batch, pos, size, check_finite)
    else:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a feature map (B, C, H, W) or node features (N, C), "
                         f"got {shape}")
    backend = _t.resolve_backend("knn", backend, nodes.device)
    N = nodes.size(0)
    if N == 0:
        return empty_graph(0, 0, pos, pos)
    scale = float(pos_scale) if pos_scale is not None else default_scale
    feats = knn_features(nodes, similarity, pos, pos_weight, scale)
    kd = k * dilation
    kw = dict(chunk_elements=chunk_budget(chunk_elements, x.device))
    out = knn(feats, feats, kd + (0 if loop else 1), batch, batch, backend=backend, **kw)
    if not loop:
        out = out[:, out[0] != out[1]]
    rank = rank_in_query(out[0], N)
    keep = (rank < kd) & (rank % dilation == 0)
    out = out[:, keep]  # still grouped by query, by increasing distance
    ptr = degree_to_ptr(torch.bincount(out[0], minlength=N))
    return make_graph(out[1], ptr, pos, pos)


class DilatedKNNGraph(GraphBuilder):
    r"""Module form of :func:`knn_graph`, ViG's dilated k-NN graph over the features
    (no parameters).

    Formerly ``KNNGraph``, a name that shadowed PyG's transform
    :class:`torch_geometric.transforms.KNNGraph` (a k-NN graph over positions);
    ``pyg_glic.graph.KNNGraph`` still works for one release and warns.

    Args:
        k (int): neighbours per node.
        dilation (int): ViG's dilation.
        **kwargs: the keyword arguments of :func:`knn_graph`.
    """

    builder = staticmethod(knn_graph)
    arg_names = ("k", "dilation")

    def __init__(self, k: int = 9, dilation: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.k = k
        self.dilation = dilation

    def forward(self, x: Tensor, batch: Optional[Tensor] = None, **kwargs) -> ImageGraph:
        if batch is not None:
            kwargs["batch"] = batch
        return self.build(x, **kwargs)
