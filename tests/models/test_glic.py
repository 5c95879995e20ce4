import math

import pytest
import torch
from compressai.registry import MODELS

from pyg_glic.models.glic import CONFIGS, GLIC, glic_model


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = glic_model("glic-tiny").eval()
    net.update(force=True)
    return net


def test_registered_in_compressai():
    assert MODELS["glic"] is GLIC


@pytest.mark.parametrize("hw", [(64, 64), (70, 100)])
def test_forward_shapes_any_size(tiny, hw):
    x = torch.rand(2, 3, *hw)
    out = tiny(x)
    assert out["x_hat"].shape == x.shape
    assert set(out["likelihoods"]) == {"y", "z"}


def _in_range_scales(net):
    # A random model predicts tiny Gaussian scales, so nearly every symbol lands
    # in the coder's overflow tail and the likelihood estimate measures only
    # the lower bound. Fixing the predicted scales near 3 (the scale half of
    # each group's last entropy-parameter conv) gives an ordinary rate.
    with torch.no_grad():
        for lc in net.latent_codec["y"].latent_codec.values():
            last = [m for m in lc.entropy_parameters.modules()
                    if isinstance(m, torch.nn.Conv2d)][-1]
            last.weight.mul_(0.01)
            last.bias[:last.out_channels // 2] = 3.0
    net.update(force=True)
    return net


def test_decompress_reproduces_forward_and_rate_matches_estimate():
    torch.manual_seed(0)
    tiny = _in_range_scales(glic_model("glic-tiny").eval())
    torch.manual_seed(1)
    x = torch.rand(1, 3, 72, 90)
    with torch.no_grad():
        fwd = tiny(x)
        enc = tiny.compress(x)
        dec = tiny.decompress(enc["strings"], enc["shape"])
    tail_bits = sum(float((-torch.log2(v)).clamp_min(15).sub(15).sum()) for v in fwd["likelihoods"].values())
    assert tail_bits == 0, "the test model must not code symbols in the tails"
    assert enc["shape"] == (72, 90)
    assert dec["x_hat"].shape == x.shape
    # Same device, eval mode: the decoder's reconstruction is the forward one.
    assert torch.allclose(dec["x_hat"], fwd["x_hat"].clamp(0, 1), atol=1e-4)
    # Real bits against the likelihood estimate (on the padded latents).
    real = sum(len(s[0]) for s in enc["strings"]) * 8
    est = sum(float(-torch.log2(v).sum()) for v in fwd["likelihoods"].values())
    assert abs(real - est) <= 0.05 * est + 8 * len(enc["strings"]) * 2, (real, est)


def test_from_state_dict_round_trip(tiny):
    sd = tiny.state_dict_with_config()
    net = GLIC.from_state_dict(sd).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net.g_a(x), tiny.g_a(x))
    assert net.hparams == tiny.hparams


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = glic_model("glic-tiny").train()
    out = net(torch.rand(1, 3, 64, 64))
    bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / 64 / 64
    loss = bpp + 100 * (out["x_hat"] - 0.5).pow(2).mean() + net.aux_loss()
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_bad_input():
    net = glic_model("glic-tiny")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="unknown GLIC configuration"):
        glic_model("glic-huge")


def test_configs_sizes():
    assert CONFIGS["glic"]["N"] == 192 and CONFIGS["glic"]["M"] == 320
    assert CONFIGS["glic"]["depth"] == 5 and CONFIGS["glic"]["heads"] == 8
    lite = glic_model("glic-lite")
    n = sum(p.numel() for p in lite.parameters())
    assert n < 20e6, n
    assert math.isfinite(n)
