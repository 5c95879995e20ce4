import pytest
import torch

from pyg_glic.graph import DilatedKNNGraph, knn_graph
from pyg_glic.typing import WITH_TORCH_CLUSTER

from graph_refs import check_invariants, graph_lists, knn_ref

# an optional extension (setup.py's "ext" extra), with a pure-torch fallback
NO_CLUSTER = "torch-cluster does not import, or PYG_GLIC_DISABLE_EXTENSIONS is set"

B, C, H, W = 2, 6, 5, 7


@pytest.fixture
def x():
    return torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(8),
                       dtype=torch.float64)


def as_nodes(x):
    return x.permute(0, 2, 3, 1).reshape(-1, x.size(1))


def grid_pos(B, H, W):
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    return torch.stack([ys, xs], -1).reshape(-1, 2).repeat(B, 1).double()


@pytest.mark.parametrize("similarity", ["euclidean", "cosine"])
@pytest.mark.parametrize("k,dilation", [(4, 1), (3, 2), (9, 3)])
@pytest.mark.parametrize("pos_weight", [0.0, 1.5])
@pytest.mark.parametrize("loop", [True, False])
def test_knn_graph_matches_brute_force(x, similarity, k, dilation, pos_weight, loop):
    g = knn_graph(x, k, dilation=dilation, similarity=similarity, pos_weight=pos_weight,
                  loop=loop)
    check_invariants(g, B, H, W)
    batch = torch.arange(B).repeat_interleave(H * W)
    ref = knn_ref(as_nodes(x), batch, k, dilation, similarity, grid_pos(B, H, W), pos_weight,
                  max(H, W), loop=loop)
    assert graph_lists(g) == ref
    assert g.blocks is None


def test_knn_graph_node_input_with_batch_and_pos():
    gen = torch.Generator().manual_seed(3)
    nodes = torch.randn(17, 4, generator=gen, dtype=torch.float64)
    batch = torch.tensor([0] * 5 + [1] * 12)  # images of different sizes
    pos = torch.rand(17, 2, generator=gen, dtype=torch.float64) * 10
    g = knn_graph(nodes, 3, dilation=2, batch=batch, pos=pos, pos_weight=0.5, pos_scale=4.0)
    g.validate()
    ref = knn_ref(nodes, batch, 3, 2, "euclidean", pos, 0.5, 4.0)
    assert graph_lists(g) == ref
    # image 0 has 5 nodes < k * dilation = 6: its nodes keep ranks 0, 2, 4 (clamped)
    assert g.degree[:5].tolist() == [3] * 5
    assert torch.equal(g.edge_attr, pos[g.edge_index[0]] - pos[g.edge_index[1]])
    # node input with size equals map input
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    a = knn_graph(x.permute(0, 2, 3, 1).reshape(-1, 3), 5, size=(4, 4))
    b = knn_graph(x, 5)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.edge_attr, b.edge_attr)


def test_vig_ti_graph():
    x = torch.randn(2, 192, 14, 14)
    g = knn_graph(x, 9, dilation=2)
    assert g.num_edges == 2 * 196 * 9
    assert bool((g.edge_index[0] == g.edge_index[1])[g.ptr[:-1]].all())  # self first
    m = DilatedKNNGraph(9, dilation=2)
    assert repr(m) == "DilatedKNNGraph(k=9, dilation=2)"
    assert torch.equal(m(x).edge_index, g.edge_index)


def test_knn_graph_alias_is_deprecated():
    import pyg_glic.graph as graph

    with pytest.warns(DeprecationWarning, match="DilatedKNNGraph"):
        cls = graph.KNNGraph
    assert cls is DilatedKNNGraph
    with pytest.warns(DeprecationWarning, match="torch_geometric.transforms.KNNGraph"):
        from pyg_glic.graph import KNNGraph
    assert KNNGraph is DilatedKNNGraph
    assert "KNNGraph" not in graph.__all__ and "DilatedKNNGraph" in graph.__all__
    with pytest.raises(AttributeError, match="no attribute 'NoSuchGraph'"):
        graph.NoSuchGraph


def test_module_passes_batch_and_keywords():
    x = torch.randn(7, 3)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    m = DilatedKNNGraph(2, similarity="cosine")
    assert repr(m) == "DilatedKNNGraph(k=2, dilation=1, similarity='cosine')"
    a = m(x, batch, size=None, pos=torch.rand(7, 2))
    assert a.num_edges == 14
    assert not list(m.parameters())


@pytest.mark.skipif(not WITH_TORCH_CLUSTER, reason=NO_CLUSTER)
@pytest.mark.parametrize("dilation", [1, 2])
def test_knn_graph_backends_agree(x, dilation):
    a = knn_graph(x, 4, dilation=dilation, backend="torch")
    b = knn_graph(x, 4, dilation=dilation, backend="torch_cluster")
    assert torch.equal(a.edge_index, b.edge_index)


def test_knn_graph_bad_input(x):
    with pytest.raises(ValueError, match=r"k \* dilation = 36 .* <= 35"):
        knn_graph(x, 12, dilation=3)
    with pytest.raises(ValueError, match=r"pos \(N, 2\) or size"):
        knn_graph(torch.randn(10, 3), 2)
    with pytest.raises(ValueError, match="sorted"):
        knn_graph(torch.randn(3, 3), 1, batch=torch.tensor([1, 0, 0]), size=(1, 1))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) or node features \(N, C\)"):
        knn_graph(torch.randn(2, 3, 4), 2)
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        knn_graph(x, 2, dilation=0)
    with pytest.raises(ValueError, match="non-finite"):
        knn_graph(torch.full((1, 2, 3, 3), float("nan")), 2)
