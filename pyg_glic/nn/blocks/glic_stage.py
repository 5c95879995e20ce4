r"""GLIC's graph stage (GFA): alternating local and global graph-attention layers."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ...convert import nodes_to_map
from ..conv import GLICAttention
from ..functional import compress_offsets
from ._utils import (DropPath, LayerNorm2d, map_nodes, resolve_graph_fn, resolve_pool_map,
                     unpack_graph)
from .ffn import GatedFFN

SCOPES = ("local", "global")


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

    For ``scope="local"`` sources and targets are the ``B*H*W`` nodes of the
    normalised map. For ``scope="global"`` the targets are those nodes and the
    sources the ``B*gh*gw`` nodes of ``pool_map(LN(X), grid, factor)``, so the
    pooled view follows this layer's features; the graph must number its
    sources that way (as :func:`pyg_glic.graph.global_graph` does).

    Args:
        channels (int): width ``C``.
        heads (int, optional): attention heads. (default: :obj:`8`)
        scope (str, optional): ``"local"`` or ``"global"``. (default: :obj:`"local"`)
        grid (int, optional): pooled grid side for ``scope="global"``.
            (default: :obj:`16`)
        factor (int, optional): pooling factor instead of ``grid``.
        ffn_expansion (float, optional): hidden width of the gated FFN per
            branch, in multiples of ``C``. (default: :obj:`4.0`)
        drop_path (float, optional): drop-path probability. (default: :obj:`0.0`)
        attn_kwargs (dict, optional): extra arguments of
            :class:`~pyg_glic.nn.conv.GLICAttention` (``pos_hidden``, ``impl``, ...).

    Shapes:
        - **input:** :math:`(B, C, H, W)` and an
          :class:`~pyg_glic.graph.base.ImageGraph`
        - **output:** :math:`(B, C, H, W)`
    """
    def __init__(self, channels: int, heads: int = 8, scope: str = "local",
                 grid: Optional[int] = 16, factor: Optional[int] = None,
                 ffn_expansion: float = 4.0, drop_path: float = 0.0,
                 attn_kwargs: Optional[Dict[str, Any]] = None):
        super().__init__()
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        self.channels = channels
        self.scope = scope
        self.grid = None if factor is not None else grid
        self.factor = factor
        self.norm1 = torch.nn.LayerNorm(channels)
        self.attn = GLICAttention(channels, channels, heads=heads, **(attn_kwargs or {}))
        self.norm2 = LayerNorm2d(channels)
        self.ffn = GatedFFN(channels, expansion=ffn_expansion)
        self.drop_path = DropPath(drop_path)
        self._pool_map = resolve_pool_map()

    def forward(self, x: Tensor, graph, offsets: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tensor:
        r"""``offsets``: optional ``(unique, index)`` of the graph's ``edge_attr``
        (:func:`~pyg_glic.nn.functional.compress_offsets`), shared by the layers
        of a stage so that the position MLP runs on the distinct offsets only."""
        B, C, H, W = x.shape
        edge_index, edge_attr, edge_weight, ptr = unpack_graph(graph)
        offset_index = None
        if offsets is not None and edge_attr is not None:
            edge_attr, offset_index = offsets
        h = self.norm1(x.permute(0, 2, 3, 1))          # (B, H, W, C)
        dst = h.reshape(B * H * W, C)
        if self.scope == "global":
            pooled = self._pool_map(h.permute(0, 3, 1, 2), grid=self.grid, factor=self.factor)
            src = map_nodes(pooled)
            num_src = getattr(graph, "num_src", None)
            if num_src is not None and num_src != src.size(0):
                raise ValueError(f"the global graph has {num_src} sources but the pooled map "
                                 f"has {src.size(0)} nodes; build it with the same grid/factor")
            inp = (src, dst)
        else:
            inp = dst
        out = self.attn(inp, edge_index, edge_attr, edge_weight=edge_weight, ptr=ptr,
                        offset_index=offset_index, blocks=getattr(graph, "blocks", None))
        x = x + self.drop_path(nodes_to_map(out, B, H, W))
        return x + self.drop_path(self.ffn(self.norm2(x)))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, heads={self.attn.heads}, "
                f"scope={self.scope})")


@torch.compiler.disable
@torch.no_grad()
def _offsets(graph) -> Optional[Tuple[Tensor, Tensor]]:
    # distinct offsets of a graph (data-dependent size: kept out of compiled graphs)
    edge_attr = unpack_graph(graph)[1]
    return None if edge_attr is None else compress_offsets(edge_attr)


class GraphStage(torch.nn.Module):
    r"""A graph stage of GLIC (graph feature aggregation), from `"GLIC:
    Graph-based Learned Image Compression" <https://arxiv.org/abs/2603.25316>`_,
    on a ``(B, C, H, W)`` map.

    The stage builds a local graph (:func:`pyg_glic.graph.halo_graph`: queries
    in ``window x window`` windows, candidates in the surrounding patch with
    ``halo``) and a global graph (:func:`pyg_glic.graph.global_graph`: pooled
    ``grid x grid`` sources, full-resolution targets) once from its input,
    without gradients, each node keeping ``k`` candidates on average (a fixed
    ``k``, or per-node degrees from the complexity map with
    ``adaptive=True``). Then ``depth`` :class:`GraphAttentionBlock` layers
    alternate local and global graphs (local, global, local, ...):

    .. math::
        \mathcal{G}_{loc}, \mathcal{G}_{glob} = \mathrm{build}(\mathbf{X}^{(0)}),
        \qquad
        \mathbf{X}^{(l+1)} = \mathrm{Block}_l\big(\mathbf{X}^{(l)},
            \mathcal{G}_{loc} \text{ if } l \text{ even else } \mathcal{G}_{glob}\big)

    Args:
        channels (int): width ``C``. (GLIC: 192)
        depth (int, optional): number of layers. (default: :obj:`5`)
        heads (int, optional): attention heads. (default: :obj:`8`)
        k (int, optional): mean degree. (default: :obj:`64`)
        window (int, optional): query window side of the local graph.
            (default: :obj:`8`)
        halo (int, optional): halo of the local candidate patch. (default: :obj:`4`)
        grid (int, optional): side of the pooled grid of the global graph.
            (default: :obj:`16`)
        factor (int, optional): pooling factor instead of ``grid``.
        group (int, optional): query group side of the global graph.
            (default: :obj:`8`)
        adaptive (bool, optional): adaptive degrees. (default: :obj:`False`)
        k_min (int, optional): smallest adaptive degree. (default: :obj:`1`)
        k_max (int, optional): largest adaptive degree (default: all candidates).
        ffn_expansion (float, optional): gated FFN expansion. (default: :obj:`4.0`)
        drop_path (float or sequence, optional): drop-path probability, one
            for all layers or one per layer. (default: :obj:`0.0`)
        attn_kwargs (dict, optional): extra arguments of
            :class:`~pyg_glic.nn.conv.GLICAttention`.
        graph_kwargs (dict, optional): extra arguments of both builders
            (``similarity``, ``score``, ...).
        compress_offsets (bool, optional): run the position MLPs on the
            distinct offsets of each graph (found once per forward with
            :func:`~pyg_glic.nn.functional.compress_offsets`) instead of on
            every edge; same values, less memory and arithmetic.
            (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(B, C, H, W)`; optionally ``graphs = (local, global)``
        - **output:** :math:`(B, C, H, W)`
    """
    def __init__(self, channels: int, depth: int = 5, heads: int = 8, k: int = 64,
                 window: int = 8, halo: int = 4, grid: Optional[int] = 16,
                 factor: Optional[int] = None, group: int = 8, adaptive: bool = False,
                 k_min: int = 1, k_max: Optional[int] = None, ffn_expansion: float = 4.0,
                 drop_path: Union[float, Sequence[float]] = 0.0,
                 attn_kwargs: Optional[Dict[str, Any]] = None,
                 graph_kwargs: Optional[Dict[str, Any]] = None,
                 compress_offsets: bool = True):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if isinstance(drop_path, (int, float)):
            drop_path = [float(drop_path)] * depth
        if len(drop_path) != depth:
            raise ValueError(f"need {depth} drop-path rates, got {len(drop_path)}")
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
        self.blocks = torch.nn.ModuleList([
            GraphAttentionBlock(channels, heads, "local" if i % 2 == 0 else "global",
                                grid=self.grid, factor=factor, ffn_expansion=ffn_expansion,
                                drop_path=drop_path[i], attn_kwargs=attn_kwargs)
            for i in range(depth)
        ])

    @torch.compiler.disable
    @torch.no_grad()
    def build_graphs(self, x: Tensor) -> Tuple[Any, Any]:
        r"""``(local, global)`` graphs of the map ``x``, without gradients; the
        global one is ``None`` when ``depth == 1``. Runs eagerly under
        :func:`torch.compile` (graph construction is data-dependent index code)."""
        halo_graph = resolve_graph_fn("halo_graph")
        global_graph = resolve_graph_fn("global_graph")
        if halo_graph is None or global_graph is None:
            raise ImportError("GraphStage builds its graphs with pyg_glic.graph.halo_graph "
                              "and global_graph, which are not available; pass graphs=")
        x = x.detach()
        common = dict(adaptive=self.adaptive, k_min=self.k_min, k_max=self.k_max,
                      **self.graph_kwargs)
        local = halo_graph(x, self.k, window=self.window, halo=self.halo, **common)
        glob = None
        if self.depth > 1:
            glob = global_graph(x, self.k, grid=self.grid, factor=self.factor,
                                group=self.group, **common)
        return local, glob

    def forward(self, x: Tensor, graphs: Optional[Tuple[Any, Any]] = None) -> Tensor:
        if graphs is None:
            graphs = self.build_graphs(x)
        local, glob = graphs
        offsets = {"local": None, "global": None}
        if self.compress_offsets:
            offsets = {"local": _offsets(local),
                       "global": _offsets(glob) if self.depth > 1 else None}
        for blk in self.blocks:
            x = blk(x, local if blk.scope == "local" else glob, offsets[blk.scope])
        return x

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, depth={self.depth}, "
                f"heads={self.heads}, k={self.k}, adaptive={self.adaptive})")


#: Alias: GLIC's name for the stage.
GLICStage = GraphStage
