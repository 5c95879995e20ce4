r"""GLIC's graph stage (GFA): alternating local and global graph-attention layers."""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ...convert import nodes_to_map
from ..conv import GLICAttention
from ..offsets import compress_offsets
from ..._deprecated import deprecated_names
from ...graph import global_graph, halo_graph, pool_map
from ._utils import DropPath, LayerNorm2d, map_nodes, unpack_graph
from .ffn import GatedFFN

SCOPES = ("local", "global")
#: Candidate layouts of the global layers (:func:`pyg_glic.graph.global_graph`).
GLOBAL_CANDIDATES = ("strided", "pooled")
#: Layer schedules of :class:`GLICStage`.
STAGE_SCOPES = ("dual", "local", "global")


class GraphAttentionBlock(torch.nn.Module):
    r"""One layer of a GLIC graph stage, from `"GLIC: Graph-based Learned Image
    Compression" <https://arxiv.org/abs/2603.25316>`_: pre-LayerNorm graph
    attention with residual, then a pre-LayerNorm gated depthwise-conv FFN with
    residual.

    .. math::
        \mathbf{X} &\leftarrow \mathbf{X} + \mathrm{DropPath}\big(
            \mathrm{GLICAttention}(\mathrm{LN}(\mathbf{X}), \mathcal{G})\big)

        \mathbf{X} &\leftarrow \mathbf{X} + \mathrm{DropPath}\big(
            \mathrm{GatedFFN}(\mathrm{LN}(\mathbf{X}))\big)

    For ``scope="local"``, and for ``scope="global"`` with
    ``global_candidates="strided"`` (GLIC's published global graph: distant
    real nodes, :func:`pyg_glic.graph.global_graph` with
    ``candidates="strided"``), sources and targets are the ``B*H*W`` nodes of
    the normalised map. For ``scope="global"`` with
    ``global_candidates="pooled"`` the targets are those nodes and the sources
    the ``B*gh*gw`` nodes of ``pool_map(LN(X), grid, factor)``, so the pooled
    view follows this layer's features; the graph must number its sources that
    way (as ``global_graph(..., candidates="pooled")`` does).

    Args:
        channels (int): width ``C``.
        heads (int, optional): attention heads. (default: :obj:`8`)
        scope (str, optional): ``"local"`` or ``"global"``. (default: :obj:`"local"`)
        grid (int, optional): pooled grid side for ``scope="global"`` with
            pooled candidates. (default: :obj:`16`)
        factor (int, optional): pooling factor instead of ``grid`` (pooled).
        ffn_expansion (float, optional): hidden width of the gated FFN per
            branch, in multiples of ``C``. (default: :obj:`4.0`)
        ffn_bias (bool, optional): biases in the FFN's convolutions (the
            published GLIC has none). (default: :obj:`True`)
        drop_path (float, optional): drop-path probability. (default: :obj:`0.0`)
        attn_kwargs (dict, optional): extra arguments of
            :class:`~pyg_glic.nn.conv.GLICAttention` (``pos_hidden``,
            ``pos_bound``, ``impl``, ...).
        global_candidates (str, optional): ``"strided"`` (attention over the
            map's own nodes) or ``"pooled"`` (over the pooled map), for
            ``scope="global"``. (default: :obj:`"strided"`)

    Shapes:
        - **input:** :math:`(B, C, H, W)` and an
          :class:`~pyg_glic.graph.base.ImageGraph`
        - **output:** :math:`(B, C, H, W)`
    """
    def __init__(self, channels: int, heads: int = 8, scope: str = "local",
                 grid: Optional[int] = 16, factor: Optional[int] = None,
                 ffn_expansion: float = 4.0, drop_path: float = 0.0,
                 attn_kwargs: Optional[Dict[str, Any]] = None,
                 global_candidates: str = "strided", ffn_bias: bool = True):
        super().__init__()
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        if global_candidates not in GLOBAL_CANDIDATES:
            raise ValueError(f"global_candidates must be one of {GLOBAL_CANDIDATES}, got "
                             f"{global_candidates!r}")
        self.channels = channels
        self.scope = scope
        self.global_candidates = global_candidates
        self.grid = None if factor is not None else grid
        self.factor = factor
        self.norm1 = torch.nn.LayerNorm(channels)
        self.attn = GLICAttention(channels, channels, heads=heads, **(attn_kwargs or {}))
        self.norm2 = LayerNorm2d(channels)
        self.ffn = GatedFFN(channels, expansion=ffn_expansion, bias=ffn_bias)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, graph, offsets: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tensor:
        r"""``offsets``: optional ``(unique, index)`` of the graph's ``edge_attr``
        (:func:`~pyg_glic.nn.offsets.compress_offsets`), shared by the layers
        of a stage so that the position MLP runs on the distinct offsets only."""
        B, C, H, W = x.shape
        edge_index, edge_attr, edge_weight = unpack_graph(graph)
        offset_index = None
        if offsets is not None and edge_attr is not None:
            edge_attr, offset_index = offsets
        h = self.norm1(x.permute(0, 2, 3, 1))          # (B, H, W, C)
        dst = h.reshape(B * H * W, C)
        num_src = getattr(graph, "num_src", None)
        if self.pooled:
            pooled = pool_map(h.permute(0, 3, 1, 2), grid=self.grid, factor=self.factor)
            src = map_nodes(pooled)
            if num_src is not None and num_src != src.size(0):
                raise ValueError(f"the global graph has {num_src} sources but the pooled map "
                                 f"has {src.size(0)} nodes; build it with the same grid/factor")
            inp = (src, dst)
        else:
            if num_src is not None and num_src != dst.size(0):
                hint = ("; a pooled global graph needs global_candidates='pooled'"
                        if self.scope == "global" else "")
                raise ValueError(f"the {self.scope} graph has {num_src} sources but the map "
                                 f"has {dst.size(0)} nodes{hint}")
            inp = dst
        # an ImageGraph's edge_index is an EdgeIndex sorted by target: the layer
        # reads its CSR pointer and transpose itself
        out = self.attn(inp, edge_index, edge_attr, edge_weight=edge_weight,
                        offset_index=offset_index, blocks=getattr(graph, "blocks", None))
        x = x + self.drop_path(nodes_to_map(out, B, H, W))
        return x + self.drop_path(self.ffn(self.norm2(x)))

    @property
    def pooled(self) -> bool:
        r"""Whether this layer attends over the pooled map (a pooled global layer)."""
        return self.scope == "global" and self.global_candidates == "pooled"

    def extra_repr(self) -> str:
        cand = ", candidates=pooled" if self.pooled else ""
        return (f"{self.channels}, heads={self.attn.heads}, "
                f"scope={self.scope}{cand}")


@torch.compiler.disable
@torch.no_grad()
def _offsets(graph) -> Optional[Tuple[Tensor, Tensor]]:
    # distinct offsets of a graph (data-dependent size: kept out of compiled graphs)
    edge_attr = unpack_graph(graph)[1]
    return None if edge_attr is None else compress_offsets(edge_attr)


def _no_autocast(device: torch.device):
    # graph construction runs in the features' precision, never under autocast
    if hasattr(torch.amp, "is_autocast_available") and \
            not torch.amp.is_autocast_available(device.type):  # pragma: no cover
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


class GLICStage(torch.nn.Module):
    r"""A graph stage of GLIC (graph feature aggregation), from `"GLIC:
    Graph-based Learned Image Compression" <https://arxiv.org/abs/2603.25316>`_,
    on a ``(B, C, H, W)`` map.

    The stage builds, once from its input and without gradients, a local graph
    (:func:`pyg_glic.graph.halo_graph`: queries in ``window x window``
    windows, candidates in the surrounding patch with ``halo``) and a global
    graph (:func:`pyg_glic.graph.global_graph`), each node keeping ``k``
    candidates on average (a fixed ``k``, or per-node degrees from the
    complexity map with ``adaptive=True``). The global graph's candidates are,
    with ``global_candidates="strided"`` (default, GLIC's published code), the
    real nodes of a ``grid x grid`` lattice spread over the map, shared by
    dilated ``group x group`` query sets (offsets in lattice steps, see
    :func:`~pyg_glic.graph.global_graph`), so a global layer attends over the
    same normalised nodes as a local one; with ``"pooled"``, the
    ``grid x grid`` average-pooled view of each layer's normalised input (a
    bipartite graph). Then ``depth`` :class:`GraphAttentionBlock` layers
    follow ``scopes``: ``"dual"`` alternates local and global graphs
    (local, global, local, ...; GLIC), ``"local"`` and ``"global"`` use one
    graph in every layer (ablations); only the graphs used are built.

    .. math::
        \mathcal{G}_{loc}, \mathcal{G}_{glob} = \mathrm{build}(\mathbf{X}^{(0)}),
        \qquad
        \mathbf{X}^{(l+1)} = \mathrm{Block}_l\big(\mathbf{X}^{(l)},
            \mathcal{G}_{loc} \text{ if } l \text{ even else } \mathcal{G}_{glob}\big)

    The graphs are built from the input's features in at least float32 and
    with autocast disabled, so mixed precision does not change them.

    Args:
        channels (int): width ``C``. (GLIC: 192)
        depth (int, optional): number of layers. (default: :obj:`5`)
        heads (int, optional): attention heads. (default: :obj:`8`)
        k (int, optional): mean degree. (default: :obj:`64`)
        window (int, optional): query window side of the local graph.
            (default: :obj:`8`)
        halo (int, optional): halo of the local candidate patch. (default: :obj:`4`)
        grid (int, optional): lattice side (strided) or pooled grid side
            (pooled) of the global graph. (default: :obj:`16`)
        factor (int, optional): pooling factor instead of ``grid`` (pooled only).
        group (int, optional): query set side of the global graph; strided
            needs ``grid % group == 0``. (default: :obj:`8`)
        adaptive (bool, optional): adaptive degrees. (default: :obj:`False`)
        k_min (int, optional): smallest adaptive degree. (default: :obj:`1`)
        k_max (int, optional): largest adaptive degree (default: all candidates).
        ffn_expansion (float, optional): gated FFN expansion (GLIC: 4 in the
            ``H/4`` stages, 2 in the ``H/8`` stages). (default: :obj:`4.0`)
        ffn_bias (bool, optional): biases in the FFNs' convolutions (GLIC: none).
            (default: :obj:`True`)
        drop_path (float or sequence, optional): drop-path probability, one
            for all layers or one per layer. (default: :obj:`0.0`)
        attn_kwargs (dict, optional): extra arguments of
            :class:`~pyg_glic.nn.conv.GLICAttention` (GLIC's published
            position bias: ``pos_hidden=512, pos_bound=16``).
        graph_kwargs (dict, optional): extra arguments of both builders
            (``similarity``, ``score``, ...).
        compress_offsets (bool, optional): run the position MLPs on the
            distinct offsets of each graph (found once per forward with
            :func:`~pyg_glic.nn.offsets.compress_offsets`) instead of on
            every edge; same values, less memory and arithmetic.
            (default: :obj:`True`)
        global_candidates (str, optional): ``"strided"`` or ``"pooled"``.
            (default: :obj:`"strided"`)
        scopes (str, optional): ``"dual"``, ``"local"`` or ``"global"``.
            (default: :obj:`"dual"`)

    Shapes:
        - **input:** :math:`(B, C, H, W)`; optionally ``graphs = (local, global)``
          (``None`` for a graph no layer uses)
        - **output:** :math:`(B, C, H, W)`
    """
    def __init__(self, channels: int, depth: int = 5, heads: int = 8, k: int = 64,
                 window: int = 8, halo: int = 4, grid: Optional[int] = 16,
                 factor: Optional[int] = None, group: int = 8, adaptive: bool = False,
                 k_min: int = 1, k_max: Optional[int] = None, ffn_expansion: float = 4.0,
                 drop_path: Union[float, Sequence[float]] = 0.0,
                 attn_kwargs: Optional[Dict[str, Any]] = None,
                 graph_kwargs: Optional[Dict[str, Any]] = None,
                 compress_offsets: bool = True, global_candidates: str = "strided",
                 scopes: str = "dual", ffn_bias: bool = True):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if isinstance(drop_path, (int, float)):
            drop_path = [float(drop_path)] * depth
        if len(drop_path) != depth:
            raise ValueError(f"need {depth} drop-path rates, got {len(drop_path)}")
        if global_candidates not in GLOBAL_CANDIDATES:
            raise ValueError(f"global_candidates must be one of {GLOBAL_CANDIDATES}, got "
                             f"{global_candidates!r}")
        if scopes not in STAGE_SCOPES:
            raise ValueError(f"scopes must be one of {STAGE_SCOPES}, got {scopes!r}")
        layer_scopes = {"dual": ["local" if i % 2 == 0 else "global" for i in range(depth)],
                        "local": ["local"] * depth, "global": ["global"] * depth}[scopes]
        if "global" in layer_scopes and global_candidates == "strided":
            if factor is not None:
                raise ValueError("global_candidates='strided' places a grid x grid lattice; "
                                 "give grid, not factor (factor is for 'pooled')")
            if not isinstance(grid, int) or isinstance(grid, bool) or grid < 1 \
                    or not isinstance(group, int) or group < 1 or grid % group:
                raise ValueError(f"global_candidates='strided' needs grid divisible by "
                                 f"group, got grid={grid!r}, group={group!r}")
        self.channels = channels
        self.depth = depth
        self.heads = heads
        self.k = k
        self.window = window
        self.halo = halo
        self.grid = None if factor is not None else grid
        self.factor = factor
        self.group = group
        self.adaptive = adaptive
        self.k_min = k_min
        self.k_max = k_max
        self.graph_kwargs = dict(graph_kwargs or {})
        self.compress_offsets = compress_offsets
        self.global_candidates = global_candidates
        self.scopes = scopes
        self.blocks = torch.nn.ModuleList([
            GraphAttentionBlock(channels, heads, layer_scopes[i], grid=self.grid, factor=factor,
                                ffn_expansion=ffn_expansion, drop_path=drop_path[i],
                                attn_kwargs=attn_kwargs, global_candidates=global_candidates,
                                ffn_bias=ffn_bias)
            for i in range(depth)
        ])

    @property
    def uses_local(self) -> bool:
        return any(b.scope == "local" for b in self.blocks)

    @property
    def uses_global(self) -> bool:
        return any(b.scope == "global" for b in self.blocks)

    @torch.compiler.disable
    @torch.no_grad()
    def build_graphs(self, x: Tensor) -> Tuple[Any, Any]:
        r"""``(local, global)`` graphs of the map ``x``, without gradients; a graph
        no layer uses is ``None`` (the global one when ``depth == 1``). Built
        from ``x`` in float32 (float64 stays) with autocast disabled, so that
        mixed precision does not change the edges. Runs eagerly under
        :func:`torch.compile` (graph construction is data-dependent index code)."""
        x = x.detach()
        if x.dtype != torch.float64:
            x = x.float()
        common = dict(adaptive=self.adaptive, k_min=self.k_min, k_max=self.k_max,
                      **self.graph_kwargs)
        local = glob = None
        with _no_autocast(x.device):
            if self.uses_local:
                local = halo_graph(x, self.k, window=self.window, halo=self.halo, **common)
            if self.uses_global:
                glob = global_graph(x, self.k, grid=self.grid, factor=self.factor,
                                    group=self.group, candidates=self.global_candidates,
                                    **common)
        return local, glob

    def forward(self, x: Tensor, graphs: Optional[Tuple[Any, Any]] = None) -> Tensor:
        if graphs is None:
            graphs = self.build_graphs(x)
        local, glob = graphs
        offsets = {"local": None, "global": None}
        if self.compress_offsets:
            offsets = {"local": _offsets(local) if self.uses_local else None,
                       "global": _offsets(glob) if self.uses_global else None}
        for blk in self.blocks:
            x = blk(x, local if blk.scope == "local" else glob, offsets[blk.scope])
        return x

    def extra_repr(self) -> str:
        extra = ""
        if self.scopes != "dual":
            extra += f", scopes={self.scopes}"
        if self.uses_global and self.global_candidates != "strided":
            extra += f", global_candidates={self.global_candidates}"
        return (f"{self.channels}, depth={self.depth}, "
                f"heads={self.heads}, k={self.k}, adaptive={self.adaptive}{extra}")


__getattr__ = deprecated_names(__name__, GraphStage=("GLICStage", GLICStage))
