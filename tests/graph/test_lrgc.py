import math

import pytest
import torch

from pyg_glic.graph import LearnableGraph

from graph_refs import check_invariants, pool_ref

B, C, H, W = 2, 6, 6, 7


@pytest.fixture
def x():
    return torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(11),
                       dtype=torch.float64)


def make(form="relu", candidates="all", t=-1.0, **kw):
    torch.manual_seed(0)
    m = LearnableGraph(C, 5, form=form, candidates=candidates, init_threshold=t, **kw).double()
    return m


def candidates_of(node, mode, window=3, halo=1, K=None):
    b, r = divmod(node, H * W)
    y, xx = divmod(r, W)
    if mode == "all":
        return [b * H * W + j for j in range(H * W)]
    if mode == "global":
        return [b * K + j for j in range(K)]
    wy, wx = y // window, xx // window
    h = 0 if mode == "window" else halo
    rows = [i for i in range(wy * window - h, wy * window + window + h) if 0 <= i < H]
    cols = [j for j in range(wx * window - h, wx * window + window + h) if 0 <= j < W]
    return [b * H * W + i * W + j for i in rows for j in cols]


def brute_force(m, x, mode):
    r"""Edges and weights by loops over queries, from the LRGC formula."""
    nodes = x.permute(0, 2, 3, 1).reshape(-1, C)
    with torch.no_grad():
        q = m.lin_q(nodes)
        if mode == "global":
            pooled, _ = pool_ref(x, grid=m.grid, factor=m.factor)
            K = pooled.shape[-1] * pooled.shape[-2]
            k = m.lin_k(pooled.permute(0, 2, 3, 1).reshape(-1, C))
        else:
            K = None
            k = m.lin_k(nodes)
        tau = float(torch.sigmoid(m.t))
    edges = {}
    for i in range(nodes.size(0)):
        for j in candidates_of(i, mode, m.window, m.halo, K):
            s = float(q[i] @ k[j]) / math.sqrt(m.hidden_channels)
            if m.form == "relu":
                w = max(s - tau, 0.0)
            else:
                w = math.copysign(max(abs(s) - tau, 0.0), s)
            if w != 0.0:
                edges[(j, i)] = w
    return edges


def as_dict(g):
    return {(int(s), int(d)): float(w) for (s, d), w in
            zip(g.edge_index.t().tolist(), g.edge_weight.tolist())}


@pytest.mark.parametrize("form", ["relu", "str"])
@pytest.mark.parametrize("mode", ["all", "window", "halo", "global"])
def test_lrgc_matches_brute_force(x, form, mode):
    m = make(form, mode, t=-0.5, window=3, halo=1, grid=3)
    g = m(x)
    if mode == "global":
        _, centres = pool_ref(x, grid=3)
        check_invariants(g, B, H, W, src_per_image=9, src_pos=centres)
    else:
        check_invariants(g, B, H, W)
    assert (g.blocks is None) == (mode == "all")
    ref = brute_force(m, x, mode)
    got = as_dict(g)
    assert set(got) == set(ref)
    for e, w in ref.items():
        assert abs(got[e] - w) < 1e-10
    assert 0 < g.num_edges
    if form == "str":
        assert bool((g.edge_weight < 0).any()) and bool((g.edge_weight > 0).any())


def test_lrgc_gradients_reach_threshold_and_projections(x):
    m = make("str", "halo", t=-1.0, window=3, halo=1)
    xr = x.clone().requires_grad_()
    g = m(xr)
    coef = torch.randn(g.num_edges, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (g.edge_weight * coef).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    assert xr.grad is not None and float(xr.grad.abs().sum()) > 0

    # the sparse backward equals autograd through a dense reference on the same edges
    m2 = make("str", "halo", t=-1.0, window=3, halo=1)
    nodes = x.permute(0, 2, 3, 1).reshape(-1, C)
    q, k = m2.lin_q(nodes), m2.lin_k(nodes)
    S = q @ k.t() / math.sqrt(5)
    src, dst = g.edge_index
    s = S[dst, src]
    tau = torch.sigmoid(m2.t)
    w = torch.sign(s) * torch.relu(s.abs() - tau)
    torch.testing.assert_close(w.detach(), g.edge_weight.detach())
    (w * coef).sum().backward()
    for (n1, p1), (_, p2) in zip(m.named_parameters(), m2.named_parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, msg=n1)


def test_lrgc_gradcheck():
    m = make("relu", "all", t=-2.0)
    x = torch.randn(1, C, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2),
                    requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: m(v).edge_weight, (x,))


def test_lrgc_degree_falls_as_threshold_rises(x):
    m = make("relu", "all")
    edges = []
    for t in (-4.0, -2.0, -1.0, 0.0, 1.0, 3.0):
        with torch.no_grad():
            m.t.fill_(t)
        edges.append(m(x).num_edges)
    assert all(a >= b for a, b in zip(edges, edges[1:]))
    assert edges[0] > edges[-1]
    m = make("str", "all")
    with torch.no_grad():
        m.t.fill_(-8.0)
    dense = m(x).num_edges
    assert dense >= 0.99 * B * (H * W) ** 2  # a low threshold is close to complete


def test_lrgc_chunks_max_degree_node_input(x):
    a = make("relu", "halo", window=3, halo=1)(x)
    b = make("relu", "halo", window=3, halo=1, chunk_size=37)(x)
    assert torch.equal(a.edge_index, b.edge_index)
    torch.testing.assert_close(a.edge_weight, b.edge_weight)
    c = make("relu", "all", t=-4.0, max_degree=5)(x)
    assert int(c.degree.max()) <= 5
    full = make("relu", "all", t=-4.0)(x)
    # the kept edges are each node's 5 largest weights
    for i in (0, 17, 60):
        w_full = full.edge_weight[full.ptr[i]:full.ptr[i + 1]].sort(descending=True).values[:5]
        w_cap = c.edge_weight[c.ptr[i]:c.ptr[i + 1]].sort(descending=True).values
        torch.testing.assert_close(w_full, w_cap)
    nodes = x.permute(0, 2, 3, 1).reshape(-1, C)
    batch = torch.arange(B).repeat_interleave(H * W)
    d = make("relu", "all")(nodes, batch, size=(H, W))
    e = make("relu", "all")(x)
    assert torch.equal(d.edge_index, e.edge_index)


def test_lrgc_repr_and_bad_input(x):
    m = LearnableGraph(192, 48, form="str", candidates="halo")
    assert m.extra_repr() == "192, 48, form='str', candidates='halo'"
    assert repr(m).startswith("LearnableGraph(\n  192, 48, form='str', candidates='halo'\n")
    assert m.threshold.item() == pytest.approx(1 / (1 + math.exp(3.0)))
    with pytest.raises(ValueError, match="form"):
        LearnableGraph(4, form="sigmoid")
    with pytest.raises(ValueError, match="candidates"):
        LearnableGraph(4, candidates="knn")
    with pytest.raises(ValueError, match="6 channels"):
        make()(torch.randn(1, 5, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="non-finite"):
        make()(torch.full((1, C, 2, 2), float("nan"), dtype=torch.float64))


def test_lrgc_empty_graph_and_window_blocks(x):
    m = make("relu", "window", t=50.0, window=3)  # threshold ~1: nothing passes
    xr = (0.01 * x).requires_grad_()
    g = m(xr)
    assert g.num_edges == 0 and g.edge_weight.shape == (0,)
    g.validate()
    assert not bool(g.blocks.mask.any())
    (g.edge_weight.sum() + 0 * m.t).backward()  # no edges: still differentiable
