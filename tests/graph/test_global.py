import math

import pytest
import torch

from pyg_glic.graph import GlobalGraph, global_graph, pool_map
from pyg_glic.typing import WITH_TORCH_CLUSTER

from graph_refs import (allocate_ref, check_invariants, dilated_group_of, global_ref,
                        graph_lists, strided_candidates, strided_layout, strided_ref,
                        strided_set_of)

# an optional extension (setup.py's "ext" extra), with a pure-torch fallback
NO_CLUSTER = "torch-cluster does not import, or PYG_GLIC_DISABLE_EXTENSIONS is set"

B, C, H, W = 2, 5, 11, 13


@pytest.fixture
def x():
    return torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(4),
                       dtype=torch.float64)


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
@pytest.mark.parametrize("pos_weight", [0.0, 2.0])
@pytest.mark.parametrize("k,grid,factor", [(5, 4, None), (8, 3, None), (9, None, 3),
                                           (20, 16, None)])
def test_global_matches_brute_force(x, similarity, pos_weight, k, grid, factor):
    g = global_graph(x, k, grid=grid, factor=factor, group=4, similarity=similarity,
                     pos_weight=pos_weight)
    ref, centres = global_ref(x, k, grid=grid, factor=factor, similarity=similarity,
                              pos_weight=pos_weight)
    check_invariants(g, B, H, W, src_per_image=len(centres), src_pos=centres)
    assert graph_lists(g) == ref


def test_global_blocks_are_dilated_groups(x):
    group = 4
    g = global_graph(x, 6, grid=4, group=group)
    qi = g.blocks.query_index
    assert qi.shape[1] == group * group
    sy, sx = math.ceil(H / group), math.ceil(W / group)
    assert qi.size(0) == B * sy * sx
    for b in range(qi.size(0)):
        ids = qi[b][qi[b] >= 0]
        loc = ids % (H * W)
        groups = {dilated_group_of(int(v) // W, int(v) % W, H, W, group) for v in loc}
        assert len(groups) == 1
        assert len({int(v) // (H * W) for v in ids}) == 1
    assert g.blocks.cand_index.shape == (qi.size(0), 16)


@pytest.mark.parametrize("redistribute", [True, False])
def test_global_adaptive_matches_brute_force(x, redistribute):
    group, k, k_min, k_max = 4, 5, 2, 12
    score = torch.rand(B, 1, H, W, generator=torch.Generator().manual_seed(7),
                       dtype=torch.float64)
    g = global_graph(x, k, grid=4, group=group, score=score, k_min=k_min, k_max=k_max,
                     redistribute=redistribute)
    sy, sx = math.ceil(H / group), math.ceil(W / group)
    groups = [b * sy * sx + dilated_group_of(y, xx, H, W, group)
              for b in range(B) for y in range(H) for xx in range(W)]
    if redistribute:
        deg = allocate_ref(score.flatten().tolist(), groups, k, k_min, [k_max] * len(groups))
        assert g.degree.tolist() == deg
        # every dilated group meets its budget exactly
        for gr in set(groups):
            idx = [i for i, t in enumerate(groups) if t == gr]
            assert sum(deg[i] for i in idx) == round(len(idx) * k)
    ref, centres = global_ref(x, k, grid=4, degrees=g.degree.tolist())
    check_invariants(g, B, H, W, src_per_image=16, src_pos=centres)
    assert graph_lists(g) == ref


def test_global_glic_defaults_edge_count_and_linear_shapes():
    x = torch.randn(1, 8, 32, 48)
    g = global_graph(x, adaptive=True)  # k=64 of 16x16 pooled nodes, groups of 8x8
    assert g.num_src == 256 and g.num_dst == 32 * 48
    assert g.num_edges == 32 * 48 * 64
    assert g.blocks.query_index.shape == (4 * 6, 64)
    assert g.blocks.cand_index.shape == (24, 256)


def test_global_pooled_argument(x):
    p = pool_map(x, factor=3)
    a = global_graph(x, 6, factor=3, pooled=p)
    b = global_graph(x, 6, factor=3)
    assert torch.equal(a.edge_index, b.edge_index)
    with pytest.raises(ValueError, match="pooled must have shape"):
        global_graph(x, 6, grid=4, pooled=p)


def test_global_chunking_and_module(x):
    a = global_graph(x, 6, grid=4, group=4)
    b = global_graph(x, 6, grid=4, group=4, chunk_elements=50)
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.blocks.mask, b.blocks.mask)
    m = GlobalGraph(6, grid=4, group=4)
    assert repr(m) == "GlobalGraph(k=6, grid=4, group=4)"
    assert repr(GlobalGraph(9, factor=2)) == "GlobalGraph(k=9, factor=2, group=8)"
    assert torch.equal(m(x).edge_index, a.edge_index)


@pytest.mark.skipif(not WITH_TORCH_CLUSTER, reason=NO_CLUSTER)
@pytest.mark.parametrize("adaptive", [False, True])
def test_global_backends_agree(x, adaptive):
    a = global_graph(x, 6, grid=4, group=4, adaptive=adaptive, backend="torch")
    b = global_graph(x, 6, grid=4, group=4, adaptive=adaptive, backend="torch_cluster")
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.blocks.mask, b.blocks.mask)


def test_global_bad_input(x):
    with pytest.raises(ValueError, match=r"k=17 .* 1 <= k <= 16"):
        global_graph(x, 17, grid=4)
    with pytest.raises(ValueError, match="group must be >= 1"):
        global_graph(x, 4, grid=4, group=0)
    with pytest.raises(ValueError, match="non-empty map"):
        global_graph(torch.randn(1, 2, 0, 4), 1, grid=4)
    with pytest.raises(ValueError, match="non-finite"):
        global_graph(torch.full((1, 2, 4, 4), float("nan")), 1, grid=2)


# ----------------------------------------------------------- strided candidates (GLIC)

def _fmap(B_, H_, W_, seed=0, C_=5):
    return torch.randn(B_, C_, H_, W_, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def _steps(H_, W_, grid, group):
    return strided_layout(H_, W_, grid, group)[:2]


SIZES = [(11, 13), (17, 35), (5, 3), (1, 1), (32, 48), (16, 16), (3, 40)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("k,grid,group", [(20, 16, 8), (5, 4, 2), (7, 6, 3), (4, 4, 4),
                                          (3, 2, 1)])
def test_strided_matches_brute_force(size, k, grid, group):
    H_, W_ = size
    x = _fmap(2, H_, W_, seed=H_ * 100 + W_)
    g = global_graph(x, k, grid=grid, group=group, candidates="strided")
    check_invariants(g, 2, H_, W_, steps=_steps(H_, W_, grid, group))
    assert graph_lists(g) == strided_ref(x, k, grid=grid, group=group)


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
@pytest.mark.parametrize("pos_weight", [0.0, 2.0])
@pytest.mark.parametrize("size", [(11, 13), (17, 35)])
def test_strided_similarity_and_position_term(similarity, pos_weight, size):
    H_, W_ = size
    x = _fmap(2, H_, W_, seed=3)
    g = global_graph(x, 6, grid=4, group=2, candidates="strided", similarity=similarity,
                     pos_weight=pos_weight)
    check_invariants(g, 2, H_, W_, steps=_steps(H_, W_, 4, 2))
    assert graph_lists(g) == strided_ref(x, 6, grid=4, group=2, similarity=similarity,
                                         pos_weight=pos_weight)


@pytest.mark.parametrize("size", [(11, 13), (17, 35), (5, 3)])
@pytest.mark.parametrize("k_min,k_max,redistribute", [(1, None, True), (2, 12, True),
                                                      (2, 12, False)])
def test_strided_adaptive_matches_brute_force(size, k_min, k_max, redistribute):
    H_, W_ = size
    grid, group, k = 4, 2, 6
    x = _fmap(2, H_, W_, seed=11)
    score = torch.rand(2, 1, H_, W_, generator=torch.Generator().manual_seed(12),
                       dtype=torch.float64)
    g = global_graph(x, k, grid=grid, group=group, candidates="strided", score=score,
                     k_min=k_min, k_max=k_max, redistribute=redistribute)
    check_invariants(g, 2, H_, W_, steps=_steps(H_, W_, grid, group))
    sets, caps = [], []
    for b in range(2):
        for y in range(H_):
            for xx in range(W_):
                sets.append((b,) + strided_set_of(y, xx, H_, W_, grid, group))
                caps.append(len(strided_candidates(y, xx, H_, W_, grid, group)))
    gid = {s: i for i, s in enumerate(dict.fromkeys(sets))}
    groups = [gid[s] for s in sets]
    hi = [min(grid * grid if k_max is None else k_max, c) for c in caps]
    if redistribute:
        deg = allocate_ref(score.flatten().tolist(), groups, k, k_min, hi)
        assert g.degree.tolist() == deg
    deg = g.degree.tolist()
    assert all(lo <= d <= h for d, h, lo in zip(deg, hi, [min(k_min, h) for h in hi]))
    assert graph_lists(g) == strided_ref(x, k, grid=grid, group=group, degrees=deg)


def test_strided_published_layout():
    # H, W multiples of grid: sets hold the nodes equal modulo (H/8, W/8), candidates the
    # 16x16 lattice of stride (H/16, W/16) with phase (a mod H/16, b mod W/16)
    H_, W_ = 32, 48
    x = _fmap(2, H_, W_, seed=5, C_=8)
    g = global_graph(x, candidates="strided")  # k=64, grid=16, group=8
    qi, ci, m = g.blocks.query_index, g.blocks.cand_index, g.blocks.mask
    sy, sx, ty, tx = H_ // 8, W_ // 8, H_ // 16, W_ // 16
    assert qi.shape == (2 * sy * sx, 64) and ci.shape == (2 * sy * sx, 256)
    assert bool((qi >= 0).all()) and bool((ci >= 0).all())
    n = 0
    for b in range(2):
        for a in range(sy):
            for c in range(sx):
                q = {b * H_ * W_ + (a + i * sy) * W_ + c + j * sx
                     for i in range(8) for j in range(8)}
                cand = {b * H_ * W_ + (a % ty + i * ty) * W_ + c % tx + j * tx
                        for i in range(16) for j in range(16)}
                assert set(qi[n].tolist()) == q and set(ci[n].tolist()) == cand
                assert q <= cand  # the lattice holds the set's own queries
                n += 1
    # four sets share each lattice
    lattices = [tuple(sorted(r)) for r in ci.tolist()]
    assert set(lattices.count(t) for t in lattices) == {4}
    assert g.num_edges == 2 * H_ * W_ * 64 and int(m.sum()) == g.num_edges
    # offsets in lattice steps: integers in [-15, 15]; the query itself is a neighbour
    assert torch.equal(g.edge_attr, g.edge_attr.round())
    assert float(g.edge_attr.abs().max()) <= 15
    src, dst = g.edge_index
    assert bool((src == dst).view(-1, 64).any(1).all())
    check_invariants(g, 2, H_, W_, steps=(ty, tx))


def test_strided_tiny_maps():
    g = global_graph(_fmap(1, 1, 1), 5, candidates="strided")
    assert g.edge_index.tolist() == [[0], [0]] and g.edge_attr.tolist() == [[0.0, 0.0]]
    # a 2x3 map: each query's lattice is the whole map (ty = tx = 1), k clipped to 6
    x = _fmap(2, 2, 3)
    g = global_graph(x, 64, candidates="strided", adaptive=True)
    check_invariants(g, 2, 2, 3)
    assert g.degree.tolist() == [6] * 12
    assert graph_lists(g) == strided_ref(x, 64, grid=16, group=8)


def test_strided_images_are_independent_and_chunking():
    x = _fmap(3, 9, 10, seed=2)
    g = global_graph(x, 6, grid=4, group=2, candidates="strided")
    for b in range(3):
        gb = global_graph(x[b:b + 1], 6, grid=4, group=2, candidates="strided")
        lo, hi = int(g.ptr[b * 90]), int(g.ptr[(b + 1) * 90])
        assert torch.equal(g.edge_index[:, lo:hi] - b * 90, gb.edge_index)
        assert torch.equal(g.edge_attr[lo:hi], gb.edge_attr)
    for chunk in (1, 50, 700):
        c = global_graph(x, 6, grid=4, group=2, candidates="strided", chunk_elements=chunk)
        assert torch.equal(c.edge_index, g.edge_index)
        assert torch.equal(c.blocks.mask, g.blocks.mask)
    nb = global_graph(x, 6, grid=4, group=2, candidates="strided", return_blocks=False)
    assert nb.blocks is None and torch.equal(nb.edge_index, g.edge_index)
    g32 = global_graph(x.float(), 6, grid=4, group=2, candidates="strided")
    assert g32.edge_attr.dtype == torch.float32 and g.edge_attr.dtype == torch.float64


def test_strided_node_input_and_module():
    x = _fmap(2, 7, 9)
    a = global_graph(x, 6, grid=4, group=2, candidates="strided")
    nodes = x.permute(0, 2, 3, 1).reshape(-1, x.size(1))
    b = global_graph(nodes, 6, grid=4, group=2, candidates="strided", size=(7, 9))
    assert torch.equal(a.edge_index, b.edge_index)
    m = GlobalGraph(6, grid=4, group=2, candidates="strided")
    assert repr(m) == "GlobalGraph(k=6, grid=4, group=2, candidates='strided')"
    assert torch.equal(m(x).edge_index, a.edge_index)
    with pytest.raises(ValueError, match="candidates must be one of"):
        GlobalGraph(6, candidates="lattice")


@pytest.mark.skipif(not WITH_TORCH_CLUSTER, reason=NO_CLUSTER)
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("size", [(11, 13), (5, 3)])
def test_strided_backends_agree(adaptive, size):
    x = _fmap(2, *size, seed=8)
    a = global_graph(x, 6, grid=4, group=2, candidates="strided", adaptive=adaptive,
                     backend="torch")
    b = global_graph(x, 6, grid=4, group=2, candidates="strided", adaptive=adaptive,
                     backend="torch_cluster")
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.edge_attr, b.edge_attr)
    assert torch.equal(a.blocks.mask, b.blocks.mask)


def test_strided_bad_input(x):
    with pytest.raises(ValueError, match="grid divisible by group"):
        global_graph(x, 4, grid=6, group=4, candidates="strided")
    with pytest.raises(ValueError, match="not factor"):
        global_graph(x, 4, factor=2, candidates="strided")
    with pytest.raises(ValueError, match="only used by candidates='pooled'"):
        global_graph(x, 4, grid=4, group=2, candidates="strided", pooled=pool_map(x, 4))
    with pytest.raises(ValueError, match=r"k=17 .* 1 <= k <= 16"):
        global_graph(x, 17, grid=4, group=2, candidates="strided")
    with pytest.raises(ValueError, match="candidates must be one of"):
        global_graph(x, 4, candidates="lattice")
