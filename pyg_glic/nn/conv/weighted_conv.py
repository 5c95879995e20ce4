from __future__ import annotations

from typing import Union

import torch
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj, OptTensor, PairTensor

AGGRS = ("max", "sum", "mean")


class WeightedConv(MessagePassing):
    r"""Edge-weighted graph convolution for learned graphs, as in ViG-LRGC
    (`"Learnable Reparameterized Graph Construction for Vision GNNs"
    <https://arxiv.org/abs/2509.18840>`_): the learned edge weights scale the
    messages, so gradients reach the weights (and through them the graph
    constructor's projections and threshold).

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W} \left[ \mathbf{x}_i \,\Big\|\,
        \square_{j \in \mathcal{N}(i)} \; w_{ji} \left( \mathbf{x}_j - \mathbf{x}_i
        \right) \right] + \mathbf{b}

    where :math:`\square` is ``aggr`` (per channel) and :math:`w_{ji}` the weight
    of edge :math:`j \rightarrow i` (1 when ``edge_weight`` is ``None``). With
    ``relative=False`` the message is :math:`w_{ji} \mathbf{x}_j`; with
    ``root_weight=False`` the term :math:`\mathbf{x}_i` is left out of the
    concatenation. With the defaults and unit weights this is
    :class:`~pyg_glic.nn.conv.MRConv`. A node without incoming edges aggregates
    to :math:`\mathbf{0}` for every ``aggr``.

    Args:
        in_channels (int): Size of each input sample.
        out_channels (int): Size of each output sample.
        aggr (str, optional): ``"max"``, ``"sum"`` or ``"mean"``.
            (default: :obj:`"max"`)
        relative (bool, optional): Use :math:`\mathbf{x}_j - \mathbf{x}_i` as
            the message rather than :math:`\mathbf{x}_j`. (default: :obj:`True`)
        root_weight (bool, optional): Concatenate :math:`\mathbf{x}_i` before
            the linear map. (default: :obj:`True`)
        bias (bool, optional): Learn an additive bias. (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})` or
          :math:`((|\mathcal{V}_s|, F_{in}), (|\mathcal{V}_t|, F_{in}))`
          if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)`,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})` or
          :math:`(|\mathcal{V}_t|, F_{out})` if bipartite
    """
    def __init__(self, in_channels: int, out_channels: int, aggr: str = "max",
                 relative: bool = True, root_weight: bool = True, bias: bool = True,
                 **kwargs):
        if aggr not in AGGRS:
            raise ValueError(f"aggr must be one of {AGGRS}, got {aggr!r}")
        super().__init__(aggr=aggr, **kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.relative = relative
        self.root_weight = root_weight
        factor = 2 if root_weight else 1
        self.lin = Linear(factor * in_channels, out_channels, bias=bias)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.lin.reset_parameters()

    def forward(self, x: Union[Tensor, PairTensor], edge_index: Adj,
                edge_weight: OptTensor = None) -> Tensor:
        if isinstance(x, Tensor):
            x = (x, x)
        if edge_weight is not None and edge_weight.dim() != 1:
            raise ValueError(f"edge_weight must have shape (E,), got {tuple(edge_weight.shape)}")
        if isinstance(edge_index, EdgeIndex):
            # PyG would aggregate over the EdgeIndex's pointer (segment reductions):
            # keep the scatter aggregation this layer has always run (same
            # operations, and it compiles with inductor)
            edge_index = edge_index.as_tensor()
        # propagate_type: (x: PairTensor, edge_weight: OptTensor)
        out = self.propagate(edge_index, x=x, edge_weight=edge_weight,
                             size=(x[0].size(0), x[1].size(0)))
        if self.root_weight:
            out = torch.cat([x[1], out], dim=-1)
        return self.lin(out)

    def message(self, x_i: Tensor, x_j: Tensor, edge_weight: OptTensor) -> Tensor:
        msg = x_j - x_i if self.relative else x_j
        if edge_weight is not None:
            msg = msg * edge_weight.to(msg.dtype).unsqueeze(-1)
        return msg

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, {self.out_channels}, '
                f'aggr={self.aggr})')
