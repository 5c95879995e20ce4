r"""Blocked-dense and sparse execution of GLICAttention give the same result."""
import pytest
import torch

from nn_testing import random_block_graph
from pyg_glic.graph import global_graph, halo_graph
from pyg_glic.nn.attention import backend, blocked, block_edge_slots, dispatch
from pyg_glic.nn.blocks import GLICStage
from pyg_glic.nn.conv import GLICAttention


def _run(layer, x, graph, mode, edge_weight=None, offsets=None):
    xs = list(x) if isinstance(x, tuple) else [x]
    edge_attr, offset_index = graph.edge_attr, None
    if offsets is not None:
        edge_attr, offset_index = offsets
    with backend.execution(mode):
        out = layer(x, graph.edge_index, edge_attr, edge_weight=edge_weight,
                    offset_index=offset_index, blocks=graph.blocks)
    g = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    inputs = xs + ([edge_weight] if edge_weight is not None else []) + list(layer.parameters())
    return out, torch.autograd.grad(out, inputs, g)


def _assert_same(a, b):
    torch.testing.assert_close(a[0], b[0], atol=1e-10, rtol=1e-10)
    for ga, gb in zip(a[1], b[1]):
        torch.testing.assert_close(ga, gb, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize('degree', ['fixed', 'adaptive'])
@pytest.mark.parametrize('bipartite', [False, True])
@pytest.mark.parametrize('weighted', [False, True])
def test_dense_equals_sparse_random_blocks(degree, bipartite, weighted, gen):
    num_dst, C = 40, 16
    num_src = 12 if bipartite else num_dst
    graph = random_block_graph(num_src, num_dst, Q=8, K=10, degree=degree, k=4,
                               drop_queries=3, pad_cands=2, generator=gen)
    assert int((graph.degree == 0).sum()) >= 3  # isolated nodes included
    layer = GLICAttention(C, C, heads=4, pos_hidden=8).double()
    with torch.no_grad():
        layer.logit_scale.copy_(torch.log(torch.tensor([1.0, 5.0, 10.0, 50.0])))
    x_dst = torch.randn(num_dst, C, dtype=torch.float64, generator=gen, requires_grad=True)
    x = x_dst
    if bipartite:
        x = (torch.randn(num_src, C, dtype=torch.float64, generator=gen, requires_grad=True),
             x_dst)
    w = None
    if weighted:
        w = torch.rand(graph.num_edges, dtype=torch.float64, generator=gen).requires_grad_()
    _assert_same(_run(layer, x, graph, "sparse", w), _run(layer, x, graph, "dense", w))


@pytest.mark.parametrize('adaptive', [False, True])
def test_dense_equals_sparse_halo_and_global(adaptive, gen):
    torch.manual_seed(0)
    fmap = torch.randn(2, 8, 20, 13, dtype=torch.float64, generator=gen)
    loc = halo_graph(fmap, 12, window=4, halo=2, adaptive=adaptive, k_min=0)
    glob = global_graph(fmap, 6, grid=4, group=4, adaptive=adaptive, k_min=0)
    layer = GLICAttention(8, 8, heads=2, pos_hidden=8).double()
    x = fmap.permute(0, 2, 3, 1).reshape(-1, 8).clone().requires_grad_()
    from pyg_glic.nn.offsets import compress_offsets
    offsets = compress_offsets(loc.edge_attr)
    for off in (None, offsets):
        _assert_same(_run(layer, x, loc, "sparse", offsets=off),
                     _run(layer, x, loc, "dense", offsets=off))
    assert block_edge_slots(glob.blocks, glob.edge_index, glob.num_dst) is not None
    src = torch.randn(glob.num_src, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    _assert_same(_run(layer, (src, x), glob, "sparse"), _run(layer, (src, x), glob, "dense"))


def test_layer_execution_argument_and_fallbacks(gen):
    graph = random_block_graph(30, 30, Q=6, K=8, degree='fixed', k=3, generator=gen)
    layer = GLICAttention(8, 8, heads=2, execution="dense").double()
    x = torch.randn(30, 8, dtype=torch.float64, generator=gen)
    ref = GLICAttention(8, 8, heads=2, execution="sparse").double()
    ref.load_state_dict(layer.state_dict())
    a = layer(x, graph.edge_index, graph.edge_attr, blocks=graph.blocks)
    b = ref(x, graph.edge_index, graph.edge_attr, blocks=graph.blocks)
    torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    assert layer.select_execution(graph.edge_index, graph.blocks, x.device) == "dense"
    assert layer.select_execution(graph.edge_index, None, x.device) == "sparse"
    with backend.execution("sparse"):
        assert layer.select_execution(graph.edge_index, graph.blocks, x.device) == "sparse"
    # without blocks: sparse even when dense is asked for
    torch.testing.assert_close(layer(x, graph.edge_index, graph.edge_attr), b,
                               atol=1e-10, rtol=1e-10)
    # an edge outside the blocks (into target 0 from a source that is not a candidate of
    # target 0's block): forced dense raises, auto falls back to sparse
    qi, ci = graph.blocks.query_index, graph.blocks.cand_index
    block = int((qi == 0).any(dim=1).nonzero().view(-1)[0])
    outside = sorted(set(range(30)) - set(ci[block].tolist()))
    assert outside  # K = 8 candidates of 30 sources
    ei = torch.cat([graph.edge_index, torch.tensor([[outside[0]], [0]])], 1)
    ea = torch.cat([graph.edge_attr, torch.zeros(1, 2, dtype=graph.edge_attr.dtype)])
    assert block_edge_slots(graph.blocks, ei, 30) is None
    with pytest.raises(ValueError, match="do not fit the candidate blocks"):
        layer(x, ei, ea, blocks=graph.blocks)
    with backend.execution("auto"):
        fallback = layer(x, ei, ea, blocks=graph.blocks)
    torch.testing.assert_close(fallback, ref(x, ei, ea), atol=1e-10, rtol=1e-10)
    with pytest.raises(ValueError):
        GLICAttention(8, 8, execution="fast")
    with pytest.raises(ValueError):
        with backend.execution("fast"):
            pass


@pytest.mark.parametrize("backward", [False, True])
def test_policy_thresholds_are_used(backward, monkeypatch, gen):
    graph = halo_graph(torch.randn(1, 8, 16, 16, generator=gen), 64, window=8, halo=4)
    dens, queries = dispatch.block_density(graph.num_edges, graph.blocks)
    assert queries == 256 and 0 < dens < 1

    def choose():
        return dispatch.choose_attention_execution(graph.num_edges, graph.blocks,
                                                 torch.device("cpu"), backward)
    key = ("cpu", backward)
    assert queries >= backend.DENSE_MIN_QUERIES[key]  # the fitted table: no size limit here
    assert choose() == ("dense" if dens >= backend.DENSE_MIN_DENSITY[key] else "sparse")
    # the density threshold of this (device, backward) key decides, on both sides of it
    monkeypatch.setitem(backend.DENSE_MIN_DENSITY, key, dens)
    assert choose() == "dense"
    monkeypatch.setitem(backend.DENSE_MIN_DENSITY, key, dens * 1.001)
    assert choose() == "sparse"
    # below the minimum number of queries: sparse at any density
    monkeypatch.setitem(backend.DENSE_MIN_DENSITY, key, 0.0)
    monkeypatch.setitem(backend.DENSE_MIN_QUERIES, key, queries + 1)
    assert choose() == "sparse"
    monkeypatch.setitem(backend.DENSE_MIN_QUERIES, key, queries)
    assert choose() == "dense"
    assert dispatch.choose_attention_execution(10, None, torch.device("cpu")) == "sparse"


def test_stage_same_under_both_executions(gen):
    torch.manual_seed(0)
    stage = GLICStage(16, depth=2, heads=4, k=8, window=4, halo=2, grid=4, group=4,
                       ffn_expansion=1).double()
    x = torch.randn(1, 16, 12, 12, dtype=torch.float64, generator=gen, requires_grad=True)
    graphs = stage.build_graphs(x)
    outs = []
    for mode in ("sparse", "dense"):
        with backend.execution(mode):
            y = stage(x, graphs)
        outs.append((y, torch.autograd.grad(y.sum(), [x] + list(stage.parameters()))))
    _assert_same(*outs)


def test_chunked_inference_equals_sparse(gen, monkeypatch):
    monkeypatch.setattr(backend, "CHUNK_ELEMENTS", 40)  # 4 * 40 // (H * Q * K) -> 1 block a chunk
    graph = random_block_graph(40, 40, Q=8, K=10, degree='adaptive', drop_queries=3,
                               pad_cands=2, generator=gen)
    layer = GLICAttention(16, 16, heads=2, pos_hidden=8).double()
    x = torch.randn(40, 16, dtype=torch.float64, generator=gen)
    w = torch.rand(graph.num_edges, dtype=torch.float64, generator=gen)
    chunks, chunk = [], blocked._blocked_chunk

    def count(*args):
        chunks.append(args[5].size(0))  # blocks in this chunk
        return chunk(*args)
    monkeypatch.setattr(blocked, "_blocked_chunk", count)
    with torch.no_grad():
        outs = []
        for mode in ("sparse", "dense"):
            with backend.execution(mode):
                outs.append(layer(x, graph.edge_index, graph.edge_attr, edge_weight=w,
                                  blocks=graph.blocks))
    nb = graph.blocks.query_index.size(0)
    assert nb > 1 and chunks == [1] * nb  # the dense run went block by block
    torch.testing.assert_close(outs[0], outs[1], atol=1e-10, rtol=1e-10)


def test_block_slots_are_computed_once_per_graph(monkeypatch):
    # the slots live in CandidateBlocks.edge_slots (a declared field, not in repr or
    # ==): the layers of a stage share one computation; another edge tensor recomputes
    g = halo_graph(torch.randn(1, 4, 8, 8), 6, window=4, halo=1)
    calls = []
    real = blocked._block_edge_slots
    monkeypatch.setattr(blocked, "_block_edge_slots",
                        lambda *a: calls.append(1) or real(*a))
    ei = g.edge_index.as_tensor()
    first = block_edge_slots(g.blocks, ei, g.num_dst)
    assert block_edge_slots(g.blocks, ei, g.num_dst) is first and len(calls) == 1
    assert g.blocks.edge_slots[2] is first and "edge_slots" not in repr(g.blocks)
    block_edge_slots(g.blocks, ei.clone(), g.num_dst)
    assert len(calls) == 2
