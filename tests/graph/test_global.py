import math

import pytest
import torch

from pyg_glic.graph import GlobalGraph, global_graph, pool_map
from pyg_glic.typing import WITH_TORCH_CLUSTER

from graph_refs import (allocate_ref, check_invariants, dilated_group_of, global_ref,
                        graph_lists)

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


@pytest.mark.skipif(not WITH_TORCH_CLUSTER, reason="torch-cluster is not installed")
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
