r"""Fused sparse attention (pyg_glic.nn.attention.triton_fused) against plain references.

On the CPU the Triton kernels run in Triton's interpreter: the ``interpret``
fixture sets ``TRITON_INTERPRET=1`` for each test (the kernel module picks
interpreted kernels at call time, so it does not matter whether triton was
already imported, e.g. by torch_geometric). Where CUDA is present the same
tests also run the compiled kernels on the GPU.
"""
import importlib.util
import os

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed (optional: not in install_requires)",
                allow_module_level=True)
import triton  # noqa: E402,F401  (installed: a broken import must fail, not skip)

from pyg_glic.nn.attention import (backend, csr_transpose,  # noqa: E402
                                   fused_attention_available, fused_sparse_attention,
                                   sparse_attention, triton_fused)
from attention_testing import _check, _csr, _inputs, _reference  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def interpret(monkeypatch):
    if not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")


# degrees: isolated, 1, several tiles of BLOCK_E=4 (13 = 3 full tiles + 1), exact tile
DEG = [0, 1, 5, 13, 0, 3, 8, 2, 4]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("D", [8, 16])
@pytest.mark.parametrize("bias,weight", [(True, False), (False, False), (True, True)])
def test_matches_reference(device, D, bias, weight):
    gen = torch.Generator().manual_seed(D + 2 * bias + weight)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 3, D, D, device, bias, weight)
    out = fused_sparse_attention(q, k, v, b, ptr, col, edge_weight=w, block_e=4)
    assert out.shape == (len(DEG), 3, D) and out.dtype == v.dtype
    ref = _reference(q, k, v, b, ptr, col, w)
    _check(out, ref, (q, k, v, b, w), gen=gen)
    assert out[0].abs().max() == 0 and out[4].abs().max() == 0  # isolated targets


@pytest.mark.parametrize("device", DEVICES)
def test_value_width_and_block_sizes(device):
    # D_v != D, D not a power of two, default BLOCK_E (one tile) and BLOCK_E=2
    gen = torch.Generator().manual_seed(1)
    q, k, v, b, w, ptr, col = _inputs(gen, [3, 0, 7, 1], 6, 2, 6, 5, device)
    for block_e in (2, 32):
        ref = _reference(q, k, v, b, ptr, col, w)
        out = fused_sparse_attention(q, k, v, b, ptr, col, edge_weight=w, block_e=block_e)
        _check(out, ref, (q, k, v, b, w), gen=gen)


@pytest.mark.parametrize("device", DEVICES)
def test_matches_functional_core(device):
    """Drop-in: same values and gradients as the dispatcher's sparse_attention."""
    gen = torch.Generator().manual_seed(2)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 8, 8, device)
    dst = torch.repeat_interleave(torch.arange(len(DEG), device=device), ptr[1:] - ptr[:-1])
    ref = sparse_attention(q, k, v, b, torch.stack([col, dst]), ptr, len(DEG), w)
    out = fused_sparse_attention(q, k, v, b, ptr, col, edge_weight=w, block_e=4)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    go = torch.randn(out.shape, generator=gen).to(device)
    for a, c in zip(torch.autograd.grad(out, (q, k, v, b, w), go),
                    torch.autograd.grad(ref, (q, k, v, b, w), go)):
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_graph(device):
    gen = torch.Generator().manual_seed(3)
    q, k, v, b, w, ptr, col = _inputs(gen, [0, 0, 0], 4, 2, 8, 8, device)
    assert col.numel() == 0
    out = fused_sparse_attention(q, k, v, b, ptr, col, edge_weight=w)
    assert out.shape == (3, 2, 8) and out.abs().max() == 0
    gq, gk, gv, gb, gw = torch.autograd.grad(out.sum(), (q, k, v, b, w))
    assert gq.abs().max() == 0 and gk.abs().max() == 0 and gv.abs().max() == 0
    assert gb.shape == (0, 2) and gw.shape == (0,)


@pytest.mark.parametrize("device", DEVICES)
def test_no_targets_and_no_sources(device):
    q = torch.zeros(0, 2, 8, device=device, requires_grad=True)
    k = torch.randn(3, 2, 8, device=device, requires_grad=True)
    ptr = torch.zeros(1, dtype=torch.long, device=device)
    col = torch.zeros(0, dtype=torch.long, device=device)
    out = fused_sparse_attention(q, k, k, None, ptr, col)
    assert out.shape == (0, 2, 8)
    gk, = torch.autograd.grad(out.sum(), (k,))
    assert gk.abs().max() == 0
    k0 = torch.zeros(0, 2, 8, device=device)
    q2 = torch.randn(2, 2, 8, device=device)
    out = fused_sparse_attention(q2, k0, k0, None, torch.zeros(3, dtype=torch.long, device=device),
                                 col)
    assert out.shape == (2, 2, 8) and out.abs().max() == 0


@pytest.mark.parametrize("device", DEVICES)
def test_scale_and_csc_reuse(device):
    gen = torch.Generator().manual_seed(4)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 3, 8, 8, device, weight=False)
    tau = (torch.rand(3, generator=gen) * 10).to(device).requires_grad_()
    csc = csr_transpose(ptr, col, 11)
    out = fused_sparse_attention(q, k, v, b, ptr, col, scale=tau, csc=csc, block_e=4)
    ref = _reference(q * tau.view(1, 3, 1), k, v, b, ptr, col)
    _check(out, ref, (q, k, v, b, tau), atol=1e-4, rtol=1e-5, gen=gen)


def test_large_logits_stable():
    # GLIC's logits reach +-100 (tau_max * cos) plus bias: the online softmax must not overflow
    gen = torch.Generator().manual_seed(9)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 8, 8, "cpu", weight=False)
    qs = torch.nn.functional.normalize(q, dim=-1) * 100.0
    ks = torch.nn.functional.normalize(k, dim=-1)
    bs = b * 30.0
    out = fused_sparse_attention(qs, ks, v, bs, ptr, col, block_e=4)
    assert torch.isfinite(out).all()
    _check(out, _reference(qs, ks, v, bs, ptr, col), (q, k, v, b), atol=1e-4, rtol=1e-4, gen=gen)


def test_under_torch_compile():
    """A graph break (torch.compiler.disable), values and gradients unchanged."""
    gen = torch.Generator().manual_seed(10)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 8, 8, "cpu")

    def f(q, k, v, b, w):
        return fused_sparse_attention(q * 2.0, k, v, b, ptr, col, edge_weight=w, block_e=4) + 1.0

    out = torch.compile(f, backend="eager")(q, k, v, b, w)
    _check(out, _reference(q * 2.0, k, v, b, ptr, col, w) + 1.0, (q, k, v, b, w), gen=gen)


def test_csr_transpose():
    gen = torch.Generator().manual_seed(5)
    ptr, col = _csr(DEG, 7, gen)
    cptr, perm, rows = csr_transpose(ptr, col, 9)  # 2 sources without edges
    dst = torch.repeat_interleave(torch.arange(len(DEG)), ptr[1:] - ptr[:-1])
    assert cptr[-1] == col.numel() and cptr.numel() == 10
    for j in range(9):
        es = perm[cptr[j]:cptr[j + 1]]
        assert (col[es] == j).all() and (es.diff() > 0).all()
        assert torch.equal(rows[cptr[j]:cptr[j + 1]], dst[es])
    assert torch.equal(perm.sort().values, torch.arange(col.numel()))


def test_partial_requires_grad():
    gen = torch.Generator().manual_seed(6)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 8, 8, "cpu")
    b = b.detach()
    w = w.detach()
    v = v.detach()
    out = fused_sparse_attention(q, k, v, b, ptr, col, edge_weight=w, block_e=4)
    ref = _reference(q, k, v, b, ptr, col, w)
    _check(out, ref, (q, k), gen=gen)
    with torch.no_grad():
        out = fused_sparse_attention(q, k, v, b, ptr, col, edge_weight=w)
    assert not out.requires_grad


def test_half_precision_interpreter():
    # fp16 inputs, fp32 accumulation; only loose agreement is expected
    gen = torch.Generator().manual_seed(7)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 8, 8, "cpu")
    h = [t.detach().half().requires_grad_() for t in (q, k, v, b, w)]
    out = fused_sparse_attention(h[0], h[1], h[2], h[3], ptr, col, edge_weight=h[4], block_e=4)
    assert out.dtype == torch.float16
    ref = _reference(*h[:4], ptr, col, h[4])
    _check(out, ref, h, atol=5e-3, rtol=5e-3, gen=gen)


def test_availability(monkeypatch):
    assert fused_attention_available("cpu")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not fused_attention_available("cpu")
    assert fused_attention_available("cuda") == torch.cuda.is_available()
    q = torch.randn(2, 1, 4)
    with pytest.raises(RuntimeError, match="not available"):
        fused_sparse_attention(q, q, q, None, torch.tensor([0, 1, 2]), torch.tensor([0, 1]))


def test_dispatch_falls_back_to_torch(monkeypatch):
    gen = torch.Generator().manual_seed(8)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 8, 8, "cpu")
    tau = torch.tensor([2.0, 5.0])
    ref = _reference(q * tau.view(1, 2, 1), k, v, b, ptr, col, w)
    dst = torch.repeat_interleave(torch.arange(len(DEG)), ptr[1:] - ptr[:-1])
    ei = torch.stack([col, dst])
    calls = []
    real = triton_fused.fused_sparse_attention
    monkeypatch.setattr(triton_fused, "fused_sparse_attention",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    monkeypatch.setattr(backend, "FUSED_ATTENTION", "always")  # also Triton's interpreter
    fused = sparse_attention(q * tau.view(1, 2, 1), k, v, b, ei, ptr, len(DEG), w)
    assert calls == [1], "the fused kernel did not run where it is available"
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    torch_path = sparse_attention(q * tau.view(1, 2, 1), k, v, b, ei, ptr, len(DEG), w)
    assert calls == [1], "the fused kernel ran where it is not available"
    torch.testing.assert_close(fused.double(), ref, atol=1e-5, rtol=1e-5)
    _check(torch_path, ref, (q, k, v, b, w), gen=gen)


def test_bad_shapes():
    q = torch.randn(2, 1, 4)
    with pytest.raises(ValueError):
        fused_sparse_attention(q, q, q, None, torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError):
        fused_sparse_attention(q, q, q, torch.zeros(3, 1), torch.tensor([0, 1, 2]),
                               torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        fused_sparse_attention(q, q, q, None, torch.tensor([0, 1, 2]), torch.tensor([0, 1]),
                               block_e=3)


def test_glic_attention_layer_core():
    """With the layer's own projections and position bias on a halo graph."""
    from pyg_glic.graph import halo_graph
    from pyg_glic.nn.conv import GLICAttention
    torch.manual_seed(0)
    x = torch.randn(1, 16, 8, 8)
    g = halo_graph(x, 6, window=4, halo=2)
    layer = GLICAttention(16, 16, heads=2, pos_hidden=8)
    feats = x.flatten(2).transpose(1, 2).reshape(-1, 16)
    q, k, v = layer.project(feats)
    bias = layer.position_bias(g.edge_attr)
    ref = layer.attend(q, k, v, bias, g.edge_index, g.ptr, g.num_dst)
    out = fused_sparse_attention(q, k, v, bias, g.ptr, g.edge_index[0], block_e=4)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    params = [layer.lin_q.weight, layer.logit_scale, layer.pos_mlp[0].weight]
    go = torch.randn(out.shape)
    for a, c in zip(torch.autograd.grad(out, params, go, retain_graph=True),
                    torch.autograd.grad(ref, params, go)):
        torch.testing.assert_close(a, c, atol=1e-4, rtol=1e-4)


_SIG_COMMON = dict(H="i32", D="i32", DV="i32", HAS_BIAS="constexpr", HAS_W="constexpr",
                   BLOCK_E="constexpr", BLOCK_D="constexpr", BLOCK_DV="constexpr")


def _aot_compile(name, dt, has_bias, has_w):
    """Compile one kernel for an sm_90 GPU (no GPU needed: PTX and cubin via ptxas)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from pyg_glic.nn.attention._triton_kernels import get_kernels, triton_imported_interpreted
    if triton_imported_interpreted():
        pytest.skip("triton was imported in interpreter mode; nothing compiles")
    f, i64, f32 = f"*{dt}", "*i64", "*fp32"
    sig = {"fwd": dict(Q=f, K=f, V=f, B=f32, W=f32, PTR=i64, COL=i64, OUT=f, LSE=f32),
           "bwd_dst": dict(Q=f, K=f, V=f, B=f32, W=f32, PTR=i64, COL=i64, DO=f, LSE=f32,
                           DELTA=f32, DQ=f, DS=f32, DWH=f32),
           "bwd_src": dict(Q=f, K=f, V=f, B=f32, W=f32, CPTR=i64, PERM=i64, ROWS=i64, DO=f,
                           LSE=f32, DELTA=f32, DK=f, DV_OUT=f)}[name]
    sig.update(_SIG_COMMON)
    const = dict(HAS_BIAS=has_bias, HAS_W=has_w, BLOCK_E=32, BLOCK_D=32, BLOCK_DV=32)
    if name == "bwd_dst":
        sig.update(STORE_DS="constexpr", STORE_DW="constexpr")
        const.update(STORE_DS=has_bias, STORE_DW=has_w)
    src = ASTSource(get_kernels(False)[name], sig, constexprs=const)
    try:
        c = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 2})
    except RuntimeError as e:  # e.g. no ptxas in this triton install
        if "ptxas" in str(e).lower():
            pytest.skip(str(e)[:200])
        raise
    assert "ptx" in c.asm


@pytest.mark.parametrize("name", ["fwd", "bwd_dst", "bwd_src"])
def test_compiles_for_sm90_fp32(name, monkeypatch):
    """The compiled (non-interpreted) path at least lowers to PTX/cubin for sm_90."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    _aot_compile(name, "fp32", True, True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fwd", "bwd_dst", "bwd_src"])
@pytest.mark.parametrize("dt", ["bf16", "fp16"])
@pytest.mark.parametrize("flags", [(False, False), (True, False)])
def test_compiles_for_sm90_variants(name, dt, flags, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    _aot_compile(name, dt, *flags)


@pytest.mark.parametrize("weighted", [False, True])
def test_glic_attention_layer_dispatches_to_fused_kernel(weighted, monkeypatch):
    # The layer's sparse execution with the fused kernel forced (Triton's
    # interpreter on the CPU) against the chunked gather form: values and
    # gradients, on a real halo graph with adaptive degrees.
    from pyg_glic.graph import halo_graph
    from pyg_glic.nn.conv import GLICAttention
    gen = torch.Generator().manual_seed(3)
    C, Hh, W = 8, 6, 6
    feat = torch.randn(1, C, Hh, W, generator=gen)
    graph = halo_graph(feat, window=3, halo=1, k=5)
    x = feat.flatten(2)[0].t().contiguous().requires_grad_()
    torch.manual_seed(0)
    layer = GLICAttention(C, C, heads=2)
    ew = None
    if weighted:
        ew = torch.rand(graph.edge_index.size(1), generator=gen).requires_grad_()
    calls = []
    real = triton_fused.fused_sparse_attention

    def spy(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(triton_fused, "fused_sparse_attention", spy)
    results = []
    monkeypatch.setattr(backend, "CSR_ATTENTION", "never")  # the reference: chunked gathers
    for mode in ("never", "always"):
        monkeypatch.setattr(backend, "FUSED_ATTENTION", mode)
        with backend.execution("sparse"):
            out = layer(x, graph.edge_index, graph.edge_attr, edge_weight=ew)
        inputs = [x] + ([ew] if weighted else []) + list(layer.parameters())
        results.append((out, torch.autograd.grad(out.square().sum(), inputs)))
    assert calls, "the fused kernel was not called"
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_fused_attention_mode_checked(monkeypatch):
    from pyg_glic.nn.attention import dispatch
    monkeypatch.setattr(backend, "FUSED_ATTENTION", "sometimes")
    with pytest.raises(ValueError, match="FUSED_ATTENTION"):
        dispatch._use_fused(torch.zeros(1, 1, 1))
