from __future__ import annotations

import functools
import math
from typing import Any, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj, OptTensor, PairTensor

from ..._deprecated import deprecated_names
from ..attention import backend as _backend
from ..attention.dispatch import attend, select_execution, uses_pointer
from ..attention.gather import attention_message
from ..edge_index import check_deprecated_ptr, is_edge_list, target_sorted, target_transpose
from ..offsets import log_spaced

IMPLS = ("gather", "propagate")


class GLICAttention(MessagePassing):
    r"""The cosine graph attention of GLIC's graph stages, from `"GLIC:
    Graph-based Learned Image Compression" <https://arxiv.org/abs/2603.25316>`_:
    multi-head attention of every node over its (variable-size) neighbourhood,
    with cosine logits, a learnable per-head temperature and a relative-position
    bias.

    .. math::
        \alpha_{ji,h} &= \operatorname{softmax}_{j \in \mathcal{N}(i)} \Big(
            \tau_h \cos\big(\mathbf{W}^Q_h \mathbf{x}_i, \mathbf{W}^K_h \mathbf{x}_j\big)
            + b_h(\boldsymbol{\delta}_{ji}) \Big)

        b_h(\boldsymbol{\delta}) &= \mathrm{MLP}_h\big(\mathrm{sign}(\boldsymbol{\delta})
            \log(1 + |\boldsymbol{\delta}|)\big)

        \mathbf{x}^{\prime}_i &= \mathbf{W}^O \Big\Vert_{h=1}^{H}
            \sum_{j \in \mathcal{N}(i)} \alpha_{ji,h} \mathbf{W}^V_h \mathbf{x}_j
            + \mathbf{b}^O

    where :math:`\boldsymbol{\delta}_{ji}` (``edge_attr``) is the position of
    the source minus the position of the target, the MLP is
    :math:`2 \rightarrow` ``pos_hidden`` :math:`\rightarrow H` with ReLU
    (with ``pos_bound`` :math:`\beta` the bias is bounded,
    :math:`b_h = \beta\,\sigma(\mathrm{MLP}_h(\cdot)) \in (0, \beta)`; GLIC's
    published model: ``pos_hidden=512``, ``pos_bound=16``), and
    :math:`\tau_h = \exp(\min(s_h, \log \tau_{\max}))` with :math:`s_h`
    learnable, initialised to :math:`\log \tau_0`. The query comes from the
    target, key and value from the source, so a bipartite input
    ``x = (x_src, x_dst)`` (the pooled global graph: pooled sources,
    full-resolution targets) works like PyG's ``PairTensor``.

    A node without incoming edges gets the zero vector before the output
    projection, i.e. :math:`\mathbf{x}^{\prime}_i = \mathbf{b}^O`; an empty
    graph gives :math:`\mathbf{b}^O` everywhere.

    The aggregation core (scores, softmax over each target's incoming edges,
    weighted sum of values) is :meth:`attend`; it calls the dispatcher
    :func:`pyg_glic.nn.attention.attend`, whose executors keep no per-edge
    ``E x C`` tensor for the backward pass (:mod:`pyg_glic.nn.attention`).
    ``impl="propagate"`` runs the same computation through PyG's
    :meth:`propagate` / :meth:`message` instead (more memory, same values); both
    are checked against :func:`pyg_glic.nn.dense.dense_glic_attention`.

    The graph: pass ``edge_index`` as a :class:`torch_geometric.EdgeIndex`
    sorted by target (``sort_order="col"``; what pyg_glic's builders return as
    ``ImageGraph.edge_index``): :meth:`propagate` then calls
    :meth:`message_and_aggregate`, which reads the CSR pointer and the cached
    transpose from it and runs the fast executors (CPU CSR, fused Triton, or
    blocked-dense; :mod:`pyg_glic.nn.attention.dispatch`). A plain ``(2, E)``
    tensor gets the same fast path: the layer converts it once per call
    (:func:`pyg_glic.nn.edge_index.target_sorted`: an ``O(E)`` check, and if the
    edges are not sorted by target a stable sort, ``O(E log E)``, plus a
    permutation of ``edge_attr``/``offset_index`` and ``edge_weight``). The
    result is in the caller's node order and gradients of per-edge inputs come
    back in the caller's edge order (the edges are reordered only internally);
    the layer returns no per-edge output. It converts only where a fast
    executor can run (CPU float32/float64, or CUDA with Triton; not under
    :func:`torch.compile`, where the gather executor runs on the edges as given;
    not for ``impl="propagate"``). To pay the conversion once for a graph you
    reuse, pass ``target_sorted(edge_index, num_src, num_dst)[0]``.

    Args:
        in_channels (int or tuple): Size of each input sample, or a tuple
            ``(source, target)`` of sizes for bipartite graphs.
        out_channels (int): Size of each output sample; also the width of the
            queries, keys and values (``heads * head_dim``).
        heads (int, optional): Number of attention heads; must divide
            ``out_channels``. (default: :obj:`8`)
        pos_hidden (int, optional): Hidden width of the relative-position MLP;
            ``0`` disables the position bias. (default: :obj:`64`)
        pos_bound (float, optional): If set, the position bias is
            ``pos_bound * sigmoid(MLP(...))`` (GLIC's published code: ``16``);
            ``None``: the unbounded MLP output. (default: :obj:`None`)
        init_scale (float, optional): Initial logit scale :math:`\tau_0`.
            (default: :obj:`10.0`)
        max_scale (float, optional): Cap :math:`\tau_{\max}` of the logit
            scale. (default: :obj:`100.0`)
        bias (bool, optional): Learn additive biases in the projections.
            (default: :obj:`True`)
        impl (str, optional): ``"gather"`` (the memory-lean executors) or
            ``"propagate"`` (PyG message passing) for sparse execution.
            (default: :obj:`"gather"`)
        execution (str, optional): ``"sparse"``, ``"dense"`` (blocked-dense
            over the graph's candidate blocks, passed as ``blocks=`` to
            :meth:`forward`) or ``"auto"`` (:mod:`pyg_glic.nn.attention.dispatch`
            picks per call from the graph's density, size, device and whether
            autograd is on); the result is the same either way. Without
            ``blocks`` the layer runs sparse; the context manager
            :func:`pyg_glic.nn.attention.backend.execution` overrides this
            setting.
            (default: :obj:`"auto"`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})` or
          :math:`((|\mathcal{V}_s|, F_{s}), (|\mathcal{V}_t|, F_{t}))`
          if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)`,
          relative offsets :math:`(|\mathcal{E}|, 2)` *(optional)*
          (or :math:`(U, 2)` distinct offsets with ``offset_index``
          :math:`(|\mathcal{E}|)`),
          edge weights :math:`(|\mathcal{E}|)` *(optional)*,
          CSR pointer :math:`(|\mathcal{V}_t| + 1)` *(optional, deprecated)*
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})` or
          :math:`(|\mathcal{V}_t|, F_{out})` if bipartite
    """
    #: :meth:`propagate` calls :meth:`message_and_aggregate` for an EdgeIndex
    #: sorted by target (PyG's switch for fused message passing on EdgeIndex).
    SUPPORTS_FUSED_EDGE_INDEX = True

    def __init__(self, in_channels: Union[int, Tuple[int, int]], out_channels: int,
                 heads: int = 8, pos_hidden: int = 64, init_scale: float = 10.0,
                 max_scale: float = 100.0, bias: bool = True, impl: str = "gather",
                 execution: str = "auto", pos_bound: Optional[float] = None, **kwargs):
        super().__init__(aggr='add', node_dim=0, **kwargs)
        if out_channels % heads != 0:
            raise ValueError(f"heads ({heads}) must divide out_channels ({out_channels})")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if execution not in _backend.EXECUTIONS:
            raise ValueError(f"execution must be one of {_backend.EXECUTIONS}, "
                             f"got {execution!r}")
        if not 0 < init_scale <= max_scale:
            raise ValueError(f"need 0 < init_scale <= max_scale, got {init_scale}, {max_scale}")
        if pos_bound is not None and not (isinstance(pos_bound, (int, float))
                                          and not isinstance(pos_bound, bool)
                                          and math.isfinite(pos_bound) and pos_bound > 0):
            raise ValueError(f"pos_bound must be a positive number or None, got {pos_bound!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.head_dim = out_channels // heads
        self.pos_hidden = pos_hidden
        self.pos_bound = None if pos_bound is None else float(pos_bound)
        self.init_scale = init_scale
        self.max_scale = max_scale
        self.impl = impl
        self.execution = execution

        if isinstance(in_channels, int):
            in_channels = (in_channels, in_channels)
        self.lin_q = Linear(in_channels[1], out_channels, bias=bias)
        self.lin_k = Linear(in_channels[0], out_channels, bias=bias)
        self.lin_v = Linear(in_channels[0], out_channels, bias=bias)
        self.lin_out = Linear(out_channels, out_channels, bias=bias)
        self.logit_scale = torch.nn.Parameter(torch.empty(heads))
        if pos_hidden > 0:
            # The last layer has no bias: a per-head constant cancels in the softmax
            # (with pos_bound it would shift the sigmoid; the published MLP has none either).
            self.pos_mlp = torch.nn.Sequential(
                torch.nn.Linear(2, pos_hidden), torch.nn.ReLU(inplace=True),
                torch.nn.Linear(pos_hidden, heads, bias=False))
        else:
            self.pos_mlp = None
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for lin in (self.lin_q, self.lin_k, self.lin_v, self.lin_out):
            lin.reset_parameters()
        with torch.no_grad():
            self.logit_scale.fill_(math.log(self.init_scale))
        if self.pos_mlp is not None:
            for m in self.pos_mlp:
                if isinstance(m, torch.nn.Linear):
                    m.reset_parameters()

    # -- pieces shared with the dense reference ---------------------------------
    def scale(self) -> Tensor:
        r"""The per-head logit scale :math:`\tau_h`, ``(H,)``."""
        return torch.clamp(self.logit_scale, max=math.log(self.max_scale)).exp()

    def project(self, x: Union[Tensor, PairTensor]) -> Tuple[Tensor, Tensor, Tensor]:
        r"""Queries (unit norm, times :math:`\tau_h`), keys (unit norm) and values,
        each ``(N, H, head_dim)``."""
        if isinstance(x, Tensor):
            x = (x, x)
        H, D = self.heads, self.head_dim
        q = self.lin_q(x[1]).view(-1, H, D)
        k = self.lin_k(x[0]).view(-1, H, D)
        v = self.lin_v(x[0]).view(-1, H, D)
        q = F.normalize(q, dim=-1) * self.scale().to(q.dtype).view(1, H, 1)
        k = F.normalize(k, dim=-1)
        return q, k, v

    def position_bias(self, offset: Tensor) -> Optional[Tensor]:
        r"""Relative-position bias ``(..., H)`` of offsets ``(..., 2)`` (source minus target):
        the MLP's output, or ``pos_bound * sigmoid`` of it."""
        if self.pos_mlp is None:
            return None
        w = self.pos_mlp[0].weight
        bias = self.pos_mlp(log_spaced(offset.to(w.dtype)))
        if self.pos_bound is not None:
            bias = torch.sigmoid(bias) * self.pos_bound
        return bias

    # -- forward ------------------------------------------------------------------
    def forward(self, x: Union[Tensor, PairTensor], edge_index: Adj,
                edge_attr: OptTensor = None, edge_weight: OptTensor = None,
                ptr: OptTensor = None, offset_index: OptTensor = None,
                blocks=None) -> Tensor:
        r"""
        Args:
            x (Tensor or (Tensor, Tensor)): node features, or ``(x_src, x_dst)``.
            edge_index (EdgeIndex or LongTensor): ``(2, E)``, row 0 source, row 1
                target; best a :class:`torch_geometric.EdgeIndex` sorted by
                target (``ImageGraph.edge_index``); a plain tensor, in any
                edge order, is sorted for the fast path (see the class docs:
                ``O(E log E)`` when not already sorted by target).
            edge_attr (Tensor, optional): ``(E, 2)`` offsets ``(dy, dx)``
                (source minus target); ``None``: no position bias.
            edge_weight (Tensor, optional): ``(E,)`` multiplies the attention
                weights after the softmax.
            ptr (LongTensor, optional): **deprecated** (to be removed in the
                next release): emits a :class:`DeprecationWarning`, is checked
                against the CSR pointer the layer derives from ``edge_index``
                (``ValueError`` if it differs) and is otherwise ignored in
                favour of it (under :func:`torch.compile`: ignored unchecked).
            offset_index (LongTensor, optional): ``(E,)``; if given,
                ``edge_attr`` holds ``U`` distinct offsets ``(U, 2)`` and edge
                ``e`` has offset ``edge_attr[offset_index[e]]`` (see
                :func:`pyg_glic.nn.offsets.compress_offsets`): the position
                MLP then runs on ``U`` rows instead of ``E``.
            blocks (CandidateBlocks, optional): the graph's candidate
                structure (``ImageGraph.blocks``); enables blocked-dense
                execution (see ``execution``).
        """
        if isinstance(x, Tensor):
            x = (x, x)
        if not isinstance(edge_index, Tensor):
            raise TypeError("GLICAttention expects edge_index as a (2, E) LongTensor")
        num_dst = x[1].size(0)
        q, k, v = self.project(x)
        graph = perm = None
        if not torch.compiler.is_compiling() and is_edge_list(edge_index) and (
                ptr is not None or (self.impl == "gather" and (
                    isinstance(edge_index, EdgeIndex) or uses_pointer(q)))):
            graph, perm = target_sorted(edge_index, k.size(0), num_dst)
            if ptr is not None:
                check_deprecated_ptr(type(self).__name__, ptr, graph.get_indptr())
        if self.impl != "gather":
            graph = perm = None  # PyG's message passing on the edges as given
        if perm is not None:  # per-edge inputs follow the edges into target order
            if offset_index is not None:
                offset_index = offset_index.index_select(0, perm)
            elif edge_attr is not None and edge_attr.size(0) == perm.numel():
                edge_attr = edge_attr.index_select(0, perm)
            if edge_weight is not None:
                edge_weight = edge_weight.reshape(-1).index_select(0, perm)
        bias = None
        if edge_attr is not None:
            if edge_attr.dim() != 2 or edge_attr.size(1) != 2:
                raise ValueError(f"edge_attr must hold (dy, dx) offsets of shape (E, 2), "
                                 f"got {tuple(edge_attr.shape)}")
            bias = self.position_bias(edge_attr)
            if bias is not None and offset_index is not None:
                # an (E, H) view of head-major (H, E) storage: the aggregation cores
                # add it to their head-major scores without a strided pass
                bias = bias.t().index_select(1, offset_index).t()
        if graph is not None:
            out = self.propagate(graph, q=q, k=k, v=v, bias=bias, edge_weight=edge_weight,
                                 blocks=blocks, size=(k.size(0), num_dst))
        else:
            if isinstance(edge_index, EdgeIndex):
                edge_index = edge_index.as_tensor()
            out = self.attend(q, k, v, bias, edge_index, None, num_dst, edge_weight, blocks)
        return self.lin_out(out.reshape(num_dst, self.out_channels))

    def message_and_aggregate(self, edge_index: Adj, q: Tensor, k: Tensor, v: Tensor,
                              bias: OptTensor, edge_weight: OptTensor,
                              blocks=None) -> Tensor:
        r"""The fused aggregation on a target-sorted
        :class:`torch_geometric.EdgeIndex` (as
        :class:`torch_geometric.nn.conv.GraphConv` does it for sparse inputs):
        the CSR pointer and the transpose come from the EdgeIndex's cache, and
        :meth:`attend` dispatches to the executors."""
        if not isinstance(edge_index, EdgeIndex) or not edge_index.is_sorted_by_col:
            raise TypeError("GLICAttention.message_and_aggregate expects an EdgeIndex "
                            "sorted by target (sort_order='col')")
        # attend() reads the pointer and the transpose from the EdgeIndex
        return self.attend(q, k, v, bias, edge_index, None, q.size(0), edge_weight, blocks)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, bias: OptTensor,
               edge_index: Tensor, ptr: OptTensor, num_dst: int,
               edge_weight: OptTensor = None, blocks=None, *, csc=None) -> Tensor:
        r"""The aggregation core: ``(N_dst, H, D)`` from projected ``q, k, v``.

        The contract is :mod:`pyg_glic.nn.attention.contract`; the dispatcher
        :func:`pyg_glic.nn.attention.attend` picks the executor (with ``blocks``
        it may run blocked-dense, :meth:`select_execution`); with
        ``impl="propagate"`` the sparse case runs through PyG's
        :meth:`propagate`. ``ptr`` is the CSR pointer of the targets when
        ``edge_index`` is sorted by target (``None``: the pointer executors do
        not run); an :class:`~torch_geometric.EdgeIndex` sorted by target gives
        its own when ``ptr`` is ``None``. ``csc``: the transpose for the
        backward pass (:func:`pyg_glic.nn.attention.sparse_attention`).
        """
        if isinstance(edge_index, EdgeIndex):
            if ptr is None and edge_index.is_sorted_by_col and (
                    edge_index.sparse_size(1) == num_dst):
                ptr = edge_index.get_indptr()
                if csc is None:
                    csc = functools.partial(target_transpose, edge_index)
            edge_index = edge_index.as_tensor()
        sparse = None if self.impl == "gather" else self._propagate_attention
        return attend(q, k, v, bias, edge_index, ptr, num_dst, edge_weight, blocks,
                      self.execution, sparse=sparse, csc=csc)

    def _propagate_attention(self, q: Tensor, k: Tensor, v: Tensor, bias: OptTensor,
                             edge_index: Tensor, ptr: OptTensor, num_dst: int,
                             edge_weight: OptTensor = None) -> Tensor:
        # propagate_type: (q: Tensor, k: Tensor, v: Tensor, bias: OptTensor,
        #                  edge_weight: OptTensor, blocks: Any)
        return self.propagate(edge_index, q=q, k=k, v=v, bias=bias,
                              edge_weight=edge_weight, blocks=None,
                              size=(k.size(0), num_dst))

    def select_execution(self, edge_index: Tensor, blocks, device) -> str:
        r"""``"dense"`` or ``"sparse"`` for a call with these edges and blocks
        (:func:`pyg_glic.nn.attention.select_execution` with this layer's
        ``execution``)."""
        return select_execution(self.execution, edge_index, blocks, device)

    def message(self, q_i: Tensor, k_j: Tensor, v_j: Tensor, bias: OptTensor,
                edge_weight: OptTensor, index: Tensor, ptr: OptTensor,
                size_i: Optional[int]) -> Tensor:
        # the contract's rule on PyG's per-edge tensors (pyg_glic.nn.attention.gather);
        # PyG's softmax gets PyG's ``ptr`` (set for a target-sorted EdgeIndex; the
        # layer itself passes plain edges here, so it is None and the scatter
        # softmax runs as before)
        return attention_message(q_i, k_j, v_j, bias, edge_weight, index, size_i, ptr)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, heads={self.heads})')


__getattr__ = deprecated_names(__name__, GraphAttention=("GLICAttention", GLICAttention))
