from __future__ import annotations

from typing import Union

import torch
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj, OptTensor, PairTensor

from ..edge_index import check_deprecated_ptr, is_edge_list, target_sorted
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

    The graph: an ``edge_index`` that is a :class:`torch_geometric.EdgeIndex`
    sorted by target (what pyg_glic's builders return as
    ``ImageGraph.edge_index``) makes :meth:`propagate` call
    :meth:`message_and_aggregate`, which computes
    :math:`\max_j (\mathbf{x}_j - \mathbf{x}_i) = \max_j \mathbf{x}_j -
    \mathbf{x}_i` by :func:`~pyg_glic.nn.segment.csr_max` over the EdgeIndex's
    CSR pointer (no per-edge tensor kept for backward). A plain ``(2, E)``
    tensor is converted for that path on every call
    (:func:`pyg_glic.nn.edge_index.target_sorted`: an ``O(E)`` check, and a
    stable sort by target, ``O(E log E)``, when the edges are not sorted by
    target); the result is in the caller's node order (nothing per edge goes in
    or out). Torch sparse adjacencies ``adj_t`` (CSR or COO, targets as rows)
    take the same path. Under :func:`torch.compile` the message-passing form
    runs on the edges as given.

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
    #: :meth:`propagate` calls :meth:`message_and_aggregate` for an EdgeIndex
    #: sorted by target (PyG's switch for fused message passing on EdgeIndex).
    SUPPORTS_FUSED_EDGE_INDEX = True

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True,
                 **kwargs):
        kwargs.setdefault('aggr', 'max')
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.lin = Linear(2 * in_channels if in_channels > 0 else -1, out_channels,
                          bias=bias)
        # message_and_aggregate is the max aggregation: fused only for aggr="max"
        self.fuse = self.fuse and self.aggr == "max"
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.lin.reset_parameters()

    def forward(self, x: Union[Tensor, PairTensor], edge_index: Adj,
                ptr: OptTensor = None) -> Tensor:
        r"""
        Args:
            x (Tensor or (Tensor, Tensor)): node features, or ``(x_src, x_dst)``.
            edge_index (EdgeIndex or LongTensor): ``(2, E)``, row 0 source, row 1
                target; best a :class:`torch_geometric.EdgeIndex` sorted by
                target (a plain tensor is sorted for the CSR path, see the
                class docs).
            ptr (LongTensor, optional): **deprecated** (to be removed in the
                next release): emits a :class:`DeprecationWarning`, is checked
                against the CSR pointer the layer derives from ``edge_index``
                (``ValueError`` if it differs) and is otherwise ignored in
                favour of it (under :func:`torch.compile`: ignored unchecked).
        """
        if isinstance(x, Tensor):
            x = (x, x)
        size = (x[0].size(0), x[1].size(0))
        if not torch.compiler.is_compiling() and is_edge_list(edge_index) and (
                self.fuse or ptr is not None):
            edge_index, _ = target_sorted(edge_index, size[0], size[1])  # no per-edge input
            if ptr is not None:
                check_deprecated_ptr(type(self).__name__, ptr, edge_index.get_indptr())
        if isinstance(edge_index, EdgeIndex) and (not self.fuse
                                                  or torch.compiler.is_compiling()):
            edge_index = edge_index.as_tensor()  # the message-passing form on the edges
        # propagate_type: (x: PairTensor)
        out = self.propagate(edge_index, x=x, size=size)
        return self.lin(torch.cat([x[1], out], dim=-1))

    def message(self, x_i: Tensor, x_j: Tensor) -> Tensor:
        return x_j - x_i

    def message_and_aggregate(self, edge_index: Adj, x: PairTensor) -> Tensor:
        r""":math:`\max_j \mathbf{x}_j - \mathbf{x}_i` over each target's sources
        by :func:`~pyg_glic.nn.segment.csr_max` (as
        :class:`torch_geometric.nn.conv.GraphConv` does it for sparse inputs),
        from a target-sorted :class:`torch_geometric.EdgeIndex`'s cached CSR
        pointer, or from a torch sparse ``adj_t`` (targets as rows)."""
        if isinstance(edge_index, EdgeIndex):
            if not edge_index.is_sorted_by_col:
                raise TypeError("MRConv.message_and_aggregate expects an EdgeIndex sorted "
                                "by target (sort_order='col')")
            ptr, src = edge_index.get_indptr(), edge_index.as_tensor()[0]
        elif isinstance(edge_index, Tensor) and edge_index.layout in (torch.sparse_csr,
                                                                      torch.sparse_coo):
            adj = edge_index if edge_index.layout == torch.sparse_csr else \
                edge_index.coalesce().to_sparse_csr()
            ptr, src = adj.crow_indices().long(), adj.col_indices().long()
        elif hasattr(edge_index, "csr"):  # torch_sparse.SparseTensor adj_t
            ptr, src, _ = edge_index.csr()
        else:
            raise TypeError(f"MRConv.message_and_aggregate got {type(edge_index).__name__}")
        has_edges = (ptr[1:] > ptr[:-1]).unsqueeze(-1).to(x[1].dtype)
        return csr_max(x[0], ptr, src) - x[1] * has_edges
