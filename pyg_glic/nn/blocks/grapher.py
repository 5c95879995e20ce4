r"""ViG's Grapher block on ``(B, C, H, W)`` maps, with a selectable graph convolution."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Union

import torch
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import EdgeConv, GINConv, MessagePassing, SAGEConv

from ...convert import nodes_to_map
from ..conv import MRConv, WeightedConv
from ...graph import knn_graph
from ._utils import DropPath, map_nodes, unpack_graph

#: Graph convolutions :class:`Grapher` can build by name.
CONVS = ("mr", "edge", "sage", "gin", "weighted")


def make_conv(name: str, in_channels: int, out_channels: int, **kwargs) -> MessagePassing:
    r"""Build a graph convolution ``in_channels -> out_channels`` by ViG's name.

    - ``"mr"``: :class:`~pyg_glic.nn.conv.MRConv`.
    - ``"edge"``: PyG's :class:`~torch_geometric.nn.conv.EdgeConv` with a linear
      :math:`2C_{in} \rightarrow C_{out}` on :math:`[\mathbf{x}_i \| \mathbf{x}_j - \mathbf{x}_i]`
      and max aggregation (ViG's EdgeConv).
    - ``"sage"``: PyG's :class:`~torch_geometric.nn.conv.SAGEConv` with max
      aggregation of ReLU-projected neighbours (``project=True``).
    - ``"gin"``: PyG's :class:`~torch_geometric.nn.conv.GINConv` with a linear
      network and a learnable :math:`\epsilon`.
    - ``"weighted"``: :class:`~pyg_glic.nn.conv.WeightedConv` (learned graphs).
    """
    if name == "mr":
        return MRConv(in_channels, out_channels, **kwargs)
    if name == "edge":
        return EdgeConv(torch.nn.Linear(2 * in_channels, out_channels), aggr="max", **kwargs)
    if name == "sage":
        kwargs.setdefault("aggr", "max")
        kwargs.setdefault("project", True)
        return SAGEConv(in_channels, out_channels, **kwargs)
    if name == "gin":
        kwargs.setdefault("train_eps", True)
        return GINConv(torch.nn.Linear(in_channels, out_channels), **kwargs)
    if name == "weighted":
        return WeightedConv(in_channels, out_channels, **kwargs)
    raise ValueError(f"unknown graph convolution {name!r}; expected one of {CONVS}")


class Grapher(torch.nn.Module):
    r"""ViG's Grapher block, from `"Vision GNN: An Image is Worth Graph of
    Nodes" <https://arxiv.org/abs/2206.00272>`_, on a ``(B, C, H, W)`` map
    whose pixels are the nodes.

    .. math::
        \mathbf{H} &= \mathrm{BN}(\mathbf{W}_1 \mathbf{X}), \qquad
        \mathbf{Y} = \mathrm{GELU}\big(\mathrm{BN}(
            \mathrm{GraphConv}_{C \rightarrow 2C}(\mathbf{H}, \mathcal{G}))\big)

        \mathbf{X}^{\prime} &= \mathbf{X} + \mathrm{DropPath}\big(
            \mathrm{BN}(\mathbf{W}_2 \mathbf{Y})\big)

    where :math:`\mathbf{W}_1, \mathbf{W}_2` are 1x1 convolutions and
    :math:`\mathcal{G}` is the graph: given to :meth:`forward`, or built from
    :math:`\mathbf{H}` by ``graph_builder`` (default: ViG's dilated k-NN graph
    of the L2-normalised features, :func:`pyg_glic.graph.knn_graph`, built
    without gradients).
    A ``graph_builder`` that is a module (for example a learnable graph) is
    called with gradients and its parameters belong to the block; its edge
    weights reach a convolution that takes them (``conv="weighted"``).

    Args:
        channels (int): channels ``C`` of the map.
        conv (str or MessagePassing, optional): ``"mr"``, ``"edge"``,
            ``"sage"``, ``"gin"``, ``"weighted"`` (see :func:`make_conv`) or a
            ready layer mapping ``C -> 2C``. (default: :obj:`"mr"`)
        k (int, optional): neighbours of the default k-NN graph. (default: :obj:`9`)
        dilation (int, optional): dilation of the default k-NN graph.
            (default: :obj:`1`)
        graph_builder (callable, optional): ``graph_builder(H) ->`` an
            :class:`~pyg_glic.graph.base.ImageGraph`, an ``edge_index`` or
            ``(edge_index, edge_weight)`` over the ``B*H*W`` nodes.
        drop_path (float, optional): drop-path probability. (default: :obj:`0.0`)
        conv_kwargs (dict, optional): extra arguments of the named convolution.
        knn_kwargs (dict, optional): extra arguments of the default
            :func:`~pyg_glic.graph.knn_graph` (``pos_weight``, ``similarity``, ...).

    Shapes:
        - **input:** :math:`(B, C, H, W)`, optional graph over :math:`BHW` nodes
        - **output:** :math:`(B, C, H, W)`
    """
    def __init__(self, channels: int, conv: Union[str, MessagePassing] = "mr", k: int = 9,
                 dilation: int = 1, graph_builder: Optional[Callable[..., Any]] = None,
                 drop_path: float = 0.0, conv_kwargs: Optional[Dict[str, Any]] = None,
                 knn_kwargs: Optional[Dict[str, Any]] = None):
        super().__init__()
        self.channels = channels
        self.k = k
        self.dilation = dilation
        self.knn_kwargs = dict(knn_kwargs or {})
        self.fc1 = torch.nn.Sequential(torch.nn.Conv2d(channels, channels, 1),
                                       torch.nn.BatchNorm2d(channels))
        if isinstance(conv, str):
            self.conv_name = conv
            conv = make_conv(conv, channels, 2 * channels, **(conv_kwargs or {}))
        else:
            self.conv_name = type(conv).__name__
        self.conv = conv
        self.takes_edge_weight = isinstance(conv, WeightedConv)
        self.norm = torch.nn.BatchNorm2d(2 * channels)
        self.act = torch.nn.GELU()
        self.fc2 = torch.nn.Sequential(torch.nn.Conv2d(2 * channels, channels, 1),
                                       torch.nn.BatchNorm2d(channels))
        self.drop_path = DropPath(drop_path)
        self.graph_builder = graph_builder

    def build_graph(self, h: Tensor):
        r"""The graph over the nodes of ``h`` (the map after ``fc1``)."""
        if self.graph_builder is not None:
            return self.graph_builder(h)
        return self._default_graph(h)

    @torch.compiler.disable
    def _default_graph(self, h: Tensor):
        # Data-dependent index code: kept out of torch.compile graphs (runs eagerly).
        with torch.no_grad():
            return knn_graph(h.detach(), self.k, dilation=self.dilation,
                                   **self.knn_kwargs)

    def forward(self, x: Tensor, graph=None) -> Tensor:
        B, C, H, W = x.shape
        h = self.fc1(x)
        if graph is None:
            graph = self.build_graph(h)
        edge_index, _, edge_weight = unpack_graph(graph)
        nodes = map_nodes(h)
        if self.takes_edge_weight:
            out = self.conv(nodes, edge_index, edge_weight)
        else:
            if edge_weight is not None and edge_weight.requires_grad:
                raise ValueError(f"the graph has learnable edge weights but conv "
                                 f"{self.conv_name!r} ignores them; use conv='weighted'")
            # an ImageGraph's edge_index is an EdgeIndex sorted by target: MRConv
            # reads its CSR pointer itself (the CSR max, no E x C); PyG's own
            # convolutions get the plain edges, on which they run as they always
            # did (given an EdgeIndex, PyG would switch them to segment reductions)
            if isinstance(edge_index, EdgeIndex) and not isinstance(self.conv, MRConv):
                edge_index = edge_index.as_tensor()
            out = self.conv(nodes, edge_index)
        out = nodes_to_map(out, B, H, W)
        out = self.fc2(self.act(self.norm(out)))
        return x + self.drop_path(out)

    def extra_repr(self) -> str:
        return f"{self.channels}, conv={self.conv_name}, k={self.k}"
