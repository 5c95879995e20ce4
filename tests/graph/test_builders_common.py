r"""Properties every builder shares: no edge crosses images or reaches padding,
blocks agree with the edges, modules, the PyG transform."""
import pytest
import torch
from torch_geometric.data import Data

from pyg_glic.convert import map_to_batch
from pyg_glic.graph import (ImageGraphTransform, LearnableGraph, global_graph, halo_graph,
                            knn_graph, window_graph)

BUILDERS = {
    "window": lambda x: window_graph(x, 5, window=4),
    "halo": lambda x: halo_graph(x, 12, window=4, halo=2),
    "halo_adaptive": lambda x: halo_graph(x, 12, window=4, halo=2, adaptive=True, k_min=2),
    "global": lambda x: global_graph(x, 6, grid=4, group=4),
    "global_adaptive": lambda x: global_graph(x, 6, factor=3, group=4, adaptive=True),
    "knn": lambda x: knn_graph(x, 6, dilation=2),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_images_are_independent(name):
    # the graph of a batch equals the graphs of its images, shifted
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 4, 9, 10, generator=gen)
    g = BUILDERS[name](x)
    g.validate()
    n_src = g.num_src // 3
    for b in range(3):
        gb = BUILDERS[name](x[b:b + 1])
        lo, hi = int(g.ptr[b * 90]), int(g.ptr[(b + 1) * 90])
        part = g.edge_index[:, lo:hi]
        assert torch.equal(part[0] - b * n_src, gb.edge_index[0])
        assert torch.equal(part[1] - b * 90, gb.edge_index[1])
        assert torch.equal(g.edge_attr[lo:hi], gb.edge_attr)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_offsets_stay_in_range_and_dtype(name):
    x = torch.randn(2, 4, 9, 10)
    g = BUILDERS[name](x)
    assert g.edge_attr.dtype == torch.float32 and g.edge_index.dtype == torch.long
    assert float(g.edge_attr[:, 0].abs().max()) < 9 and float(g.edge_attr[:, 1].abs().max()) < 10
    g64 = BUILDERS[name](x.double())
    assert g64.edge_attr.dtype == torch.float64


def test_half_precision_input():
    x = torch.randn(1, 8, 16, 16)
    a = halo_graph(x.bfloat16(), 16)
    assert a.num_edges == 256 * 16
    a.validate()


def test_graph_to_device_roundtrip():
    g = halo_graph(torch.randn(1, 4, 8, 8), 10, window=4, halo=2)
    h = g.to("cpu")
    assert torch.equal(h.blocks.mask, g.blocks.mask)


@pytest.mark.parametrize("builder,kw", [("halo", dict(k=8, window=4, halo=2)),
                                        ("window", dict(k=5, window=4)),
                                        ("knn", dict(k=4))])
def test_transform(builder, kw):
    x = torch.randn(2, 3, 8, 9)
    batch = map_to_batch(x)
    T = ImageGraphTransform(builder, **kw)
    assert repr(T).startswith(f"ImageGraphTransform('{builder}'")
    fn = {"halo": halo_graph, "window": window_graph, "knn": knn_graph}[builder]
    for b, data in enumerate(batch.to_data_list()):
        data = T(data)
        ref = fn(x[b:b + 1], **kw)
        assert torch.equal(data.edge_index, ref.edge_index)
        assert torch.equal(data.edge_attr, ref.edge_attr)


def test_transform_learnable_and_errors():
    m = LearnableGraph(3, candidates="all")
    data = Data(x=torch.randn(12, 3), height=3, width=4)
    with torch.no_grad():
        data = ImageGraphTransform(m)(data)
    assert data.edge_weight.numel() == data.edge_index.size(1)
    with pytest.raises(ValueError, match="bipartite"):
        ImageGraphTransform(lambda v: global_graph(v, 2, grid=2))(Data(x=torch.randn(16, 2),
                                                                       height=4, width=4))
    with pytest.raises(ValueError, match="builder must be one of"):
        ImageGraphTransform("global")
    with pytest.raises(ValueError, match=r"height\*width"):
        ImageGraphTransform("knn", k=2)(Data(x=torch.randn(5, 2), height=2, width=2))
