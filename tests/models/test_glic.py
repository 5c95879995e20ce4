import pytest
import torch
from compressai.registry import MODELS

from pyg_glic.models.glic import BASE_CONFIGS, CONFIGS, GLIC, VARIANTS, glic_model


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
    # the lower bound. Fixing the predicted scales near 8 (the scale half of
    # each group's last entropy-parameter conv) gives an ordinary rate.
    with torch.no_grad():
        for lc in net.latent_codec["y"].latent_codec.values():
            last = [m for m in lc.entropy_parameters.modules()
                    if isinstance(m, torch.nn.Conv2d)][-1]
            last.weight.mul_(0.01)
            last.bias[:last.out_channels // 2] = 8.0
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


def test_k_is_the_one_spelling_of_the_degree(tiny):
    # weight files written before record the stage degree as mean_degree: they load
    # (the shipped glic-lite is one); the old keyword warns and means k
    sd = tiny.state_dict_with_config()
    assert "mean_degree" not in sd["_hparams"] and sd["_hparams"]["k"] == 8
    sd["_hparams"]["mean_degree"] = sd["_hparams"].pop("k")
    net = GLIC.from_state_dict(sd)
    assert net.hparams == tiny.hparams
    stages = [m for m in net.modules() if type(m).__name__ == "GLICStage"]
    assert stages and all(m.k == 8 for m in stages)
    with pytest.warns(DeprecationWarning, match=r"mean_degree=\.\.\.\) is deprecated.*k="):
        old = GLIC(**dict(CONFIGS["glic-tiny"], k=64), mean_degree=5)
    assert old.hparams["k"] == 5 and "mean_degree" not in old.hparams
    assert all(m.k == 5 for m in old.modules() if type(m).__name__ == "GLICStage")


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


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_configs_sizes():
    assert CONFIGS["glic"]["N"] == 192 and CONFIGS["glic"]["M"] == 320
    assert CONFIGS["glic"]["depth"] == 5 and CONFIGS["glic"]["heads"] == 8
    lite = glic_model("glic-lite")
    n = _count(lite)
    # Shipped as one fp16 file of at most 14 MB.
    assert 2 * n < 14e6, n
    # The architecture the training campaign's checkpoints hold (the README's "6.0 M"):
    # any change to it, however small, changes this count and breaks those checkpoints.
    assert n == 5_951_404, n


def test_glic_has_the_published_parameter_count():
    # The released GLIC model counts 69.37 M parameters (the paper: 69.4 M).
    net = glic_model("glic")
    n = _count(net)
    assert abs(n - 69.37e6) <= 0.005 * 69.37e6, n
    # Its parts, as the notes break them down: parameter aggregation alone is
    # about 35 M, the wavelet branch about 1 M.
    agg = sum(_count(lc.entropy_parameters)
              for lc in net.latent_codec["y"].latent_codec.values())
    assert abs(agg - 35.0e6) <= 0.01 * 35.0e6, agg
    wav = _count(net.g_a.wavelet) + _count(net.g_s.wavelet)
    assert 0.9e6 < wav < 1.1e6, wav


def test_variable_rate_gains_interpolate_geometrically(tiny):
    assert tiny.levels == 6
    with torch.no_grad():
        tiny.y_gain.copy_(torch.randn_like(tiny.y_gain))
    g2, g3 = tiny.gains(2)[0], tiny.gains(3)[0]
    assert torch.allclose(g2.view(-1), tiny.y_gain[1].exp())
    assert torch.allclose(tiny.gains(2.5)[0], (g2 * g3).sqrt())
    assert torch.allclose(tiny.gains(6)[0].view(-1), tiny.y_gain[5].exp())
    per_image = tiny.gains(torch.tensor([1.0, 4.0]))[0]
    assert per_image.shape == (2, tiny.y_gain.size(1), 1, 1)
    assert torch.allclose(per_image[1].view(-1), tiny.y_gain[3].exp())
    for bad in (0.5, 6.01, float("nan")):
        with pytest.raises(ValueError, match=r"quality must lie in \[1, 6\]"):
            tiny.gains(bad)


def test_fixed_rate_model_takes_no_quality():
    torch.manual_seed(0)
    net = glic_model("glic-tiny", levels=None).eval()
    assert not any(n.endswith("gain") for n, _ in net.named_parameters())
    with pytest.raises(ValueError, match="fixed-rate"):
        net(torch.rand(1, 3, 64, 64), quality=2)


@pytest.mark.parametrize("quality", [1, 2.5, 4.75, 6])
def test_variable_rate_round_trip_at_any_quality(quality):
    torch.manual_seed(0)
    net = _in_range_scales(glic_model("glic-tiny").eval())
    torch.manual_seed(1)
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        fwd = net(x, quality=quality)
        enc = net.compress(x, quality=quality)
        dec = net.decompress(enc["strings"], enc["shape"], quality=quality)
        other = net.decompress(enc["strings"], enc["shape"], quality=quality + 1 if quality < 6 else 5)
    assert torch.allclose(dec["x_hat"], fwd["x_hat"].clamp(0, 1), atol=1e-4)
    # Decoding at another quality gives another picture: the gains matter.
    assert not torch.allclose(dec["x_hat"], other["x_hat"].clamp(0, 1), atol=1e-3)


def test_rate_rises_with_quality():
    torch.manual_seed(0)
    net = _in_range_scales(glic_model("glic-tiny").eval())
    torch.manual_seed(1)
    x = torch.rand(1, 3, 64, 64)
    sizes = []
    with torch.no_grad():
        for q in (1, 2, 3.5, 5, 6):
            sizes.append(sum(len(s[0]) for s in net.compress(x, quality=q)["strings"]))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1], sizes


def test_orthogonality_penalty_of_the_wavelet_branch():
    torch.manual_seed(0)
    net = glic_model("glic-tiny")
    assert float(net.ortho_loss().detach()) >= 0
    with torch.no_grad():
        for p in net.g_a.wavelet.parameters():
            if p.dim() == 2:
                p.mul_(3.0)
    assert float(net.ortho_loss().detach()) > 0.1
    assert float(glic_model("glic-tiny/no-wavelet").ortho_loss()) == 0.0


def test_ablation_variants_change_one_thing():
    assert set(VARIANTS) == {"fixed-degree", "local-only", "global-only", "pooled-global",
                             "no-wavelet"}
    for base in BASE_CONFIGS:
        for v in VARIANTS:
            assert f"{base}/{v}" in CONFIGS
    torch.manual_seed(0)
    base = glic_model("glic-tiny")
    nets = {v: glic_model(f"glic-tiny/{v}") for v in VARIANTS}
    stage = lambda net: net.g_a.stage1  # noqa: E731
    assert stage(base).adaptive and not stage(nets["fixed-degree"]).adaptive
    assert {b.scope for b in stage(base).blocks} == {"local", "global"}
    assert {b.scope for b in stage(nets["local-only"]).blocks} == {"local"}
    assert {b.scope for b in stage(nets["global-only"]).blocks} == {"global"}
    assert nets["no-wavelet"].g_a.wavelet is None and base.g_a.wavelet is not None
    assert _count(nets["no-wavelet"]) < _count(base)
    assert _count(nets["fixed-degree"]) == _count(base)


@pytest.mark.parametrize("variant", [None, *VARIANTS])
def test_every_variant_codes_and_decodes(variant):
    name = "glic-tiny" if variant is None else f"glic-tiny/{variant}"
    torch.manual_seed(0)
    net = glic_model(name).eval()
    net.update(force=True)
    x = torch.rand(1, 3, 70, 90)
    with torch.no_grad():
        enc = net.compress(x, quality=2.5)
        dec = net.decompress(enc["strings"], enc["shape"], quality=2.5)
    assert dec["x_hat"].shape == x.shape
    assert torch.isfinite(dec["x_hat"]).all()
