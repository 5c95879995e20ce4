r"""The shipped glic-lite weights: they load offline, code for real, and are trained.

glic-lite is one variable-rate model (``weights/glic-lite.pt``, every quality in
[1, 6]). Checked against independent facts, not against saved outputs: the
decoder reproduces the encoder-side reconstruction, the real bitstream matches
the rate the likelihoods predict, PSNR is far above what untrained weights give
(about 8 dB), the file records the fingerprint of the shipped file, and rate and
PSNR rise with the quality, fractional qualities included.

Without glic-lite.pt (the training campaign exports it) the tests that need the
weights skip; the ones about what is (not) shipped always run.
The zoo without shipped weights is tested in tests/models/test_zoo.py.
"""
import math
from pathlib import Path

import pytest
import torch

from pyg_glic import codec
from pyg_glic.utils.image import load_image
from pyg_glic.zoo import (codec_name, glic, shipped_qualities, shipped_weights,
                          weights_fingerprint, weights_path)

ASSET = Path(__file__).resolve().parents[2] / "pyg_glic" / "assets" / "kodim23.png"
SHIPS = weights_path("glic-lite").is_file()
QUALITIES = [1, 2, 2.5, 3, 4.25, 6]

needs_weights = pytest.mark.skipif(not SHIPS, reason="no glic-lite weights ship yet")


def test_what_ships_is_consistent():
    # runs with or without weights: each listed file exists and is named as shipped
    for config, q in shipped_weights():
        assert weights_path(config, q).is_file()
        assert codec_name(config, q) == config
    assert (("glic-lite", None) in shipped_weights()) == SHIPS
    assert shipped_qualities("glic-lite") == ([1, 2, 3, 4, 5, 6] if SHIPS else [])
    if not SHIPS:
        assert codec_name("glic-lite") == "glic-lite+untrained"


@pytest.fixture(scope="module")
def crop():
    x = load_image(ASSET)
    return x[..., 128:320, 192:448].contiguous()  # 192x256, a face and background


@pytest.fixture(scope="module")
def coded(crop, one_thread):
    # one intra-op thread, as the codec computes: the forward pass then sees the same
    # latent (other thread counts round g_a differently, which can move a rounding)
    model = glic("glic-lite", 3, pretrained=True)
    assert not model.training and model.levels == 6
    out = {}
    for q in QUALITIES:
        data = codec.compress(crop, "glic-lite", q, model=model)
        x_hat, header = codec.decompress(data, model=model)
        with torch.no_grad():
            fwd = model(crop, quality=q)
        out[q] = (data, x_hat, fwd, header)
    return out


def _psnr(a, b):
    return 10 * math.log10(1.0 / float((a - b).pow(2).mean()))


@needs_weights
def test_files_name_the_shipped_weights(coded):
    state = torch.load(weights_path("glic-lite"), map_location="cpu", weights_only=True)
    for q, (data, _, _, header) in coded.items():
        assert header.config == "glic-lite" and header.quality == q
        assert header.fingerprint == weights_fingerprint(state)
    # and decode with the weights the decoder loads itself
    x_hat, _ = codec.decompress(coded[2.5][0])
    torch.testing.assert_close(x_hat, coded[2.5][1], atol=0, rtol=0)


@needs_weights
@pytest.mark.parametrize("q", QUALITIES)
def test_pretrained_round_trip(coded, crop, q):
    data, x_hat, fwd, header = coded[q]
    strings = [[b] for b in header.strings]
    assert x_hat.shape == crop.shape
    # the decoder's reconstruction is the encoder side's (to float rounding of
    # the separate passes, well under a quarter of an 8-bit step)
    torch.testing.assert_close(x_hat, fwd["x_hat"].clamp(0, 1), atol=1e-3, rtol=0)
    # trained: far above untrained weights (~8 dB) on a natural image
    assert _psnr(x_hat, crop) > 22.0
    # the coded strings are close to the rate the likelihoods predict (each
    # range-coded string ends with a few bytes of flush)
    est_bits = sum(float(-torch.log2(v).sum()) for v in fwd["likelihoods"].values())
    real_bits = 8 * sum(len(s[0]) for s in strings)
    assert abs(real_bits - est_bits) <= 0.05 * est_bits + 8 * 8 * len(strings), (real_bits, est_bits)
    # the file adds only its header and length prefixes to the strings
    assert 8 * len(data) - real_bits <= 8 * (64 + 4 * len(strings))


@needs_weights
def test_rate_and_quality_rise_with_quality(coded, crop):
    bpp = [8 * len(coded[q][0]) / (crop.shape[-1] * crop.shape[-2]) for q in QUALITIES]
    psnr = [_psnr(coded[q][1], crop) for q in QUALITIES]
    assert all(a < b for a, b in zip(bpp, bpp[1:])), bpp
    assert all(a < b for a, b in zip(psnr, psnr[1:])), psnr


@needs_weights
def test_rate_control_with_the_shipped_weights(coded, crop):
    model = glic("glic-lite", 3, pretrained=True)
    target = (len(coded[2][0]) + len(coded[4.25][0])) // 2
    data, q = codec.compress_to_size(crop, "glic-lite", max_bytes=target, model=model)
    assert len(data) <= target and 2 <= q <= 4.25
