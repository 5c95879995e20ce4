import pytest
import torch
from torch_geometric.nn.conv import EdgeConv, GINConv, SAGEConv

from nn_testing import assert_every_param_has_grad
from pyg_glic.convert import map_to_nodes
from pyg_glic.graph import LearnableGraph
from pyg_glic.nn.blocks import FFN, Grapher
from pyg_glic.nn.conv import MRConv, WeightedConv


@pytest.mark.parametrize('conv,cls', [('mr', MRConv), ('edge', EdgeConv), ('sage', SAGEConv),
                                      ('gin', GINConv), ('weighted', WeightedConv)])
def test_grapher_convs(conv, cls):
    torch.manual_seed(0)
    block = Grapher(16, conv=conv, k=4)
    assert isinstance(block.conv, cls)
    assert block.extra_repr() == f'16, conv={conv}, k=4'
    assert str(block).startswith(f'Grapher(\n  16, conv={conv}, k=4\n  (')  # submodules shown
    x = torch.randn(2, 16, 6, 5)
    out = block(x)
    assert out.shape == x.shape
    out.pow(2).sum().backward()
    assert_every_param_has_grad(block)


def test_grapher_given_graph_equals_built_graph():
    torch.manual_seed(0)
    block = Grapher(8, k=3, dilation=2).eval()
    x = torch.randn(2, 8, 4, 4)
    h = block.fc1(x)
    graph = block.build_graph(h)
    torch.testing.assert_close(block(x, graph), block(x))
    # the graph is used: another graph changes the result
    edge_index = torch.stack([torch.arange(32), torch.arange(32)])
    assert not torch.allclose(block(x, edge_index), block(x))


def test_grapher_matches_manual_composition():
    torch.manual_seed(0)
    block = Grapher(8, k=3).eval()
    x = torch.randn(1, 8, 3, 4)
    edge_index = torch.tensor([[1, 2, 0, 5], [0, 0, 3, 11]])
    h = block.fc1(x)
    nodes = map_to_nodes(h)[0]
    y = block.conv(nodes, edge_index).view(1, 3, 4, 16).permute(0, 3, 1, 2)
    expect = x + block.fc2(block.act(block.norm(y)))
    torch.testing.assert_close(block(x, edge_index), expect)


class _LearnedGraph(torch.nn.Module):
    # a tiny differentiable graph: fixed edges, weights from a learnable projection
    def __init__(self, channels):
        super().__init__()
        self.lin = torch.nn.Linear(channels, 4)

    def forward(self, h):
        nodes = map_to_nodes(h)[0]
        z = self.lin(nodes)
        n = nodes.size(0)
        src = torch.arange(n).roll(1)
        dst = torch.arange(n)
        return torch.stack([src, dst]), torch.sigmoid((z[src] * z[dst]).sum(-1))


def test_grapher_learned_graph_weights_get_gradients():
    torch.manual_seed(0)
    block = Grapher(8, conv='weighted', graph_builder=_LearnedGraph(8))
    assert any(n.startswith('graph_builder.') for n, _ in block.named_parameters())
    block(torch.randn(2, 8, 3, 3)).pow(2).sum().backward()
    assert_every_param_has_grad(block)


def test_grapher_rejects_learnable_weights_it_would_ignore():
    block = Grapher(8, conv='mr', graph_builder=_LearnedGraph(8))
    with pytest.raises(ValueError, match='weighted'):
        block(torch.randn(1, 8, 3, 3))


def test_grapher_empty_graph():
    block = Grapher(8).eval()
    x = torch.randn(1, 8, 2, 2)
    out = block(x, torch.empty(2, 0, dtype=torch.long))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_ffn():
    torch.manual_seed(0)
    ffn = FFN(8)
    assert ffn.extra_repr() == '8, hidden=32' and str(ffn).startswith('FFN(\n  8, hidden=32\n')
    x = torch.randn(2, 8, 3, 3)
    ffn(x).pow(2).sum().backward()
    assert_every_param_has_grad(ffn)
    ffn.eval()
    expect = x + ffn.fc2(ffn.act(ffn.fc1(x)))
    torch.testing.assert_close(ffn(x), expect)


def test_drop_path():
    from pyg_glic.nn.blocks import DropPath
    torch.manual_seed(0)
    dp = DropPath(0.5)
    x = torch.ones(1000, 3, 2, 2)
    y = dp(x)
    per_sample = y.flatten(1)
    assert bool(((per_sample == 0) | (per_sample == 2)).all())
    assert 400 < int((per_sample[:, 0] == 0).sum()) < 600
    assert torch.equal(dp.eval()(x), x)
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_grapher_with_learnable_graph():
    torch.manual_seed(0)
    block = Grapher(8, conv='weighted', graph_builder=LearnableGraph(8))
    block(torch.randn(2, 8, 4, 4)).pow(2).sum().backward()
    assert_every_param_has_grad(block)
