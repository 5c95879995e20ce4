import pytest
import torch

from pyg_glic.graph import WindowGraph, window_graph
from pyg_glic.typing import WITH_TORCH_CLUSTER

from graph_refs import allocate_ref, check_invariants, graph_lists, local_ref

# an optional extension (setup.py's "ext" extra), with a pure-torch fallback
NO_CLUSTER = "torch-cluster does not import, or PYG_GLIC_DISABLE_EXTENSIONS is set"

B, C, H, W = 2, 6, 11, 13  # sides not multiples of the window


@pytest.fixture
def x():
    return torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(0),
                       dtype=torch.float64)


def window_groups(window):
    groups, caps = [], []
    for b in range(B):
        for y in range(H):
            for xx in range(W):
                wy, wx = y // window, xx // window
                groups.append((b, wy, wx))
                caps.append((min(H, wy * window + window) - wy * window)
                            * (min(W, wx * window + window) - wx * window))
    return groups, caps


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
@pytest.mark.parametrize("pos_weight", [0.0, 2.0])
@pytest.mark.parametrize("k,window", [(5, 4), (1, 3), (16, 4)])
def test_window_matches_brute_force(x, similarity, pos_weight, k, window):
    g = window_graph(x, k, window=window, similarity=similarity, pos_weight=pos_weight)
    check_invariants(g, B, H, W)
    ref = local_ref(x, k, window=window, similarity=similarity, pos_weight=pos_weight)
    assert graph_lists(g) == ref


@pytest.mark.parametrize("redistribute", [True, False])
def test_window_adaptive_matches_brute_force(x, redistribute):
    k, window, k_min, k_max = 6, 4, 2, 12
    score = torch.rand(B, 1, H, W, generator=torch.Generator().manual_seed(1),
                       dtype=torch.float64)
    g = window_graph(x, k, window=window, adaptive=True, score=score, k_min=k_min, k_max=k_max,
                     redistribute=redistribute)
    check_invariants(g, B, H, W)
    groups, caps = window_groups(window)
    if redistribute:
        gid = {gr: i for i, gr in enumerate(dict.fromkeys(groups))}
        deg = allocate_ref(score.flatten().tolist(), [gid[t] for t in groups], k, k_min,
                           [min(k_max, c) for c in caps])
        assert g.degree.tolist() == deg
    ref = local_ref(x, k, window=window, degrees=g.degree.tolist())
    assert graph_lists(g) == ref
    assert g.degree.min() >= min(k_min, min(caps)) and g.degree.max() <= k_max


def test_window_larger_than_map_is_one_clipped_window(x):
    g = window_graph(x, 7, window=32)
    check_invariants(g, B, H, W)
    assert graph_lists(g) == local_ref(x, 7, window=32)
    assert g.blocks.query_index.shape == (B, 32 * 32)


@pytest.mark.skipif(not WITH_TORCH_CLUSTER, reason=NO_CLUSTER)
@pytest.mark.parametrize("adaptive", [False, True])
def test_window_backends_agree(x, adaptive):
    kw = dict(window=4, adaptive=adaptive, similarity="cosine")
    a = window_graph(x, 5, backend="torch", **kw)
    b = window_graph(x, 5, backend="torch_cluster", **kw)
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.ptr, b.ptr)
    assert torch.equal(a.blocks.mask, b.blocks.mask)


def test_window_module_and_determinism(x):
    m = WindowGraph(5, window=4, similarity="euclidean")
    assert repr(m) == "WindowGraph(k=5, window=4, similarity='euclidean')"
    g1, g2 = m(x), m(x)
    assert torch.equal(g1.edge_index, g2.edge_index)
    assert torch.equal(g1.edge_attr, g2.edge_attr)


def test_window_node_input(x):
    nodes = x.permute(0, 2, 3, 1).reshape(-1, C)
    a = window_graph(nodes, 5, window=4, size=(H, W))
    b = window_graph(x, 5, window=4)
    assert torch.equal(a.edge_index, b.edge_index)


def test_window_bad_input(x):
    with pytest.raises(ValueError, match=r"k=17 .* 1 <= k <= 16"):
        window_graph(x, 17, window=4)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        window_graph(x[0], 3, window=4)
    with pytest.raises(ValueError, match="window"):
        window_graph(x, 3, window=0)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        window_graph(bad, 3, window=4)
    with pytest.raises(ValueError, match="similarity"):
        window_graph(x, 3, window=4, similarity="dot")
    with pytest.raises(ValueError, match="k_min <= k <= k_max"):
        window_graph(x, 3, window=4, adaptive=True, k_max=2)
