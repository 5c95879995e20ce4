import math

import compressai.models.sensetime as sensetime
import pytest
import torch
import torch.nn.functional as F
from compressai.models import CompressionModel, Elic2022Official

from pyg_glic.models._entropy import GatedBlock, ParameterAggregationBlock, latent_codec

GLIC_GROUPS = [16, 16, 32, 64, 192]
SMALL = dict(N=32, M=64, groups=[8, 8, 16, 32])


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# Independent counts, from the block definitions (GLIC_NOTES, the published file).

def _ramp(a: int, b: int, floor: int):
    # CompressAI's sequential_channel_ramp: 4 widths linearly from a to b, floored,
    # the inner two clipped from below.
    ch = [math.floor(a + (b - a) * j / 3) for j in range(4)]
    return [ch[0], max(ch[1], floor), max(ch[2], floor), ch[3]]


def _gated_block_params(i: int, o: int, e: float, k: int = 5) -> int:
    h = int(o * e)
    mixer = (i * i + i) + (i * k * k + i) + (i * o + o) + ((i * o + o) if i != o else 0)
    return mixer + 2 * o + o * 2 * h + h * o


def _param_block_params(i: int, o: int, e: float = 4) -> int:
    h = int(o * e)
    return (i * o + o) + 2 * o + o * 2 * h + h * o


def _conv(i: int, o: int, k: int) -> int:
    return i * o * k * k + o


def _published_counts(N: int, M: int, groups):
    h_a = (_conv(M, N, 3) + 2 * _conv(N, N, 3)
           + 4 * _gated_block_params(N, N, 2))
    h_s = (2 * _conv(N, 4 * N, 3) + _conv(N, 2 * N, 3)
           + 4 * _gated_block_params(N, N, 2))
    ch_ctx = pa = 0
    for k, g in enumerate(groups):
        if k > 0:
            w = _ramp(sum(groups[:k]), 2 * g, N)
            ch_ctx += sum(_gated_block_params(a, b, 4) for a, b in zip(w[:-1], w[1:]))
        w = _ramp(2 * g + (k > 0) * 2 * g + 2 * N, 2 * g, 2 * N)
        pa += sum(_param_block_params(a, b) for a, b in zip(w[:-1], w[1:]))
    return dict(h_a=h_a, h_s=h_s, channel_context=ch_ctx, param_aggregation=pa)


def _parts(codec):
    y = codec["y"]
    return dict(
        h_a=_count(codec["hyper"].h_a),
        h_s=_count(codec["hyper"].h_s),
        channel_context=_count(y.channel_context),
        spatial_context=sum(_count(lc.context_prediction) for lc in y.latent_codec.values()),
        param_aggregation=sum(_count(lc.entropy_parameters)
                              for lc in y.latent_codec.values()),
        entropy_bottleneck=_count(codec["hyper"].entropy_bottleneck),
    )


# ------------------------------------------------------------------ (a) ELIC


def test_elic_defaults_match_elic2022official():
    ref = Elic2022Official(N=192, M=320).latent_codec
    ours = latent_codec("elic", 192, 320, GLIC_GROUPS).latent_codec
    assert _count(ours) == _count(ref)
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)
    assert {k: v.shape for k, v in our_sd.items()} == {k: v.shape for k, v in ref_sd.items()}


def test_elic_same_random_draws_as_elic2022official(monkeypatch):
    # Elic2022Official builds g_a, g_s (stride-2 convs only), then its latent codec
    # starting with h_a's stride-1 conv: record the random state there.
    seen = {}
    conv = sensetime.conv

    def spy(in_ch, out_ch, kernel_size=5, stride=2):
        if stride == 1 and "rng" not in seen:
            seen["rng"] = torch.get_rng_state()
        return conv(in_ch, out_ch, kernel_size=kernel_size, stride=stride)

    monkeypatch.setattr(sensetime, "conv", spy)
    torch.manual_seed(0)
    ref = Elic2022Official(**SMALL).latent_codec.state_dict()
    torch.set_rng_state(seen["rng"])
    ours = latent_codec("elic", **SMALL).latent_codec.state_dict()
    assert list(ours) == list(ref)
    for key in ref:
        assert torch.equal(ours[key], ref[key]), key


def test_elic_context_width_and_kernel():
    parts = latent_codec("elic", 96, 192, [16, 16, 32, 64, 64], context_width=(96, 64),
                         context_kernel=3)
    ctx = parts.latent_codec["y"].channel_context["y4"]
    assert [(m.in_channels, m.out_channels, m.kernel_size) for m in ctx[::2]] == [
        (128, 96, (3, 3)), (96, 64, (3, 3)), (64, 128, (3, 3))]


# ----------------------------------------------------------------- (b) GLIC sizes


def test_gated_published_sizes():
    parts = latent_codec("gated", 192, 320, GLIC_GROUPS)
    counts = _parts(parts.latent_codec)
    expected = _published_counts(192, 320, GLIC_GROUPS)
    for name, value in expected.items():
        assert counts[name] == value, name
    # GLIC_NOTES: parameter aggregation alone is 35.0 M.
    assert abs(counts["param_aggregation"] / 35.0e6 - 1) < 0.005
    # ... and for the last group 1152 -> 896 -> 640 -> 384 channels.
    last = parts.latent_codec["y"].latent_codec["y4"].entropy_parameters
    blocks = [m for m in last if isinstance(m, ParameterAggregationBlock)]
    assert [(b.in_channels, b.out_channels) for b in blocks] == [
        (1152, 896), (896, 640), (640, 384)]
    assert _count(parts.latent_codec) == sum(counts.values())
    assert parts.h_a is parts.latent_codec["hyper"].h_a
    assert parts.h_s is parts.latent_codec["hyper"].h_s


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="conv"), "kind"),
    (dict(groups=[8, 8, 16]), "sum to M"),
    (dict(context_kernel=4), "odd"),
    (dict(context_width=(32, 32)), "elic"),
])
def test_invalid_arguments(kwargs, match):
    args = dict(kind="gated", **SMALL)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        latent_codec(**args)


# ------------------------------------------------------------ (c) coding round trip


class _Holder(CompressionModel):
    def __init__(self, codec):
        super().__init__()
        self.latent_codec = codec


@pytest.mark.parametrize("kind", ["gated", "elic"])
def test_forward_and_round_trip(kind):
    torch.manual_seed(0)
    net = _Holder(latent_codec(kind, **SMALL).latent_codec).eval()
    net.update(force=True)
    y = torch.randn(1, SMALL["M"], 8, 8)
    with torch.no_grad():
        out = net.latent_codec(y)
        enc = net.latent_codec.compress(y)
        dec = net.latent_codec.decompress(enc["strings"], enc["shape"])
    assert out["y_hat"].shape == y.shape
    assert out["likelihoods"]["y"].shape == y.shape
    assert out["likelihoods"]["z"].shape == (1, SMALL["N"], 2, 2)
    assert len(enc["strings"]) == 2 * len(SMALL["groups"]) + 1
    assert torch.equal(dec["y_hat"], enc["y_hat"])
    assert torch.allclose(dec["y_hat"], out["y_hat"], atol=1e-4)


# ------------------------------------------------------------------- (d) blocks


def _reference_gated_block(block: GatedBlock, x):
    m = block.mixer
    h = F.conv2d(x, m.conv1[0].weight, m.conv1[0].bias)
    h = F.leaky_relu(h, 0.01)
    h = F.conv2d(h, m.depth_conv.weight, m.depth_conv.bias,
                 padding=block.kernel_size // 2, groups=x.size(1))
    h = F.conv2d(h, m.conv2.weight, m.conv2.bias)
    h = h + (x if m.adaptor is None else F.conv2d(x, m.adaptor.weight, m.adaptor.bias))
    mu = h.mean(1, keepdim=True)
    var = (h - mu).pow(2).mean(1, keepdim=True)
    n = (h - mu) / (var + 1e-6).sqrt()
    n = n * block.norm2.weight.view(1, -1, 1, 1) + block.norm2.bias.view(1, -1, 1, 1)
    a, b = F.conv2d(n, block.mlp.project_in.weight).chunk(2, dim=1)
    return h + F.conv2d(F.gelu(a) * b, block.mlp.project_out.weight)


@pytest.mark.parametrize("cin, cout, expansion, kernel", [
    (16, 16, 4, 5), (12, 20, 2, 3), (20, 8, 1.5, 5)])
def test_gated_block(cin, cout, expansion, kernel):
    torch.manual_seed(0)
    block = GatedBlock(cin, cout, expansion=expansion, kernel_size=kernel).double()
    with torch.no_grad():  # non-trivial norm affine parameters
        block.norm2.weight.normal_()
        block.norm2.bias.normal_()
    assert (block.mixer.adaptor is None) == (cin == cout)
    assert block.mlp.project_in.out_channels == 2 * int(cout * expansion)
    assert block.mlp.project_in.bias is None and block.mlp.project_out.bias is None
    x = torch.randn(2, cin, 7, 9, dtype=torch.double, requires_grad=True)
    out = block(x)
    assert out.shape == (2, cout, 7, 9)
    assert torch.allclose(out, _reference_gated_block(block, x), atol=1e-10)
    out.square().sum().backward()
    assert x.grad is not None
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert block.extra_repr() == f"{cin}, {cout}, expansion={expansion}, kernel_size={kernel}"


def test_parameter_aggregation_block():
    torch.manual_seed(0)
    block = ParameterAggregationBlock(24, 10)
    assert _count(block) == _param_block_params(24, 10)
    x = torch.randn(2, 24, 5, 6)
    out = block(x)
    assert out.shape == (2, 10, 5, 6)
    out.square().sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # Pointwise in space, as the checkerboard coder's half-maps need.
    assert torch.allclose(block(x[..., :3])[..., 1], out[..., 1], atol=1e-5)
    assert block.extra_repr() == "24, 10, expansion=4"


def test_gated_block_bad_kernel():
    with pytest.raises(ValueError, match="odd"):
        GatedBlock(8, 8, kernel_size=4)
