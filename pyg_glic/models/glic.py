r"""GLIC: graph-based learned image compression on CompressAI.

The latent coding is CompressAI's ELIC (``Elic2022Official``): uneven channel
groups, a two-pass checkerboard spatial context plus a channel context, a
hyperprior with a factorized entropy bottleneck, a Gaussian conditional with
mean and scale, CompressAI's range-ANS coder. The analysis and synthesis
transforms are graph networks: a GLIC graph stage (:class:`pyg_glic.nn.blocks.GLICStage`)
at H/4 and at H/8 in each.

.. code-block:: none

    g_a:  x ─ conv↓2 (3→C1) ─ conv blocks ─ conv↓2 (C1→N) ─ graph stage ─
              conv↓2 (N→N) ─ graph stage ─ conv↓2 (N→M) ─ y          (H/16)
    g_s:  ŷ ─ subpel↑2 (M→N) ─ graph stage ─ subpel↑2 (N→N) ─ graph stage ─
              subpel↑2 (N→C1) ─ conv blocks ─ subpel↑2 (C1→3) ─ x̂

The file reads top-down: blocks, transforms, the model, the configuration
table, factories.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from compressai.layers import subpel_conv3x3
from compressai.models import Elic2022Official
from compressai.models.utils import conv
from compressai.registry import register_model
from torch import Tensor, nn

from ..nn.blocks import GLICStage

# --------------------------------------------------------------------------- blocks


class ConvBlock(nn.Module):
    r"""GLIC's convolutional block at H/2.

    .. math::
        h = x + \mathrm{conv}_{1\times1}(\mathrm{dw}_{5\times5}(
            \mathrm{LeakyReLU}(\mathrm{conv}_{1\times1}(x))))

        y = h + \mathrm{conv}_{1\times1}(\mathrm{GELU}(a) \odot b), \quad
            [a, b] = \mathrm{conv}_{1\times1}(\mathrm{LN}(h))

    Args:
        channels (int): width.
        expansion (int): gated FFN expansion (default 4).

    Shapes:
        - **input / output:** ``(B, C, H, W)``
    """

    def __init__(self, channels: int, expansion: int = 4):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(channels, channels, 5, padding=2, groups=channels),
            nn.Conv2d(channels, channels, 1))
        self.norm = nn.LayerNorm(channels)
        hidden = channels * expansion
        self.ffn_in = nn.Conv2d(channels, 2 * hidden, 1)
        self.ffn_out = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = x + self.conv(x)
        n = self.norm(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        a, b = self.ffn_in(n).chunk(2, dim=1)
        return h + self.ffn_out(F.gelu(a) * b)


# --------------------------------------------------------------------- transforms


def _stage(channels: int, cfg: Dict) -> nn.Module:
    return GLICStage(channels, depth=cfg["depth"], heads=cfg["heads"], k=cfg["mean_degree"],
                     window=cfg["window"], halo=cfg["halo"], grid=cfg["grid"],
                     adaptive=cfg["adaptive"], ffn_expansion=cfg["ffn_expansion"])


def analysis_transform(C1: int, N: int, M: int, cfg: Dict) -> nn.Sequential:
    r"""``g_a``: ``(B, 3, H, W)`` -> ``(B, M, H/16, W/16)``."""
    return nn.Sequential(
        conv(3, C1, kernel_size=5, stride=2),
        *[ConvBlock(C1) for _ in range(cfg["conv_blocks"])],
        conv(C1, N, kernel_size=3, stride=2),
        _stage(N, cfg),
        conv(N, N, kernel_size=3, stride=2),
        _stage(N, cfg),
        conv(N, M, kernel_size=3, stride=2),
    )


def synthesis_transform(C1: int, N: int, M: int, cfg: Dict) -> nn.Sequential:
    r"""``g_s``: ``(B, M, H/16, W/16)`` -> ``(B, 3, H, W)`` by sub-pixel upsampling."""
    return nn.Sequential(
        subpel_conv3x3(M, N, 2),
        _stage(N, cfg),
        subpel_conv3x3(N, N, 2),
        _stage(N, cfg),
        subpel_conv3x3(N, C1, 2),
        *[ConvBlock(C1) for _ in range(cfg["conv_blocks"])],
        subpel_conv3x3(C1, 3, 2),
    )


# -------------------------------------------------------------------------- model

def channel_context(in_ch: int, out_ch: int, width: Sequence[int], kernel: int) -> nn.Sequential:
    r"""ELIC's channel-context network (conv, ReLU, conv, ReLU, conv) at given widths."""
    w1, w2 = (int(w) for w in width)
    pad = kernel // 2
    return nn.Sequential(nn.Conv2d(in_ch, w1, kernel, padding=pad), nn.ReLU(inplace=True),
                         nn.Conv2d(w1, w2, kernel, padding=pad), nn.ReLU(inplace=True),
                         nn.Conv2d(w2, out_ch, kernel, padding=pad))


@register_model("glic")
class GLIC(Elic2022Official):
    r"""GLIC codec: ELIC's latent coding with graph-network transforms.

    Keeps CompressAI's contract: ``forward(x) -> {"x_hat", "likelihoods"}``,
    ``compress(x) -> {"strings", "shape"}``, ``decompress(strings, shape) ->
    {"x_hat"}``, ``update()`` before coding, ``aux_loss()``, ``from_state_dict``.
    Any image size is accepted: inputs are padded (replicate) to a multiple of
    64 inside and the output cropped back, so ``shape`` is the original
    ``(H, W)``.

    Args:
        N (int): width of the graph stages and the hyperprior (default 192).
        M (int): latent channels (default 320).
        C1 (int): width at H/2 (default 128).
        groups (list[int], optional): latent channel groups; default ELIC's
            ``[16, 16, 32, 64, M - 128]``.
        depth, heads, window, halo, grid, mean_degree, adaptive, ffn_expansion:
            graph stage settings (:class:`pyg_glic.nn.blocks.GLICStage`; ``mean_degree``
            is its ``k``).
        conv_blocks (int): conv blocks at H/2 in each transform (default 3).
        context_width (tuple, optional): hidden widths of the channel-context
            networks (ELIC's :math:`g_{ch}`); default ELIC's ``(224, 128)``.
        context_kernel (int): their kernel size (default ELIC's 5). The
            channel contexts hold most of ELIC's latent-coder parameters;
            ``glic-lite`` narrows them to keep its weight files small.
        config (str, optional): name recorded in files (set by the factory).
    """

    multiple = 64

    def __init__(self, N: int = 192, M: int = 320, C1: int = 128,
                 groups: Optional[Sequence[int]] = None, *, depth: int = 5, heads: int = 8,
                 window: int = 8, halo: int = 4, grid: int = 16, mean_degree: int = 64,
                 adaptive: bool = True, ffn_expansion: float = 4.0, conv_blocks: int = 3,
                 context_width: Optional[Sequence[int]] = None, context_kernel: int = 5,
                 config: Optional[str] = None):
        super().__init__(N=N, M=M, groups=list(groups) if groups is not None else None)
        cfg = dict(depth=depth, heads=heads, window=window, halo=halo, grid=grid,
                   mean_degree=mean_degree, adaptive=adaptive, ffn_expansion=ffn_expansion,
                   conv_blocks=conv_blocks)
        width = tuple(context_width) if context_width is not None else (224, 128)
        if len(width) != 2 or context_kernel < 1 or context_kernel % 2 == 0:
            raise ValueError(f"context_width must be two widths and context_kernel an odd "
                             f"size, got {context_width!r} and {context_kernel}")
        if width != (224, 128) or context_kernel != 5:
            self.latent_codec["y"].channel_context = nn.ModuleDict({
                f"y{k}": channel_context(sum(self.groups[:k]), self.groups[k] * 2, width,
                                         context_kernel)
                for k in range(1, len(self.groups))})
        self.hparams = dict(N=N, M=M, C1=C1, groups=list(self.groups), **cfg,
                            context_width=list(width), context_kernel=context_kernel)
        self.config = config
        self.g_a = analysis_transform(C1, N, M, cfg)
        self.g_s = synthesis_transform(C1, N, M, cfg)

    # -- padding -----------------------------------------------------------------
    def _pad(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.size(1) != 3:
            raise ValueError(f"expected an image batch of shape (B, 3, H, W), got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        ph, pw = (-H) % self.multiple, (-W) % self.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    def _latent_shape(self, hw) -> Dict:
        H, W = (int(v) for v in hw)
        Hp, Wp = -(-H // self.multiple) * self.multiple, -(-W // self.multiple) * self.multiple
        return {"y": [(g, Hp // 16, Wp // 16) for g in self.groups],
                "hyper": (Hp // 64, Wp // 64)}

    # -- CompressAI contract -------------------------------------------------------
    def forward(self, x: Tensor) -> Dict:
        H, W = x.shape[-2:]
        out = super().forward(self._pad(x))
        out["x_hat"] = out["x_hat"][..., :H, :W]
        return out

    def compress(self, x: Tensor) -> Dict:
        H, W = x.shape[-2:]
        out = super().compress(self._pad(x))
        return {"strings": out["strings"], "shape": (H, W)}

    def decompress(self, strings: List[List[bytes]], shape) -> Dict:
        H, W = (int(v) for v in shape)
        out = super().decompress(strings, self._latent_shape((H, W)))
        return {"x_hat": out["x_hat"][..., :H, :W]}

    @classmethod
    def from_state_dict(cls, state_dict: Dict[str, Tensor], **kwargs) -> "GLIC":
        r"""A model rebuilt from a state dict saved by this class.

        The configuration is read from ``state_dict["_hparams"]`` when present
        (the zoo's weight files carry it), else taken from ``kwargs``.
        """
        state_dict = dict(state_dict)
        hp = state_dict.pop("_hparams", None)
        params = dict(hp) if isinstance(hp, dict) else {}
        params.update(kwargs)
        net = cls(**params)
        net.load_state_dict(state_dict)
        return net

    def state_dict_with_config(self) -> Dict:
        r"""``state_dict()`` plus the constructor arguments under ``"_hparams"``."""
        sd = dict(self.state_dict())
        sd["_hparams"] = dict(self.hparams, config=self.config)
        return sd


# -------------------------------------------------------------------- configurations

#: Named configurations. ``glic`` has the published sizes (GLIC_NOTES: about 69 M
#: parameters with the wavelet branch, which is not a graph part and is left out).
CONFIGS: Dict[str, Dict] = {
    "glic": dict(N=192, M=320, C1=128, depth=5, heads=8, window=8, halo=4, grid=16,
                 mean_degree=64, adaptive=True, conv_blocks=3),
    "glic-lite": dict(N=96, M=192, C1=64, groups=[16, 16, 32, 64, 64], depth=2, heads=4,
                      window=8, halo=4, grid=16, mean_degree=16, adaptive=True,
                      ffn_expansion=2.0, conv_blocks=1, context_width=(96, 64),
                      context_kernel=3),
}

#: A tiny configuration for tests (seconds on a CPU).
CONFIGS["glic-tiny"] = dict(N=32, M=64, C1=16, groups=[8, 8, 16, 32], depth=2, heads=2,
                            window=4, halo=2, grid=4, mean_degree=8, adaptive=True,
                            ffn_expansion=2.0, conv_blocks=1, context_width=(32, 32),
                            context_kernel=3)


def glic_model(config: str = "glic-lite", **overrides) -> GLIC:
    r"""A randomly initialised :class:`GLIC` of a named configuration."""
    if config not in CONFIGS:
        raise ValueError(f"unknown GLIC configuration {config!r}; expected one of "
                         f"{sorted(CONFIGS)}")
    return GLIC(**dict(CONFIGS[config], **overrides), config=config)
