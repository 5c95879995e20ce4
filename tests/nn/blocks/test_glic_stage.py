import pytest
import torch
import torch.nn.functional as F

from nn_testing import assert_every_param_has_grad, pooled_graph, window_graph
from pyg_glic.convert import map_to_nodes, nodes_to_map
from pyg_glic.graph import global_graph, halo_graph
from pyg_glic.nn.blocks import GatedFFN, GLICStage, GraphAttentionBlock


def _graphs(B, H, W, grid=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (window_graph(B, H, W, window=4, halo=2, k=6, generator=g, dtype=torch.float32),
            pooled_graph(B, H, W, grid=grid, k=3, generator=g, dtype=torch.float32))


def test_stage_repr_and_layout():
    stage = GLICStage(16, depth=5, heads=2, k=8, grid=2, group=2)
    assert stage.extra_repr() == '16, depth=5, heads=2, k=8, adaptive=False'
    # a container: print(stage) shows its settings and every submodule
    assert str(stage).startswith('GLICStage(\n  16, depth=5, heads=2, k=8, adaptive=False\n')
    assert '(attn): GLICAttention(' in str(stage)
    assert [b.scope for b in stage.blocks] == ['local', 'global', 'local', 'global', 'local']
    assert stage.blocks[1].extra_repr() == '16, heads=2, scope=global'
    assert stage.global_candidates == 'strided' and not stage.blocks[1].pooled
    pooled = GLICStage(16, depth=2, heads=2, grid=2, global_candidates='pooled')
    assert pooled.extra_repr() == ('16, depth=2, heads=2, k=64, adaptive=False, '
                                   'global_candidates=pooled')
    assert pooled.blocks[1].extra_repr() == '16, heads=2, scope=global, candidates=pooled'
    for scopes in ('local', 'global'):
        s = GLICStage(16, depth=3, heads=2, grid=4, group=2, scopes=scopes)
        assert [b.scope for b in s.blocks] == [scopes] * 3
        assert s.extra_repr().endswith(f'scopes={scopes}')
    with pytest.raises(ValueError):
        GLICStage(16, depth=2, drop_path=[0.1])
    with pytest.raises(ValueError, match='scopes must be one of'):
        GLICStage(16, scopes='both')
    with pytest.raises(ValueError, match='global_candidates must be one of'):
        GLICStage(16, global_candidates='lattice')
    with pytest.raises(ValueError, match='grid divisible by group'):
        GLICStage(16, grid=2)  # group=8
    with pytest.raises(ValueError, match='not factor'):
        GLICStage(16, factor=2)
    GLICStage(16, grid=2, scopes='local')  # no global layer: grid and group unused
    GLICStage(16, factor=2, global_candidates='pooled')


def test_state_dict_keys_do_not_depend_on_the_layout():
    kw = dict(depth=3, heads=2, grid=4, group=2, ffn_expansion=1)
    keys = list(GLICStage(8, **kw).state_dict())
    assert keys == list(GLICStage(8, global_candidates='pooled', **kw).state_dict())
    assert keys == list(GLICStage(8, scopes='global', **kw).state_dict())
    blk = ['norm1.weight', 'norm1.bias', 'attn.logit_scale', 'attn.lin_q.weight',
           'attn.lin_q.bias', 'attn.lin_k.weight', 'attn.lin_k.bias', 'attn.lin_v.weight',
           'attn.lin_v.bias', 'attn.lin_out.weight', 'attn.lin_out.bias',
           'attn.pos_mlp.0.weight', 'attn.pos_mlp.0.bias', 'attn.pos_mlp.2.weight',
           'norm2.weight', 'norm2.bias']
    for i in range(3):
        assert set(f'blocks.{i}.{n}' for n in blk) <= set(keys)
    bounded = GLICStage(8, attn_kwargs=dict(pos_hidden=16, pos_bound=16.0), **kw)
    assert list(bounded.state_dict()) == keys


def test_stage_with_precomputed_graphs():
    torch.manual_seed(0)
    B, C, H, W = 2, 16, 8, 6
    stage = GLICStage(C, depth=3, heads=4, grid=2, ffn_expansion=2,
                       attn_kwargs=dict(pos_hidden=8), global_candidates='pooled')
    x = torch.randn(B, C, H, W)
    out = stage(x, _graphs(B, H, W))
    assert out.shape == x.shape
    out.pow(2).sum().backward()
    assert_every_param_has_grad(stage)


def test_global_block_pools_current_features():
    torch.manual_seed(0)
    B, C, H, W = 2, 8, 4, 6
    blk = GraphAttentionBlock(C, heads=2, scope='global', grid=2, ffn_expansion=1,
                              global_candidates='pooled').eval()
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


def test_strided_global_block_attends_over_the_map():
    torch.manual_seed(0)
    B, C, H, W = 2, 8, 7, 10
    blk = GraphAttentionBlock(C, heads=2, scope='global', ffn_expansion=1).eval()
    x = torch.randn(B, C, H, W)
    graph = global_graph(x, 6, grid=4, group=2, candidates='strided')
    h = F.layer_norm(x.permute(0, 2, 3, 1), (C,), blk.norm1.weight, blk.norm1.bias)
    nodes = h.reshape(B * H * W, C)
    att = blk.attn(nodes, graph.edge_index, graph.edge_attr)
    y = x + nodes_to_map(att, B, H, W)
    torch.testing.assert_close(blk(x, graph), y + blk.ffn(blk.norm2(y)))
    # a pooled (bipartite) graph does not fit a strided layer
    with pytest.raises(ValueError, match="global_candidates='pooled'"):
        blk(x, global_graph(x, 3, grid=2))


def test_global_block_rejects_mismatched_grid():
    blk = GraphAttentionBlock(8, heads=2, scope='global', grid=4, global_candidates='pooled')
    _, graph = _graphs(1, 4, 4, grid=2)
    with pytest.raises(ValueError, match='sources'):
        blk(torch.randn(1, 8, 4, 4), graph)


def test_gated_ffn():
    ffn = GatedFFN(8, expansion=2)
    assert ffn.extra_repr() == '8, hidden=16' and '(dwconv): Conv2d(' in str(ffn)
    x = torch.randn(1, 8, 5, 5)
    a, g = ffn.dwconv(ffn.project_in(x)).chunk(2, 1)
    torch.testing.assert_close(ffn(x), ffn.project_out(F.gelu(g) * a))


def _count_builders(monkeypatch):
    from pyg_glic.nn.blocks import glic_stage as G  # the builders as the stage imports them
    calls = {'halo': 0, 'global': 0, 'candidates': []}
    halo, glob = G.halo_graph, G.global_graph

    def count(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            if name == 'global':
                calls['candidates'].append(kwargs.get('candidates'))
            assert not torch.is_grad_enabled()
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(G, 'halo_graph', count('halo', halo))
    monkeypatch.setattr(G, 'global_graph', count('global', glob))
    return calls


@pytest.mark.parametrize('global_candidates', ['strided', 'pooled'])
@pytest.mark.parametrize('adaptive', [False, True])
def test_stage_builds_its_graphs_once(adaptive, global_candidates, monkeypatch):
    calls = _count_builders(monkeypatch)
    torch.manual_seed(0)
    B, C, H, W = 2, 8, 8, 8
    stage = GLICStage(C, depth=3, heads=2, k=6, window=4, halo=2, grid=4, group=4,
                       adaptive=adaptive, ffn_expansion=1, global_candidates=global_candidates)
    x = torch.randn(B, C, H, W, requires_grad=True)
    out = stage(x)
    assert calls == {'halo': 1, 'global': 1, 'candidates': [global_candidates]}
    local, glob = stage.build_graphs(x)
    n = B * H * W
    assert glob.num_src == (n if global_candidates == 'strided' else B * 16)
    torch.testing.assert_close(stage(x, (local, glob)), out)
    out.sum().backward()
    assert_every_param_has_grad(stage)


@pytest.mark.parametrize('scopes,depth,expect', [('dual', 1, (1, 0)), ('dual', 2, (1, 1)),
                                                 ('local', 3, (1, 0)), ('global', 3, (0, 1))])
def test_stage_builds_only_the_graphs_it_uses(scopes, depth, expect, monkeypatch):
    calls = _count_builders(monkeypatch)
    torch.manual_seed(0)
    B, C, H, W = 1, 8, 9, 7
    stage = GLICStage(C, depth=depth, heads=2, k=6, window=4, halo=2, grid=4, group=2,
                       ffn_expansion=1, scopes=scopes)
    x = torch.randn(B, C, H, W, requires_grad=True)
    out = stage(x)
    assert (calls['halo'], calls['global']) == expect
    local, glob = stage.build_graphs(x)
    assert (local is not None, glob is not None) == tuple(bool(e) for e in expect)
    out.pow(2).sum().backward()
    assert_every_param_has_grad(stage)


def test_stage_graphs_do_not_change_under_autocast():
    # bf16 features (or bf16 similarity products) move a share of the edges: the
    # stage builds its graphs in float32 with autocast off
    torch.manual_seed(0)
    x = torch.randn(2, 32, 16, 20)
    stage = GLICStage(32, depth=2, heads=2, k=16, window=4, halo=2, grid=4, group=2)
    local, glob = stage.build_graphs(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        local_ac, glob_ac = stage.build_graphs(x)
        # the bug this guards against: the builders under autocast (bf16 products)
        unguarded = halo_graph(x, 16, window=4, halo=2)
    assert torch.equal(local_ac.edge_index, local.edge_index)
    assert torch.equal(glob_ac.edge_index, glob.edge_index)
    assert local_ac.edge_attr.dtype == torch.float32
    # the input does discriminate: bf16 features give other edges
    lb = halo_graph(x.to(torch.bfloat16), 16, window=4, halo=2)
    gb = global_graph(x.to(torch.bfloat16), 16, grid=4, group=2, candidates='strided')
    assert not torch.equal(lb.edge_index, local.edge_index)
    assert not torch.equal(gb.edge_index, glob.edge_index)
    assert not torch.equal(unguarded.edge_index, local.edge_index)
    # bf16 input is built from its float32 upcast
    lb32 = halo_graph(x.to(torch.bfloat16).float(), 16, window=4, halo=2)
    assert torch.equal(stage.build_graphs(x.to(torch.bfloat16))[0].edge_index, lb32.edge_index)
    # and the stage runs under autocast
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = stage(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_stage_passes_attention_options():
    torch.manual_seed(0)
    stage = GLICStage(8, depth=2, heads=2, k=6, window=4, halo=2, grid=4, group=2,
                       ffn_expansion=1, attn_kwargs=dict(pos_hidden=16, pos_bound=16.0))
    for blk in stage.blocks:
        assert blk.attn.pos_hidden == 16 and blk.attn.pos_bound == 16.0
        assert blk.attn.pos_mlp[0].out_features == 16
    x = torch.randn(1, 8, 8, 8, requires_grad=True)
    out = stage(x)
    out.pow(2).sum().backward()
    assert_every_param_has_grad(stage)


def test_stage_compressed_offsets_equal_plain():
    torch.manual_seed(0)
    B, C, H, W = 1, 8, 8, 8
    graphs = _graphs(B, H, W)
    stage = GLICStage(C, depth=2, heads=2, grid=2, ffn_expansion=1,
                       global_candidates='pooled').double()
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    out = stage(x, graphs)
    stage.compress_offsets = False
    torch.testing.assert_close(stage(x, graphs), out)


def test_stage_strided_compressed_offsets_equal_plain():
    torch.manual_seed(0)
    stage = GLICStage(8, depth=3, heads=2, k=6, window=4, halo=2, grid=4, group=2,
                       ffn_expansion=1, attn_kwargs=dict(pos_bound=16.0)).double()
    x = torch.randn(2, 8, 9, 11, dtype=torch.float64)
    graphs = stage.build_graphs(x)
    out = stage(x, graphs)
    stage.compress_offsets = False
    torch.testing.assert_close(stage(x, graphs), out)


def test_old_names_warn_and_resolve():
    # GraphStage and GraphAttention were reversed aliases: kept for one release
    import pyg_glic.nn as nn_pkg
    from pyg_glic.nn import blocks, conv
    from pyg_glic.nn.blocks import glic_stage
    from pyg_glic.nn.conv import GLICAttention, glic_attention
    for module, old, new in [(nn_pkg, "GraphStage", GLICStage), (blocks, "GraphStage", GLICStage),
                             (glic_stage, "GraphStage", GLICStage),
                             (nn_pkg, "GraphAttention", GLICAttention),
                             (conv, "GraphAttention", GLICAttention),
                             (glic_attention, "GraphAttention", GLICAttention)]:
        with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*use {new.__name__}"):
            assert getattr(module, old) is new
    with pytest.raises(AttributeError, match="no attribute 'GLICStag'"):
        blocks.GLICStag
