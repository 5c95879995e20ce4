import pytest
import torch
from torch_geometric import EdgeIndex

from nn_testing import assert_every_param_has_grad, assert_grads_close, random_knn_index
from pyg_glic.convert import knn_index_to_edge_index
from pyg_glic.nn.conv import MRConv
from pyg_glic.nn.dense import dense_mr_conv


def test_mr_conv_repr():
    assert str(MRConv(64, 128)) == 'MRConv(64, 128)'


def test_mr_conv_small():
    x = torch.randn(4, 16)
    edge_index = torch.tensor([[0, 1, 2, 3, 0], [1, 0, 0, 0, 2]])
    conv = MRConv(16, 32)
    out = conv(x, edge_index)
    assert out.shape == (4, 32)
    agg = torch.stack([torch.stack([x[1] - x[0], x[2] - x[0], x[3] - x[0]]).max(0).values,
                       x[0] - x[1], x[0] - x[2], torch.zeros(16)])
    torch.testing.assert_close(out, conv.lin(torch.cat([x, agg], -1)))


@pytest.mark.parametrize('variable', [False, True])
@pytest.mark.parametrize('csr', [None, 'one chunk', 'chunks'])
def test_mr_conv_equals_dense(variable, csr, gen, monkeypatch):
    # message passing, and (csr) the CSR max with the graph's pointer, in one
    # chunk and in many, against ViG's dense gather form
    B, N, k, C = 2, 12, 4, 5
    x = torch.randn(B, C, N, dtype=torch.float64, generator=gen)
    knn_index = random_knn_index(B, N, k, variable=variable, generator=gen)
    edge_index = knn_index_to_edge_index(knn_index)
    conv = MRConv(C, 7).double()

    xs = x.transpose(1, 2).reshape(B * N, C).clone().requires_grad_()
    if csr is None:
        conv.fuse = False  # PyG's message passing (message, then max aggregation)
        out = conv(xs, edge_index)
        conv.fuse = True
    else:
        from pyg_glic.nn.attention import backend
        if csr == 'chunks':
            monkeypatch.setattr(backend, "CHUNK_ELEMENTS", 16)
        edge_index = edge_index[:, edge_index[1].argsort(stable=True)]
        out = conv(xs, edge_index)  # a plain edge_index: wrapped, its pointer derived
    xd = x.clone().requires_grad_()
    ref = dense_mr_conv(conv, xd, knn_index)
    torch.testing.assert_close(out, ref.transpose(1, 2).reshape(B * N, -1), atol=1e-12, rtol=0)

    g = torch.randn(B * N, 7, dtype=torch.float64, generator=gen)
    params = list(conv.parameters())
    ga = torch.autograd.grad(out, [xs] + params, g)
    gb = torch.autograd.grad(ref, [xd] + params, g.view(B, N, 7).transpose(1, 2))
    assert_grads_close([ga[0]], [gb[0].transpose(1, 2).reshape(B * N, C)])
    assert_grads_close(ga[1:], gb[1:])


def test_mr_conv_isolated_and_empty():
    conv = MRConv(8, 4)
    x = torch.randn(5, 8)
    edge_index = torch.tensor([[1, 2], [0, 0]])  # nodes 1..4 receive nothing
    out = conv(x, edge_index)
    expect = conv.lin(torch.cat([x, torch.zeros_like(x)], -1))
    torch.testing.assert_close(out[1:], expect[1:])
    empty = torch.empty(2, 0, dtype=torch.long)
    torch.testing.assert_close(conv(x, empty), expect)


def test_mr_conv_bipartite():
    conv = MRConv(8, 4)
    x_src, x_dst = torch.randn(3, 8), torch.randn(6, 8)
    edge_index = torch.tensor([[0, 1, 2, 2], [0, 0, 3, 5]])
    out = conv((x_src, x_dst), edge_index)
    assert out.shape == (6, 4)
    agg = torch.zeros(6, 8)
    agg[0] = torch.maximum(x_src[0] - x_dst[0], x_src[1] - x_dst[0])
    agg[3] = x_src[2] - x_dst[3]
    agg[5] = x_src[2] - x_dst[5]
    torch.testing.assert_close(out, conv.lin(torch.cat([x_dst, agg], -1)))


def test_mr_conv_every_param_has_grad():
    conv = MRConv(8, 4)
    x = torch.randn(6, 8)
    edge_index = knn_index_to_edge_index(random_knn_index(1, 6, 3))
    conv(x, edge_index).pow(2).sum().backward()
    assert_every_param_has_grad(conv)


def test_csr_max_isolated_ties_and_errors():
    from pyg_glic.nn.segment import csr_max
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0], [2.0, 0.0]], requires_grad=True)
    # target 0 <- {0, 1, 2}; target 1 <- nothing; target 2 <- {2}
    ptr, src = torch.tensor([0, 3, 3, 4]), torch.tensor([0, 1, 2, 2])
    m = csr_max(x, ptr, src)
    torch.testing.assert_close(m, torch.tensor([[3.0, 5.0], [0.0, 0.0], [2.0, 0.0]]))
    m.backward(torch.ones_like(m))
    # channel 1 of target 0 ties between sources 0 and 1: the gradient is split
    torch.testing.assert_close(x.grad, torch.tensor([[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="number of edges"):
        csr_max(x, torch.tensor([0, 2]), src)
    with pytest.raises(ValueError, match="ptr must have one entry per target"), \
            pytest.warns(DeprecationWarning, match="ptr=.... is deprecated"):
        MRConv(2, 3)(x.detach(), torch.stack([src, torch.tensor([0, 0, 0, 2])]),
                     ptr=torch.tensor([0, 4]))


def test_grapher_passes_its_edge_index_to_mr_conv(monkeypatch):
    # the ViG block hands its k-NN graph to MRConv as a target-sorted EdgeIndex
    # (which carries the CSR pointer), never a ptr=, and the result equals the form
    # on a plain edge_index
    from pyg_glic.nn.blocks import Grapher
    torch.manual_seed(0)
    block = Grapher(8, k=4, conv="mr").eval()
    x = torch.randn(2, 8, 5, 6)
    seen = []
    real = MRConv.forward

    def spy(self, x, edge_index, ptr=None):
        # the CSR pointer travels in the graph: an EdgeIndex sorted by target
        assert ptr is None
        seen.append(isinstance(edge_index, EdgeIndex) and edge_index.is_sorted_by_col)
        return real(self, x, edge_index, ptr=ptr)

    monkeypatch.setattr(MRConv, "forward", spy)
    with torch.no_grad():
        out = block(x)
        graph = block.build_graph(block.fc1(x))
        ref = block(x, graph=graph.edge_index.as_tensor())  # a plain edge_index: no ptr
    assert seen == [True, False]
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
