r"""Sparse layers against their dense references on the graphs of pyg_glic.graph's builders."""
import math

import pytest
import torch

from nn_testing import assert_grads_close
from pyg_glic import graph
from pyg_glic.convert import edge_index_to_knn_index, map_to_nodes
from pyg_glic.nn.conv import GLICAttention, MRConv
from pyg_glic.nn.dense import dense_glic_attention, dense_mr_conv


@pytest.mark.parametrize('scope', ['local', 'global', 'strided'])
@pytest.mark.parametrize('adaptive', [False, True])
@pytest.mark.parametrize('pos_bound', [None, 16.0])
def test_glic_attention_equals_dense_on_builder_graphs(scope, adaptive, pos_bound):
    torch.manual_seed(0)
    B, C, H, W = 2, 8, 8, 12
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    pos_src = pos_dst = None
    if scope == 'local':
        g = graph.halo_graph(x, 8, window=4, halo=2, adaptive=adaptive)
        src = dst = map_to_nodes(x)[0].clone().requires_grad_()
        inp, inputs = dst, [dst]
    elif scope == 'strided':
        # 11x13: ragged lattices (ty = tx = 3 for grid 4) with padded candidates
        H, W = 11, 13
        x = torch.randn(B, C, H, W, dtype=torch.float64)
        g = graph.global_graph(x, 6, grid=4, group=2, adaptive=adaptive,
                               candidates='strided')
        assert bool((g.blocks.cand_index < 0).any())
        src = dst = map_to_nodes(x)[0].clone().requires_grad_()
        inp, inputs = dst, [dst]
        unit = torch.tensor([math.ceil(H / 4), math.ceil(W / 4)], dtype=torch.float64)
        pos_src, pos_dst = g.pos_src / unit, g.pos_dst / unit  # offsets in lattice steps
    else:
        g = graph.global_graph(x, 6, grid=4, group=4, adaptive=adaptive)
        src = map_to_nodes(graph.pool_map(x, grid=4))[0].clone().requires_grad_()
        dst = map_to_nodes(x)[0].clone().requires_grad_()
        inp, inputs = (src, dst), [src, dst]
    assert g.blocks is not None
    if adaptive:
        assert int(g.degree.min()) < int(g.degree.max())
    if pos_src is None:
        pos_src, pos_dst = g.pos_src, g.pos_dst
    layer = GLICAttention(C, C, heads=2, pos_hidden=8, pos_bound=pos_bound).double()
    out = layer(inp, g.edge_index, g.edge_attr)
    ref = dense_glic_attention(layer, inp, g.blocks, pos_src, pos_dst)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)
    cot = torch.randn_like(out)
    params = list(layer.parameters())
    assert_grads_close(torch.autograd.grad(out, inputs + params, cot),
                       torch.autograd.grad(ref, inputs + params, cot))


@pytest.mark.parametrize('dilation', [1, 2])
def test_mr_conv_equals_dense_on_knn_graph(dilation):
    torch.manual_seed(0)
    B, C, H, W = 2, 8, 5, 4
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    g = graph.knn_graph(x, 5, dilation=dilation)
    nodes = map_to_nodes(x)[0].clone().requires_grad_()
    knn_index = edge_index_to_knn_index(g.edge_index, B, H * W)
    dense = x.flatten(2).clone().requires_grad_()   # (B, C, N)
    layer = MRConv(C, 6).double()
    out = layer(nodes, g.edge_index)
    ref = dense_mr_conv(layer, dense, knn_index)
    torch.testing.assert_close(out, ref.transpose(1, 2).reshape(B * H * W, 6), atol=1e-12, rtol=0)
    cot = torch.randn_like(out)
    ga = torch.autograd.grad(out, [nodes] + list(layer.parameters()), cot)
    gb = torch.autograd.grad(ref, [dense] + list(layer.parameters()),
                             cot.view(B, H * W, 6).transpose(1, 2))
    assert_grads_close([ga[0]], [gb[0].transpose(1, 2).reshape(B * H * W, C)])
    assert_grads_close(ga[1:], gb[1:])
