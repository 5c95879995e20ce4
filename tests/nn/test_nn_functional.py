import pytest
import torch
from torch.autograd import gradcheck

from pyg_glic.nn.attention import edge_dot, edge_spmm, sparse_attention
from pyg_glic.nn.offsets import log_spaced


def _graph(gen):
    edge_index = torch.stack([torch.randint(0, 5, (17,), generator=gen),
                              torch.randint(0, 6, (17,), generator=gen)])
    return edge_index


def test_log_spaced():
    d = torch.tensor([-3.0, 0.0, 2.0])
    expect = torch.stack([-torch.tensor(4.0).log(), torch.tensor(0.0), torch.tensor(3.0).log()])
    torch.testing.assert_close(log_spaced(d), expect)


def test_edge_dot_and_spmm_values(gen):
    edge_index = _graph(gen)
    src, dst = edge_index
    q = torch.randn(6, 2, 3, dtype=torch.float64, generator=gen)
    k = torch.randn(5, 2, 3, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(edge_dot(q, k, edge_index), (q[dst] * k[src]).sum(-1))
    a = torch.rand(17, 2, dtype=torch.float64, generator=gen)
    expect = torch.zeros(6, 2, 3, dtype=torch.float64).index_add_(0, dst, a[..., None] * k[src])
    torch.testing.assert_close(edge_spmm(a, k, edge_index, 6), expect)


def test_edge_ops_gradcheck(gen):
    edge_index = _graph(gen)
    q = torch.randn(6, 2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    k = torch.randn(5, 2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    a = torch.rand(17, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    assert gradcheck(lambda q, k: edge_dot(q, k, edge_index), (q, k))
    assert gradcheck(lambda a, v: edge_spmm(a, v, edge_index, 7), (a, k))
    b = torch.randn(17, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.rand(17, dtype=torch.float64, generator=gen, requires_grad=True)
    assert gradcheck(lambda q, k, v, b, w: sparse_attention(q, k, v, b, edge_index, None, 6, w),
                     (q, k, k.detach().clone().requires_grad_(), b, w))


def test_edge_ops_empty():
    edge_index = torch.empty(2, 0, dtype=torch.long)
    q = torch.randn(3, 2, 4, requires_grad=True)
    out = sparse_attention(q, q, q, None, edge_index, None, 3)
    assert out.shape == (3, 2, 4) and bool((out == 0).all())
    out.sum().backward()
    assert bool((q.grad == 0).all())


def test_chunked_equals_unchunked(gen, monkeypatch):
    from pyg_glic.nn.attention import backend
    edge_index = _graph(gen)
    q = torch.randn(6, 2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    k = torch.randn(5, 2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(17, 2, dtype=torch.float64, generator=gen)

    def run():
        out = sparse_attention(q, k, k, b, edge_index, None, 6)
        return (out,) + torch.autograd.grad(out.pow(2).sum(), [q, k])

    ref = run()
    monkeypatch.setattr(backend, 'CHUNK_ELEMENTS', 13)  # 2 edges (of 6 elements) per chunk
    for a, r in zip(run(), ref):
        torch.testing.assert_close(a, r)


def test_no_targets_or_sources():
    q = torch.randn(0, 2, 3, requires_grad=True)
    k = torch.randn(4, 2, 3, requires_grad=True)
    out = sparse_attention(q, k, k, None, torch.empty(2, 0, dtype=torch.long), None, 0)
    assert out.shape == (0, 2, 3)
    out.sum().backward()


@pytest.mark.parametrize("num_cols", [1, 2, 3])
def test_compress_offsets_matches_torch_unique_rows(num_cols):
    from pyg_glic.nn.offsets import compress_offsets
    gen = torch.Generator().manual_seed(num_cols)
    attr = torch.randint(-4, 5, (500, num_cols), generator=gen).float() * 0.5
    unique, index = compress_offsets(attr)
    ref_unique, ref_index = torch.unique(attr, dim=0, return_inverse=True)
    assert torch.equal(unique, ref_unique)
    assert torch.equal(index, ref_index)
    assert torch.equal(unique[index], attr)


def test_compress_offsets_empty():
    from pyg_glic.nn.offsets import compress_offsets
    unique, index = compress_offsets(torch.zeros(0, 2))
    assert unique.shape == (0, 2) and index.numel() == 0
