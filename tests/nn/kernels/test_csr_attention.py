r"""The CPU sparse-matrix-product attention executor (pyg_glic.nn.attention.csr)
against a plain float64 gather reference, the chunked gather core and gradcheck."""
import pytest
import torch
from torch.autograd import gradcheck

from attention_testing import _check, _csr, _inputs, _reference
from pyg_glic.nn.attention import backend, csr_attention_available, csr_sparse_attention
from pyg_glic.nn.attention import csr as csr_mod
from pyg_glic.nn.attention import dispatch
from pyg_glic.nn.attention import sparse_attention

# isolated targets, degree 1, larger degrees
DEG = [0, 1, 5, 13, 0, 3, 8, 2, 4]
UNIFORM = [4] * 9  # one degree for all: the segment reductions run on a view


@pytest.mark.parametrize("deg", [DEG, UNIFORM], ids=["varying", "uniform"])
@pytest.mark.parametrize("num_src", [11, 4])  # square-ish and bipartite with repeats
@pytest.mark.parametrize("bias,weight", [(False, False), (True, False), (True, True)])
def test_matches_reference(deg, num_src, bias, weight):
    gen = torch.Generator().manual_seed(num_src + 2 * bias + weight)
    q, k, v, b, w, ptr, col = _inputs(gen, deg, num_src, 3, 8, 8, "cpu", bias, weight)
    if b is not None:  # GLICAttention's layout: an (E, H) view of head-major storage
        b = b.detach().t().contiguous().t().requires_grad_()
    out = csr_sparse_attention(q, k, v, b, ptr, col, len(deg), w)
    assert out.shape == (len(deg), 3, 8) and out.dtype == v.dtype
    _check(out, _reference(q, k, v, b, ptr, col, w), (q, k, v, b, w), gen=gen)
    if deg is DEG:
        assert out[0].abs().max() == 0 and out[4].abs().max() == 0  # no edges: 0


def test_value_width_differs():
    gen = torch.Generator().manual_seed(1)
    q, k, v, b, w, ptr, col = _inputs(gen, [3, 0, 7, 1], 6, 2, 6, 5, "cpu")
    out = csr_sparse_attention(q, k, v, b, ptr, col, 4, w)
    _check(out, _reference(q, k, v, b, ptr, col, w), (q, k, v, b, w), gen=gen)


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(2)
    ptr, col = _csr([2, 0, 3, 1], 5, gen)
    E = col.numel()

    def r(*s):
        return torch.randn(*s, generator=gen, dtype=torch.float64).requires_grad_()
    q, k, v, b = r(4, 2, 3), r(5, 2, 3), r(5, 2, 4), r(E, 2)
    w = torch.rand(E, generator=gen, dtype=torch.float64).requires_grad_()
    assert gradcheck(lambda *t: csr_sparse_attention(*t[:4], ptr, col, 4, t[4]),
                     (q, k, v, b, w))


def test_equals_chunked_gather_core(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 8, 8, "cpu")
    dst = torch.repeat_interleave(torch.arange(len(DEG)), ptr[1:] - ptr[:-1])
    ei = torch.stack([col, dst])
    monkeypatch.setattr(backend, "CSR_ATTENTION", "never")
    ref = sparse_attention(q, k, v, b, ei, ptr, len(DEG), w)
    monkeypatch.setattr(backend, "CSR_ATTENTION", "auto")
    out = sparse_attention(q, k, v, b, ei, ptr, len(DEG), w)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_no_edges():
    q, k, v = torch.randn(3, 2, 4), torch.randn(5, 2, 4), torch.randn(5, 2, 4)
    ptr = torch.zeros(4, dtype=torch.long)
    out = csr_sparse_attention(q, k, v, None, ptr, torch.zeros(0, dtype=torch.long), 3)
    assert out.shape == (3, 2, 4) and out.abs().max() == 0


def test_cached_pattern_follows_the_graph():
    # same sizes, other edges: a new tensor, and the same tensor changed in place
    gen = torch.Generator().manual_seed(4)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 4, 4, "cpu")
    ptr2 = ptr.clone()
    csr_sparse_attention(q, k, v, b, ptr, col, len(DEG), w)
    col2 = (col + 3) % 11
    out = csr_sparse_attention(q, k, v, b, ptr2, col2, len(DEG), w)
    _check(out, _reference(q, k, v, b, ptr2, col2, w), (q, k, v, b, w), gen=gen)
    col.add_(5).remainder_(11)
    out = csr_sparse_attention(q, k, v, b, ptr, col, len(DEG), w)
    _check(out, _reference(q, k, v, b, ptr, col, w), (q, k, v, b, w), gen=gen)
    assert len(csr_mod._cache) <= csr_mod._CACHE_SIZE


def test_bad_input_is_named():
    q = torch.randn(3, 2, 4)
    with pytest.raises(ValueError, match="num_dst"):
        csr_sparse_attention(q, q, q, None, torch.tensor([0, 1, 2]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="number of edges"):
        csr_sparse_attention(q, q, q, None, torch.tensor([0, 1, 2, 2]), torch.tensor([0]), 3)
    with pytest.raises(RuntimeError, match="float32/float64"):
        csr_sparse_attention(q.half(), q.half(), q.half(), None, torch.tensor([0, 0, 0, 0]),
                             torch.zeros(0, dtype=torch.long), 3)


def test_availability_and_fallback(monkeypatch):
    assert csr_attention_available(torch.zeros(1, 1, 1))
    assert not csr_attention_available(torch.zeros(1, 1, 1, dtype=torch.bfloat16))
    # bfloat16 on the CPU: sparse_attention falls back to the chunked gathers
    gen = torch.Generator().manual_seed(5)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 8, 8, "cpu", True, False)
    dst = torch.repeat_interleave(torch.arange(len(DEG)), ptr[1:] - ptr[:-1])
    out = sparse_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), b.bfloat16(),
                              torch.stack([col, dst]), ptr, len(DEG))
    ref = _reference(q, k, v, b, ptr, col)
    torch.testing.assert_close(out.double(), ref, atol=5e-2, rtol=5e-2)
    monkeypatch.setattr(backend, "CSR_ATTENTION", "sometimes")
    with pytest.raises(ValueError, match="CSR_ATTENTION"):
        dispatch._use_csr(q)


@pytest.mark.parametrize("weighted", [False, True])
def test_glic_attention_layer_uses_it(weighted, monkeypatch):
    # GLICAttention's sparse execution on a real adaptive halo graph: the CSR core
    # is called, and it gives the chunked gather core's values and gradients
    from pyg_glic.graph import halo_graph
    from pyg_glic.nn.conv import GLICAttention
    gen = torch.Generator().manual_seed(6)
    C = 8
    feat = torch.randn(1, C, 9, 7, generator=gen)
    graph = halo_graph(feat, window=3, halo=1, k=6, adaptive=True)
    x = feat.flatten(2)[0].t().contiguous().requires_grad_()
    torch.manual_seed(0)
    layer = GLICAttention(C, C, heads=2)
    ew = torch.rand(graph.edge_index.size(1), generator=gen).requires_grad_() if weighted else None
    calls = []
    real = csr_mod.csr_sparse_attention
    monkeypatch.setattr(csr_mod, "csr_sparse_attention",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    results = []
    for mode in ("never", "auto"):
        monkeypatch.setattr(backend, "CSR_ATTENTION", mode)
        with backend.execution("sparse"):
            out = layer(x, graph.edge_index, graph.edge_attr, edge_weight=ew)
        inputs = [x] + ([ew] if weighted else []) + list(layer.parameters())
        results.append((out, torch.autograd.grad(out.square().sum(), inputs)))
    assert calls, "the CSR core was not called"
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_cache_accounting_and_clear():
    gen = torch.Generator().manual_seed(7)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 4, 4, "cpu")
    csr_mod.clear_cache()
    assert csr_mod.cached_pattern_bytes() == 0
    out = csr_sparse_attention(q, k, v, b, ptr, col, len(DEG), w)
    fwd = csr_mod.cached_pattern_bytes()
    assert fwd > 0
    out.sum().backward()  # the transpose is built in backward
    assert csr_mod.cached_pattern_bytes() > fwd
    csr_mod.clear_cache()
    assert csr_mod.cached_pattern_bytes() == 0


def test_cache_lets_dropped_graphs_go():
    import gc
    import weakref
    gen = torch.Generator().manual_seed(8)
    csr_mod.clear_cache()
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 11, 2, 4, 4, "cpu")
    csr_sparse_attention(q, k, v, b, ptr, col, len(DEG), w).sum().backward()
    ref = weakref.ref(ptr)
    del ptr, col
    gc.collect()
    assert ref() is None, "the cache keeps the graph's ptr alive"
    q2, k2, v2, b2, w2, ptr2, col2 = _inputs(gen, UNIFORM, 11, 2, 4, 4, "cpu")
    csr_sparse_attention(q2, k2, v2, b2, ptr2, col2, len(UNIFORM), w2)
    assert len(csr_mod._cache) == 1  # the dropped graph's entry is gone
