r"""Vision GNN (ViG): isotropic and pyramid models, with a choice of graph.

From `"Vision GNN: An Image is Worth Graph of Nodes"
<https://arxiv.org/abs/2206.00272>`_ (Han et al., NeurIPS 2022), with the
learned graph of `"Learnable Reparameterized Graph Construction for Vision
GNNs" <https://arxiv.org/abs/2509.18840>`_ (ViG-LRGC) and GLIC's dual-scale
graphs as options. The file reads top-down, as a timm model file: blocks, the
models, the configuration table, the registry and factory functions.

Isotropic ViG (``vig_ti``, ``vig_s``, ``vig_b``)::

    image (B, 3, 224, 224)
      -> Stem: 4 x [conv3x3 s2, BN, GELU] (C/8, C/4, C/2, C), conv3x3 C, BN   (B, C, 14, 14)
      -> + learned positional embedding
      -> depth x [ Grapher: fc1 (1x1+BN) -> graph conv C->2C (BN, GELU) -> fc2 (1x1+BN), +x
                   FFN:     1x1 C->4C + BN -> GELU -> 1x1 4C->C + BN,              +x ]
      -> average pool -> 1x1 conv 1024, BN, GELU, dropout, 1x1 conv -> classes

Pyramid ViG (``pvig_ti``, ``pvig_s``)::

    image -> Stem: 2 x [conv3x3 s2, BN, GELU] (C0/2, C0), conv3x3 C0, BN    (B, C0, H/4, W/4)
          -> + positional embedding
          -> stage 1 [Grapher(reduction 4) + FFN] x d1
          -> conv3x3 s2 + BN -> stage 2 [... reduction 2] x d2
          -> conv3x3 s2 + BN -> stage 3 [... reduction 1] x d3
          -> conv3x3 s2 + BN -> stage 4 [... reduction 1] x d4  -> head as above

Graphs (``graph=``), built in every Grapher from its own ``fc1`` output:

- ``"knn"`` (ViG): k-NN on L2-normalised features (Euclidean), ``k`` growing
  from 9 to 18 over depth in the isotropic models (9 in the pyramid ones, as
  in ViG's code), dilation ``min(i // 4 + 1, max)``; the pyramid's graph
  reduction is a bipartite k-NN from the average-pooled map to the full one.
- ``"lrgc"`` (ViG-LRGC): :class:`~pyg_glic.graph.LearnableGraph` with a
  learned threshold per layer over all node pairs of an image (pooled sources
  in pyramid stages with a reduction), and an edge-weighted convolution.
  :meth:`ViG.graph_stats` reports the learned degrees.
- ``"halo"``, ``"global"`` (GLIC's two scales): the local halo graph and the
  global graph to a ``grid x grid`` pooled view; ``"dual"`` alternates them
  (local, global, local, ...) as GLIC's graph stages do.

Parameter counts at ImageNet settings (224x224, 1000 classes, ``graph="knn"``,
``conv="mr"``): ViG-Ti 7.18 M (published 7.1 M), Pyramid ViG-Ti 10.71 M
(published 10.7 M); see :func:`count_parameters`. ``graph="lrgc"`` adds the
key and query projections (``2 (C^2 + C)`` per layer; ViG-Ti: 8.07 M).

Differences from ViG's published code:

- Pyramid ViG adds a fixed (non-learned) sin-cos relative-position term to the
  k-NN distance; here the optional term is the graph builders' quadratic one
  (``pos_weight``, :mod:`pyg_glic.graph.similarity`), off by default.
- ``"edge"``, ``"sage"`` and ``"gin"`` are PyG's layers with dense linear maps
  (ViG groups them by 4 and normalises per edge inside EdgeConv); ``"mr"``
  and ``"weighted"`` use ViG's grouped, channel-interleaved 1x1 map
  (``conv_groups=4``).
- Stochastic (random-dilation) k-NN and ViG's pretrained weights are not provided.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..convert import map_to_nodes, nodes_to_map
from ..nn.blocks import FFN, Grapher
from ..nn.blocks._utils import unpack_graph
from ._vig_layers import CONVS, GRAPHS, ViGGraph, graph_kind, knn_schedule, make_vig_conv

__all__ = ["ViG", "PyramidViG", "ViGBlock", "ViGGrapher", "Stem", "Downsample",
           "CONFIGS", "GRAPHS", "CONVS", "create_model", "list_models", "register_model",
           "count_parameters", "PUBLISHED_PARAMS_M", "vig_ti", "vig_s", "vig_b", "pvig_ti",
           "pvig_s", "vig_test", "pvig_test"]


# --------------------------------------------------------------------------- blocks

class Stem(torch.nn.Module):
    r"""ViG's convolutional stem: ``num_down`` stride-2 3x3 convolutions with
    BN and GELU, widths ``C / 2^(num_down-1), ..., C/2, C``, then a 3x3
    convolution ``C -> C`` with BN. Isotropic ViG: ``num_down=4`` (to
    ``H/16``); pyramid ViG: ``num_down=2`` (to ``H/4``).

    Args:
        in_channels (int): image channels.
        out_channels (int): ``C``.
        num_down (int): stride-2 convolutions. (default: 4)
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 192, num_down: int = 4):
        super().__init__()
        if num_down < 1:
            raise ValueError(f"num_down must be >= 1, got {num_down}")
        widths = [out_channels // 2 ** (num_down - 1 - i) for i in range(num_down)]
        layers: List[torch.nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [torch.nn.Conv2d(c, w, 3, stride=2, padding=1),
                       torch.nn.BatchNorm2d(w), torch.nn.GELU()]
            c = w
        layers += [torch.nn.Conv2d(c, out_channels, 3, stride=1, padding=1),
                   torch.nn.BatchNorm2d(out_channels)]
        self.convs = torch.nn.Sequential(*layers)
        self.stride = 2 ** num_down

    def forward(self, x: Tensor) -> Tensor:
        return self.convs(x)


class Downsample(torch.nn.Module):
    r"""Pyramid ViG's downsampling between stages: 3x3 stride-2 convolution and BN."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
            torch.nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class ViGGrapher(Grapher):
    r""":class:`~pyg_glic.nn.blocks.Grapher` whose graph comes from a
    :class:`~pyg_glic.models._vig_layers.ViGGraph` and may be bipartite.

    Same parameters and update as the Grapher (``fc1``, graph conv
    ``C -> 2C``, BN, GELU, ``fc2``, residual). When the graph's sources are a
    pooled copy of the map (ViG's graph reduction, GLIC's global graph), the
    convolution receives ``(pooled nodes, nodes)``: ``x_j`` from the
    average-pooled ``fc1`` output, ``x_i`` from the ``fc1`` output, as ViG's
    ``DyGraphConv2d`` with ``r > 1``.

    Args:
        channels (int): ``C``.
        graph (ViGGraph): the layer's graph constructor.
        conv (str): ``"mr"``, ``"edge"``, ``"sage"``, ``"gin"`` or ``"weighted"``.
        conv_groups (int): groups of ViG's grouped 1x1 map in ``"mr"`` /
            ``"weighted"`` (ViG: 4; 1 gives the dense layers of
            :mod:`pyg_glic.nn.conv`).
        drop_path (float): drop-path probability.
        conv_kwargs (dict, optional): extra arguments of the convolution.

    Shapes:
        - **input:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """

    def __init__(self, channels: int, graph: ViGGraph, conv: str = "mr",
                 conv_groups: int = 4, drop_path: float = 0.0,
                 conv_kwargs: Optional[Dict[str, Any]] = None):
        layer = make_vig_conv(conv, channels, 2 * channels, conv_groups, **(conv_kwargs or {}))
        super().__init__(channels, conv=layer, k=graph.k, dilation=graph.dilation,
                         graph_builder=graph, drop_path=drop_path)
        self.conv_name = conv
        if graph.kind == "lrgc" and not self.takes_edge_weight:
            raise ValueError(f"graph='lrgc' learns edge weights; conv {conv!r} would ignore "
                             f"them: use conv='weighted'")

    def forward(self, x: Tensor, graph=None) -> Tensor:
        B, C, H, W = x.shape
        h = self.fc1(x)
        pooled = self.graph_builder.pool(h)
        if graph is None:
            graph = self.graph_builder(h, pooled)
        edge_index, _, edge_weight = unpack_graph(graph)
        dst = map_to_nodes(h)[0]
        inp = dst if pooled is None else (map_to_nodes(pooled)[0], dst)
        if self.takes_edge_weight:
            out = self.conv(inp, edge_index, edge_weight)
        else:
            out = self.conv(inp, edge_index)
        out = nodes_to_map(out, B, H, W)
        out = self.fc2(self.act(self.norm(out)))
        return x + self.drop_path(out)

    def extra_repr(self) -> str:
        return f"{self.channels}, conv={self.conv_name}"


class ViGBlock(torch.nn.Module):
    r"""One ViG layer: :class:`ViGGrapher` then ViG's :class:`~pyg_glic.nn.blocks.FFN` (4x)."""

    def __init__(self, channels: int, graph: ViGGraph, conv: str = "mr", conv_groups: int = 4,
                 mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 conv_kwargs: Optional[Dict[str, Any]] = None):
        super().__init__()
        self.grapher = ViGGrapher(channels, graph, conv, conv_groups, drop_path, conv_kwargs)
        self.ffn = FFN(channels, int(channels * mlp_ratio), drop_path=drop_path)

    @property
    def graph(self) -> ViGGraph:
        return self.grapher.graph_builder

    def forward(self, x: Tensor) -> Tensor:
        return self.ffn(self.grapher(x))


def _graph_kinds(graph: str, depth: int) -> List[str]:
    graph = graph_kind(graph)
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
    if graph == "dual":
        return ["halo" if i % 2 == 0 else "global" for i in range(depth)]
    return [graph] * depth


def _head(in_channels: int, hidden: int, num_classes: int, drop_rate: float) -> torch.nn.Module:
    if num_classes <= 0:
        return torch.nn.Identity()
    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, hidden, 1), torch.nn.BatchNorm2d(hidden), torch.nn.GELU(),
        torch.nn.Dropout(drop_rate), torch.nn.Conv2d(hidden, num_classes, 1))


def _init_weights(module: torch.nn.Module) -> None:
    # ViG's model_init: Kaiming-normal convolutions, zero biases
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)


def _resize_pos_embed(pos: Tensor, size) -> Tensor:
    if tuple(pos.shape[-2:]) == tuple(size):
        return pos
    return F.interpolate(pos, size=size, mode="bicubic", align_corners=False)


# --------------------------------------------------------------------------- models

class _ViGBase(torch.nn.Module):
    blocks: torch.nn.Module

    def graph_layers(self) -> List[ViGGraph]:
        r"""The graph constructor of every Grapher, in depth order."""
        return [m for m in self.modules() if isinstance(m, ViGGraph)]

    def graph_stats(self) -> List[Dict[str, Any]]:
        r"""Per layer, the size of the graph of the last forward pass.

        Each entry: ``layer``, ``kind``, ``mean_degree`` (edges per node),
        ``candidates`` (possible sources per image), ``density``, ``edges``;
        ``threshold`` :math:`\sigma(t)` for ``graph="lrgc"``, ``k`` and
        ``dilation`` for the fixed graphs. Empty before the first forward.
        """
        stats = []
        for i, g in enumerate(self.graph_layers()):
            s = g.stats()
            if "mean_degree" in s:
                stats.append({"layer": i, **s})
        return stats

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = F.adaptive_avg_pool2d(x, 1)
        if pre_logits:
            return x.flatten(1)
        return self.head(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class ViG(_ViGBase):
    r"""Isotropic Vision GNN (ViG-Ti/S/B), with a choice of graph.

    Args:
        channels (int): width ``C`` (Ti 192, S 320, B 640).
        depth (int): number of Grapher + FFN blocks (Ti 12, S/B 16).
        graph (str): ``"knn"``, ``"lrgc"``, ``"halo"``, ``"global"``, ``"dual"``
            (``"window"``: deprecated name of ``"halo"``).
        conv (str, optional): graph convolution, ``"mr"`` (default; ``"weighted"``
            for ``graph="lrgc"``), ``"edge"``, ``"sage"``, ``"gin"``.
        conv_groups (int): groups of ViG's grouped 1x1 map in ``"mr"``/``"weighted"``.
        k (int): neighbours of the first layer; ``k_end`` of the last
            (default ``2 k``, ViG's 9 -> 18).
        dilation (bool): ViG's dilated k-NN.
        img_size (int): training image size; fixes the positional
            embedding's grid (``img_size / 2^num_down``; other sizes
            interpolate it) and the largest dilation.
        in_channels (int): image channels.
        num_classes (int): classes (0: no head, :meth:`forward` returns pooled features).
        head_channels (int): hidden width of the head (ViG: 1024).
        num_down (int): stride-2 convolutions of the stem (ViG: 4).
        mlp_ratio (float): FFN expansion.
        drop_rate (float): dropout before the classifier.
        drop_path_rate (float): stochastic depth, growing linearly to this value.
        pos_weight (float): relative-position term of the fixed graphs' similarity.
        window, halo, grid (int): GLIC graphs (``"halo"``/``"global"``/``"dual"``).
        graph_kwargs (dict, optional): more :class:`~pyg_glic.models._vig_layers.ViGGraph`
            arguments (``similarity``, ``backend``, ``lrgc_kwargs``).
        conv_kwargs (dict, optional): extra convolution arguments.

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **output:** :math:`(B, \text{num\_classes})`
    """

    def __init__(self, channels: int = 192, depth: int = 12, *, graph: str = "knn",
                 conv: Optional[str] = None, conv_groups: int = 4, k: int = 9,
                 k_end: Optional[int] = None, dilation: bool = True, img_size: int = 224,
                 in_channels: int = 3, num_classes: int = 1000, head_channels: int = 1024,
                 num_down: int = 4, mlp_ratio: float = 4.0, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, pos_weight: float = 0.0, window: int = 4,
                 halo: int = 2, grid: int = 7, graph_kwargs: Optional[Dict[str, Any]] = None,
                 conv_kwargs: Optional[Dict[str, Any]] = None):
        super().__init__()
        conv = conv or ("weighted" if graph == "lrgc" else "mr")
        self.graph = graph
        self.conv = conv
        self.num_classes = num_classes
        self.num_features = channels
        self.stem = Stem(in_channels, channels, num_down)
        side = max(1, img_size // self.stem.stride)
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, channels, side, side))
        ks, dil = knn_schedule(depth, k, 2 * k if k_end is None else k_end, side * side)
        if not dilation:
            dil = [1] * depth
        dpr = [float(v) for v in torch.linspace(0, drop_path_rate, depth)]
        kinds = _graph_kinds(graph, depth)
        self.blocks = torch.nn.Sequential(*[
            ViGBlock(channels,
                     ViGGraph(channels, kinds[i], ks[i], dil[i], 1, pos_weight=pos_weight,
                              window=window, halo=halo, grid=grid, **(graph_kwargs or {})),
                     conv, conv_groups, mlp_ratio, dpr[i], conv_kwargs)
            for i in range(depth)])
        self.head = _head(channels, head_channels, num_classes, drop_rate)
        _init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = x + _resize_pos_embed(self.pos_embed, x.shape[-2:])
        return self.blocks(x)


class PyramidViG(_ViGBase):
    r"""Pyramid Vision GNN (Pyramid ViG-Ti/S), with a choice of graph.

    Args:
        channels (sequence of int): width of each stage (Ti ``[48, 96, 240, 384]``).
        depths (sequence of int): blocks per stage (``[2, 2, 6, 2]``).
        reductions (sequence of int): ViG's graph reduction ratio per stage
            (``[4, 2, 1, 1]``).
        graph, conv, conv_groups, pos_weight, window, halo, grid, in_channels,
        num_classes, head_channels, mlp_ratio, drop_rate, drop_path_rate,
        graph_kwargs, conv_kwargs: as in :class:`ViG`.
        k (int): neighbours, every layer (``k_end`` to make it grow).
        dilation (bool): ViG's dilation ``min(i // 4 + 1, N_last // k)``.
        img_size (int): training image size (positional embedding at ``H/4``).
        num_down (int): stride-2 convolutions of the stem (ViG: 2).

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **output:** :math:`(B, \text{num\_classes})`
    """

    def __init__(self, channels: Sequence[int] = (48, 96, 240, 384),
                 depths: Sequence[int] = (2, 2, 6, 2), *,
                 reductions: Sequence[int] = (4, 2, 1, 1), graph: str = "knn",
                 conv: Optional[str] = None, conv_groups: int = 4, k: int = 9,
                 k_end: Optional[int] = None, dilation: bool = True, img_size: int = 224,
                 in_channels: int = 3, num_classes: int = 1000, head_channels: int = 1024,
                 num_down: int = 2, mlp_ratio: float = 4.0, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, pos_weight: float = 0.0, window: int = 4,
                 halo: int = 2, grid: int = 7, graph_kwargs: Optional[Dict[str, Any]] = None,
                 conv_kwargs: Optional[Dict[str, Any]] = None):
        super().__init__()
        if not len(channels) == len(depths) == len(reductions):
            raise ValueError("channels, depths and reductions need one entry per stage, got "
                             f"{len(channels)}, {len(depths)}, {len(reductions)}")
        conv = conv or ("weighted" if graph == "lrgc" else "mr")
        self.graph = graph
        self.conv = conv
        self.num_classes = num_classes
        self.num_features = channels[-1]
        self.stem = Stem(in_channels, channels[0], num_down)
        side = max(1, img_size // self.stem.stride)
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, channels[0], side, side))
        depth = sum(depths)
        last = max(1, side // 2 ** (len(depths) - 1))
        ks, dil = knn_schedule(depth, k, k if k_end is None else k_end, last * last)
        if not dilation:
            dil = [1] * depth
        dpr = [float(v) for v in torch.linspace(0, drop_path_rate, depth)]
        kinds = _graph_kinds(graph, depth)
        stages: List[torch.nn.Module] = []
        idx = 0
        for s, (c, d, r) in enumerate(zip(channels, depths, reductions)):
            layers: List[torch.nn.Module] = []
            if s > 0:
                layers.append(Downsample(channels[s - 1], c))
            for _ in range(d):
                layers.append(ViGBlock(
                    c, ViGGraph(c, kinds[idx], ks[idx], dil[idx], r, pos_weight=pos_weight,
                                window=window, halo=halo, grid=grid, **(graph_kwargs or {})),
                    conv, conv_groups, mlp_ratio, dpr[idx], conv_kwargs))
                idx += 1
            stages.append(torch.nn.Sequential(*layers))
        self.blocks = torch.nn.Sequential(*stages)
        self.head = _head(channels[-1], head_channels, num_classes, drop_rate)
        _init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = x + _resize_pos_embed(self.pos_embed, x.shape[-2:])
        return self.blocks(x)


# --------------------------------------------------------------------------- configurations

#: Model configurations: ``arch`` (``"isotropic"`` or ``"pyramid"``) and the
#: constructor's arguments. ``*_test`` are tiny configurations for CI (small
#: images, few channels), every other option as in the full models.
CONFIGS: Dict[str, Dict[str, Any]] = {
    "vig_ti": dict(arch="isotropic", channels=192, depth=12),
    "vig_s": dict(arch="isotropic", channels=320, depth=16),
    "vig_b": dict(arch="isotropic", channels=640, depth=16),
    "pvig_ti": dict(arch="pyramid", channels=(48, 96, 240, 384), depths=(2, 2, 6, 2)),
    "pvig_s": dict(arch="pyramid", channels=(80, 160, 400, 640), depths=(2, 2, 6, 2)),
    # tiny: 32x32 images -> 8x8 nodes, k 4 -> 8, dilation from the 5th block on
    "vig_test": dict(arch="isotropic", channels=16, depth=5, k=4, img_size=32, num_down=2,
                     head_channels=32, num_classes=10, window=4, halo=1, grid=4),
    # tiny: 64x64 images -> 16x16, 8x8, 4x4, 2x2 nodes
    "pvig_test": dict(arch="pyramid", channels=(8, 16, 24, 32), depths=(1, 1, 2, 1), k=4,
                      img_size=64, head_channels=32, num_classes=10, window=4, halo=1, grid=4),
}

#: Published parameter counts (millions) of the ViG paper, for reference.
PUBLISHED_PARAMS_M = {"vig_ti": 7.1, "vig_s": 22.7, "vig_b": 86.8, "pvig_ti": 10.7,
                      "pvig_s": 27.3}


def _cfg(name: str, **kwargs) -> Dict[str, Any]:
    # timm's default_cfg: what a user needs to feed the model (no weights are published here)
    cfg = CONFIGS[name]
    size = cfg.get("img_size", 224)
    return dict(url="", num_classes=cfg.get("num_classes", 1000), input_size=(3, size, size),
                mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), **kwargs)


def _build(name: str, pretrained: bool = False, **kwargs) -> _ViGBase:
    if pretrained:
        raise ValueError(f"no pretrained weights are available for {name!r}")
    cfg = dict(CONFIGS[name])
    arch = cfg.pop("arch")
    cfg.update(kwargs)
    model = (ViG if arch == "isotropic" else PyramidViG)(**cfg)
    model.default_cfg = _cfg(name)
    return model


# --------------------------------------------------------------------------- registry

_MODELS: Dict[str, Callable[..., _ViGBase]] = {}


def register_model(fn: Callable[..., _ViGBase]) -> Callable[..., _ViGBase]:
    r"""Register a factory function under its name (timm's ``@register_model``)."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> List[str]:
    r"""Names of the registered models, sorted."""
    return sorted(_MODELS)


def create_model(name: str, pretrained: bool = False, **kwargs) -> _ViGBase:
    r"""Build a registered model by name (timm's ``create_model``).

    Example::

        model = create_model("vig_ti", graph="lrgc")
        model = create_model("pvig_test", graph="knn", conv="edge", num_classes=5)
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {list_models()}")
    return _MODELS[name](pretrained=pretrained, **kwargs)


def count_parameters(model: torch.nn.Module, trainable: bool = True) -> int:
    r"""Number of (trainable) parameters; buffers such as BN statistics are not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


# --------------------------------------------------------------------------- factories

@register_model
def vig_ti(pretrained: bool = False, **kwargs) -> ViG:
    r"""ViG-Ti: 12 blocks, width 192 (7.1 M parameters published)."""
    return _build("vig_ti", pretrained, **kwargs)


@register_model
def vig_s(pretrained: bool = False, **kwargs) -> ViG:
    r"""ViG-S: 16 blocks, width 320 (22.7 M parameters published)."""
    return _build("vig_s", pretrained, **kwargs)


@register_model
def vig_b(pretrained: bool = False, **kwargs) -> ViG:
    r"""ViG-B: 16 blocks, width 640 (86.8 M parameters published)."""
    return _build("vig_b", pretrained, **kwargs)


@register_model
def pvig_ti(pretrained: bool = False, **kwargs) -> PyramidViG:
    r"""Pyramid ViG-Ti: stages [2, 2, 6, 2], widths [48, 96, 240, 384] (10.7 M published)."""
    return _build("pvig_ti", pretrained, **kwargs)


@register_model
def pvig_s(pretrained: bool = False, **kwargs) -> PyramidViG:
    r"""Pyramid ViG-S: stages [2, 2, 6, 2], widths [80, 160, 400, 640] (27.3 M published)."""
    return _build("pvig_s", pretrained, **kwargs)


@register_model
def vig_test(pretrained: bool = False, **kwargs) -> ViG:
    r"""A tiny isotropic ViG for tests and examples (32x32 images, 10 classes)."""
    return _build("vig_test", pretrained, **kwargs)


@register_model
def pvig_test(pretrained: bool = False, **kwargs) -> PyramidViG:
    r"""A tiny pyramid ViG for tests (64x64 images, 10 classes)."""
    return _build("pvig_test", pretrained, **kwargs)
