r"""A PyG transform that builds an image graph on a :class:`~torch_geometric.data.Data`."""
from __future__ import annotations

from typing import Callable, Union

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from .halo import halo_graph
from .knn_graph import knn_graph
from .window import window_graph

_BUILDERS = {"window": window_graph, "halo": halo_graph, "knn": knn_graph}


class ImageGraphTransform(BaseTransform):
    r"""Build a (non-bipartite) image graph on one image stored as a PyG ``Data``.

    The ``Data`` must hold node features ``x`` ``(H*W, C)`` in row-major order
    and its size as ``height`` / ``width`` attributes (as made by
    :func:`pyg_glic.convert.map_to_batch`). Sets ``edge_index``, ``edge_attr``
    (``(dy, dx)`` offsets) and, when the builder returns one, ``edge_weight``.
    The global graph is bipartite (pooled -> full-resolution nodes) and does
    not fit a single-node-set ``Data``; use :func:`~pyg_glic.graph.global_graph`.

    Args:
        builder (str or callable): ``"window"``, ``"halo"``, ``"knn"`` or a
            function ``f(x_map, **kwargs) -> ImageGraph`` (for example a
            :class:`~pyg_glic.graph.LearnableGraph` under ``torch.no_grad``).
        **kwargs: arguments of the builder (``k=...`` and so on).

    Example:
        >>> T = ImageGraphTransform("halo", k=16, window=4, halo=2)
        >>> data = T(data)
    """

    def __init__(self, builder: Union[str, Callable] = "halo", **kwargs):
        if isinstance(builder, str):
            if builder not in _BUILDERS:
                raise ValueError(f"builder must be one of {sorted(_BUILDERS)} or a callable, "
                                 f"got {builder!r}")
            self.name = builder
            builder = _BUILDERS[builder]
        else:
            self.name = getattr(builder, "__name__", type(builder).__name__)
        self.builder = builder
        self.kwargs = kwargs

    def forward(self, data: Data) -> Data:
        H, W = int(data.height), int(data.width)
        x = data.x
        if x is None or x.dim() != 2 or x.size(0) != H * W:
            raise ValueError(f"data.x must have shape (height*width, C) = ({H * W}, C), got "
                             f"{None if x is None else tuple(x.shape)}")
        xmap = x.reshape(1, H, W, x.size(1)).permute(0, 3, 1, 2)
        g = self.builder(xmap, **self.kwargs)
        if g.num_src != g.num_dst:
            raise ValueError("the builder returned a bipartite graph; it does not fit one Data")
        data.edge_index = g.edge_index
        data.edge_attr = g.edge_attr
        if g.edge_weight is not None:
            data.edge_weight = g.edge_weight
        return data

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.__class__.__name__}({self.name!r}{', ' + args if args else ''})"
