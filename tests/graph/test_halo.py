import pytest
import torch

from pyg_glic.graph import HaloGraph, complexity_map, halo_graph
from pyg_glic.typing import WITH_TORCH_CLUSTER

from graph_refs import allocate_ref, check_invariants, graph_lists, local_ref

# an optional extension (setup.py's "ext" extra), with a pure-torch fallback
NO_CLUSTER = "torch-cluster does not import, or PYG_GLIC_DISABLE_EXTENSIONS is set"

B, C, H, W = 2, 6, 11, 13


@pytest.fixture
def x():
    return torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(0),
                       dtype=torch.float64)


def halo_groups(window, halo):
    groups, caps = [], []
    for b in range(B):
        for y in range(H):
            for xx in range(W):
                wy, wx = y // window, xx // window
                rows = [r for r in range(wy * window - halo, wy * window + window + halo)
                        if 0 <= r < H]
                cols = [c for c in range(wx * window - halo, wx * window + window + halo)
                        if 0 <= c < W]
                groups.append((b, wy, wx))
                caps.append(len(rows) * len(cols))
    gid = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    return [gid[g] for g in groups], caps


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
@pytest.mark.parametrize("pos_weight", [0.0, 3.0])
@pytest.mark.parametrize("k,window,halo", [(10, 4, 2), (30, 4, 2), (4, 3, 1), (2, 5, 0)])
def test_halo_matches_brute_force(x, similarity, pos_weight, k, window, halo):
    g = halo_graph(x, k, window=window, halo=halo, similarity=similarity, pos_weight=pos_weight)
    check_invariants(g, B, H, W)
    assert g.blocks.cand_index.size(1) == (window + 2 * halo) ** 2
    ref = local_ref(x, k, window=window, halo=halo, similarity=similarity,
                    pos_weight=pos_weight)
    assert graph_lists(g) == ref


@pytest.mark.parametrize("k_min,k_max", [(1, None), (4, 20), (8, 12)])
def test_halo_adaptive_matches_brute_force(x, k_min, k_max):
    k, window, halo = 10, 4, 2
    score = torch.rand(B, 1, H, W, generator=torch.Generator().manual_seed(3),
                       dtype=torch.float64)
    g = halo_graph(x, k, window=window, halo=halo, score=score, k_min=k_min, k_max=k_max)
    check_invariants(g, B, H, W)
    groups, caps = halo_groups(window, halo)
    cap_max = (window + 2 * halo) ** 2 if k_max is None else k_max
    deg = allocate_ref(score.flatten().tolist(), groups, k, k_min, [min(cap_max, c) for c in caps])
    assert g.degree.tolist() == deg
    assert graph_lists(g) == local_ref(x, k, window=window, halo=halo, degrees=deg)


def test_halo_adaptive_edge_count_equals_budget():
    # a map divisible by the window (full 8x8 groups) at GLIC's settings, scaled down
    x = torch.randn(2, 8, 16, 24, generator=torch.Generator().manual_seed(5))
    for k in (16, 64, 100):
        g = halo_graph(x, k, window=8, halo=4, adaptive=True)
        budget = 2 * (16 // 8) * (24 // 8) * 64 * k
        assert g.num_edges == budget
        # per group (window) the degrees sum to 64 * k
        qi = g.blocks.query_index
        assert torch.equal(g.degree[qi].sum(1), torch.full((qi.size(0),), 64 * k))
        assert g.degree.min() >= 1
        # the adaptive degrees actually vary and follow the complexity
        s = complexity_map(x).flatten()
        assert g.degree.float().std() > 0
        assert torch.corrcoef(torch.stack([s, g.degree.float()]))[0, 1] > 0.9


def test_halo_chunking_does_not_change_result(x):
    a = halo_graph(x, 12, window=4, halo=2)
    for chunk in (1, 700, 5000):
        b = halo_graph(x, 12, window=4, halo=2, chunk_elements=chunk)
        assert torch.equal(a.edge_index, b.edge_index)
        assert torch.equal(a.blocks.mask, b.blocks.mask)


def test_halo_float32_selects_a_valid_top_k():
    x = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(9))
    g = halo_graph(x, 20, window=8, halo=4)
    bl = g.blocks
    xn = torch.nn.functional.normalize(x.double().permute(0, 2, 3, 1).reshape(-1, 16), dim=-1)
    for b in range(0, bl.query_index.size(0)):
        qi, ci, m = bl.query_index[b], bl.cand_index[b], bl.mask[b]
        s = xn[qi] @ xn[ci.clamp_min(0)].T
        s[:, ci < 0] = -float("inf")
        kept_min = torch.where(m, s, torch.inf).min(1).values
        dropped_max = torch.where(m, -torch.inf, s).max(1).values
        assert bool((kept_min >= dropped_max - 1e-6).all())
        assert bool((m.sum(1) == 20).all())


def test_halo_determinism_and_module(x):
    m = HaloGraph(12, window=4, halo=2)
    assert repr(m) == "HaloGraph(k=12, window=4, halo=2)"
    a, b = m(x), m(x)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.ptr, b.ptr)


def test_halo_glic_defaults_small_map():
    x = torch.randn(1, 8, 16, 16, generator=torch.Generator().manual_seed(2))
    g = halo_graph(x)  # k=64, window 8, halo 4: 256 candidates
    assert g.blocks.query_index.shape == (4, 64)
    assert g.blocks.cand_index.shape == (4, 256)
    assert g.num_edges == 256 * 64
    check_invariants(g, 1, 16, 16)


@pytest.mark.skipif(not WITH_TORCH_CLUSTER, reason=NO_CLUSTER)
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("pos_weight", [0.0, 3.0])
def test_halo_backends_agree(x, adaptive, pos_weight):
    kw = dict(window=4, halo=2, adaptive=adaptive, pos_weight=pos_weight)
    a = halo_graph(x, 10, backend="torch", **kw)
    b = halo_graph(x, 10, backend="torch_cluster", **kw)
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.blocks.mask, b.blocks.mask)


def test_halo_bad_input(x):
    with pytest.raises(ValueError, match=r"k=65 .* 1 <= k <= 64"):
        halo_graph(x, 65, window=4, halo=2)
    with pytest.raises(ValueError, match="halo must be >= 0"):
        halo_graph(x, 4, window=4, halo=-1)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        halo_graph(torch.randn(3, 4, 5), 4)
    with pytest.raises(ValueError, match="non-finite"):
        halo_graph(torch.full((1, 2, 4, 4), float("inf")), 4, window=2, halo=1)
    with pytest.raises(ValueError, match=r"score must have shape \(B, 1, H, W\)"):
        halo_graph(x, 4, window=4, halo=2, score=torch.rand(B, 2, H, W))
    with pytest.raises(ValueError, match="unknown knn backend"):
        halo_graph(x, 4, window=4, halo=2, backend="faiss")


def test_window_larger_than_map_and_empty():
    x = torch.randn(1, 3, 5, 6, dtype=torch.float64)
    g = halo_graph(x, 40, window=8, halo=4)  # one clipped window; 30 candidates per node
    check_invariants(g, 1, 5, 6)
    assert g.degree.tolist() == [30] * 30
    assert graph_lists(g) == local_ref(x, 40, window=8, halo=4)
    e = halo_graph(torch.randn(0, 3, 8, 8), 4)
    assert e.num_edges == 0 and e.num_dst == 0
