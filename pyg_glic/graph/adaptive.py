r"""GLIC's adaptive connectivity: a complexity map and a per-group degree budget.

GLIC (arXiv 2603.25316) gives every query node a degree proportional to the
local complexity of the feature map, under a fixed budget per group of query
nodes, so that busy regions get more neighbours and flat ones fewer at the same
total cost. :func:`complexity_map` computes the score, :func:`allocate_degrees`
turns scores into integer degrees; the window, halo and global builders call
both with ``adaptive=True`` (groups = their query blocks).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_map


def _gaussian_kernel(sigma: float, dtype, device) -> Tensor:
    t = torch.arange(-1, 2, dtype=torch.float64)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = torch.outer(g, g)
    return (k / k.sum()).to(dtype=dtype, device=device)


@torch.no_grad()
def complexity_map(x: Tensor, *, sigma: float = 0.8, soften: float = 1.5) -> Tensor:
    r"""GLIC's complexity score of every node.

    .. math::
        G_c &= \sqrt{(S_x * x_c)^2 + (S_y * x_c)^2}
        \quad \text{(Sobel, per channel)} \\
        X &= \sqrt{\tfrac{1}{C} \textstyle\sum_c (K_\sigma * G_c)^2}
        \quad \text{(3x3 Gaussian, RMS over channels)} \\
        X &\leftarrow \bar{X} + (X - \bar{X}) / \text{soften}
        \quad \text{(per image mean } \bar{X})

    Both convolutions pad by replicating the border, so a constant map scores
    zero everywhere, borders included. The score is non-negative and exactly
    zero only where the map is locally constant (a flat image gives a uniform
    allocation, see :func:`allocate_degrees`).

    Args:
        x (Tensor): feature map ``(B, C, H, W)``.
        sigma (float): standard deviation of the 3x3 Gaussian blur.
        soften (float): contrast softening factor (>= 1 reduces contrast).

    Returns:
        Tensor ``(B, 1, H, W)`` (float32, or float64 for float64 input).

    Shapes:
        - **input:** ``(B, C, H, W)``
        - **output:** ``(B, 1, H, W)``
    """
    B, C, H, W = check_map(x)
    if sigma <= 0 or soften <= 0:
        raise ValueError(f"sigma and soften must be positive, got {sigma}, {soften}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(dtype)
    if x.numel() == 0:
        return x.new_zeros(B, 1, H, W)
    sob = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                       dtype=dtype, device=x.device)
    w = torch.stack([sob, sob.t()]).unsqueeze(1).repeat(C, 1, 1, 1)  # (2C, 1, 3, 3)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), w, groups=C)  # (B, 2C, H, W)
    g = g.view(B, C, 2, H, W).square().sum(2).sqrt()  # per-channel magnitude
    kern = _gaussian_kernel(sigma, dtype, x.device).view(1, 1, 3, 3).repeat(C, 1, 1, 1)
    g = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), kern, groups=C)
    X = g.square().mean(1, keepdim=True).sqrt()
    mean = X.mean(dim=(2, 3), keepdim=True)
    return mean + (X - mean) / soften


def _group_ids(groups: Tensor, n: int, is_ptr: Optional[bool]) -> Tensor:
    if not isinstance(groups, Tensor) or groups.dim() != 1:
        raise ValueError("groups must be a 1-D LongTensor: group ids (N,) or a group "
                         "pointer (G + 1,)")
    groups = groups.long()
    if is_ptr is None:
        is_ptr = groups.numel() != n
    if not is_ptr:
        if groups.numel() != n:
            raise ValueError(f"group ids must have shape ({n},), got {tuple(groups.shape)}")
        if n and int(groups.min()) < 0:
            raise ValueError("group ids must be non-negative")
        return groups
    if (groups.numel() < 1 or int(groups[0]) != 0 or int(groups[-1]) != n
            or bool((groups[1:] < groups[:-1]).any())):
        raise ValueError(f"a group pointer must rise from 0 to N={n} with shape (G + 1,), got "
                         f"shape {tuple(groups.shape)}")
    G = groups.numel() - 1
    return torch.arange(G, device=groups.device).repeat_interleave(groups[1:] - groups[:-1],
                                                                    output_size=n)


def _as_bound(v, n: int, device, name: str) -> Tensor:
    if isinstance(v, Tensor):
        if v.numel() == 1:
            return v.reshape(()).long().to(device).expand(n)
        if v.shape != (n,):
            raise ValueError(f"{name} must be an int or a tensor of shape ({n},), "
                             f"got {tuple(v.shape)}")
        return v.long().to(device)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name} must be an int or a LongTensor, got {v!r}")
    return torch.full((n,), v, dtype=torch.long, device=device)


def _adjust(base: Tensor, priority: Tensor, gid: Tensor, G: int, need: Tensor,
            eligible: Tensor) -> Tensor:
    r"""Add ``sign(need_g)`` to the ``|need_g|`` eligible nodes of each group with the
    highest ``priority`` (ties: lower node index first)."""
    n = base.numel()
    pr = torch.where(eligible, priority, torch.full_like(priority, -math.inf))
    order = torch.argsort(pr, descending=True, stable=True)
    order = order[torch.argsort(gid[order], stable=True)]
    counts = torch.bincount(gid, minlength=G)
    start = torch.zeros(G, dtype=torch.long, device=gid.device)
    start[1:] = counts.cumsum(0)[:-1]
    rank = torch.empty(n, dtype=torch.long, device=gid.device)
    rank[order] = torch.arange(n, device=gid.device) - start[gid[order]]
    step = (rank < need.abs()[gid]) & eligible
    return base + step.long() * need.sign()[gid]


def _round_to_budget(d: Tensor, gid: Tensor, G: int, target: Tensor, lo: Tensor,
                     hi: Tensor) -> Tensor:
    r"""Largest-remainder rounding of real degrees ``d`` (inside ``[lo, hi]``) to sum
    to ``target``."""
    base = d.floor()
    frac = d - base
    base = base.long()
    need = target - torch.zeros(G, dtype=torch.long, device=d.device).index_add_(0, gid, base)
    up = (need[gid] > 0) & (base < hi)
    down = (need[gid] < 0) & (base > lo)  # only reachable through rounding noise
    out = _adjust(base, frac, gid, G, need.clamp_min(0), up)
    return _adjust(out, -frac, gid, G, need.clamp_max(0), down)


def allocate_degrees(score: Tensor, groups: Tensor, mean_degree: float, k_min=1,
                     k_max=None, *, redistribute: bool = True,
                     is_ptr: Optional[bool] = None) -> Tensor:
    r"""Integer degrees proportional to a score, with a fixed budget per group.

    Group :math:`g` of :math:`n_g` nodes has the budget
    :math:`T_g = \mathrm{round}(n_g \bar{k})` (``mean_degree`` :math:`\bar{k}`;
    exact for an integer :math:`\bar{k}`). Degrees follow GLIC:
    :math:`d_i \propto X_i` inside the group, clamped to
    :math:`[k_{\min,i}, k_{\max,i}]`, and rounded to integers by the largest
    remainder method (ties: lower node index first), so that

    - with ``redistribute=True`` (default): :math:`d_i = \mathrm{clamp}(c_g X_i,
      k_{\min,i}, k_{\max,i})` with :math:`c_g` chosen (bisection) so that the
      clamped degrees still sum to :math:`T_g`: what clamping removes from one
      node goes to the others, in proportion to their score. The sum is exactly
      :math:`T_g` whenever :math:`\sum k_{\min} \le T_g \le \sum k_{\max}`;
      otherwise every node of the group sits at its bound
      (:math:`k_{\min}` when the budget is too small, :math:`k_{\max}` when it is
      too large).
    - with ``redistribute=False`` (GLIC's formula as published):
      :math:`d_i = X_i / \sum_g X \cdot T_g`, rounded to sum to :math:`T_g`,
      *then* clamped: the sum equals :math:`T_g` when no clamp binds and
      otherwise moves by what the clamps cut or add.

    A group whose scores are all zero is allocated uniformly. Zero scores in a
    group with positive ones get the lower bound (up to redistribution when the
    others are all at their upper bound).

    Args:
        score (Tensor): non-negative scores ``(N,)`` (any shape with ``N`` elements).
        groups (LongTensor): group ids ``(N,)`` (any non-negative integers;
            empty groups allowed) or a pointer ``(G + 1,)`` over consecutive
            nodes. A tensor of ``N`` elements is read as ids unless ``is_ptr=True``.
        mean_degree (float): :math:`\bar{k}`.
        k_min (int or LongTensor): lower bound, scalar or per node ``(N,)``.
        k_max (int or LongTensor, optional): upper bound, scalar or per node
            (for example the number of candidates each node has); default none.
            Where ``k_min > k_max`` for a node, ``k_max`` wins.
        redistribute (bool): see above.
        is_ptr (bool, optional): force how ``groups`` is read.

    Returns:
        LongTensor ``(N,)``.
    """
    if not isinstance(score, Tensor):
        raise ValueError("score must be a tensor")
    s = score.detach().reshape(-1).double()
    n = s.numel()
    device = s.device
    if n and (not bool(torch.isfinite(s).all()) or bool((s < 0).any())):
        raise ValueError("score must be finite and non-negative")
    if not math.isfinite(float(mean_degree)) or mean_degree < 0:
        raise ValueError(f"mean_degree must be a non-negative number, got {mean_degree}")
    gid = _group_ids(groups, n, is_ptr).to(device)
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    G = int(gid.max()) + 1
    lo = _as_bound(k_min, n, device, "k_min")
    unbounded = 2 ** 40  # no upper bound, small enough that group sums cannot overflow
    hi = _as_bound(k_max, n, device, "k_max").clamp_max(unbounded) if k_max is not None \
        else torch.full((n,), unbounded, dtype=torch.long, device=device)
    if bool((lo < 0).any()):
        raise ValueError("k_min must be >= 0")
    lo = torch.minimum(lo, hi)
    counts = torch.bincount(gid, minlength=G).double()
    target = torch.floor(counts * float(mean_degree) + 0.5).long()

    def gsum(v: Tensor) -> Tensor:
        return torch.zeros(G, dtype=v.dtype, device=device).index_add_(0, gid, v)

    ssum = gsum(s)
    s = torch.where(ssum[gid] > 0, s, torch.ones_like(s))  # flat group -> uniform
    if not redistribute:
        ideal = s / gsum(s)[gid] * target[gid].double()
        d = _round_to_budget(ideal, gid, G, target, torch.zeros_like(lo),
                             torch.full_like(hi, unbounded))
        return torch.maximum(torch.minimum(d, hi), lo)

    lo_d, hi_d = lo.double(), hi.double()
    target = torch.minimum(torch.maximum(target, gsum(lo)), gsum(hi))
    # zero scores get a tiny positive floor so that the bisection has finite bounds
    smax = torch.zeros(G, dtype=s.dtype, device=device).scatter_reduce_(
        0, gid, s, "amax", include_self=False)
    s = torch.maximum(s, smax[gid] * 1e-9)
    c_lo = torch.full((G,), math.inf, dtype=s.dtype, device=device).scatter_reduce_(
        0, gid, lo_d / s, "amin", include_self=True)
    c_hi = torch.zeros(G, dtype=s.dtype, device=device).scatter_reduce_(
        0, gid, hi_d / s, "amax", include_self=True)
    c_lo = torch.minimum(c_lo, c_hi).clamp_min(1e-300)
    c_hi = torch.maximum(c_hi, c_lo)
    tgt = target.double()
    for _ in range(64):  # bisection in log space, vectorised over groups
        c = torch.sqrt(c_lo * c_hi)
        f = gsum(torch.minimum(torch.maximum(c[gid] * s, lo_d), hi_d))
        below = f < tgt
        c_lo = torch.where(below, c, c_lo)
        c_hi = torch.where(below, c_hi, c)
    d = torch.minimum(torch.maximum(c_hi[gid] * s, lo_d), hi_d)
    return _round_to_budget(d, gid, G, target, lo, hi)
