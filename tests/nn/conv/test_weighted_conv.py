import pytest
import torch

from nn_testing import assert_every_param_has_grad, assert_grads_close, random_knn_index
from pyg_glic.convert import knn_index_to_edge_index
from pyg_glic.nn.conv import MRConv, WeightedConv
from pyg_glic.nn.dense import dense_weighted_conv


def test_weighted_conv_repr():
    assert str(WeightedConv(64, 128)) == 'WeightedConv(64, 128, aggr=max)'
    assert str(WeightedConv(8, 4, aggr='sum')) == 'WeightedConv(8, 4, aggr=sum)'
    with pytest.raises(ValueError):
        WeightedConv(8, 4, aggr='min')


@pytest.mark.parametrize('aggr', ['max', 'sum', 'mean'])
@pytest.mark.parametrize('relative,root_weight', [(True, True), (False, False)])
@pytest.mark.parametrize('variable', [False, True])
def test_weighted_conv_equals_dense(aggr, relative, root_weight, variable, gen):
    B, N, k, C = 2, 10, 4, 5
    x = torch.randn(B, C, N, dtype=torch.float64, generator=gen)
    knn_index = random_knn_index(B, N, k, variable=variable, generator=gen)
    weight = torch.rand(B, N, k, dtype=torch.float64, generator=gen) * 2 - 0.5
    edge_index = knn_index_to_edge_index(knn_index)
    conv = WeightedConv(C, 6, aggr=aggr, relative=relative, root_weight=root_weight).double()

    xs = x.transpose(1, 2).reshape(B * N, C).clone().requires_grad_()
    ws = weight[knn_index >= 0].clone().requires_grad_()   # same order as edge_index
    out = conv(xs, edge_index, ws)
    xd = x.clone().requires_grad_()
    wd = weight.clone().requires_grad_()
    ref = dense_weighted_conv(conv, xd, knn_index, wd)
    torch.testing.assert_close(out, ref.transpose(1, 2).reshape(B * N, -1), atol=1e-12, rtol=0)

    g = torch.randn(B * N, 6, dtype=torch.float64, generator=gen)
    params = list(conv.parameters())
    ga = torch.autograd.grad(out, [xs, ws] + params, g)
    gb = torch.autograd.grad(ref, [xd, wd] + params, g.view(B, N, 6).transpose(1, 2))
    assert_grads_close([ga[0], ga[1]], [gb[0].transpose(1, 2).reshape(B * N, C),
                                        gb[1][knn_index >= 0]])
    assert_grads_close(ga[2:], gb[2:])
    assert ga[1].abs().sum() > 0  # gradients reach the edge weights


def test_weighted_conv_unit_weights_is_mr_conv():
    x = torch.randn(8, 6)
    edge_index = knn_index_to_edge_index(random_knn_index(1, 8, 3))
    mr, wc = MRConv(6, 5), WeightedConv(6, 5)
    wc.lin.load_state_dict(mr.lin.state_dict())
    torch.testing.assert_close(wc(x, edge_index), mr(x, edge_index))
    torch.testing.assert_close(wc(x, edge_index, torch.ones(edge_index.size(1))),
                               mr(x, edge_index))


@pytest.mark.parametrize('aggr', ['max', 'sum', 'mean'])
def test_weighted_conv_isolated_and_empty(aggr):
    conv = WeightedConv(4, 3, aggr=aggr)
    x = torch.randn(5, 4)
    expect = conv.lin(torch.cat([x, torch.zeros_like(x)], -1))
    out = conv(x, torch.tensor([[1, 2], [0, 0]]), torch.tensor([0.5, 2.0]))
    torch.testing.assert_close(out[1:], expect[1:])
    empty = torch.empty(2, 0, dtype=torch.long)
    torch.testing.assert_close(conv(x, empty, torch.empty(0)), expect)


def test_weighted_conv_every_param_has_grad():
    conv = WeightedConv(8, 4)
    x = torch.randn(6, 8)
    edge_index = knn_index_to_edge_index(random_knn_index(1, 6, 3))
    w = torch.rand(edge_index.size(1), requires_grad=True)
    conv(x, edge_index, w).pow(2).sum().backward()
    assert_every_param_has_grad(conv)
    assert w.grad is not None and w.grad.abs().sum() > 0
