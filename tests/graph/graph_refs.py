r"""Brute-force references for the graph builders, written from the definitions.

Plain loops over every query: list its candidates by the geometric rule,
compute every candidate's score from the formula, sort. Nothing here imports
the implementation except the result container.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def unit_rows(m):
    m = np.asarray(m, dtype=np.float64)
    n = np.sqrt((m ** 2).sum(-1, keepdims=True))
    return m / np.maximum(n, 1e-12)


def scores(xq, xc, similarity, pq=None, pc=None, pos_weight=0.0, pos_scale=1.0):
    r"""Score of one query ``xq (C,)`` against candidates ``xc (K, C)``, from the formula."""
    a = unit_rows(np.asarray(xq)[None])[0]
    b = unit_rows(xc)
    if similarity == "cosine":
        s = b @ a
    else:
        s = -((b - a) ** 2).sum(-1)
    if pos_weight:
        d = (np.asarray(pc, dtype=np.float64) - np.asarray(pq, dtype=np.float64)) / pos_scale
        s = s - pos_weight * (d ** 2).sum(-1)
    return s.tolist()


def top(cands, sc, d):
    order = sorted(range(len(cands)), key=lambda t: -sc[t])
    return [cands[t] for t in order[:d]]


def graph_lists(g):
    r"""ImageGraph -> list (per target) of source lists, in edge order."""
    src = g.edge_index[0].tolist()
    ptr = g.ptr.tolist()
    return [src[ptr[i]:ptr[i + 1]] for i in range(len(ptr) - 1)]


def local_ref(x, k, *, window, halo=None, degrees=None, similarity="cosine",
              pos_weight=0.0, pos_scale=None):
    r"""Window graph (halo=None) or halo graph, by loops. Returns per-node source lists."""
    B, C, H, W = x.shape
    scale = pos_scale or max(H, W)
    xm = x.double().numpy()
    out = []
    for b in range(B):
        for y in range(H):
            for xx in range(W):
                wy, wx = y // window, xx // window
                if halo is None:
                    rows = range(wy * window, min(H, wy * window + window))
                    cols = range(wx * window, min(W, wx * window + window))
                else:
                    rows = [r for r in range(wy * window - halo, wy * window + window + halo)
                            if 0 <= r < H]
                    cols = [c for c in range(wx * window - halo, wx * window + window + halo)
                            if 0 <= c < W]
                cands, feats, pc = [], [], []
                for r in rows:
                    for c in cols:
                        cands.append(b * H * W + r * W + c)
                        feats.append(xm[b, :, r, c])
                        pc.append((r, c))
                sc = scores(xm[b, :, y, xx], np.stack(feats), similarity, (y, xx), pc,
                            pos_weight, scale)
                node = b * H * W + y * W + xx
                d = min(k, len(cands)) if degrees is None else degrees[node]
                out.append(top(cands, sc, d))
    return out


def cells(length, n, factor=None):
    if factor is None:
        return [(math.floor(i * length / n), math.ceil((i + 1) * length / n)) for i in range(n)]
    return [(i * factor, min(length, (i + 1) * factor)) for i in range(n)]


def pool_ref(x, grid=None, factor=None):
    r"""Average pooling by loops; returns (pooled (B, C, gh, gw), centres list)."""
    B, C, H, W = x.shape
    if factor is None:
        gh, gw = min(grid, H), min(grid, W)
        ry, rx = cells(H, gh), cells(W, gw)
    else:
        gh, gw = math.ceil(H / factor), math.ceil(W / factor)
        ry, rx = cells(H, gh, factor), cells(W, gw, factor)
    out = torch.zeros(B, C, gh, gw, dtype=torch.float64)
    centres = []
    for i, (y0, y1) in enumerate(ry):
        for j, (x0, x1) in enumerate(rx):
            out[:, :, i, j] = x[:, :, y0:y1, x0:x1].double().mean(dim=(2, 3))
            centres.append(((y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2))
    return out, centres


def global_ref(x, k, *, grid=None, factor=None, degrees=None, similarity="cosine",
               pos_weight=0.0, pos_scale=None):
    B, C, H, W = x.shape
    scale = pos_scale or max(H, W)
    pooled, centres = pool_ref(x, grid, factor)
    gh, gw = pooled.shape[-2:]
    K = gh * gw
    xm = x.double().numpy()
    pm = pooled.numpy().reshape(B, C, K)
    out = []
    for b in range(B):
        for y in range(H):
            for xx in range(W):
                cands = [b * K + j for j in range(K)]
                sc = scores(xm[b, :, y, xx], pm[b].T, similarity, (y, xx), centres,
                            pos_weight, scale)
                node = b * H * W + y * W + xx
                d = k if degrees is None else degrees[node]
                out.append(top(cands, sc, d))
    return out, centres


def dilated_group_of(y, x, H, W, group):
    sy, sx = math.ceil(H / group), math.ceil(W / group)
    return (y % sy) * sx + (x % sx)


def strided_layout(H, W, grid, group):
    r"""``(ty, tx, sy, sx)``: lattice and query strides of the strided global graph."""
    ty, tx = math.ceil(H / grid), math.ceil(W / grid)
    return ty, tx, ty * (grid // group), tx * (grid // group)


def strided_set_of(y, x, H, W, grid, group):
    r"""Query set ``(a, b)`` of node ``(y, x)``: its residues modulo the query strides."""
    _, _, sy, sx = strided_layout(H, W, grid, group)
    return y % sy, x % sx


def strided_candidates(y, x, H, W, grid, group):
    r"""The lattice nodes ``(a mod ty + i ty, b mod tx + j tx)`` inside the map."""
    ty, tx, _, _ = strided_layout(H, W, grid, group)
    a, b = strided_set_of(y, x, H, W, grid, group)
    return [(a % ty + i * ty, b % tx + j * tx) for i in range(grid) for j in range(grid)
            if a % ty + i * ty < H and b % tx + j * tx < W]


def strided_ref(x, k, *, grid, group, degrees=None, similarity="cosine", pos_weight=0.0,
                pos_scale=None):
    r"""Strided global graph (GLIC's published layout), by loops. Per-node source lists."""
    B, C, H, W = x.shape
    scale = pos_scale or max(H, W)
    xm = x.double().numpy()
    out = []
    for b in range(B):
        for y in range(H):
            for xx in range(W):
                pc = strided_candidates(y, xx, H, W, grid, group)
                cands = [b * H * W + r * W + c for r, c in pc]
                feats = np.stack([xm[b, :, r, c] for r, c in pc])
                sc = scores(xm[b, :, y, xx], feats, similarity, (y, xx), pc, pos_weight, scale)
                node = b * H * W + y * W + xx
                d = min(k, len(cands)) if degrees is None else degrees[node]
                out.append(top(cands, sc, d))
    return out


def knn_ref(nodes, batch, k, dilation, similarity, pos=None, pos_weight=0.0, pos_scale=1.0,
            loop=True):
    out = []
    n = nodes.size(0)
    xm = nodes.double().numpy()
    pm = None if pos is None else pos.double().numpy()
    bl = batch.tolist()
    for i in range(n):
        cands = [j for j in range(n) if bl[j] == bl[i] and (loop or j != i)]
        sc = scores(xm[i], xm[cands], similarity, None if pm is None else pm[i],
                    None if pm is None else pm[cands], pos_weight, pos_scale)
        ranked = top(cands, sc, k * dilation)
        out.append(ranked[::dilation])
    return out


def allocate_ref(score, groups, mean, k_min, k_max):
    r"""Clamped proportional allocation per group + largest remainder, by loops."""
    n = len(score)
    deg = [0] * n
    for g in sorted(set(groups)):
        idx = [i for i in range(n) if groups[i] == g]
        lo = [min(k_min, k_max[i]) for i in idx]
        hi = [k_max[i] for i in idx]
        T = math.floor(len(idx) * mean + 0.5)
        T = min(max(T, sum(lo)), sum(hi))
        s = [score[i] for i in idx]
        if sum(s) == 0:
            s = [1.0] * len(idx)
        s = [max(v, max(s) * 1e-9) for v in s]

        def f(c):
            return sum(min(max(c * v, a), z) for v, a, z in zip(s, lo, hi))

        c_lo, c_hi = 1e-300, 1e300
        for _ in range(3000):
            c = math.sqrt(c_lo * c_hi)
            if f(c) < T:
                c_lo = c
            else:
                c_hi = c
            if c_hi / c_lo < 1 + 1e-15:
                break
        d = [min(max(c_hi * v, a), z) for v, a, z in zip(s, lo, hi)]
        base = [math.floor(v) for v in d]
        need = T - sum(base)
        order = sorted(range(len(idx)), key=lambda t: (-(d[t] - base[t]), t))
        for t in order:
            if need <= 0:
                break
            if base[t] < hi[t] and d[t] > base[t]:
                base[t] += 1
                need -= 1
        for t, i in enumerate(idx):
            deg[i] = base[t]
    return deg


def check_invariants(g, B, H, W, *, src_per_image=None, src_pos=None, steps=(1, 1)):
    r"""Container invariants, no cross-image edges, offsets from positions, blocks.

    ``steps``: the unit of ``edge_attr`` in pixels per axis (the strided global
    graph's lattice strides ``(ty, tx)``; pixels otherwise)."""
    g.validate()
    n = H * W
    assert g.num_dst == B * n
    npi = n if src_per_image is None else src_per_image
    assert g.num_src == B * npi
    src, dst = g.edge_index
    assert torch.equal(src // max(npi, 1), dst // max(n, 1)), "edge crosses images"
    # offsets in pixels: source position minus target position
    ty, tx = (dst % n) // W, (dst % n) % W
    if src_pos is None:
        sy, sx = (src % n) // W, (src % n) % W
        sy, sx = sy.double(), sx.double()
    else:
        sp = torch.tensor(src_pos, dtype=torch.float64)[src % npi]
        sy, sx = sp[:, 0], sp[:, 1]
    expect = torch.stack([(sy - ty.double()) / steps[0], (sx - tx.double()) / steps[1]], 1)
    assert torch.equal(g.edge_attr.double(), expect)
    unit = torch.tensor(steps, dtype=g.edge_attr.dtype)
    assert torch.equal(g.edge_attr, (g.pos_src[src] - g.pos_dst[dst]) / unit)
    if g.blocks is not None:
        bl = g.blocks
        qi, ci, m = bl.query_index, bl.cand_index, bl.mask
        assert m.shape == (qi.size(0), qi.size(1), ci.size(1))
        ids = qi[qi >= 0]
        assert torch.equal(ids.sort().values, torch.arange(B * n)), "queries must partition"
        b, i, j = m.nonzero(as_tuple=True)
        assert bool((ci[b, j] >= 0).all()), "a padded candidate is an edge"
        from_mask = set(zip(ci[b, j].tolist(), qi[b, i].tolist()))
        assert from_mask == set(zip(src.tolist(), dst.tolist()))
        assert len(from_mask) == g.num_edges
