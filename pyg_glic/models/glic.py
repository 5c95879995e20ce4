r"""GLIC: graph-based learned image compression on CompressAI.

The model is composed the way CompressAI composes ``Elic2022Official``: an
analysis transform ``g_a``, a synthesis transform ``g_s`` and one latent codec
built from CompressAI's latent codecs (a hyperprior over uneven channel groups,
each coded with a two-pass checkerboard spatial context plus a channel context
from the groups already decoded; a factorized entropy bottleneck for ``z``; a
Gaussian conditional with mean and scale; CompressAI's range-ANS coder). The
transforms are graph networks: a GLIC graph stage (:class:`pyg_glic.nn.blocks.GLICStage`)
at H/4 and at H/8 in each, and, as in the published model, a linear wavelet side
branch (AuxT, :mod:`pyg_glic.nn.wavelet`) whose outputs are added to the main
branch at every scale.

.. code-block:: none

    g_a:  x ─ conv↓2 (3→C1) ─ conv blocks ─(+w1)─ conv↓2 (C1→N) ─ graph stage ─(+w2)─
              conv↓2 (N→N) ─ graph stage ─(+w3)─ conv↓2 (N→M) ─(+w4)─ y        (H/16)
          x ─ WLS (3→C1) ─ WLS (C1→N) ─ WLS (N→N) ─ WLS (N→M)  : w1 .. w4 (wavelet branch)

    g_s:  ŷ ─ subpel↑2 (M→N) ─ graph stage ─(+v1)─ subpel↑2 (N→N) ─ graph stage ─(+v2)─
              subpel↑2 (N→C1) ─ conv blocks ─(+v3)─ subpel↑2 (C1→3) ─(+v4)─ x̂
          ŷ ─ iWLS (M→N) ─ iWLS (N→N) ─ iWLS (N→C1) ─ iWLS (C1→3) : v1 .. v4

With ``levels`` the model is variable-rate (Cui et al., CVPR 2021, "Asymmetric
Gained Deep Image Compression With Continuous Rate Adaptation", as CompressAI's
``GainHyperpriorLatentCodec``): per level ``l`` learned channel gains scale the
latent before coding and back after it, ``y_q = Q(g_a(x) * γ_l)``,
``ŷ = y_q * γ'_l``, and the same for the hyper-latent ``z``; any quality between
two levels interpolates the gains geometrically, so one weight file serves every
rate (``quality`` is a float in ``[1, levels]``).

The file reads top-down: blocks, transforms, the model, the configuration
table, factories.
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from compressai.latent_codecs import GainHyperLatentCodec, GainHyperpriorLatentCodec
from compressai.layers import subpel_conv3x3
from compressai.models import CompressionModel
from compressai.models.utils import conv
from compressai.registry import register_model
from torch import Tensor, nn

from ..nn.blocks import GLICStage
from ..nn.wavelet import WaveletAnalysis, WaveletSynthesis, orthogonality_loss
from ._entropy import GatedBlock, latent_codec

# --------------------------------------------------------------------------- blocks


def _stage(channels: int, cfg: Dict, expansion: float) -> nn.Module:
    attn = dict(pos_hidden=cfg["pos_hidden"])
    if cfg["pos_bound"] is not None:
        attn["pos_bound"] = cfg["pos_bound"]
    return GLICStage(channels, depth=cfg["depth"], heads=cfg["heads"], k=cfg["k"],
                     window=cfg["window"], halo=cfg["halo"], grid=cfg["grid"],
                     group=cfg["group"], adaptive=cfg["adaptive"], ffn_expansion=expansion,
                     global_candidates=cfg["global_candidates"], scopes=cfg["scopes"],
                     ffn_bias=False, attn_kwargs=attn)


def _conv_blocks(channels: int, n: int, expansion: float) -> nn.Sequential:
    # GLIC's convolutional blocks at H/2 (the published GatedTransformCNN).
    return nn.Sequential(*[GatedBlock(channels, channels, expansion=expansion)
                           for _ in range(n)])


# --------------------------------------------------------------------- transforms


def _plus(h: Tensor, aux: Optional[Tensor]) -> Tensor:
    # the wavelet branch's output at this scale, if the branch is on
    return h if aux is None else h + aux


class AnalysisTransform(nn.Module):
    r"""GLIC's ``g_a``: ``(B, 3, H, W)`` -> ``(B, M, H/16, W/16)``.

    Four stride-2 3x3 convolutions; conv blocks after the first, a graph stage
    after the second and the third; with ``wavelet=True`` the wavelet branch's
    output of each scale is added after that scale's blocks (as the published
    code does). ``H`` and ``W`` must be multiples of 16 (:class:`GLIC` pads).
    """

    def __init__(self, C1: int, N: int, M: int, cfg: Dict):
        super().__init__()
        e4, e8 = cfg["ffn_expansion"]
        self.down0 = conv(3, C1, kernel_size=3, stride=2)
        self.blocks0 = _conv_blocks(C1, cfg["conv_blocks"], cfg["conv_expansion"])
        self.down1 = conv(C1, N, kernel_size=3, stride=2)
        self.stage1 = _stage(N, cfg, e4)
        self.down2 = conv(N, N, kernel_size=3, stride=2)
        self.stage2 = _stage(N, cfg, e8)
        self.down3 = conv(N, M, kernel_size=3, stride=2)
        self.wavelet = WaveletAnalysis((3, C1, N, N, M)) if cfg["wavelet"] else None

    def forward(self, x: Tensor) -> Tensor:
        w = self.wavelet(x) if self.wavelet is not None else [None] * 4
        h = _plus(self.blocks0(self.down0(x)), w[0])      # H/2
        h = _plus(self.stage1(self.down1(h)), w[1])       # H/4
        h = _plus(self.stage2(self.down2(h)), w[2])       # H/8
        return _plus(self.down3(h), w[3])                 # H/16


class SynthesisTransform(nn.Module):
    r"""GLIC's ``g_s``: ``(B, M, h, w)`` -> ``(B, 3, 16h, 16w)`` by sub-pixel upsampling,
    mirroring :class:`AnalysisTransform` (graph stages at H/8 and H/4, conv blocks
    at H/2, the inverse wavelet branch added after each scale)."""

    def __init__(self, C1: int, N: int, M: int, cfg: Dict):
        super().__init__()
        e4, e8 = cfg["ffn_expansion"]
        self.up0 = subpel_conv3x3(M, N, 2)
        self.stage0 = _stage(N, cfg, e8)
        self.up1 = subpel_conv3x3(N, N, 2)
        self.stage1 = _stage(N, cfg, e4)
        self.up2 = subpel_conv3x3(N, C1, 2)
        self.blocks2 = _conv_blocks(C1, cfg["conv_blocks"], cfg["conv_expansion"])
        self.up3 = subpel_conv3x3(C1, 3, 2)
        self.wavelet = WaveletSynthesis((M, N, N, C1, 3)) if cfg["wavelet"] else None

    def forward(self, y: Tensor) -> Tensor:
        w = self.wavelet(y) if self.wavelet is not None else [None] * 4
        h = _plus(self.stage0(self.up0(y)), w[0])         # H/8
        h = _plus(self.stage1(self.up1(h)), w[1])         # H/4
        h = _plus(self.blocks2(self.up2(h)), w[2])        # H/2
        return _plus(self.up3(h), w[3])                   # H


# -------------------------------------------------------------------------- model

QualityLike = Union[int, float, Tensor, None]


@register_model("glic")
class GLIC(CompressionModel):
    r"""GLIC codec: ELIC's latent coding with graph-network transforms.

    Keeps CompressAI's contract: ``forward(x) -> {"x_hat", "likelihoods"}``,
    ``compress(x) -> {"strings", "shape"}``, ``decompress(strings, shape) ->
    {"x_hat"}``, ``update()`` before coding, ``aux_loss()``, ``from_state_dict``;
    ``g_a``, ``g_s``, ``h_a``, ``h_s`` and ``latent_codec`` as attributes. Any
    image size is accepted: inputs are padded (replicate) to a multiple of 64
    inside and the output cropped back, so ``shape`` is the original ``(H, W)``.

    A variable-rate model (``levels``) takes ``quality`` (a float in ``[1, levels]``,
    default :attr:`quality`) in ``forward``, ``compress`` and ``decompress``.

    Args:
        N (int): width of the graph stages and the hyperprior (default 192).
        M (int): latent channels (default 320).
        C1 (int): width at H/2 (default 128).
        groups (list[int], optional): latent channel groups; default ELIC's
            ``[16, 16, 32, 64, M - 128]``.
        depth, heads, window, halo, grid, group, k, adaptive:
            graph stage settings (:class:`pyg_glic.nn.blocks.GLICStage`; ``k``
            is the neighbours per node, their mean when ``adaptive``).
        mean_degree (int, optional): deprecated name of ``k`` (a
            :class:`DeprecationWarning`; weight files that record it still load).
        ffn_expansion (float or pair): gated FFN expansion of the graph stages,
            one for both or ``(H/4, H/8)`` (published: ``(4, 2)``).
        global_candidates (str): ``"strided"`` (published: real nodes on a
            16x16 lattice) or ``"pooled"`` (cell means of a 16x16 pooled view).
        scopes (str): ``"dual"`` (local and global layers alternate, published),
            ``"local"`` or ``"global"`` (ablations).
        pos_hidden (int): hidden width of the attention's position MLP
            (published 512).
        pos_bound (float, optional): bound the position bias to ``[0, pos_bound]``
            with ``pos_bound * sigmoid`` (published 16).
        wavelet (bool): the wavelet side branch (published: on).
        conv_blocks (int): conv blocks at H/2 in each transform (default 3).
        conv_expansion (float): their gated FFN expansion (published 4).
        entropy (str): ``"gated"`` (GLIC's gated-block entropy networks) or
            ``"elic"`` (ELIC's light convolutional ones).
        context_width (tuple, optional), context_kernel (int): hidden widths and
            kernel of ELIC's channel-context networks (``entropy="elic"``).
        levels (int, optional): number of trained rate levels of a
            variable-rate model; ``None`` for a fixed-rate model.
        config (str, optional): name recorded in files (set by the factory).
    """

    multiple = 64

    def __init__(self, N: int = 192, M: int = 320, C1: int = 128,
                 groups: Optional[Sequence[int]] = None, *, depth: int = 5, heads: int = 8,
                 window: int = 8, halo: int = 4, grid: int = 16, group: int = 8,
                 k: int = 64, adaptive: bool = True,
                 ffn_expansion: Union[float, Sequence[float]] = (4.0, 2.0),
                 global_candidates: str = "strided", scopes: str = "dual",
                 pos_hidden: int = 512, pos_bound: Optional[float] = 16.0,
                 wavelet: bool = True, conv_blocks: int = 3, conv_expansion: float = 4.0,
                 entropy: str = "gated",
                 context_width: Optional[Sequence[int]] = None, context_kernel: int = 5,
                 levels: Optional[int] = None, config: Optional[str] = None,
                 mean_degree: Optional[int] = None):
        super().__init__()
        if mean_degree is not None:
            warnings.warn("GLIC(mean_degree=...) is deprecated and will be removed in the next "
                          "release: use k=... (the same number)", DeprecationWarning,
                          stacklevel=2)
            k = mean_degree
        groups = list(groups) if groups is not None else [16, 16, 32, 64, M - 128]
        if sum(groups) != M or min(groups) < 1:
            raise ValueError(f"groups {groups} must be positive and sum to M={M}")
        if isinstance(ffn_expansion, (int, float)):
            ffn_expansion = (float(ffn_expansion), float(ffn_expansion))
        ffn_expansion = tuple(float(e) for e in ffn_expansion)
        if len(ffn_expansion) != 2:
            raise ValueError(f"ffn_expansion is one value or (H/4, H/8), got {ffn_expansion}")
        if levels is not None and (isinstance(levels, bool) or int(levels) != levels
                                   or levels < 2):
            raise ValueError(f"levels must be an integer >= 2 (or None), got {levels!r}")
        width = tuple(context_width) if context_width is not None else (224, 128)
        cfg = dict(depth=depth, heads=heads, window=window, halo=halo, grid=grid, group=group,
                   k=k, adaptive=adaptive, ffn_expansion=ffn_expansion,
                   global_candidates=global_candidates, scopes=scopes, pos_hidden=pos_hidden,
                   pos_bound=pos_bound, wavelet=wavelet, conv_blocks=conv_blocks,
                   conv_expansion=float(conv_expansion))
        self.groups = groups
        self.levels = int(levels) if levels is not None else None
        self.hparams = dict(N=N, M=M, C1=C1, groups=list(groups),
                            **dict(cfg, ffn_expansion=list(ffn_expansion)), entropy=entropy,
                            context_width=list(width), context_kernel=context_kernel,
                            levels=self.levels)
        self.config = config
        #: The quality a variable-rate model codes at when none is given.
        self.quality = float(min(3, self.levels)) if self.levels else None

        self.g_a = AnalysisTransform(C1, N, M, cfg)
        self.g_s = SynthesisTransform(C1, N, M, cfg)
        codec = latent_codec(entropy, N, M, groups, context_width=width,
                             context_kernel=context_kernel).latent_codec
        if self.levels is None:
            self.latent_codec = codec
        else:
            # The same modules (no new random draws), in CompressAI's gain codecs.
            hyper = codec["hyper"]
            self.latent_codec = GainHyperpriorLatentCodec(latent_codec={
                "y": codec["y"],
                "hyper": GainHyperLatentCodec(entropy_bottleneck=hyper.entropy_bottleneck,
                                              h_a=hyper.h_a, h_s=hyper.h_s)})
            # Log-gains per level and channel. The latent gains start a factor
            # sqrt(2) apart per level (each lambda is about twice the previous),
            # so the levels code at different rates from the first step.
            L = self.levels
            start = torch.linspace(-0.5, 0.5, L) * math.log(2.0) * (L - 1) / 2
            self.y_gain = nn.Parameter(start.view(L, 1).repeat(1, M))
            self.y_gain_inv = nn.Parameter(-start.view(L, 1).repeat(1, M))
            self.z_gain = nn.Parameter(torch.zeros(L, N))
            self.z_gain_inv = nn.Parameter(torch.zeros(L, N))

    # -- CompressAI's names for the hyperprior transforms -------------------------
    @property
    def h_a(self) -> nn.Module:
        return self.latent_codec["hyper"].h_a

    @property
    def h_s(self) -> nn.Module:
        return self.latent_codec["hyper"].h_s

    # -- variable rate --------------------------------------------------------------
    def gains(self, quality: QualityLike = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""``(y_gain, z_gain, y_gain_inv, z_gain_inv)`` for ``quality``, each
        ``(B or 1, C, 1, 1)``: the learned gains of the two neighbouring levels,
        interpolated geometrically (linearly in the log domain).

        ``quality`` is a number or a ``(B,)`` tensor (one quality per image) in
        ``[1, levels]``.
        """
        if self.levels is None:
            raise ValueError("this GLIC model is fixed-rate (levels=None): it has no gains")
        q = self.quality if quality is None else quality
        q = torch.as_tensor(q, dtype=self.y_gain.dtype, device=self.y_gain.device).reshape(-1)
        if not bool(torch.isfinite(q).all()) or bool((q < 1).any()) \
                or bool((q > self.levels).any()):
            raise ValueError(f"quality must lie in [1, {self.levels}], got "
                             f"{q.tolist() if q.numel() < 8 else q}")
        pos = q - 1
        lo = pos.floor().long().clamp_max(self.levels - 2)
        t = (pos - lo).view(-1, 1)

        def interp(table: Tensor) -> Tensor:
            g = table[lo] * (1 - t) + table[lo + 1] * t
            return g.exp().view(g.size(0), -1, 1, 1)

        return (interp(self.y_gain), interp(self.z_gain), interp(self.y_gain_inv),
                interp(self.z_gain_inv))

    def _check_quality(self, quality: QualityLike) -> None:
        if self.levels is None and quality is not None:
            raise ValueError("this GLIC model is fixed-rate (levels=None); it takes no "
                             "quality (build it with levels= for variable rate)")

    # -- padding -----------------------------------------------------------------
    def _pad(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.size(1) != 3:
            raise ValueError(f"expected an image batch of shape (B, 3, H, W), got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        ph, pw = (-H) % self.multiple, (-W) % self.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    # -- CompressAI contract -------------------------------------------------------
    def forward(self, x: Tensor, quality: QualityLike = None) -> Dict:
        self._check_quality(quality)
        H, W = x.shape[-2:]
        y = self.g_a(self._pad(x))
        if self.levels is None:
            y_out = self.latent_codec(y)
        else:
            y_out = self.latent_codec(y, *self.gains(quality))
        x_hat = self.g_s(y_out["y_hat"])
        return {"x_hat": x_hat[..., :H, :W], "likelihoods": y_out["likelihoods"]}

    def compress(self, x: Tensor, quality: QualityLike = None) -> Dict:
        self._check_quality(quality)
        H, W = x.shape[-2:]
        out = self.compress_latent(self.g_a(self._pad(x)), quality)
        return {"strings": out["strings"], "shape": (H, W)}

    def decompress(self, strings: List[List[bytes]], shape, quality: QualityLike = None
                   ) -> Dict:
        self._check_quality(quality)
        H, W = (int(v) for v in shape)
        Hp, Wp = (-(-v // self.multiple) * self.multiple for v in (H, W))
        y_hat = self.decompress_latent(strings, (Hp // 16, Wp // 16), quality)
        x_hat = self.g_s(y_hat).clamp_(0, 1)
        return {"x_hat": x_hat[..., :H, :W]}

    # -- the latent alone (tiled coding: pyg_glic.codec) ------------------------------
    def compress_latent(self, y: Tensor, quality: QualityLike = None) -> Dict:
        r"""Entropy-code a latent ``y = g_a(x)`` of shape ``(B, M, h, w)`` (``h`` and
        ``w`` multiples of 4): ``{"strings", "y_hat"}``, ``y_hat`` being what
        :meth:`decompress_latent` returns for those strings."""
        self._check_quality(quality)
        if self.levels is None:
            out = self.latent_codec.compress(y)
        else:
            out = self.latent_codec.compress(y, *self.gains(quality))
        return {"strings": out["strings"], "y_hat": out["y_hat"]}

    def decompress_latent(self, strings: List[List[bytes]], hw, quality: QualityLike = None
                          ) -> Tensor:
        r"""The latent ``y_hat`` ``(B, M, h, w)`` of the strings of
        :meth:`compress_latent` for a latent of size ``hw = (h, w)``."""
        self._check_quality(quality)
        h, w = (int(v) for v in hw)
        lshape = {"y": [(g, h, w) for g in self.groups], "hyper": (h // 4, w // 4)}
        if self.levels is None:
            return self.latent_codec.decompress(strings, lshape)["y_hat"]
        _, _, y_inv, z_inv = self.gains(quality)
        return self.latent_codec.decompress(strings, lshape, y_inv, z_inv)["y_hat"]

    def ortho_loss(self) -> Tensor:
        r"""The wavelet branch's orthogonality penalty (0 without the branch);
        the training loss adds it with weight 0.1 (published)."""
        return orthogonality_loss(self)

    @classmethod
    def from_state_dict(cls, state_dict: Dict[str, Tensor], **kwargs) -> "GLIC":
        r"""A model rebuilt from a state dict saved by this class.

        The configuration is read from ``state_dict["_hparams"]`` when present
        (the zoo's weight files carry it), else taken from ``kwargs``. Floating
        tensors are loaded as fp32 whatever their stored precision (exported
        weight files are fp16; CompressAI resizes the entropy models' buffers to
        the stored tensors, so they must not arrive in fp16).
        """
        state_dict = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                      for k, v in state_dict.items()}
        hp = state_dict.pop("_hparams", None)
        params = dict(hp) if isinstance(hp, dict) else {}
        if "mean_degree" in params:  # files written before k was the one spelling
            params.setdefault("k", params.pop("mean_degree"))
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

#: Named base configurations. ``glic`` is the published model part for part
#: (69.4 M parameters; see the README's list of what matches). ``glic-lite`` is
#: its small sibling, trained and shipped as one variable-rate model: the same
#: graph stages (strided global graph, adaptive degree, wavelet branch) at half
#: the width and depth 2, with ELIC's light entropy networks (GLIC's gated
#: parameter aggregation runs 35 M parameters at H/16 for every latent pixel,
#: which would dominate a small model's cost and weight file) and one H/2 conv
#: block of expansion 2 (at expansion 4 that block's FFN was a third of a
#: training step on the CPU).
BASE_CONFIGS: Dict[str, Dict] = {
    "glic": dict(N=192, M=320, C1=128, depth=5, heads=8, window=8, halo=4, grid=16, group=8,
                 k=64, adaptive=True, ffn_expansion=(4.0, 2.0), pos_hidden=512,
                 pos_bound=16.0, wavelet=True, conv_blocks=3, entropy="gated"),
    "glic-lite": dict(N=96, M=192, C1=64, groups=[16, 16, 32, 64, 64], depth=2, heads=4,
                      window=8, halo=4, grid=16, group=8, k=16, adaptive=True,
                      ffn_expansion=(2.0, 1.0), pos_hidden=64, pos_bound=16.0, wavelet=True,
                      conv_blocks=1, conv_expansion=2.0, entropy="elic", context_width=(96, 64),
                      context_kernel=3, levels=6),
    #: A tiny configuration for tests and smoke runs (seconds on a CPU).
    "glic-tiny": dict(N=32, M=64, C1=16, groups=[8, 8, 16, 32], depth=2, heads=2,
                      window=4, halo=2, grid=4, group=2, k=8, adaptive=True,
                      ffn_expansion=(2.0, 1.0), pos_hidden=32, pos_bound=16.0, wavelet=True,
                      conv_blocks=1, conv_expansion=2.0, entropy="elic", context_width=(32, 32),
                      context_kernel=3, levels=6),
}

#: Ablation variants, named ``"<base>/<variant>"`` (e.g. ``"glic-lite/fixed-degree"``):
#: each changes one design decision the paper (or the AuxT paper) claims helps.
VARIANTS: Dict[str, Dict] = {
    "fixed-degree": dict(adaptive=False),
    "local-only": dict(scopes="local"),
    "global-only": dict(scopes="global"),
    "pooled-global": dict(global_candidates="pooled"),
    "no-wavelet": dict(wavelet=False),
}

CONFIGS: Dict[str, Dict] = dict(BASE_CONFIGS)
for _base, _cfg in BASE_CONFIGS.items():
    for _name, _change in VARIANTS.items():
        CONFIGS[f"{_base}/{_name}"] = dict(_cfg, **_change)


def glic_model(config: str = "glic-lite", **overrides) -> GLIC:
    r"""A randomly initialised :class:`GLIC` of a named configuration."""
    if config not in CONFIGS:
        raise ValueError(f"unknown GLIC configuration {config!r}; expected one of "
                         f"{sorted(CONFIGS)}")
    return GLIC(**dict(CONFIGS[config], **overrides), config=config)
