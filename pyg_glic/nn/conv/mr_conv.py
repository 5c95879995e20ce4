from __future__ import annotations

from typing import Union

import torch
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj, OptTensor, PairTensor

from ..segment import csr_max


class MRConv(MessagePassing):
    r"""The max-relative graph convolution of ViG, from the `"Vision GNN: An
    Image is Worth Graph of Nodes" <https://arxiv.org/abs/2206.00272>`_ paper
    (itself from `"DeepGCNs: Can GCNs Go as Deep as CNNs?"
    <https://arxiv.org/abs/1904.03751>`_).

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W} \left[ \mathbf{x}_i \,\Big\|\,
        \max_{j \in \mathcal{N}(i)} \left( \mathbf{x}_j - \mathbf{x}_i \right)
        \right] + \mathbf{b}

    with the maximum taken per channel. A node without incoming edges gets
    :math:`\max_{\emptyset} = \mathbf{0}`, so
    :math:`\mathbf{x}^{\prime}_i = \mathbf{W}[\mathbf{x}_i \,\|\, \mathbf{0}] + \mathbf{b}`.

    ViG's code concatenates the two halves channel-interleaved and uses a grouped
    1x1 convolution (4 groups) followed by BatchNorm and GELU; here the halves are
    concatenated in blocks and mixed by one dense linear map, and normalisation and
    activation are left to the caller (:class:`~pyg_glic.nn.blocks.Grapher`).

    Args:
        in_channels (int): Size of each input sample, or ``-1`` for lazy
            initialisation.
        out_channels (int): Size of each output sample.
        bias (bool, optional): If set to :obj:`False`, the layer will not learn
            an additive bias. (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing` (``aggr`` defaults
            to ``"max"``).

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})` or
          :math:`((|\mathcal{V}_s|, F_{in}), (|\mathcal{V}_t|, F_{in}))`
          if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)`
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})` or
          :math:`(|\mathcal{V}_t|, F_{out})` if bipartite
    """
    def __init__(self, in_channels: int, out_channels: int, bias: bool = True,
                 **kwargs):
        kwargs.setdefault('aggr', 'max')
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.lin = Linear(2 * in_channels if in_channels > 0 else -1, out_channels,
                          bias=bias)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.lin.reset_parameters()

    def forward(self, x: Union[Tensor, PairTensor], edge_index: Adj,
                ptr: OptTensor = None) -> Tensor:
        r"""
        Args:
            x (Tensor or (Tensor, Tensor)): node features, or ``(x_src, x_dst)``.
            edge_index (LongTensor): ``(2, E)``, row 0 source, row 1 target.
            ptr (LongTensor, optional): the targets' CSR pointer when
                ``edge_index`` is sorted by target (as the graph builders
                return it): then :math:`\max_j (\mathbf{x}_j - \mathbf{x}_i)
                = \max_j \mathbf{x}_j - \mathbf{x}_i` is computed by
                :func:`~pyg_glic.nn.segment.csr_max`, which keeps no
                per-edge tensor for backward (eager mode; under
                :func:`torch.compile` the message-passing form runs).
        """
        if isinstance(x, Tensor):
            x = (x, x)
        if ptr is not None and isinstance(edge_index, Tensor) \
                and not torch.compiler.is_compiling():
            if ptr.numel() != x[1].size(0) + 1:
                raise ValueError(f"ptr must have one entry per target plus one "
                                 f"({x[1].size(0) + 1}), got {ptr.numel()}")
            has_edges = (ptr[1:] > ptr[:-1]).unsqueeze(-1).to(x[1].dtype)
            out = csr_max(x[0], ptr, edge_index[0]) - x[1] * has_edges
        else:
            # propagate_type: (x: PairTensor)
            out = self.propagate(edge_index, x=x, size=(x[0].size(0), x[1].size(0)))
        return self.lin(torch.cat([x[1], out], dim=-1))

    def message(self, x_i: Tensor, x_j: Tensor) -> Tensor:
        return x_j - x_i
