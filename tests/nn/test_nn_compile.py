r"""torch.compile against eager.

The layers compile with ``fullgraph=True, dynamic=True`` (no graph break, one
graph for every edge count). Blocks that build their own graph run the builder
eagerly (``torch.compiler.disable``): a graph break around it; so does the
stage's search for distinct offsets (``compress_offsets=True``).
"""
import pytest
import torch

from nn_testing import pooled_graph, random_block_graph, window_graph
from pyg_glic.nn.blocks import Grapher, GLICStage
from pyg_glic.nn.conv import GLICAttention, MRConv, WeightedConv


def _layers(gen):
    g1 = random_block_graph(30, 30, Q=6, K=8, drop_queries=2, generator=gen, dtype=torch.float32)
    g2 = random_block_graph(30, 30, Q=6, K=8, degree='fixed', k=5, generator=gen,
                            dtype=torch.float32)
    assert g1.num_edges != g2.num_edges
    return [
        (MRConv(16, 32), [(g.edge_index,) for g in (g1, g2)]),
        (WeightedConv(16, 32), [(g.edge_index, torch.rand(g.num_edges, generator=gen))
                                for g in (g1, g2)]),
        (GLICAttention(16, 16, heads=4), [(g.edge_index, g.edge_attr) for g in (g1, g2)]),
        (GLICAttention(16, 16, heads=4, impl='propagate'),
         [(g.edge_index, g.edge_attr) for g in (g1, g2)]),
    ]


def _check(module, compiled, x, args, atol=1e-5, rtol=1e-4):
    out = compiled(x, *args)
    ref = module(x, *args)
    torch.testing.assert_close(out, ref, atol=atol, rtol=rtol)
    params = [p for p in module.parameters() if p.requires_grad]
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    gc = torch.autograd.grad(out, [x] + params, g)
    ge = torch.autograd.grad(ref, [x] + params, g)
    for a, b in zip(gc, ge):
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


@pytest.mark.parametrize('index', [0, 2])  # MRConv, GLICAttention
def test_layers_compile_fullgraph_aot_eager(index, gen):
    torch._dynamo.reset()
    module, calls = _layers(gen)[index]
    compiled = torch.compile(module, backend='aot_eager', dynamic=True, fullgraph=True)
    x = torch.randn(30, 16, requires_grad=True)
    for args in calls:  # two edge counts, no recompilation needed
        _check(module, compiled, x, args, atol=1e-6)


@pytest.mark.slow
def test_layers_compile_inductor(gen):
    torch._dynamo.reset()
    x = torch.randn(30, 16, requires_grad=True)
    for module, calls in _layers(gen):
        compiled = torch.compile(module, dynamic=True, fullgraph=True)
        for args in calls:
            _check(module, compiled, x, args)


@pytest.mark.slow
def test_grapher_compile_inductor():
    torch._dynamo.reset()
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    grapher = Grapher(16, k=4).eval()
    compiled = torch.compile(grapher, dynamic=True)  # builds its k-NN graph eagerly
    _check(grapher, compiled, x, (), atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_stage_compile_inductor(gen):
    torch._dynamo.reset()
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    graphs = (window_graph(2, 8, 8, window=4, halo=2, k=6, generator=gen, dtype=torch.float32),
              pooled_graph(2, 8, 8, grid=2, k=3, generator=gen, dtype=torch.float32))
    stage = GLICStage(16, depth=2, heads=4, grid=2, ffn_expansion=2,
                       global_candidates="pooled")
    # finding the distinct offsets (data-dependent size) runs eagerly: graph breaks
    _check(stage, torch.compile(stage, dynamic=True), x, (graphs,), atol=1e-4, rtol=1e-3)
    stage.compress_offsets = False  # without it the stage is one graph
    _check(stage, torch.compile(stage, dynamic=True, fullgraph=True), x, (graphs,),
           atol=1e-4, rtol=1e-3)
