r"""The rate-distortion objective, in fp32 whatever the autocast precision."""
from __future__ import annotations

import functools
import math
from typing import Dict, Optional

import torch
from compressai.entropy_models import EntropyModel
from compressai.losses import RateDistortionLoss
from torch import Tensor, nn


class RDLoss(nn.Module):
    r"""CompressAI's :class:`~compressai.losses.RateDistortionLoss` on fp32 copies.

    .. math::
        \mathcal{L} = \lambda \cdot 255^2 \cdot \mathrm{MSE}(x, \hat x) + \mathrm{bpp},
        \qquad \mathrm{bpp} = \frac{\sum -\log_2 p}{B H W}

    The outputs are cast to fp32 first, so the loss is the same under bf16/fp16
    autocast. Returns ``{"loss", "bpp_loss", "mse_loss"}``.

    Args:
        lmbda (float): the rate-distortion trade-off (``pyg_glic.zoo.QUALITY_LAMBDAS``).
    """

    def __init__(self, lmbda: float):
        super().__init__()
        self.lmbda = float(lmbda)
        self.inner = RateDistortionLoss(lmbda=self.lmbda, metric="mse")

    def forward(self, output: Dict, target: Tensor, lmbda: Optional[float] = None
                ) -> Dict[str, Tensor]:
        r"""``lmbda`` overrides the trade-off for this call (a variable-rate model's
        level of the batch)."""
        out = {"x_hat": output["x_hat"].float(),
               "likelihoods": {k: v.float() for k, v in output["likelihoods"].items()}}
        if lmbda is None or float(lmbda) == self.lmbda:
            return self.inner(out, target.float())
        r = self.inner(out, target.float())
        r["loss"] = float(lmbda) * 255 ** 2 * r["mse_loss"] + r["bpp_loss"]
        return r

    def extra_repr(self) -> str:
        return f"lmbda={self.lmbda}"


def psnr_from_mse(mse: float) -> float:
    return float("inf") if mse <= 0 else 10 * math.log10(1.0 / mse)


def keep_entropy_models_fp32(model: nn.Module, device_type: str) -> int:
    r"""Run every CompressAI entropy model of ``model`` in fp32, outside autocast.

    Under bf16/fp16 autocast the transforms run in low precision, but likelihoods
    (and so the rate) computed in bf16 are too coarse to train on. Each entropy
    model's ``forward`` is wrapped (on the instance; the state dict is unchanged)
    to disable autocast and cast its floating inputs to fp32.

    Returns:
        the number of entropy models wrapped.
    """
    n = 0
    for m in model.modules():
        if isinstance(m, EntropyModel) and not getattr(m, "_pyg_glic_fp32", False):
            m.forward = _fp32_forward(m.forward, device_type)
            m._pyg_glic_fp32 = True
            n += 1
    return n


def _fp32_forward(fwd, device_type: str):
    def cast(v):
        return v.float() if torch.is_tensor(v) and v.is_floating_point() else v

    @functools.wraps(fwd)
    def forward(*args, **kwargs):
        with torch.autocast(device_type, enabled=False):
            return fwd(*[cast(a) for a in args], **{k: cast(v) for k, v in kwargs.items()})

    return forward
