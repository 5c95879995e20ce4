r"""Helpers of tests/nn: small hand-made graphs (independent of pyg_glic.graph's
builders) and gradient assertions. Imported by the tests as ``nn_testing``
(tests/nn/conftest.py puts this folder on ``sys.path``)."""
from __future__ import annotations

from typing import Optional

import torch

from pyg_glic.convert import degree_to_ptr
from pyg_glic.graph.base import CandidateBlocks, ImageGraph


def random_block_graph(num_src: int, num_dst: int, Q: int, K: int, *, degree="adaptive",
                       k: int = 3, pos_src: Optional[torch.Tensor] = None,
                       pos_dst: Optional[torch.Tensor] = None, drop_queries: int = 0,
                       pad_cands: int = 0, generator: Optional[torch.Generator] = None,
                       dtype=torch.float64) -> ImageGraph:
    r"""A random graph with its :class:`CandidateBlocks`.

    Targets are split into blocks of ``Q`` (a random permutation; the last block
    padded with ``-1``); the first ``drop_queries`` targets of the permutation
    belong to no block (no incoming edge). Every block gets ``K`` distinct random
    sources (the last ``pad_cands`` slots ``-1``). ``degree="fixed"``: every query
    keeps ``min(k, K - pad_cands)`` candidates; ``"adaptive"``: each query a
    random number in ``[0, K - pad_cands]`` (zero included).
    """
    g = generator
    perm = torch.randperm(num_dst, generator=g)[drop_queries:]
    nb = (perm.numel() + Q - 1) // Q
    query_index = torch.full((nb * Q,), -1, dtype=torch.long)
    query_index[:perm.numel()] = perm
    query_index = query_index.view(nb, Q)
    assert K <= num_src
    cand_index = torch.stack([torch.randperm(num_src, generator=g)[:K] for _ in range(nb)])
    if pad_cands:
        cand_index[:, K - pad_cands:] = -1
    Kv = K - pad_cands
    score = torch.rand(nb, Q, K, generator=g)
    score[:, :, Kv:] = -1.0  # never chosen
    if degree == "fixed":
        d = torch.full((nb, Q), min(k, Kv), dtype=torch.long)
    else:
        d = torch.randint(0, Kv + 1, (nb, Q), generator=g)
    rank = score.argsort(dim=-1, descending=True).argsort(dim=-1)
    mask = ((rank < d.unsqueeze(-1)) & (query_index >= 0).unsqueeze(-1)
            & (cand_index >= 0).unsqueeze(1))

    b, q, c = mask.nonzero(as_tuple=True)
    src, dst = cand_index[b, c], query_index[b, q]
    order = torch.argsort(dst, stable=True)
    edge_index = torch.stack([src[order], dst[order]])
    ptr = degree_to_ptr(torch.bincount(edge_index[1], minlength=num_dst))
    if pos_src is None:
        pos_src = torch.randn(num_src, 2, generator=g, dtype=dtype) * 5
    if pos_dst is None:
        pos_dst = torch.randn(num_dst, 2, generator=g, dtype=dtype) * 5
    edge_attr = pos_src[edge_index[0]] - pos_dst[edge_index[1]]
    return ImageGraph(edge_index, ptr, edge_attr, num_src, num_dst,
                      blocks=CandidateBlocks(query_index, cand_index, mask),
                      pos_src=pos_src, pos_dst=pos_dst).validate()


def window_graph(B: int, H: int, W: int, *, window: int = 4, halo: int = 2, k: int = 8,
                 generator=None, dtype=torch.float64) -> ImageGraph:
    r"""A local graph like GLIC's: queries in ``window x window`` windows, each
    keeping ``k`` random candidates from the patch with ``halo`` around it
    (clipped to the image)."""
    rows, cols = [], []
    for b in range(B):
        for y0 in range(0, H, window):
            for x0 in range(0, W, window):
                ys = torch.arange(max(0, y0 - halo), min(H, y0 + window + halo))
                xs = torch.arange(max(0, x0 - halo), min(W, x0 + window + halo))
                cand = (b * H * W + ys[:, None] * W + xs[None, :]).reshape(-1)
                for y in range(y0, min(H, y0 + window)):
                    for x in range(x0, min(W, x0 + window)):
                        pick = cand[torch.randperm(cand.numel(), generator=generator)[:k]]
                        rows.append(pick)
                        cols.append(torch.full_like(pick, b * H * W + y * W + x))
    src, dst = torch.cat(rows), torch.cat(cols)
    order = torch.argsort(dst, stable=True)
    edge_index = torch.stack([src[order], dst[order]])
    pos = torch.stack(torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij"),
                      -1).reshape(-1, 2).repeat(B, 1).to(dtype)
    ptr = degree_to_ptr(torch.bincount(edge_index[1], minlength=B * H * W))
    return ImageGraph(edge_index, ptr, pos[edge_index[0]] - pos[edge_index[1]],
                      B * H * W, B * H * W, pos_src=pos, pos_dst=pos).validate()


def pooled_graph(B: int, H: int, W: int, *, grid: int = 2, k: int = 3,
                 generator=None, dtype=torch.float64) -> ImageGraph:
    r"""A global bipartite graph: ``B*grid*grid`` pooled sources (cell centres) ->
    ``B*H*W`` targets, each target keeping ``k`` random pooled nodes of its image."""
    G = grid * grid
    rows, cols = [], []
    for t in range(B * H * W):
        b = t // (H * W)
        pick = b * G + torch.randperm(G, generator=generator)[:k]
        rows.append(pick)
        cols.append(torch.full_like(pick, t))
    edge_index = torch.stack([torch.cat(rows), torch.cat(cols)])
    ch, cw = H / grid, W / grid
    gy, gx = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    pos_src = torch.stack([(gy + 0.5) * ch - 0.5, (gx + 0.5) * cw - 0.5], -1).reshape(-1, 2)
    pos_src = pos_src.repeat(B, 1).to(dtype)
    pos_dst = torch.stack(torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij"),
                          -1).reshape(-1, 2).repeat(B, 1).to(dtype)
    ptr = degree_to_ptr(torch.bincount(edge_index[1], minlength=B * H * W))
    return ImageGraph(edge_index, ptr, pos_src[edge_index[0]] - pos_dst[edge_index[1]],
                      B * G, B * H * W, pos_src=pos_src, pos_dst=pos_dst).validate()


def random_knn_index(B: int, N: int, k: int, *, variable: bool = False, generator=None):
    r"""A dense ViG neighbour index ``(B, N, k)`` of distinct neighbours; with
    ``variable=True`` each node keeps a random number of them in ``[0, k]``
    (``-1`` after), and node 0 of every image keeps none."""
    idx = torch.stack([torch.stack([torch.randperm(N, generator=generator)[:k]
                                    for _ in range(N)]) for _ in range(B)])
    if variable:
        deg = torch.randint(0, k + 1, (B, N, 1), generator=generator)
        deg[:, 0] = 0
        idx = torch.where(torch.arange(k).view(1, 1, k) < deg, idx, torch.full_like(idx, -1))
    return idx


def assert_grads_close(a, b, atol=1e-10, rtol=1e-8):
    assert len(a) == len(b)
    for ga, gb in zip(a, b):
        if ga is None or gb is None:
            assert ga is None and gb is None
            continue
        torch.testing.assert_close(ga, gb, atol=atol, rtol=rtol)


def assert_every_param_has_grad(module: torch.nn.Module):
    missing = [n for n, p in module.named_parameters()
               if p.requires_grad and (p.grad is None or not bool(p.grad.ne(0).any()))]
    assert not missing, f"parameters without gradient: {missing}"
