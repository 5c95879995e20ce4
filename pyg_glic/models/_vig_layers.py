r"""Pieces of :mod:`pyg_glic.models.vig` (private): ViG's grouped graph
convolutions and the per-layer graph constructor of the ViG models.

The grouped convolutions exist because ViG's published layers mix the
concatenated ``[x_i, agg_i]`` with a 1x1 convolution of 4 groups over
channel-interleaved halves; :class:`~pyg_glic.nn.conv.MRConv` and
:class:`~pyg_glic.nn.conv.WeightedConv` use one dense linear map, which puts
ViG-Ti 1.3 M parameters (19%) above the published 7.1 M.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing

from ..graph import ImageGraph, LearnableGraph, global_graph, halo_graph, knn_graph, pool_map
from ..graph.downsample import pooled_size
from ..nn.blocks import make_conv
from ..nn.conv import MRConv, WeightedConv

#: Graph constructions of the ViG models.
GRAPHS = ("knn", "lrgc", "halo", "global", "dual")
#: Old spellings of graph kinds, accepted with a DeprecationWarning for one release.
RENAMED_GRAPHS = {"window": "halo"}  # it always built the halo graph


def graph_kind(kind: str) -> str:
    r"""``kind`` under its current name (``"window"`` is now ``"halo"``, with a
    :class:`DeprecationWarning`); unknown kinds are left for the caller to refuse."""
    if kind in RENAMED_GRAPHS:
        new = RENAMED_GRAPHS[kind]
        warnings.warn(f"graph={kind!r} is deprecated and will be removed in the next release: "
                      f"use graph={new!r} (the same graph: GLIC's local halo graph)",
                      DeprecationWarning, stacklevel=3)
        return new
    return kind
#: Graph convolutions of the ViG models (names of :func:`pyg_glic.nn.blocks.make_conv`).
CONVS = ("mr", "edge", "sage", "gin", "weighted")


class GroupedLinear(torch.nn.Module):
    r"""ViG's grouped 1x1 convolution over channel-interleaved halves, on the last axis.

    The input is the block concatenation ``[a | b]`` of two halves of ``C``
    channels each (``in_features = 2C``); it is interleaved to
    ``[a_0, b_0, a_1, b_1, ...]`` as ViG's ``torch.cat([x.unsqueeze(2),
    x_j.unsqueeze(2)], dim=2).reshape(B, 2C, N, 1)`` does, and mapped by a
    grouped linear map (``groups`` blocks, each ``in/groups -> out/groups``),
    ViG's ``Conv2d(2C, out, 1, groups=4)``.

    Args:
        in_features (int): ``2C`` (even).
        out_features (int): output size, divisible by ``groups``.
        groups (int): number of groups, divides ``in_features``. (default: 4)
        interleave (bool): interleave the two halves first. (default: True)
        bias (bool): additive bias. (default: True)
    """

    def __init__(self, in_features: int, out_features: int, groups: int = 4,
                 interleave: bool = True, bias: bool = True):
        super().__init__()
        if in_features % groups or out_features % groups:
            raise ValueError(f"groups={groups} must divide in_features={in_features} and "
                             f"out_features={out_features}")
        if interleave and in_features % 2:
            raise ValueError(f"interleave needs an even in_features, got {in_features}")
        self.in_features = in_features
        self.out_features = out_features
        self.groups = groups
        self.interleave = interleave
        self.weight = torch.nn.Parameter(torch.empty(groups, out_features // groups,
                                                     in_features // groups))
        self.bias = torch.nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        # the initialisation of the grouped Conv2d it stands for
        fan_in = self.in_features // self.groups
        bound = 1.0 / math.sqrt(fan_in)
        torch.nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        if self.interleave:
            x = x.reshape(*lead, 2, -1).transpose(-1, -2)
        x = x.reshape(*lead, self.groups, self.in_features // self.groups)
        out = torch.einsum("...gi,goi->...go", x, self.weight).reshape(*lead, -1)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, groups={self.groups}, "
                f"interleave={self.interleave}")


class GroupedMRConv(MRConv):
    r""":class:`~pyg_glic.nn.conv.MRConv` whose linear map is ViG's grouped
    1x1 convolution over interleaved ``[x_i, max_j (x_j - x_i)]``
    (:class:`GroupedLinear`)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 4,
                 bias: bool = True, **kwargs):
        super().__init__(in_channels, out_channels, bias=bias, **kwargs)
        self.groups = groups
        self.lin = GroupedLinear(2 * in_channels, out_channels, groups, bias=bias)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"groups={self.groups})")


class GroupedWeightedConv(WeightedConv):
    r""":class:`~pyg_glic.nn.conv.WeightedConv` (edge-weighted max-relative
    convolution of ViG-LRGC) with ViG's grouped linear map (:class:`GroupedLinear`)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 4,
                 bias: bool = True, **kwargs):
        super().__init__(in_channels, out_channels, bias=bias, **kwargs)
        self.groups = groups
        factor = 2 if self.root_weight else 1
        self.lin = GroupedLinear(factor * in_channels, out_channels, groups,
                                 interleave=self.root_weight, bias=bias)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"aggr={self.aggr}, groups={self.groups})")


def make_vig_conv(name: str, in_channels: int, out_channels: int, groups: int = 4,
                  **kwargs) -> MessagePassing:
    r"""The graph convolution of a ViG Grapher.

    ``"mr"`` and ``"weighted"`` with ``groups > 1`` are the grouped forms above
    (ViG's layout); everything else is :func:`pyg_glic.nn.blocks.make_conv`
    (dense linear maps: ``"edge"``, ``"sage"``, ``"gin"`` are PyG's layers).
    """
    if name not in CONVS:
        raise ValueError(f"unknown graph convolution {name!r}; expected one of {CONVS}")
    if groups > 1 and name == "mr":
        return GroupedMRConv(in_channels, out_channels, groups, **kwargs)
    if groups > 1 and name == "weighted":
        return GroupedWeightedConv(in_channels, out_channels, groups, **kwargs)
    return make_conv(name, in_channels, out_channels, **kwargs)


def knn_schedule(depth: int, k: int = 9, k_end: Optional[int] = None,
                 max_nodes: int = 196, max_dilation: Optional[int] = None
                 ) -> Tuple[List[int], List[int]]:
    r"""ViG's per-layer ``k`` and dilation.

    ``k`` grows linearly from ``k`` to ``k_end`` (isotropic ViG: 9 to 18; the
    pyramid models keep 9), truncated as ViG's ``int(torch.linspace(...))``;
    layer ``i`` has dilation ``min(i // 4 + 1, max_dilation)`` with
    ``max_dilation = max_nodes // max(k)`` (ViG: 196 nodes isotropic, 49 for the
    last pyramid stage).
    """
    k_end = k if k_end is None else k_end
    ks = [int(v.item()) for v in torch.linspace(k, k_end, depth)]
    if max_dilation is None:
        max_dilation = max(1, max_nodes // max(ks)) if ks else 1
    dil = [min(i // 4 + 1, max_dilation) for i in range(depth)]
    return ks, dil


def _dilate(graph: ImageGraph, dilation: int) -> ImageGraph:
    r"""Keep ranks ``0, d, 2d, ...`` of every target (edges ranked by similarity)."""
    if dilation == 1:
        return graph
    dst = graph.edge_index[1]
    rank = torch.arange(dst.numel(), device=dst.device) - graph.ptr[dst]
    keep = rank % dilation == 0
    deg = torch.bincount(dst[keep], minlength=graph.num_dst)
    ptr = torch.zeros_like(graph.ptr)
    ptr[1:] = deg.cumsum(0)
    return ImageGraph(edge_index=graph.edge_index[:, keep], ptr=ptr,
                      edge_attr=graph.edge_attr[keep], num_src=graph.num_src,
                      num_dst=graph.num_dst, pos_src=graph.pos_src, pos_dst=graph.pos_dst)


class ViGGraph(torch.nn.Module):
    r"""The graph of one ViG layer, built from the layer's features ``h``
    (the map after the Grapher's ``fc1``).

    ``kind``:

    - ``"knn"``: ViG's dilated k-NN, Euclidean distance of L2-normalised
      features (:func:`~pyg_glic.graph.knn_graph`); with ``reduction > 1``
      ViG's pyramid graph reduction, a bipartite k-NN against the
      ``reduction``-average-pooled map (:func:`~pyg_glic.graph.global_graph`
      with ``factor``), dilated here by rank.
    - ``"lrgc"``: ViG-LRGC's learned graph
      (:class:`~pyg_glic.graph.LearnableGraph`, all node pairs of an image, or
      pooled candidates with ``reduction > 1``); edge weights carry gradients.
    - ``"halo"``: GLIC's local graph (:func:`~pyg_glic.graph.halo_graph`,
      ``window x window`` query windows, candidates in the patch of ``halo``
      more on each side); ``"window"`` is its deprecated old name.
    - ``"global"``: GLIC's global graph (:func:`~pyg_glic.graph.global_graph`,
      a ``grid x grid`` pooled view, bipartite).

    The fixed constructions run without gradients. ``k`` and ``dilation``
    are clamped to the candidates a map has (small test images): first the
    dilation, then ``k``. The last graph's size is kept for :meth:`stats`.

    Args:
        channels (int): channels of ``h``.
        kind (str): see above.
        k (int): neighbours per node (not ``"lrgc"``).
        dilation (int): ViG's dilation (``"knn"``).
        reduction (int): ViG's graph reduction ratio (``"knn"``, ``"lrgc"``).
        pos_weight (float): relative-position term of the similarity
            (:mod:`pyg_glic.graph.similarity`), ``"knn"``/``"halo"``/``"global"``.
        window, halo (int): local graph (``"halo"``).
        grid (int): pooled grid of ``"global"``.
        similarity (str, optional): default ``"euclidean"`` (ViG) for ``"knn"``,
            ``"cosine"`` (GLIC) for ``"halo"``/``"global"``.
        backend (str, optional): k-NN backend.
        lrgc_kwargs (dict, optional): extra arguments of
            :class:`~pyg_glic.graph.LearnableGraph`.
    """

    def __init__(self, channels: int, kind: str = "knn", k: int = 9, dilation: int = 1,
                 reduction: int = 1, *, pos_weight: float = 0.0, window: int = 4,
                 halo: int = 2, grid: int = 7, similarity: Optional[str] = None,
                 backend: Optional[str] = None,
                 lrgc_kwargs: Optional[Dict[str, Any]] = None):
        super().__init__()
        kind = graph_kind(kind)
        if kind not in GRAPHS[:4]:
            raise ValueError(f"graph kind must be one of {GRAPHS[:4]}, got {kind!r}")
        self.channels = channels
        self.kind = kind
        self.k = k
        self.dilation = dilation
        self.reduction = reduction
        self.pos_weight = pos_weight
        self.window, self.halo, self.grid = window, halo, grid
        self.similarity = similarity or ("euclidean" if kind == "knn" else "cosine")
        self.backend = backend
        self.learner = None
        if kind == "lrgc":
            kw = dict(lrgc_kwargs or {})
            if reduction > 1:
                kw.update(candidates="global", factor=reduction)
            else:
                kw.setdefault("candidates", "all")
            self.learner = LearnableGraph(channels, **kw)
        self._last: Optional[Tuple[int, int, int]] = None

    @property
    def bipartite(self) -> bool:
        r"""Whether the sources are a pooled copy of the map."""
        if self.kind == "global":
            return True
        return self.kind in ("knn", "lrgc") and self.reduction > 1

    def pool(self, h: Tensor) -> Optional[Tensor]:
        r"""The pooled source map of ``h`` (with gradients), ``None`` when the
        sources are the nodes of ``h`` themselves."""
        if not self.bipartite:
            return None
        if self.kind == "global":
            return pool_map(h, grid=self.grid)
        return pool_map(h, factor=self.reduction)

    def _clamp(self, k: int, dilation: int, avail: int) -> Tuple[int, int]:
        if k * dilation > avail:
            dilation = max(1, avail // k)
        return min(k, avail), dilation

    def forward(self, h: Tensor, pooled: Optional[Tensor] = None) -> ImageGraph:
        B, C, H, W = h.shape
        if self.kind == "lrgc":
            graph = self.learner(h)
        else:
            graph = self._fixed(h.detach(), None if pooled is None else pooled.detach())
        self._last = (graph.num_edges, graph.num_dst, graph.num_src // max(B, 1))
        return graph

    @torch.compiler.disable
    @torch.no_grad()
    def _fixed(self, h: Tensor, pooled: Optional[Tensor]) -> ImageGraph:
        B, C, H, W = h.shape
        common = dict(similarity=self.similarity, backend=self.backend,
                      pos_weight=self.pos_weight)
        if self.kind == "knn" and self.reduction == 1:
            k, d = self._clamp(self.k, self.dilation, H * W)
            return knn_graph(h, k, dilation=d, **common)
        if self.kind == "knn":
            gh, gw = pooled_size(H, W, factor=self.reduction)
            k, d = self._clamp(self.k, self.dilation, gh * gw)
            g = global_graph(h, k * d, factor=self.reduction, pooled=pooled,
                             return_blocks=False, **common)
            return _dilate(g, d)
        if self.kind == "halo":
            k, _ = self._clamp(self.k, 1, min((self.window + 2 * self.halo) ** 2, H * W))
            return halo_graph(h, k, window=self.window, halo=self.halo, return_blocks=False,
                              **common)
        gh, gw = pooled_size(H, W, grid=self.grid)
        k, _ = self._clamp(self.k, 1, gh * gw)
        return global_graph(h, k, grid=self.grid, pooled=pooled, return_blocks=False, **common)

    def stats(self) -> Dict[str, Any]:
        r"""Size of the last graph built: ``mean_degree`` (edges per target),
        ``candidates`` (sources per image), ``density`` (their ratio), ``edges``,
        and for ``"lrgc"`` the current threshold :math:`\sigma(t)`."""
        out: Dict[str, Any] = {"kind": self.kind}
        if self._last is not None:
            E, n_dst, n_src = self._last
            deg = E / max(n_dst, 1)
            out.update(edges=E, mean_degree=deg, candidates=n_src,
                       density=deg / max(n_src, 1))
        if self.learner is not None:
            out["threshold"] = float(self.learner.threshold.detach())
        else:
            out.update(k=self.k, dilation=self.dilation)
        return out

    def extra_repr(self) -> str:
        s = f"kind={self.kind!r}"
        if self.kind != "lrgc":
            s += f", k={self.k}"
        if self.kind == "knn":
            s += f", dilation={self.dilation}"
        if self.bipartite and self.kind != "global":
            s += f", reduction={self.reduction}"
        return s
