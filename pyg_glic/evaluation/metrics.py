r"""Image quality and rate metrics on decoded 8-bit RGB images.

Conventions follow CompressAI's evaluator: PSNR-RGB is computed on the three RGB
channels together with a peak of 255 (``10 log10(255^2 / MSE)``), MS-SSIM-RGB
with ``pytorch_msssim`` (data range 1, default 5 scales, Gaussian window 11),
bits per pixel from the size of the coded file over the original pixels.
"""
from __future__ import annotations

import math

import numpy as np
import torch

#: MS-SSIM with five scales and an 11-tap window needs sides above this.
MS_SSIM_MIN_SIDE = 160


def _as_uint8(a) -> np.ndarray:
    if torch.is_tensor(a):
        from ..utils.image import to_uint8

        return to_uint8(a)
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {a.dtype} {a.shape}")
    return a


def psnr_rgb(ref, test) -> float:
    r"""PSNR (dB) between two ``(H, W, 3)`` uint8 images (or ``(1, 3, H, W)`` tensors in [0, 1]).

    ``inf`` for identical images.
    """
    a, b = _as_uint8(ref), _as_uint8(test)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} and {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def ms_ssim_rgb(ref, test, device=None) -> float:
    r"""MS-SSIM of two uint8 RGB images; ``nan`` when a side is 160 pixels or less.

    ``device``: where to compute it (a CUDA device is much faster on large images).
    """
    from pytorch_msssim import ms_ssim

    a, b = _as_uint8(ref), _as_uint8(test)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} and {b.shape}")
    if min(a.shape[:2]) <= MS_SSIM_MIN_SIDE:
        return float("nan")

    def t(x):
        return torch.from_numpy(x.copy()).to(device).permute(2, 0, 1)[None].float().div(255)

    return float(ms_ssim(t(a), t(b), data_range=1.0))


def bpp(num_bytes: int, height: int, width: int) -> float:
    r"""Bits per pixel of ``num_bytes`` for an ``height x width`` image."""
    return 8.0 * num_bytes / (height * width)
