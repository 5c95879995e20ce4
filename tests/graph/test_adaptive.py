import math

import numpy as np
import pytest
import torch

from pyg_glic.graph import allocate_degrees, complexity_map

from graph_refs import allocate_ref


def complexity_ref(x, sigma=0.8, soften=1.5):
    x = x.double().numpy()
    B, C, H, W = x.shape
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    sy = sx.T
    g1 = np.exp(-np.arange(-1, 2) ** 2 / (2 * sigma ** 2))
    gk = np.outer(g1, g1) / np.outer(g1, g1).sum()

    def at(a, y, xx):  # replicate padding
        return a[min(max(y, 0), H - 1), min(max(xx, 0), W - 1)]

    out = np.zeros((B, 1, H, W))
    for b in range(B):
        mags = np.zeros((C, H, W))
        for c in range(C):
            for y in range(H):
                for xx in range(W):
                    gx = sum(sx[i, j] * at(x[b, c], y + i - 1, xx + j - 1)
                             for i in range(3) for j in range(3))
                    gy = sum(sy[i, j] * at(x[b, c], y + i - 1, xx + j - 1)
                             for i in range(3) for j in range(3))
                    mags[c, y, xx] = math.hypot(gx, gy)
        blur = np.zeros((C, H, W))
        for c in range(C):
            for y in range(H):
                for xx in range(W):
                    blur[c, y, xx] = sum(gk[i, j] * at(mags[c], y + i - 1, xx + j - 1)
                                         for i in range(3) for j in range(3))
        rms = np.sqrt((blur ** 2).mean(0))
        m = rms.mean()
        out[b, 0] = m + (rms - m) / soften
    return torch.from_numpy(out)


def test_complexity_map_matches_loops():
    x = torch.randn(2, 3, 6, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(complexity_map(x), complexity_ref(x))
    torch.testing.assert_close(complexity_map(x, sigma=1.3, soften=2.0),
                               complexity_ref(x, sigma=1.3, soften=2.0))


def test_complexity_map_properties():
    flat = torch.ones(1, 4, 8, 8)
    assert torch.equal(complexity_map(flat), torch.zeros(1, 1, 8, 8))
    x = torch.zeros(1, 2, 16, 16)
    x[:, :, :, 8:] = 1.0  # an edge in the middle
    s = complexity_map(x)
    assert s.shape == (1, 1, 16, 16)
    assert s[0, 0, :, 7:9].min() > s[0, 0, :, :4].max()
    # softening pulls towards the mean and keeps it
    raw = complexity_map(x, soften=1.0)
    torch.testing.assert_close(s.mean(), raw.mean())
    assert s.std() < raw.std()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        complexity_map(torch.randn(4, 4))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mean,k_min,k_max", [(8, 1, 32), (16, 4, 20), (3.5, 0, 64)])
def test_allocate_matches_reference_and_hits_budget(seed, mean, k_min, k_max):
    g = torch.Generator().manual_seed(seed)
    n = 150
    score = torch.rand(n, generator=g, dtype=torch.float64) ** 3
    groups = torch.randint(0, 5, (n,), generator=g)
    d = allocate_degrees(score, groups, mean, k_min, k_max)
    ref = allocate_ref(score.tolist(), groups.tolist(), mean, k_min, [k_max] * n)
    assert d.tolist() == ref
    assert d.dtype == torch.long
    assert int(d.min()) >= k_min and int(d.max()) <= k_max
    for gr in range(5):
        m = groups == gr
        budget = math.floor(int(m.sum()) * mean + 0.5)
        assert int(d[m].sum()) == budget


def test_allocate_is_proportional_when_no_clamp_binds():
    score = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 9.0])
    d = allocate_degrees(score, torch.zeros(8, dtype=torch.long), 16, 0, 1000)
    ideal = score / score.sum() * 128
    assert int(d.sum()) == 128
    assert bool(((d - ideal).abs() < 1).all())
    same = allocate_degrees(score, torch.zeros(8, dtype=torch.long), 16, 0, 1000,
                            redistribute=False)
    assert torch.equal(d, same)


def test_allocate_clamping():
    score = torch.tensor([100.0, 1.0, 1.0, 1.0])
    ids = torch.zeros(4, dtype=torch.long)
    # redistribute: the big node is capped at 10, the others share the rest
    d = allocate_degrees(score, ids, 8, 1, 10)
    assert d.tolist() == [10, 8, 7, 7] and int(d.sum()) == 32
    # GLIC's formula: round then clamp; the cut is lost
    p = allocate_degrees(score, ids, 8, 1, 10, redistribute=False)
    assert p.tolist() == [10, 1, 1, 1]
    # infeasible budgets put every node at its bound
    assert allocate_degrees(score, ids, 12, 1, 10).tolist() == [10] * 4
    assert allocate_degrees(score, ids, 1, 2, 10).tolist() == [2] * 4
    # per-node upper bounds (e.g. border nodes with fewer candidates)
    d = allocate_degrees(score, ids, 8, 1, torch.tensor([5, 30, 30, 30]))
    assert d[0] == 5 and int(d.sum()) == 32


def test_allocate_flat_and_zero_scores():
    ids = torch.tensor([0, 0, 0, 0, 1, 1])
    d = allocate_degrees(torch.zeros(6), ids, 4, 1, 100)
    assert d.tolist() == [4, 4, 4, 4, 4, 4]
    d = allocate_degrees(torch.tensor([0.0, 1.0, 1.0, 0.0, 2.0, 0.0]), ids, 4, 1, 100)
    assert d.tolist() == [1, 7, 7, 1, 7, 1]


def test_allocate_ptr_and_ids_agree():
    score = torch.rand(10, generator=torch.Generator().manual_seed(1))
    ptr = torch.tensor([0, 3, 3, 10])
    ids = torch.tensor([0, 0, 0, 2, 2, 2, 2, 2, 2, 2])
    a = allocate_degrees(score, ptr, 5, 1, 9)
    b = allocate_degrees(score, ids, 5, 1, 9)
    assert torch.equal(a, b)
    c = allocate_degrees(score[:3], torch.tensor([0, 1, 3]), 4, is_ptr=True)
    assert c.tolist()[0] == 4 and int(c.sum()) == 12


def test_allocate_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        allocate_degrees(torch.tensor([1.0, -1.0]), torch.zeros(2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="non-negative"):
        allocate_degrees(torch.tensor([1.0, float("nan")]), torch.zeros(2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="group pointer"):
        allocate_degrees(torch.rand(4), torch.tensor([0, 5, 4]), 2)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        allocate_degrees(torch.rand(4), torch.zeros(4, dtype=torch.long), 2,
                         k_max=torch.tensor([1, 2]))
