import pytest
import torch
import torch.nn.functional as F

from pyg_glic.graph import pool_map, pooled_pos, pooled_size

from graph_refs import pool_ref


@pytest.mark.parametrize("H,W", [(16, 16), (11, 13), (5, 40), (3, 2)])
@pytest.mark.parametrize("grid,factor", [(4, None), (16, None), ((3, 5), None),
                                         (None, 2), (None, 4), (None, (2, 3))])
def test_pool_map_and_pos_match_loops(H, W, grid, factor):
    x = torch.randn(2, 3, H, W, dtype=torch.float64)
    if isinstance(grid, tuple) or isinstance(factor, tuple):
        # the loop reference handles square grids / factors; check tuples by shape only
        p = pool_map(x, grid, factor)
        assert p.shape[-2:] == pooled_size(H, W, grid, factor)
        assert pooled_pos(H, W, grid, factor).shape == (p.shape[-2] * p.shape[-1], 2)
        return
    ref, centres = pool_ref(x, grid, factor)
    out = pool_map(x, grid, factor)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref)
    pos = pooled_pos(H, W, grid, factor, batch_size=2, dtype=torch.float64)
    assert pos.tolist() == [list(c) for c in centres] * 2


def test_pool_map_grid_is_independent_of_size_and_factor_matches_avg_pool():
    for H, W in ((32, 48), (64, 64), (100, 36)):
        assert pool_map(torch.randn(1, 2, H, W), grid=16).shape == (1, 2, 16, 16)
    x = torch.randn(1, 4, 16, 24)
    torch.testing.assert_close(pool_map(x, factor=4), F.avg_pool2d(x, 4))
    torch.testing.assert_close(pool_map(x, grid=8), F.adaptive_avg_pool2d(x, 8))


def test_pool_map_is_differentiable():
    x = torch.randn(1, 2, 10, 10, requires_grad=True)
    pool_map(x, factor=3).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_pool_map_bad_input():
    x = torch.randn(1, 2, 8, 8)
    with pytest.raises(ValueError, match="exactly one of grid"):
        pool_map(x)
    with pytest.raises(ValueError, match="exactly one of grid"):
        pool_map(x, grid=4, factor=2)
    with pytest.raises(ValueError, match="factor must be >= 1"):
        pool_map(x, factor=0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        pool_map(torch.randn(8, 8), grid=4)
