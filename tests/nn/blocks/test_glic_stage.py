import pytest
import torch
import torch.nn.functional as F

from nn_testing import assert_every_param_has_grad, pooled_graph, window_graph
from pyg_glic.convert import map_to_nodes, nodes_to_map
from pyg_glic.nn.blocks import GatedFFN, GLICStage, GraphAttentionBlock, GraphStage


def _graphs(B, H, W, grid=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (window_graph(B, H, W, window=4, halo=2, k=6, generator=g, dtype=torch.float32),
            pooled_graph(B, H, W, grid=grid, k=3, generator=g, dtype=torch.float32))


def test_stage_repr_and_layout():
    assert GLICStage is GraphStage
    stage = GraphStage(16, depth=5, heads=2, k=8, grid=2)
    assert str(stage) == 'GraphStage(16, depth=5, heads=2, k=8, adaptive=False)'
    assert [b.scope for b in stage.blocks] == ['local', 'global', 'local', 'global', 'local']
    assert str(stage.blocks[1]) == 'GraphAttentionBlock(16, heads=2, scope=global)'
    with pytest.raises(ValueError):
        GraphStage(16, depth=2, drop_path=[0.1])


def test_stage_with_precomputed_graphs():
    torch.manual_seed(0)
    B, C, H, W = 2, 16, 8, 6
    stage = GraphStage(C, depth=3, heads=4, grid=2, ffn_expansion=2, attn_kwargs=dict(pos_hidden=8))
    x = torch.randn(B, C, H, W)
    out = stage(x, _graphs(B, H, W))
    assert out.shape == x.shape
    out.pow(2).sum().backward()
    assert_every_param_has_grad(stage)


def test_global_block_pools_current_features():
    torch.manual_seed(0)
    B, C, H, W = 2, 8, 4, 6
    blk = GraphAttentionBlock(C, heads=2, scope='global', grid=2, ffn_expansion=1).eval()
    _, graph = _graphs(B, H, W)
    x = torch.randn(B, C, H, W)
    h = F.layer_norm(x.permute(0, 2, 3, 1), (C,), blk.norm1.weight, blk.norm1.bias)
    h = h.permute(0, 3, 1, 2)
    src = map_to_nodes(F.adaptive_avg_pool2d(h, 2))[0]
    dst = map_to_nodes(h)[0]
    att = blk.attn((src, dst), graph.edge_index, graph.edge_attr)
    y = x + nodes_to_map(att, B, H, W)
    expect = y + blk.ffn(blk.norm2(y))
    torch.testing.assert_close(blk(x, graph), expect)


def test_global_block_rejects_mismatched_grid():
    blk = GraphAttentionBlock(8, heads=2, scope='global', grid=4)
    _, graph = _graphs(1, 4, 4, grid=2)
    with pytest.raises(ValueError, match='sources'):
        blk(torch.randn(1, 8, 4, 4), graph)


def test_gated_ffn():
    ffn = GatedFFN(8, expansion=2)
    assert str(ffn) == 'GatedFFN(8, hidden=16)'
    x = torch.randn(1, 8, 5, 5)
    a, g = ffn.dwconv(ffn.project_in(x)).chunk(2, 1)
    torch.testing.assert_close(ffn(x), ffn.project_out(F.gelu(g) * a))


def _builders():
    try:
        from pyg_glic.graph import global_graph, halo_graph  # noqa: F401
    except ImportError:
        pytest.skip('pyg_glic.graph builders not available')


@pytest.mark.parametrize('adaptive', [False, True])
def test_stage_builds_its_graphs_once(adaptive, monkeypatch):
    _builders()
    import pyg_glic.graph as G
    calls = {'halo': 0, 'global': 0}
    halo, glob = G.halo_graph, G.global_graph

    def count(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            assert not torch.is_grad_enabled()
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(G, 'halo_graph', count('halo', halo))
    monkeypatch.setattr(G, 'global_graph', count('global', glob))
    torch.manual_seed(0)
    B, C, H, W = 2, 8, 8, 8
    stage = GraphStage(C, depth=3, heads=2, k=6, window=4, halo=2, grid=4, group=4,
                       adaptive=adaptive, ffn_expansion=1)
    x = torch.randn(B, C, H, W, requires_grad=True)
    out = stage(x)
    assert calls == {'halo': 1, 'global': 1}
    graphs = stage.build_graphs(x)
    torch.testing.assert_close(stage(x, graphs), out)
    out.sum().backward()
    assert_every_param_has_grad(stage)


def test_stage_compressed_offsets_equal_plain():
    torch.manual_seed(0)
    B, C, H, W = 1, 8, 8, 8
    graphs = _graphs(B, H, W)
    stage = GraphStage(C, depth=2, heads=2, grid=2, ffn_expansion=1).double()
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    out = stage(x, graphs)
    stage.compress_offsets = False
    torch.testing.assert_close(stage(x, graphs), out)
