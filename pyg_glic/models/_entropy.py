r"""GLIC's latent coding, composed from CompressAI's latent codecs.

The skeleton is ELIC's (CompressAI's ``Elic2022Official``): uneven channel
groups, each coded with a two-pass checkerboard spatial context
(:math:`g_{sp}^{(k)}`) and a channel context from the groups already decoded
(:math:`g_{ch}^{(k)}`), their outputs and the hyperprior's merged by a
parameter-aggregation network into a Gaussian's scale and mean; a hyperprior
:math:`z = h_a(y)` with a factorized entropy bottleneck; straight-through
rounding. ``kind="gated"`` swaps every sub-network for GLIC's gated blocks,
``kind="elic"`` keeps ELIC's light convolutions.

.. code-block:: none

                 ┌───┐  z  ┌───┐ z_hat      z_hat ┌───┐
            ┌─►──┤h_a├──►──┤ Q ├───►───····───►───┤h_s├──►─┐  side params
            │    └───┘     └───┘        EB        └───┘    │  (2N channels)
            │                                              ▼
        y ──┴─ split into groups y0..yK ── for k: g_ch(y_hat_0..k-1), g_sp(y_hat_k),
                                                  param aggregation ─► (scale, mean)
                                                  ─► Gaussian conditional ─► y_hat_k

Modules are built in ``Elic2022Official``'s order and none is built and then
dropped, so the random draws of an untrained codec depend only on the modules
kept. Attribute names of the gated blocks (``mixer``, ``norm2``, ``mlp``) follow
the published GLIC code, so its entropy-network weights map by name.
"""
from __future__ import annotations

from typing import Literal, NamedTuple, Sequence

import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck
from compressai.latent_codecs import (
    ChannelGroupsLatentCodec,
    CheckerboardLatentCodec,
    GaussianConditionalLatentCodec,
    HyperLatentCodec,
    HyperpriorLatentCodec,
)
from compressai.layers import CheckerboardMaskedConv2d, sequential_channel_ramp, subpel_conv3x3
from compressai.models.utils import conv, deconv
from torch import Tensor, nn

from ..nn.blocks._utils import LayerNorm2d

__all__ = ["GatedBlock", "ParameterAggregationBlock", "LatentCodecParts", "latent_codec"]

# ------------------------------------------------------------------------- blocks


class _PointwiseGatedFFN(nn.Module):
    r"""Gated FFN of 1x1 convolutions without bias: :math:`W_2(\mathrm{GELU}(a) \odot b)`,
    :math:`[a, b] = W_1 x`; no residual (the caller adds it)."""

    def __init__(self, channels: int, expansion: float = 4):
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=False)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.project_in(x).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class _DepthwiseMixer(nn.Module):
    r"""1x1 conv, LeakyReLU(0.01), depthwise kxk conv, 1x1 conv (in -> out), plus
    the input (through a 1x1 adaptor when the widths differ)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, in_channels, 1),
                                   nn.LeakyReLU(negative_slope=0.01, inplace=True))
        self.depth_conv = nn.Conv2d(in_channels, in_channels, kernel_size,
                                    padding=kernel_size // 2, groups=in_channels)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 1)
        self.adaptor = (nn.Conv2d(in_channels, out_channels, 1)
                        if in_channels != out_channels else None)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.adaptor is None else self.adaptor(x)
        return self.conv2(self.depth_conv(self.conv1(x))) + identity


class GatedBlock(nn.Module):
    r"""GLIC's gated convolution block (the published ``GatedTransformCNN``), from
    `"Graph-based Learned Image Compression" <https://arxiv.org/abs/2603.25316>`_:
    a residual depthwise mixer, then a LayerNorm and a GELU-gated pointwise FFN
    with residual.

    .. math::
        \mathbf{H} = R(\mathbf{X}) + \mathbf{W}_3\, \mathrm{DW}_{k\times k}\big(
            \mathrm{LeakyReLU}_{0.01}(\mathbf{W}_1 \mathbf{X})\big),
        \qquad R = \mathrm{id} \text{ if } C_{in} = C_{out}
            \text{ else a } 1\times1 \text{ conv}

        [\mathbf{A}, \mathbf{B}] = \mathbf{V}_1\, \mathrm{LN}(\mathbf{H}),
        \qquad
        \mathbf{X}^{\prime} = \mathbf{H} + \mathbf{V}_2\big(\mathrm{GELU}(\mathbf{A})
            \odot \mathbf{B}\big)

    :math:`\mathbf{W}_1` (:math:`C_{in} \to C_{in}`) and :math:`\mathbf{W}_3`
    (:math:`C_{in} \to C_{out}`) are 1x1 convolutions with bias;
    :math:`\mathbf{V}_1` (:math:`C_{out} \to 2 \cdot e C_{out}`) and :math:`\mathbf{V}_2`
    (:math:`e C_{out} \to C_{out}`) are 1x1 convolutions without bias; LN normalises
    over the channels with :math:`\epsilon = 10^{-6}`.

    Args:
        in_channels (int): input channels :math:`C_{in}`.
        out_channels (int): output channels :math:`C_{out}`.
        expansion (float, optional): FFN hidden width :math:`e C_{out}` per branch
            (truncated to an integer). (default: :obj:`4`)
        kernel_size (int, optional): odd size of the depthwise kernel; padding keeps
            the spatial size. (default: :obj:`5`)

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **output:** :math:`(B, C_{out}, H, W)`
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: float = 4,
                 kernel_size: int = 5):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.expansion = expansion
        self.kernel_size = kernel_size
        # Built in the published order (norm, mixer, FFN) so that random draws match.
        self.norm2 = LayerNorm2d(out_channels, eps=1e-6)
        self.mixer = _DepthwiseMixer(in_channels, out_channels, kernel_size)
        self.mlp = _PointwiseGatedFFN(out_channels, expansion)

    def forward(self, x: Tensor) -> Tensor:
        x = self.mixer(x)
        return x + self.mlp(self.norm2(x))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, expansion={self.expansion}, "
                f"kernel_size={self.kernel_size}")


class ParameterAggregationBlock(nn.Module):
    r"""GLIC's parameter-aggregation block (the published ``ParamGated``): a 1x1
    convolution, then a LayerNorm and a GELU-gated pointwise FFN with residual.

    .. math::
        \mathbf{H} = \mathbf{W} \mathbf{X}, \qquad
        [\mathbf{A}, \mathbf{B}] = \mathbf{V}_1\, \mathrm{LN}(\mathbf{H}), \qquad
        \mathbf{X}^{\prime} = \mathbf{H} + \mathbf{V}_2\big(\mathrm{GELU}(\mathbf{A})
            \odot \mathbf{B}\big)

    with :math:`\mathbf{W}` a 1x1 convolution :math:`C_{in} \to C_{out}` (bias) and
    :math:`\mathbf{V}_1, \mathbf{V}_2` as in :class:`GatedBlock`. Every operation is
    pointwise in space, as the checkerboard coder needs.

    Args:
        in_channels (int): input channels :math:`C_{in}`.
        out_channels (int): output channels :math:`C_{out}`.
        expansion (float, optional): FFN hidden width :math:`e C_{out}` per branch.
            (default: :obj:`4`)

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **output:** :math:`(B, C_{out}, H, W)`
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: float = 4):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.expansion = expansion
        self.norm2 = LayerNorm2d(out_channels, eps=1e-6)
        self.mixer = nn.Conv2d(in_channels, out_channels, 1)
        self.mlp = _PointwiseGatedFFN(out_channels, expansion)

    def forward(self, x: Tensor) -> Tensor:
        x = self.mixer(x)
        return x + self.mlp(self.norm2(x))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, expansion={self.expansion}"


# ------------------------------------------------------------------ sub-networks


def _gated_h_a(N: int, M: int) -> nn.Sequential:
    return nn.Sequential(
        conv(M, N, kernel_size=3, stride=1),
        GatedBlock(N, N, expansion=2),
        GatedBlock(N, N, expansion=2),
        conv(N, N, kernel_size=3, stride=2),
        GatedBlock(N, N, expansion=2),
        GatedBlock(N, N, expansion=2),
        conv(N, N, kernel_size=3, stride=2),
    )


def _gated_h_s(N: int) -> nn.Sequential:
    return nn.Sequential(
        subpel_conv3x3(N, N, 2),
        GatedBlock(N, N, expansion=2),
        GatedBlock(N, N, expansion=2),
        subpel_conv3x3(N, N, 2),
        GatedBlock(N, N, expansion=2),
        GatedBlock(N, N, expansion=2),
        conv(N, 2 * N, kernel_size=3, stride=1),
    )


def _elic_h_a(N: int, M: int) -> nn.Sequential:
    return nn.Sequential(
        conv(M, N, kernel_size=3, stride=1),
        nn.ReLU(inplace=True),
        conv(N, N, kernel_size=5, stride=2),
        nn.ReLU(inplace=True),
        conv(N, N, kernel_size=5, stride=2),
    )


def _elic_h_s(N: int) -> nn.Sequential:
    return nn.Sequential(
        deconv(N, N, kernel_size=5, stride=2),
        nn.ReLU(inplace=True),
        deconv(N, N * 3 // 2, kernel_size=5, stride=2),
        nn.ReLU(inplace=True),
        deconv(N * 3 // 2, 2 * N, kernel_size=3, stride=1),
    )


def _elic_channel_context(in_ch: int, out_ch: int, width: Sequence[int],
                          kernel: int) -> nn.Sequential:
    w1, w2 = width
    return nn.Sequential(
        conv(in_ch, w1, kernel_size=kernel, stride=1),
        nn.ReLU(inplace=True),
        conv(w1, w2, kernel_size=kernel, stride=1),
        nn.ReLU(inplace=True),
        conv(w2, out_ch, kernel_size=kernel, stride=1),
    )


def _gated_channel_context(in_ch: int, out_ch: int, N: int, kernel: int) -> nn.Sequential:
    # Three gated blocks, widths interpolated from in_ch to out_ch, at least N inside.
    return sequential_channel_ramp(in_ch, out_ch, min_ch=N, num_layers=3,
                                   make_layer=GatedBlock, make_act=nn.Identity,
                                   kernel_size=kernel)


def _param_aggregation(kind: str, in_ch: int, out_ch: int, N: int) -> nn.Sequential:
    if kind == "gated":
        return sequential_channel_ramp(in_ch, out_ch, min_ch=2 * N, num_layers=3,
                                       make_layer=ParameterAggregationBlock,
                                       make_act=nn.Identity)
    return sequential_channel_ramp(in_ch, out_ch, min_ch=2 * N, num_layers=3,
                                   interp="linear", make_layer=nn.Conv2d,
                                   make_act=lambda: nn.ReLU(inplace=True),
                                   kernel_size=1, stride=1, padding=0)


# ------------------------------------------------------------------ latent codec


class LatentCodecParts(NamedTuple):
    r"""What :func:`latent_codec` returns. ``h_a`` and ``h_s`` are the very modules
    inside ``latent_codec["hyper"]`` (registering them again on a model would
    duplicate their weights in its ``state_dict``)."""

    latent_codec: HyperpriorLatentCodec
    h_a: nn.Module
    h_s: nn.Module


def latent_codec(kind: Literal["gated", "elic"], N: int, M: int, groups: Sequence[int], *,
                 context_width: Sequence[int] = (224, 128),
                 context_kernel: int = 5) -> LatentCodecParts:
    r"""The latent coder of GLIC (``kind="gated"``) or of ELIC (``kind="elic"``),
    composed from CompressAI's latent codecs as ``Elic2022Official`` composes them:
    a :class:`~compressai.latent_codecs.HyperpriorLatentCodec` whose ``"hyper"``
    branch holds :math:`h_a`, :math:`h_s` and an ``EntropyBottleneck(N)`` and whose
    ``"y"`` branch is a :class:`~compressai.latent_codecs.ChannelGroupsLatentCodec`
    of one :class:`~compressai.latent_codecs.CheckerboardLatentCodec` per group,
    each with a straight-through Gaussian conditional.

    ``kind="gated"`` (the published GLIC networks):

    - :math:`h_a`: conv3x3 M->N, then twice (two ``GatedBlock(N, N, 2)``,
      conv3x3 stride 2);
    - :math:`h_s`: twice (sub-pixel conv3x3 x2, two ``GatedBlock(N, N, 2)``),
      then conv3x3 N->2N;
    - channel context of group :math:`k \ge 1`: three :class:`GatedBlock` (expansion 4,
      depthwise ``context_kernel``) ramping :math:`\sum_{j<k} g_j \to 2 g_k`,
      at least N wide inside;
    - spatial context: a 5x5 checkerboard-masked conv :math:`g_k \to 2 g_k`;
    - parameter aggregation: three :class:`ParameterAggregationBlock` (expansion 4)
      ramping :math:`2 g_k + 2 g_k [k>0] + 2N \to 2 g_k`, at least 2N wide inside.

    ``kind="elic"``: ``Elic2022Official``'s networks, with the channel contexts'
    hidden widths ``context_width`` and kernel ``context_kernel``; the defaults
    reproduce ``Elic2022Official`` exactly (same modules, same order).

    Args:
        kind (str): ``"gated"`` or ``"elic"``.
        N (int): hyperprior width; :math:`z` has N channels, :math:`h_s` gives 2N.
        M (int): latent channels, ``sum(groups)``.
        groups (Sequence[int]): channel groups, coded in this order.
        context_width (Sequence[int], optional): the two hidden widths of ELIC's
            channel contexts; ``kind="elic"`` only (the gated ramp sets its own).
            (default: :obj:`(224, 128)`)
        context_kernel (int, optional): odd kernel of the channel contexts (ELIC's
            convolutions, or the gated blocks' depthwise convolutions).
            (default: :obj:`5`)

    Returns:
        :class:`LatentCodecParts` ``(latent_codec, h_a, h_s)``.

    Shapes:
        - **y:** :math:`(B, M, H, W)` with :math:`H, W` multiples of 4 (z is at
          :math:`(H/4, W/4)`)
        - **latent_codec(y):** ``{"y_hat": (B, M, H, W), "likelihoods": {"y": (B, M, H, W),
          "z": (B, N, H/4, W/4)}}``
    """
    groups = [int(g) for g in groups]
    width = tuple(int(w) for w in context_width)
    if kind not in ("gated", "elic"):
        raise ValueError(f"kind must be 'gated' or 'elic', got {kind!r}")
    if not groups or min(groups) < 1 or sum(groups) != M:
        raise ValueError(f"groups must be positive and sum to M={M}, got {groups}")
    if len(width) != 2 or min(width) < 1:
        raise ValueError(f"context_width must be two positive widths, got {context_width!r}")
    if kind == "gated" and width != (224, 128):
        raise ValueError("context_width applies to kind='elic' only; the gated channel "
                         f"contexts ramp their own widths, got {context_width!r}")
    if context_kernel < 1 or context_kernel % 2 == 0:
        raise ValueError(f"context_kernel must be odd, got {context_kernel}")

    # Same construction order as Elic2022Official: h_a, h_s, g_ch, g_sp, param
    # aggregation, the Gaussian conditionals, then the entropy bottleneck.
    if kind == "gated":
        h_a, h_s = _gated_h_a(N, M), _gated_h_s(N)
        channel_context = {f"y{k}": _gated_channel_context(sum(groups[:k]), 2 * groups[k],
                                                           N, context_kernel)
                           for k in range(1, len(groups))}
    else:
        h_a, h_s = _elic_h_a(N, M), _elic_h_s(N)
        channel_context = {f"y{k}": _elic_channel_context(sum(groups[:k]), 2 * groups[k],
                                                          width, context_kernel)
                           for k in range(1, len(groups))}

    # In [He2022], g_sp^(k).
    spatial_context = [CheckerboardMaskedConv2d(g, 2 * g, kernel_size=5, stride=1, padding=2)
                       for g in groups]

    # Input: spatial context, channel context (groups after the first), hyper params.
    param_aggregation = [_param_aggregation(kind, 2 * g + (k > 0) * 2 * g + 2 * N, 2 * g, N)
                         for k, g in enumerate(groups)]

    scctx_latent_codec = {
        f"y{k}": CheckerboardLatentCodec(
            latent_codec={"y": GaussianConditionalLatentCodec(quantizer="ste")},
            context_prediction=spatial_context[k],
            entropy_parameters=param_aggregation[k],
        )
        for k in range(len(groups))
    }

    codec = HyperpriorLatentCodec(
        latent_codec={
            "y": ChannelGroupsLatentCodec(groups=groups, channel_context=channel_context,
                                          latent_codec=scctx_latent_codec),
            "hyper": HyperLatentCodec(entropy_bottleneck=EntropyBottleneck(N),
                                      h_a=h_a, h_s=h_s, quantizer="ste"),
        },
    )
    return LatentCodecParts(codec, h_a, h_s)
