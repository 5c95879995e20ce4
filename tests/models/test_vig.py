import io

import pytest
import torch
import torch.nn.functional as F

from pyg_glic.models._vig_layers import (GroupedLinear, GroupedMRConv, ViGGraph,
                                         knn_schedule)
from pyg_glic.models.vig import (CONFIGS, GRAPHS, PUBLISHED_PARAMS_M, Downsample, PyramidViG,
                                 ViG, ViGBlock, count_parameters, create_model, list_models,
                                 pvig_ti, vig_ti)
from pyg_glic.nn.dense import dense_mr_conv

TINY = {"vig_test": 32, "pvig_test": 64}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The tiny models run thousands of microsecond-sized ops; on a shared 2-core
    # machine intra-op threads wait on each other (measured 13 s vs 0.2 s for the
    # same five steps), so these tests use one thread and restore the setting.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny(name, **kwargs):
    torch.manual_seed(0)
    return create_model(name, **kwargs)


# --------------------------------------------------------------------------- registry, sizes

def test_registry():
    assert set(list_models()) == set(CONFIGS)
    assert isinstance(create_model("vig_test"), ViG)
    assert isinstance(create_model("pvig_test"), PyramidViG)
    with pytest.raises(ValueError, match="unknown model"):
        create_model("vig_xl")
    with pytest.raises(ValueError, match="pretrained"):
        create_model("vig_test", pretrained=True)
    with pytest.raises(ValueError, match="graph must be one of"):
        create_model("vig_test", graph="radius")
    with pytest.raises(ValueError, match="weighted"):
        create_model("vig_test", graph="lrgc", conv="mr")


@pytest.mark.parametrize("factory,name", [(vig_ti, "vig_ti"), (pvig_ti, "pvig_ti")])
def test_parameter_count_matches_paper(factory, name):
    # ImageNet settings: 224x224, 1000 classes; construction only, no forward pass
    n = count_parameters(factory())
    assert abs(n / 1e6 - PUBLISHED_PARAMS_M[name]) / PUBLISHED_PARAMS_M[name] < 0.05, n


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vig_s", "vig_b", "pvig_s"])
def test_parameter_count_matches_paper_larger(name):
    n = count_parameters(create_model(name))
    assert abs(n / 1e6 - PUBLISHED_PARAMS_M[name]) / PUBLISHED_PARAMS_M[name] < 0.05, n


def test_knn_schedule_is_vigs():
    ks, dil = knn_schedule(12, 9, 18, 196)
    assert ks == [9, 9, 10, 11, 12, 13, 13, 14, 15, 16, 17, 18]
    assert dil == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    ks, dil = knn_schedule(12, 9, 9, 49)  # pyramid: k fixed, dilation at most 49 // 9
    assert ks == [9] * 12 and dil == [1] * 4 + [2] * 4 + [3] * 4


def test_pyramid_layout():
    m = pvig_ti()
    graphs = m.graph_layers()
    assert [g.reduction for g in graphs] == [4, 4, 2, 2] + [1] * 8
    assert [g.dilation for g in graphs] == [1] * 4 + [2] * 4 + [3] * 4
    assert sum(isinstance(mod, Downsample) for mod in m.modules()) == 3
    assert m.pos_embed.shape == (1, 48, 56, 56)


# --------------------------------------------------------------------------- forward shapes

@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("graph", GRAPHS)
def test_forward_shapes_every_graph(name, graph):
    m = _tiny(name, graph=graph)
    x = torch.randn(2, 3, TINY[name], TINY[name])
    assert m(x).shape == (2, 10)
    assert m.forward_features(x).shape[:2] == (2, m.num_features)
    stats = m.graph_stats()
    assert len(stats) == len(m.graph_layers()) and all(s["mean_degree"] > 0 for s in stats)


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("conv", ["edge", "sage", "gin", "weighted"])
def test_forward_shapes_every_conv(name, conv):
    m = _tiny(name, conv=conv, num_classes=3)
    assert m(torch.randn(2, 3, TINY[name], TINY[name])).shape == (2, 3)


def test_other_sizes_and_no_head():
    m = _tiny("vig_test", num_classes=0).eval()
    assert m(torch.randn(1, 3, 48, 40)).shape == (1, 16)  # positional embedding interpolated
    p = _tiny("pvig_test", in_channels=1).eval()
    assert p(torch.randn(1, 1, 40, 72)).shape == (1, 10)  # odd stage sizes, clipped pooling


# --------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("name", list(TINY))
def test_lrgc_gradients_reach_thresholds(name):
    m = _tiny(name, graph="lrgc")
    m(torch.randn(2, 3, TINY[name], TINY[name])).logsumexp(-1).sum().backward()
    learners = [g.learner for g in m.graph_layers()]
    assert learners and all(lg.candidates == ("all" if g.reduction == 1 else "global")
                            for lg, g in zip(learners, m.graph_layers()))
    for lg in learners:
        assert lg.t.grad is not None and torch.isfinite(lg.t.grad) and lg.t.grad != 0
        assert lg.lin_q.weight.grad is not None and lg.lin_q.weight.grad.abs().sum() > 0
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing
    stats = m.graph_stats()
    assert all(0 < s["threshold"] < 1 and s["edges"] > 0 for s in stats)


def test_every_parameter_gets_a_gradient_knn():
    m = _tiny("pvig_test", drop_path_rate=0.1)
    m(torch.randn(2, 3, 64, 64)).logsumexp(-1).sum().backward()
    assert not [n for n, p in m.named_parameters() if p.grad is None]


def test_lrgc_isotropic_uses_all_pairs():
    lrgc = {"form": "str", "init_threshold": -30.0}
    m = _tiny("vig_test", graph="lrgc", graph_kwargs={"lrgc_kwargs": lrgc})
    m.eval()(torch.randn(1, 3, 32, 32))
    # STR keeps |s| > sigmoid(-30) ~ 1e-13: every pair of the 64 nodes, self included
    for s in m.graph_stats():
        assert s["candidates"] == 64 and s["mean_degree"] == 64.0


# --------------------------------------------------------------------------- dense reference

def _dense_grapher(block, x):
    r"""ViG's published Grapher, dense: k-NN on a (B, N, M) distance matrix of
    L2-normalised features (pooled copy when r > 1), top-k, every d-th, gather
    into (B, C, N, k), max-relative, grouped 1x1, BN, GELU, fc2, residual."""
    g = block.graph_builder
    B, C, H, W = x.shape
    h = block.fc1(x)
    r = g.reduction
    y = F.avg_pool2d(h, r, r) if r > 1 else h
    xf, yf = h.reshape(B, C, -1), y.reshape(B, C, -1)
    xn, yn = F.normalize(xf, dim=1), F.normalize(yf, dim=1)
    dist = (xn.pow(2).sum(1).unsqueeze(-1) - 2 * xn.transpose(1, 2) @ yn
            + yn.pow(2).sum(1).unsqueeze(1))
    k, d = g._clamp(g.k, g.dilation, yf.size(-1))
    idx = torch.topk(-dist, k * d, dim=-1).indices[..., ::d]  # (B, N, k)
    if r == 1:
        out = dense_mr_conv(block.conv, xf, idx)
    else:
        N, M = xf.size(-1), yf.size(-1)
        flat = (idx + torch.arange(B).view(B, 1, 1) * M).reshape(-1)
        x_j = yf.transpose(1, 2).reshape(B * M, C)[flat].view(B, N, k, C).permute(0, 3, 1, 2)
        agg = (x_j - xf.unsqueeze(-1)).max(-1).values
        out = block.conv.lin(torch.cat([xf, agg], 1).transpose(1, 2)).transpose(1, 2)
    out = out.reshape(B, -1, H, W)
    return x + block.fc2(block.act(block.norm(out)))


def _dense_forward(model, x):
    x = model.stem(x) + model.pos_embed
    mods = [m for m in model.blocks.modules() if isinstance(m, (ViGBlock, Downsample))]
    for m in mods:
        x = m(x) if isinstance(m, Downsample) else m.ffn(_dense_grapher(m.grapher, x))
    return model.head(F.adaptive_avg_pool2d(x, 1)).flatten(1)


def _randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


@pytest.mark.parametrize("name", list(TINY))
def test_sparse_equals_dense_reference(name):
    m = _tiny(name).double().eval()
    _randomise_bn(m)
    x = torch.randn(2, 3, TINY[name], TINY[name], dtype=torch.float64)
    with torch.no_grad():
        sparse = m(x)
        dense = _dense_forward(m, x)
        # block by block as well, with pooled (bipartite) and dilated graphs
        blk = [b for b in m.modules() if isinstance(b, ViGBlock)]
        h = torch.randn(2, blk[0].grapher.channels, 8, 8, dtype=torch.float64)
        torch.testing.assert_close(blk[0].grapher(h), _dense_grapher(blk[0].grapher, h))
    torch.testing.assert_close(sparse, dense, rtol=1e-9, atol=1e-9)
    assert {b.grapher.graph_builder.reduction for b in blk} == ({1} if name == "vig_test"
                                                               else {1, 2, 4})
    assert max(b.grapher.graph_builder.dilation for b in blk) == (2 if name == "vig_test" else 1)


def test_grouped_linear_is_vigs_grouped_conv():
    torch.manual_seed(0)
    lin = GroupedLinear(8, 12, groups=4)
    conv = torch.nn.Conv2d(8, 12, 1, groups=4)
    conv.weight.data.copy_(lin.weight.reshape(12, 2, 1, 1))
    conv.bias.data.copy_(lin.bias)
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    inter = torch.stack([a, b], dim=-1).reshape(5, 8)  # ViG's interleaving
    expect = conv(inter.view(5, 8, 1, 1)).view(5, 12)
    torch.testing.assert_close(lin(torch.cat([a, b], -1)), expect)
    assert "groups=4" in repr(GroupedMRConv(4, 8))


# --------------------------------------------------------------------------- save / load

@pytest.mark.parametrize("name,graph", [("vig_test", "knn"), ("vig_test", "lrgc"),
                                        ("pvig_test", "dual")])
def test_state_dict_round_trip(name, graph):
    m = _tiny(name, graph=graph)
    m(torch.randn(4, 3, TINY[name], TINY[name]))  # move BN statistics
    m.eval()
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)
    m2 = create_model(name, graph=graph).eval()
    m2.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(2, 3, TINY[name], TINY[name])
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))


def test_graph_stats_and_repr():
    m = _tiny("vig_test")
    assert m.graph_stats() == []
    m(torch.randn(2, 3, 32, 32))
    s = m.graph_stats()
    assert [d["k"] for d in s] == [4, 5, 6, 7, 8] and [d["dilation"] for d in s] == [1] * 4 + [2]
    assert [d["mean_degree"] for d in s] == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert repr(m.graph_layers()[-1]) == "ViGGraph(kind='knn', k=8, dilation=2)"
    assert repr(ViGGraph(8, "global", 5)) == "ViGGraph(kind='global', k=5)"


def test_halo_kind_and_its_old_name():
    # graph="halo" builds GLIC's local halo graph; "window" was its misleading old
    # name: accepted with a DeprecationWarning for one release, the same graph
    from pyg_glic.graph import halo_graph
    torch.manual_seed(0)
    h = torch.randn(1, 8, 9, 7)
    g = ViGGraph(8, "halo", 6, window=4, halo=1)(h)
    ref = halo_graph(h, 6, window=4, halo=1, similarity="cosine", return_blocks=False)
    assert torch.equal(g.edge_index, ref.edge_index) and torch.equal(g.ptr, ref.ptr)
    with pytest.warns(DeprecationWarning, match="graph='window' is deprecated.*'halo'"):
        old = ViGGraph(8, "window", 6, window=4, halo=1)
    assert old.kind == "halo" and torch.equal(old(h).edge_index, g.edge_index)
    kinds = [layer.kind for layer in _tiny("pvig_test", graph="dual").graph_layers()]
    assert set(kinds) == {"halo", "global"} and kinds[0] == "halo"
    with pytest.warns(DeprecationWarning, match="graph='window'"):
        m = _tiny("vig_test", graph="window")
    assert {layer.kind for layer in m.graph_layers()} == {"halo"}
    with pytest.raises(ValueError, match="graph must be one of"):
        _tiny("vig_test", graph="windows")
