import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from pyg_glic.evaluation import classical as C
from pyg_glic.evaluation.metrics import bpp, ms_ssim_rgb, psnr_rgb


def _image(h=48, w=40, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 6, y * 5, (x + y) * 3], -1) + rng.integers(-20, 21, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def test_psnr_hand_values():
    a = np.full((4, 4, 3), 100, np.uint8)
    assert psnr_rgb(a, a) == math.inf
    b = a.copy()
    b[..., 0] += 3  # MSE = 9 / 3 = 3 over the RGB channels
    assert psnr_rgb(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 3))
    t = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
    assert psnr_rgb(t, b) == pytest.approx(psnr_rgb(a, b))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_rgb(a, a[:2])


def test_ms_ssim_needs_large_images():
    small = _image(48, 40)
    assert math.isnan(ms_ssim_rgb(small, small))
    big = _image(176, 168)
    assert ms_ssim_rgb(big, big) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(big.astype(int) + 30, 0, 255).astype(np.uint8)
    assert ms_ssim_rgb(big, noisy) < 1.0


@pytest.mark.parametrize("name", sorted(C.CODECS))
def test_round_trip_rate_is_the_file_size(name):
    codec = C.CODECS[name]
    if not codec.available():
        pytest.skip(f"Pillow has no {codec.label} encoder here")
    rgb = _image()
    value = codec.sweep[len(codec.sweep) // 2]
    data = codec.encode(rgb, value)
    assert data == codec.encode(rgb, value)  # deterministic
    r = C.measure(rgb, codec, value)
    assert r["bytes"] == len(data)
    assert r["bpp"] == pytest.approx(bpp(len(data), 48, 40)) == 8 * len(data) / (48 * 40)
    dec = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert dec.shape == rgb.shape
    assert r["psnr-rgb"] == pytest.approx(psnr_rgb(rgb, dec))
    assert 15 < r["psnr-rgb"] < 60
    assert math.isnan(r["ms-ssim-rgb"])  # 48x40 is too small for MS-SSIM
    assert r["encoding_time"] >= 0 and r["decoding_time"] >= 0


def test_sweeps_raise_rate():
    rgb = _image(64, 64)
    for key in ("jpeg", "webp"):
        codec = C.CODECS[key]
        sizes = [len(codec.encode(rgb, v)) for v in (codec.sweep[0], codec.sweep[-1])]
        assert sizes[0] < sizes[1]


def test_resolve_names():
    assert list(C.resolve(["JPEG", "jpeg-2000", "webp"])) == ["jpeg", "jpeg2000", "webp"]
    with pytest.raises(ValueError, match="unknown classical codec 'heic'"):
        C.resolve(["heic"])
    with pytest.raises(ValueError, match="quality must be in 0..100"):
        C.CODECS["jpeg"].check_setting(101)
    with pytest.raises(ValueError, match="target bpp"):
        C.CODECS["jpeg2000"].check_setting(0)
