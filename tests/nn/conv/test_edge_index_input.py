r"""Graphs travel as PyG's EdgeIndex sorted by target (issue 15, point 2).

The builders' ``ImageGraph.edge_index`` carries its CSR pointer, so the layers
take the fast CPU CSR path without ``ptr=``; a user's plain ``edge_index`` in any
edge order is sorted for them, with per-edge inputs permuted alike and gradients
returned in the caller's edge order; ``ptr=`` warns, is checked and ignored.
"""
from pathlib import Path

import pytest
import torch
from torch_geometric import EdgeIndex

import pyg_glic.nn.attention.csr as csr_mod
import pyg_glic.nn.conv.mr_conv as mr_mod
from pyg_glic.graph import halo_graph, knn_graph
from pyg_glic.nn.attention import backend
from pyg_glic.nn.attention.contract import csr_transpose
from pyg_glic.nn.conv import GLICAttention, MRConv
from pyg_glic.nn.edge_index import target_sorted, target_transpose
from pyg_glic.nn.offsets import compress_offsets

EXAMPLE = Path(__file__).resolve().parents[3] / 'examples' / 'reuse_layers.py'


def _spy(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **kw: calls.append(1) or real(*a, **kw))
    return calls


def _graph(C=8, H=9, W=7, seed=6):
    gen = torch.Generator().manual_seed(seed)
    feat = torch.randn(1, C, H, W, generator=gen)
    graph = halo_graph(feat, window=3, halo=1, k=6, adaptive=True)
    x = feat.flatten(2)[0].t().contiguous()
    return graph, x, gen


def test_builder_graph_is_target_sorted_edge_index():
    graph, _, _ = _graph()
    ei = graph.edge_index
    assert isinstance(ei, EdgeIndex) and ei.is_sorted_by_col
    assert ei.sparse_size() == (graph.num_src, graph.num_dst)
    assert ei.get_indptr() is graph.ptr  # PyG's cached pointer is the graph's ptr
    graph.validate()
    moved = graph.to("cpu")
    assert isinstance(moved.edge_index, EdgeIndex)
    assert torch.equal(moved.edge_index.get_indptr(), graph.ptr)


@pytest.mark.parametrize("weighted", [False, True])
def test_plain_unsorted_edge_index_equals_edge_index_and_takes_csr(monkeypatch, weighted):
    graph, x, gen = _graph()
    E = graph.num_edges
    torch.manual_seed(0)
    layer = GLICAttention(8, 8, heads=2)
    ew = torch.rand(E, generator=gen) if weighted else None
    perm = torch.randperm(E, generator=gen)
    plain = graph.edge_index.as_tensor()[:, perm].clone()
    assert type(plain) is torch.Tensor and not bool((plain[1].diff() >= 0).all())
    calls = _spy(monkeypatch, csr_mod, "csr_sparse_attention")
    results = []
    for ei, ea, w in ((graph.edge_index, graph.edge_attr, ew),
                      (plain, graph.edge_attr[perm],
                       None if ew is None else ew[perm])):
        xi = x.clone().requires_grad_()
        ea = ea.clone().requires_grad_()
        w = None if w is None else w.clone().requires_grad_()
        with backend.execution("sparse"):
            out = layer(xi, ei, ea, edge_weight=w)
        inputs = [xi, ea] + ([w] if weighted else [])
        results.append((out, torch.autograd.grad(out.square().sum(), inputs)))
    assert len(calls) == 2, "both calls must take the CPU CSR executor"
    (o1, g1), (o2, g2) = results
    torch.testing.assert_close(o2, o1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g2[0], g1[0], atol=1e-4, rtol=1e-4)
    # per-edge gradients come back in the caller's edge order
    torch.testing.assert_close(g2[1], g1[1][perm], atol=1e-4, rtol=1e-4)
    if weighted:
        torch.testing.assert_close(g2[2], g1[2][perm], atol=1e-4, rtol=1e-4)


def test_plain_unsorted_edge_index_with_offset_index():
    graph, x, gen = _graph(seed=8)
    E = graph.num_edges
    torch.manual_seed(0)
    layer = GLICAttention(8, 8, heads=2).eval()
    uniq, index = compress_offsets(graph.edge_attr)
    perm = torch.randperm(E, generator=gen)
    plain = graph.edge_index.as_tensor()[:, perm].clone()
    with torch.no_grad():
        ref = layer(x, graph.edge_index, uniq, offset_index=index)
        out = layer(x, plain, uniq, offset_index=index[perm])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_plain_sorted_edge_index_is_not_reordered(monkeypatch):
    graph, x, _ = _graph()
    layer = GLICAttention(8, 8, heads=2).eval()
    calls = _spy(monkeypatch, csr_mod, "csr_sparse_attention")
    with torch.no_grad(), backend.execution("sparse"):
        ref = layer(x, graph.edge_index, graph.edge_attr)
        out = layer(x, graph.edge_index.as_tensor(), graph.edge_attr)
    assert len(calls) == 2
    assert torch.equal(out, ref)  # same edges, same order, same operations
    ei, perm = target_sorted(graph.edge_index.as_tensor(), graph.num_src, graph.num_dst)
    assert perm is None and torch.equal(ei.get_indptr(), graph.ptr)


def test_ptr_argument_warns_is_checked_and_ignored():
    graph, x, _ = _graph()
    layer = GLICAttention(8, 8, heads=2).eval()
    with torch.no_grad():
        ref = layer(x, graph.edge_index, graph.edge_attr)
        with pytest.warns(DeprecationWarning, match="ptr=.*deprecated"):
            out = layer(x, graph.edge_index, graph.edge_attr, ptr=graph.ptr)
        assert torch.equal(out, ref)
        bad = graph.ptr.clone()
        bad[1] += 1
        with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="ptr"):
            layer(x, graph.edge_index, graph.edge_attr, ptr=bad)
    conv = MRConv(8, 4).eval()
    with torch.no_grad():
        ref = conv(x, graph.edge_index)
        with pytest.warns(DeprecationWarning, match="ptr=.*deprecated"):
            out = conv(x, graph.edge_index, ptr=graph.ptr)
    assert torch.equal(out, ref)


def test_mr_conv_plain_unsorted_edge_index_takes_csr_max(monkeypatch):
    torch.manual_seed(0)
    feat = torch.randn(2, 6, 5, 4)
    graph = knn_graph(feat, 4)
    x = feat.permute(0, 2, 3, 1).reshape(-1, 6)
    assert isinstance(graph.edge_index, EdgeIndex)
    conv = MRConv(6, 8)
    perm = torch.randperm(graph.num_edges)
    plain = graph.edge_index.as_tensor()[:, perm].clone()
    calls = _spy(monkeypatch, mr_mod, "csr_max")
    outs, grads = [], []
    for ei in (graph.edge_index, plain):
        xi = x.clone().requires_grad_()
        out = conv(xi, ei)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), xi)[0])
    assert len(calls) == 2
    torch.testing.assert_close(outs[1], outs[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-5)
    ref = MRConv(6, 8, aggr="max")  # the message-passing form, for reference
    ref.load_state_dict(conv.state_dict())
    ref.fuse = False
    with torch.no_grad():
        torch.testing.assert_close(ref(x, plain), outs[0].detach(), atol=1e-6, rtol=1e-6)


def test_transpose_comes_from_the_edge_index_cache():
    graph, x, _ = _graph()
    ei = graph.edge_index
    ei.get_csr()  # PyG's own (unstable) fill of the cache is replaced by a stable one
    cptr, perm, rows = target_transpose(ei)
    ref = csr_transpose(graph.ptr, ei.as_tensor()[0], graph.num_src)
    for a, b in zip((cptr, perm, rows), ref):
        assert torch.equal(a, b)
    (rowptr, col), p = ei.get_csr()  # now what PyG hands out to anyone
    assert rowptr is cptr and p is perm and col is rows
    again = target_transpose(ei)
    assert again[1] is perm  # computed once per graph
    # the CSR executor's backward takes it from there
    csr_mod.clear_cache()
    layer = GLICAttention(8, 8, heads=2)
    fresh = halo_graph(x.t().reshape(1, 8, 9, 7), window=3, halo=1, k=6, adaptive=True)
    assert fresh.edge_index._T_perm is None
    with backend.execution("sparse"):
        out = layer(x.requires_grad_(), fresh.edge_index, fresh.edge_attr)
    out.sum().backward()
    assert fresh.edge_index._T_perm is not None


def test_reuse_layers_example_takes_fast_path_without_pointer(load_script, monkeypatch):
    # the example's model passes no ptr and still runs the CPU CSR executor
    src = EXAMPLE.read_text()
    assert "ptr=" not in src
    module = load_script("examples/reuse_layers.py")
    calls = _spy(monkeypatch, csr_mod, "csr_sparse_attention")
    seen = []
    real = GLICAttention.forward

    def forward(self, x, edge_index, *args, **kwargs):
        seen.append((isinstance(edge_index, EdgeIndex), kwargs.get("ptr")))
        return real(self, x, edge_index, *args, **kwargs)

    monkeypatch.setattr(GLICAttention, "forward", forward)
    with backend.execution("sparse"):
        losses = module.main(steps=2, batch_size=2)
    assert len(losses) == 2
    assert seen and all(is_ei and ptr is None for is_ei, ptr in seen)
    assert len(calls) == len(seen), "every GLICAttention call must take the CSR executor"
