r"""SelectionOptions: the selection keywords of the block builders, validated in one place;
the Module forms' common base."""
import dataclasses
import inspect

import pytest
import torch

from pyg_glic.graph import (DilatedKNNGraph, GlobalGraph, HaloGraph, SelectionOptions,
                            WindowGraph, global_graph, halo_graph, window_graph)
from pyg_glic.graph._module import GraphBuilder

BUILDERS = [window_graph, halo_graph, global_graph]


def test_frozen_and_hashable():
    opts = SelectionOptions(k=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.k = 9
    assert opts == SelectionOptions(k=8) and hash(opts) == hash(SelectionOptions(k=8))
    assert dataclasses.replace(opts, similarity="euclidean").similarity == "euclidean"


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda f: f.__name__)
def test_fields_are_the_builders_keywords_with_their_defaults(builder):
    params = inspect.signature(builder).parameters
    for f in dataclasses.fields(SelectionOptions):
        assert f.name in params, f.name
        if f.name != "k":  # k's default is the builder's
            assert params[f.name].default == f.default, f.name


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=0), "k must be >= 1, got 0"),
    (dict(k=2.5), "k must be an int, got 2.5"),
    (dict(k=True), "k must be an int"),
    (dict(k=4, similarity="dot"), r"similarity must be one of \('cosine', 'euclidean'\), "
                                  r"got 'dot'"),
    (dict(k=4, backend="faiss"), r"unknown knn backend 'faiss'; expected None, 'auto' or one of"),
    (dict(k=4, pos_weight=-0.5), "pos_weight must be a finite number >= 0, got -0.5"),
    (dict(k=4, pos_weight=float("nan")), "pos_weight must be a finite number >= 0"),
    (dict(k=4, pos_weight="1"), "pos_weight must be a finite number >= 0"),
    (dict(k=4, pos_scale=0.0), "pos_scale must be None or a finite number > 0, got 0.0"),
    (dict(k=4, chunk_elements=0), "chunk_elements must be a positive int, got 0"),
    (dict(k=4, chunk_elements=2.0), "chunk_elements must be a positive int"),
    (dict(k=4, adaptive=True, k_min=-1), "k_min must be >= 0, got -1"),
    (dict(k=4, adaptive=True, k_max=0), "k_max must be >= 1, got 0"),
    (dict(k=4, adaptive=True, k_max=3), r"k_min <= k <= k_max .* k_min=1, k=4, k_max=3"),
    (dict(k=4, adaptive=True, k_min=5), r"k_min <= k <= k_max .* k_min=5, k=4"),
])
def test_validation_names_what_was_expected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SelectionOptions(**kwargs)


def test_degree_bounds_are_only_read_when_adaptive():
    # as the builders always did: k_min / k_max mean nothing without adaptive degrees
    assert SelectionOptions(k=4, k_min=-3, k_max=0).k_max == 0
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(window_graph(x, 4, window=4, k_max=0).edge_index,
                       window_graph(x, 4, window=4).edge_index)


def test_for_candidates():
    opts = SelectionOptions(k=16)
    assert opts.for_candidates(16, "window graph") is opts
    with pytest.raises(ValueError, match=r"k=16 is larger than the 9 candidates per node of "
                                         r"the window graph; expected 1 <= k <= 9"):
        opts.for_candidates(9, "window graph")
    ad = SelectionOptions(k=16, adaptive=True, k_min=2)
    assert ad.for_candidates(64, "halo graph").k_max == 64  # the default: all candidates
    assert ad.k_max is None  # frozen: a new object
    with pytest.raises(ValueError, match="k_max=70 is larger than the 64 candidates per node; "
                                         "expected k_max <= 64"):
        dataclasses.replace(ad, k_max=70).for_candidates(64, "halo graph")


def test_builders_take_the_options_as_keywords():
    x = torch.randn(2, 4, 9, 10)
    opts = SelectionOptions(k=6, similarity="euclidean", pos_weight=0.5, adaptive=True, k_min=2)
    a = halo_graph(x, window=4, halo=2, **dataclasses.asdict(opts))
    b = halo_graph(x, 6, window=4, halo=2, similarity="euclidean", pos_weight=0.5,
                   adaptive=True, k_min=2)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.blocks.mask, b.blocks.mask)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda f: f.__name__)
def test_builders_raise_the_options_errors(builder):
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="pos_weight must be a finite number >= 0"):
        builder(x, 4, pos_weight=-1.0)
    with pytest.raises(ValueError, match="chunk_elements must be a positive int"):
        builder(x, 4, chunk_elements=0)
    with pytest.raises(ValueError, match="unknown knn backend"):
        builder(x, 4, backend="faiss")


@pytest.mark.parametrize("module, builder", [
    (WindowGraph(5, window=4, adaptive=True), lambda x, **kw: window_graph(
        x, 5, window=4, adaptive=True, **kw)),
    (HaloGraph(8, window=4, halo=1, similarity="euclidean"), lambda x, **kw: halo_graph(
        x, 8, window=4, halo=1, similarity="euclidean", **kw)),
    (GlobalGraph(4, grid=4, group=2, candidates="strided"), lambda x, **kw: global_graph(
        x, 4, grid=4, group=2, candidates="strided", **kw)),
    (GlobalGraph(4, factor=3, group=3), lambda x, **kw: global_graph(
        x, 4, factor=3, group=3, **kw)),
], ids=["window", "halo", "strided", "pooled"])
def test_module_forms_share_one_base(module, builder):
    assert isinstance(module, GraphBuilder) and not list(module.parameters())
    assert type(module).__repr__ is torch.nn.Module.__repr__  # extra_repr only
    x = torch.randn(2, 3, 9, 10)
    score = torch.rand(2, 1, 9, 10)
    assert torch.equal(module(x).edge_index, builder(x).edge_index)
    assert torch.equal(module(x, score).edge_index, builder(x, score=score).edge_index)


def test_module_attributes_stay_readable():
    m = GlobalGraph(6, grid=4, group=2, candidates="strided", pos_weight=0.1)
    assert (m.k, m.grid, m.factor, m.group, m.candidates) == (6, 4, None, 2, "strided")
    assert m.kwargs == {"pos_weight": 0.1}
    assert repr(m) == "GlobalGraph(k=6, grid=4, group=2, candidates='strided', pos_weight=0.1)"
    h = HaloGraph()
    assert (h.k, h.window, h.halo, h.kwargs) == (64, 8, 4, {})
    assert (DilatedKNNGraph().k, DilatedKNNGraph().dilation) == (9, 1)
