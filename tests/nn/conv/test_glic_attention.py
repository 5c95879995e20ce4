import math

import pytest
import torch

from nn_testing import assert_every_param_has_grad, assert_grads_close, random_block_graph
from pyg_glic.nn.conv import GLICAttention
from pyg_glic.nn.dense import dense_glic_attention


def test_glic_attention_repr():
    assert str(GLICAttention(64, 128)) == 'GLICAttention(64, 128, heads=8)'
    assert str(GLICAttention((32, 64), 64, heads=4)) == 'GLICAttention((32, 64), 64, heads=4)'
    with pytest.raises(ValueError):
        GLICAttention(16, 30, heads=8)


def _inputs(graph, C, bipartite, gen):
    x_dst = torch.randn(graph.num_dst, C, dtype=torch.float64, generator=gen)
    if bipartite:
        x_src = torch.randn(graph.num_src, C, dtype=torch.float64, generator=gen)
        return (x_src.requires_grad_(), x_dst.requires_grad_())
    return (x_dst.requires_grad_(),)


@pytest.mark.parametrize('impl', ['gather', 'propagate'])
@pytest.mark.parametrize('degree', ['fixed', 'adaptive'])
@pytest.mark.parametrize('bipartite', [False, True])
@pytest.mark.parametrize('pos_bound', [None, 16.0])
def test_glic_attention_equals_dense(impl, degree, bipartite, pos_bound, gen):
    num_dst, C, heads = 40, 16, 4
    num_src = 12 if bipartite else num_dst
    graph = random_block_graph(num_src, num_dst, Q=8, K=10, degree=degree, k=4,
                               drop_queries=3, pad_cands=2, generator=gen)
    layer = GLICAttention(C, C, heads=heads, pos_hidden=8, impl=impl,
                          pos_bound=pos_bound).double()
    with torch.no_grad():  # spread the scales so heads differ
        layer.logit_scale.copy_(torch.log(torch.tensor([1.0, 5.0, 10.0, 50.0])))
    xs = _inputs(graph, C, bipartite, gen)
    x = xs if bipartite else xs[0]
    out = layer(x, graph.edge_index, graph.edge_attr)
    ref = dense_glic_attention(layer, x, graph.blocks, graph.pos_src, graph.pos_dst)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)

    g = torch.randn_like(out)
    params = list(layer.parameters())
    ga = torch.autograd.grad(out, list(xs) + params, g)
    gb = torch.autograd.grad(ref, list(xs) + params, g)
    assert_grads_close(ga, gb)


def test_glic_attention_bounded_position_bias(gen):
    # GLIC's published bias: 16 * sigmoid(MLP 2 -> 512 -> heads)
    layer = GLICAttention(16, 16, heads=4, pos_hidden=512, pos_bound=16).double()
    assert layer.pos_bound == 16.0 and layer.pos_mlp[0].out_features == 512
    assert str(layer) == 'GLICAttention(16, 16, heads=4)'
    with torch.no_grad():
        layer.pos_mlp[2].weight.mul_(50)  # saturate some outputs
    off = torch.randn(200, 2, dtype=torch.float64, generator=gen) * 20
    with torch.no_grad():
        b = layer.position_bias(off)
    assert b.shape == (200, 4) and float(b.min()) >= 0 and float(b.max()) <= 16
    assert float(b.max()) > 15 and float(b.min()) < 1
    free = GLICAttention(16, 16, heads=4, pos_hidden=512).double()
    free.load_state_dict(layer.state_dict())  # same parameters, same names
    with torch.no_grad():
        torch.testing.assert_close(b, 16 * torch.sigmoid(free.position_bias(off)))
    for bad in (0, -1.0, float('inf'), True, '16'):
        with pytest.raises(ValueError, match='pos_bound'):
            GLICAttention(8, 8, heads=2, pos_bound=bad)


def test_glic_attention_isolated_nodes_get_bias(gen):
    graph = random_block_graph(20, 20, Q=5, K=6, degree='adaptive', drop_queries=4,
                               generator=gen)
    layer = GLICAttention(8, 8, heads=2).double()
    x = torch.randn(20, 8, dtype=torch.float64)
    out = layer(x, graph.edge_index, graph.edge_attr)
    isolated = graph.degree == 0
    assert isolated.sum() >= 4
    torch.testing.assert_close(out[isolated], layer.lin_out.bias.expand(int(isolated.sum()), 8))


@pytest.mark.parametrize('impl', ['gather', 'propagate'])
@pytest.mark.parametrize('bipartite', [False, True])
def test_glic_attention_empty_graph(impl, bipartite):
    layer = GLICAttention(8, 8, heads=2, impl=impl)
    x_dst = torch.randn(6, 8, requires_grad=True)
    x = (torch.randn(3, 8), x_dst) if bipartite else x_dst
    edge_index = torch.empty(2, 0, dtype=torch.long)
    out = layer(x, edge_index, torch.empty(0, 2))
    torch.testing.assert_close(out, layer.lin_out.bias.expand(6, 8))
    out.sum().backward()
    assert torch.isfinite(x_dst.grad).all()
    assert torch.isfinite(layer.lin_q.weight.grad).all()


def test_glic_attention_scale_init_and_cap():
    layer = GLICAttention(8, 8, heads=2)
    torch.testing.assert_close(layer.scale(), torch.full((2,), 10.0))
    with torch.no_grad():
        layer.logit_scale.fill_(math.log(1000.0))
    torch.testing.assert_close(layer.scale(), torch.full((2,), 100.0))


def test_glic_attention_edge_weight(gen):
    graph = random_block_graph(15, 15, Q=5, K=6, degree='fixed', k=3, generator=gen)
    layer = GLICAttention(8, 8, heads=2).double()
    x = torch.randn(15, 8, dtype=torch.float64)
    base = layer(x, graph.edge_index, graph.edge_attr)
    ones = torch.ones(graph.num_edges, dtype=torch.float64)
    torch.testing.assert_close(layer(x, graph.edge_index, graph.edge_attr, edge_weight=ones),
                               base)
    w = torch.rand(graph.num_edges, dtype=torch.float64, requires_grad=True)
    out = layer(x, graph.edge_index, graph.edge_attr, edge_weight=w)
    ref = GLICAttention(8, 8, heads=2, impl='propagate').double()
    ref.load_state_dict(layer.state_dict())
    torch.testing.assert_close(out, ref(x, graph.edge_index, graph.edge_attr, edge_weight=w))
    out.pow(2).sum().backward()
    assert w.grad.abs().sum() > 0


def test_glic_attention_without_position_bias(gen):
    graph = random_block_graph(15, 15, Q=5, K=6, generator=gen)
    layer = GLICAttention(8, 8, heads=2, pos_hidden=0).double()
    x = torch.randn(15, 8, dtype=torch.float64)
    out = layer(x, graph.edge_index)
    ref = dense_glic_attention(layer, x, graph.blocks, graph.pos_src, graph.pos_dst)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize('pos_bound', [None, 16.0])
def test_glic_attention_published_additive_mask_is_close(pos_bound, gen):
    # Without empty rows, the published -100 mask differs from the exact one by ~exp(-100).
    graph = random_block_graph(24, 24, Q=6, K=8, degree='fixed', k=3, generator=gen)
    layer = GLICAttention(8, 8, heads=2, pos_bound=pos_bound).double()
    x = torch.randn(24, 8, dtype=torch.float64)
    exact = dense_glic_attention(layer, x, graph.blocks, graph.pos_src, graph.pos_dst)
    published = dense_glic_attention(layer, x, graph.blocks, graph.pos_src, graph.pos_dst,
                                     additive_mask=-100.0)
    torch.testing.assert_close(published, exact, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize('pos_bound', [None, 16.0])
def test_glic_attention_every_param_has_grad(pos_bound, gen):
    graph = random_block_graph(10, 30, Q=6, K=8, degree='fixed', k=4, generator=gen)
    layer = GLICAttention((12, 8), 16, heads=4, pos_bound=pos_bound)
    x = (torch.randn(10, 12), torch.randn(30, 8))
    layer(x, graph.edge_index, graph.edge_attr.float()).pow(2).sum().backward()
    assert_every_param_has_grad(layer)


def test_glic_attention_float32_edge_attr_with_float64_layer(gen):
    graph = random_block_graph(10, 10, Q=5, K=5, generator=gen, dtype=torch.float32)
    layer = GLICAttention(8, 8, heads=2).double()
    out = layer(torch.randn(10, 8, dtype=torch.float64), graph.edge_index, graph.edge_attr)
    assert out.dtype == torch.float64


@pytest.mark.parametrize('impl', ['gather', 'propagate'])
@pytest.mark.parametrize('pos_bound', [None, 16.0])
def test_glic_attention_compressed_offsets(impl, pos_bound, gen):
    from pyg_glic.nn.offsets import compress_offsets
    graph = random_block_graph(20, 20, Q=5, K=6, generator=gen)
    attr = torch.round(graph.edge_attr)  # few distinct offsets
    unique, index = compress_offsets(attr)
    assert unique.size(0) < graph.num_edges
    torch.testing.assert_close(unique[index], attr)
    layer = GLICAttention(8, 8, heads=2, impl=impl, pos_bound=pos_bound).double()
    x = torch.randn(20, 8, dtype=torch.float64, requires_grad=True)
    out = layer(x, graph.edge_index, attr)
    comp = layer(x, graph.edge_index, unique, offset_index=index)
    torch.testing.assert_close(comp, out)
    params = [x] + list(layer.parameters())
    assert_grads_close(torch.autograd.grad(comp.sum(), params),
                       torch.autograd.grad(out.sum(), params))
