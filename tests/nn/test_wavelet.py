import importlib.util
import math

import pytest
import torch

from nn_testing import assert_every_param_has_grad
from pyg_glic.nn.wavelet import (InverseWaveletScaling, OrthoLinear, WaveletAnalysis,
                                 WaveletScaling, WaveletSynthesis, haar_dwt, haar_idwt,
                                 orthogonality_loss)

# pywt.Wavelet('haar') filter values, written out (pywt is not a dependency)
_S = 1.0 / math.sqrt(2.0)
_DEC_LO, _DEC_HI = [_S, _S], [-_S, _S]
_REC_LO, _REC_HI = [_S, _S], [_S, -_S]


def _published_filters(lo, hi):
    # GLIC's DWT_2D / IDWT_2D construction: w_xy[i, j] = x[j] * y[i] (i along H,
    # j along W), in the order [ll, lh, hl, hh]
    lo, hi = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
    return [lo[None, :] * lo[:, None], lo[None, :] * hi[:, None],
            hi[None, :] * lo[:, None], hi[None, :] * hi[:, None]]


def _loop_dwt(x):
    # DWT_2D: stride-2 cross-correlation with the reversed decomposition filters,
    # subbands concatenated along channels
    filters = _published_filters(_DEC_LO[::-1], _DEC_HI[::-1])
    B, C, H, W = x.shape
    out = torch.zeros(B, 4 * C, H // 2, W // 2, dtype=x.dtype)
    for k, f in enumerate(filters):
        for b in range(B):
            for c in range(C):
                for h in range(H // 2):
                    for w in range(W // 2):
                        out[b, k * C + c, h, w] = sum(
                            f[i, j] * x[b, c, 2 * h + i, 2 * w + j]
                            for i in range(2) for j in range(2))
    return out


def _loop_idwt(y):
    # IDWT_2D: stride-2 transposed convolution with the reconstruction filters
    filters = _published_filters(_REC_LO, _REC_HI)
    B, C4, H, W = y.shape
    C = C4 // 4
    out = torch.zeros(B, C, 2 * H, 2 * W, dtype=y.dtype)
    for k, f in enumerate(filters):
        for b in range(B):
            for c in range(C):
                for h in range(H):
                    for w in range(W):
                        for i in range(2):
                            for j in range(2):
                                out[b, c, 2 * h + i, 2 * w + j] += f[i, j] * y[b, k * C + c, h, w]
    return out


@pytest.mark.parametrize('shape', [(1, 1, 2, 2), (2, 3, 8, 6), (1, 4, 16, 32)])
def test_haar_round_trip(shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64)
    y = haar_dwt(x)
    assert y.shape == (shape[0], 4 * shape[1], shape[2] // 2, shape[3] // 2)
    torch.testing.assert_close(haar_idwt(y), x, atol=1e-12, rtol=0)
    z = torch.randn(*y.shape, dtype=torch.float64)
    torch.testing.assert_close(haar_dwt(haar_idwt(z)), z, atol=1e-12, rtol=0)


def test_haar_dwt_literal_block_and_subband_order():
    # [[a, b], [c, d]] = [[1, 2], [3, 4]] -> LL, LH (high along H), HL (high along W), HH
    x = torch.tensor([[[[1., 2.], [3., 4.]]]], dtype=torch.float64)
    y = haar_dwt(x).flatten()
    torch.testing.assert_close(y, torch.tensor([5., -2., -1., 0.], dtype=torch.float64))
    # the layout is [LL | LH | HL | HH] blocks of C channels, not interleaved per channel
    x2 = torch.cat([x, 10 * x], dim=1)
    y2 = haar_dwt(x2).flatten()
    torch.testing.assert_close(y2, torch.tensor([5., 50., -2., -20., -1., -10., 0., 0.],
                                                dtype=torch.float64))


def test_haar_matches_published_loop_reference():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(haar_dwt(x), _loop_dwt(x), atol=1e-12, rtol=0)
    y = torch.randn(2, 8, 3, 2, dtype=torch.float64)
    torch.testing.assert_close(haar_idwt(y), _loop_idwt(y), atol=1e-12, rtol=0)


def test_haar_matches_pywt():
    if importlib.util.find_spec('pywt') is None:
        pytest.skip('PyWavelets (pywt) is not installed: an optional reference, '
                    'not in install_requires')
    import pywt
    torch.manual_seed(2)
    x = torch.randn(1, 2, 6, 8, dtype=torch.float64)
    cA, (cH, cV, cD) = pywt.dwt2(x.numpy(), 'haar', axes=(-2, -1))
    expect = torch.cat([torch.from_numpy(a) for a in (cA, cH, cV, cD)], dim=1)
    torch.testing.assert_close(haar_dwt(x), expect, atol=1e-12, rtol=0)


def test_haar_energy_and_gradients():
    torch.manual_seed(3)
    x = torch.randn(2, 3, 8, 10, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(haar_dwt(x).norm(), x.norm(), atol=1e-12, rtol=0)
    y = torch.randn(2, 12, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(haar_idwt(y).norm(), y.norm(), atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(haar_dwt, (x[:1, :2, :4, :4].detach().requires_grad_(),))
    assert torch.autograd.gradcheck(haar_idwt, (y[:1, :8, :2, :2].clone().requires_grad_(),))


def test_haar_odd_size_raises():
    with pytest.raises(ValueError, match=r'\(1, 3, 5, 4\)'):
        haar_dwt(torch.randn(1, 3, 5, 4))
    with pytest.raises(ValueError, match=r'\(1, 3, 4, 7\)'):
        haar_dwt(torch.randn(1, 3, 4, 7))
    with pytest.raises(ValueError, match=r'\(1, 6, 2, 2\)'):
        haar_idwt(torch.randn(1, 6, 2, 2))
    # 62 / 2 = 31: the second step of the chain sees an odd width
    with pytest.raises(ValueError, match=r'\(1, 128, 32, 31\)'):
        WaveletAnalysis()(torch.randn(1, 3, 64, 62))


@pytest.mark.parametrize('in_features,out_features', [(8, 5), (5, 8), (6, 6)])
def test_ortho_penalty_zero_for_orthogonal(in_features, out_features):
    torch.manual_seed(4)
    lin = OrthoLinear(in_features, out_features).double()
    q, _ = torch.linalg.qr(torch.randn(max(in_features, out_features),
                                       min(in_features, out_features), dtype=torch.float64))
    with torch.no_grad():  # (semi-)orthogonal: orthonormal rows or columns
        lin.weight.copy_(q if out_features >= in_features else q.t())
    assert lin.ortho_penalty().abs().item() < 1e-12
    # the default initialisation is (semi-)orthogonal as well
    assert OrthoLinear(in_features, out_features).double().ortho_penalty().item() < 1e-12
    with torch.no_grad():
        lin.weight.copy_(torch.randn_like(lin.weight))
    assert lin.ortho_penalty().item() > 1e-3


def test_ortho_penalty_hand_computed():
    # W (2 x 3): in = 3 > out = 2, G = W W^T = [[5, 2], [2, 2]],
    # ||G - I||^2 / 4 = (16 + 4 + 4 + 1) / 4  (the 3 x 3 W^T W would give 26 / 9)
    w = torch.tensor([[1., 2., 0.], [0., 1., 1.]], dtype=torch.float64)
    lin = OrthoLinear(3, 2).double()
    with torch.no_grad():
        lin.weight.copy_(w)
    torch.testing.assert_close(lin.ortho_penalty(), torch.tensor(6.25, dtype=torch.float64))
    # in = 2 < out = 3: G = W^T W of the (3 x 2) weight, the same 2 x 2 matrix
    lin_t = OrthoLinear(2, 3).double()
    with torch.no_grad():
        lin_t.weight.copy_(w.t())
    torch.testing.assert_close(lin_t.ortho_penalty(), torch.tensor(6.25, dtype=torch.float64))


def test_ortho_linear_init_options():
    lin = OrthoLinear(12, 128)
    assert isinstance(lin, torch.nn.Linear)
    assert bool((lin.bias == 0).all())
    assert str(lin) == 'OrthoLinear(in_features=12, out_features=128, bias=True)'
    assert OrthoLinear(4, 3, bias=False).bias is None
    # orthogonal_init=False is nn.Linear's default initialisation, draw for draw
    torch.manual_seed(5)
    ref = torch.nn.Linear(12, 7)
    torch.manual_seed(5)
    lin = OrthoLinear(12, 7, orthogonal_init=False)
    torch.testing.assert_close(lin.weight, ref.weight)
    torch.testing.assert_close(lin.bias, ref.bias)
    assert 'orthogonal_init=False' in str(lin)
    with torch.no_grad():
        lin.weight.mul_(3)
    lin.orthogonal_init = True
    lin.reset_parameters()
    assert lin.ortho_penalty().item() < 1e-10


def test_wavelet_scaling_matches_manual_composition():
    torch.manual_seed(6)
    layer = WaveletScaling(3, 16).double()
    assert layer.extra_repr() == '3, 16'
    assert layer.log_scale.shape == (12,)
    torch.testing.assert_close(layer.log_scale.detach(),
                               torch.tensor([0.5] * 9 + [0.] * 3, dtype=torch.float64))
    with torch.no_grad():
        layer.log_scale.normal_()
        layer.linear.bias.normal_()
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    # published WLS: DWT, channels last, scale, linear per pixel
    y = _loop_dwt(x)
    b, _, h, w = y.shape
    y = y.view(b, -1, h * w).permute(0, 2, 1) * layer.log_scale.exp()
    y = y @ layer.linear.weight.t() + layer.linear.bias
    expect = y.view(b, h, w, -1).permute(0, 3, 1, 2)
    out = layer(x)
    assert out.shape == (2, 16, 4, 3)
    torch.testing.assert_close(out, expect, atol=1e-12, rtol=0)


def test_inverse_wavelet_scaling_matches_manual_composition():
    torch.manual_seed(7)
    layer = InverseWaveletScaling(16, 3).double()
    assert layer.extra_repr() == '16, 3'
    assert layer.linear.in_features == 16 and layer.linear.out_features == 12
    torch.testing.assert_close(layer.log_scale.detach(),
                               torch.tensor([0.5] * 9 + [0.] * 3, dtype=torch.float64))
    with torch.no_grad():
        layer.log_scale.normal_()
        layer.linear.bias.normal_()
    x = torch.randn(2, 16, 4, 3, dtype=torch.float64)
    # published iWLS: channels last, linear per pixel, divide by the scale, IDWT
    b, _, h, w = x.shape
    z = x.view(b, -1, h * w).permute(0, 2, 1) @ layer.linear.weight.t() + layer.linear.bias
    z = z / layer.log_scale.exp()
    expect = _loop_idwt(z.view(b, h, w, -1).permute(0, 3, 1, 2))
    out = layer(x)
    assert out.shape == (2, 3, 8, 6)
    torch.testing.assert_close(out, expect, atol=1e-12, rtol=0)


def test_analysis_synthesis_shapes_and_chaining():
    torch.manual_seed(8)
    ana, syn = WaveletAnalysis(), WaveletSynthesis()
    assert ana.extra_repr() == 'channels=(3, 128, 192, 192, 320)'
    assert syn.extra_repr() == 'channels=(320, 192, 192, 128, 3)'
    x = torch.rand(2, 3, 64, 96)
    outs = ana(x)
    assert [tuple(o.shape) for o in outs] == [(2, 128, 32, 48), (2, 192, 16, 24),
                                             (2, 192, 8, 12), (2, 320, 4, 6)]
    torch.testing.assert_close(outs[2], ana.steps[2](outs[1]))
    rec = syn(outs[-1])
    assert [tuple(o.shape) for o in rec] == [(2, 192, 8, 12), (2, 192, 16, 24),
                                            (2, 128, 32, 48), (2, 3, 64, 96)]
    torch.testing.assert_close(rec[1], syn.steps[1](rec[0]))


@pytest.mark.parametrize('channels', [(3, 8), (3, 8, 12)])
def test_analysis_synthesis_any_number_of_steps(channels):
    ana, syn = WaveletAnalysis(channels), WaveletSynthesis(channels[::-1])
    assert len(ana.steps) == len(syn.steps) == len(channels) - 1
    outs = ana(torch.randn(1, 3, 8, 8))
    assert outs[-1].shape == (1, channels[-1], 8 >> len(ana.steps), 8 >> len(ana.steps))
    assert syn(outs[-1])[-1].shape == (1, 3, 8, 8)
    with pytest.raises(ValueError):
        WaveletAnalysis((3,))


@pytest.mark.parametrize('orthogonal_init', [True, False])
def test_every_parameter_gets_a_gradient(orthogonal_init):
    torch.manual_seed(9)
    ana = WaveletAnalysis((3, 8, 12), orthogonal_init=orthogonal_init)
    syn = WaveletSynthesis((12, 8, 3), orthogonal_init=orthogonal_init)
    outs = ana(torch.rand(2, 3, 16, 16))
    recs = syn(outs[-1])
    # squared: a plain sum of an IDWT output only sees its LL band
    loss = sum(o.pow(2).sum() for o in outs + recs)
    loss = loss + orthogonality_loss(ana) + orthogonality_loss(syn)
    loss.backward()
    assert_every_param_has_grad(ana)
    assert_every_param_has_grad(syn)


def test_orthogonality_loss_gradient_and_sum():
    torch.manual_seed(10)
    ana = WaveletAnalysis((3, 8, 12), orthogonal_init=False)
    loss = orthogonality_loss(ana)
    expect = sum(step.linear.ortho_penalty() for step in ana.steps)
    torch.testing.assert_close(loss, expect)
    assert loss.dim() == 0 and loss.item() > 0
    loss.backward()
    for step in ana.steps:
        assert step.linear.weight.grad.abs().sum() > 0
        assert step.log_scale.grad is None
    # a module without OrthoLinear: a 0-dim zero on its device and dtype
    z = orthogonality_loss(torch.nn.Conv2d(3, 3, 1).double())
    assert z.dim() == 0 and z.item() == 0 and z.dtype == torch.float64
    assert orthogonality_loss(torch.nn.ReLU()).item() == 0
    assert orthogonality_loss(OrthoLinear(4, 4)).item() < 1e-10  # the module itself counts


def test_parameter_count_of_the_published_branch():
    ana, syn = WaveletAnalysis((3, 128, 192, 192, 320)), WaveletSynthesis((320, 192, 192, 128, 3))
    n_ana = sum(p.numel() for p in ana.parameters())
    n_syn = sum(p.numel() for p in syn.parameters())
    # WLS(i, o): 4i*o + o + 4i; iWLS(i, o): i*4o + 4o + 4o
    assert n_ana == sum(4 * i * o + o + 4 * i for i, o in [(3, 128), (128, 192), (192, 192),
                                                           (192, 320)])
    assert n_syn == sum(4 * i * o + 8 * o for i, o in [(320, 192), (192, 192), (192, 128),
                                                       (128, 3)])
    assert n_ana + n_syn == 993_124  # "about 0.99 M" (GLIC_NOTES.md)


def test_reset_parameters_restores_the_initialisation():
    layer = WaveletScaling(2, 4)
    with torch.no_grad():
        layer.log_scale.fill_(3.0)
        layer.linear.weight.mul_(2.0)
    layer.reset_parameters()
    assert layer.log_scale[:6].eq(0.5).all() and layer.log_scale[6:].eq(0).all()
    assert layer.linear.ortho_penalty().item() < 1e-10


@pytest.mark.slow
def test_compile_matches_eager():
    torch.manual_seed(11)
    ana, syn = WaveletAnalysis((3, 8, 12)), WaveletSynthesis((12, 8, 3))
    model = torch.nn.Sequential(ana, _Last(), syn, _Last())
    compiled = torch.compile(model, fullgraph=True, dynamic=True)
    for shape in [(1, 3, 16, 16), (2, 3, 8, 24)]:
        x = torch.randn(*shape)
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-4)


class _Last(torch.nn.Module):
    def forward(self, outs):
        return outs[-1]
