r"""ViG-LRGC's learnable graph: key-query scores and a learned soft threshold."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..convert.csr import degree_to_ptr
from ._blocks import (batch_blocks, grid_positions, halo_blocks, image_blocks,
                      window_blocks)
from ._checks import (as_map, check_int, check_map, map_nodes, parse_nodes, pos_dtype)
from ._select import _rows, iter_chunks, make_graph
from .base import CandidateBlocks, ImageGraph
from .downsample import pool_map, pooled_pos, pooled_size

FORMS = ("relu", "str")
CANDIDATES = ("all", "window", "halo", "global")


class _SampledScore(torch.autograd.Function):
    r"""``s_e = scale * <q[dst_e], k[src_e]>`` for given edges, with the values
    precomputed (the ones the edges were selected with) and a backward pass
    that never holds more than ``chunk`` gathered rows (SDDMM)."""

    @staticmethod
    def forward(ctx, q, k, src, dst, values, scale: float, chunk: int):
        ctx.save_for_backward(q, k, src, dst)
        ctx.scale, ctx.chunk = scale, chunk
        return values.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        q, k, src, dst = ctx.saved_tensors
        gq = torch.zeros_like(q) if ctx.needs_input_grad[0] else None
        gk = torch.zeros_like(k) if ctx.needs_input_grad[1] else None
        for e0 in range(0, src.numel(), ctx.chunk):
            e1 = min(src.numel(), e0 + ctx.chunk)
            g = (grad[e0:e1] * ctx.scale).unsqueeze(-1)
            s, d = src[e0:e1], dst[e0:e1]
            if gq is not None:
                gq.index_add_(0, d, g * k[s])
            if gk is not None:
                gk.index_add_(0, s, g * q[d])
        return gq, gk, None, None, None, None, None


class LearnableGraph(torch.nn.Module):
    r"""The learnable reparameterised graph of ViG-LRGC (arXiv 2509.18840).

    Scores between queries and candidates come from learned projections, and a
    learnable per-layer soft threshold (STR) decides which pairs are edges:

    .. math::
        s_{ij} = \frac{\langle W_q x_i, W_k x_j \rangle}{\sqrt{d}}, \qquad
        \tau = \sigma(t), \qquad
        w_{ij} = \begin{cases}
            \mathrm{relu}(s_{ij} - \tau) & \text{form="relu" (non-negative weights)}\\
            \mathrm{sign}(s_{ij})\,\mathrm{relu}(|s_{ij}| - \tau) & \text{form="str" (STR)}
        \end{cases}

    The edges are the pairs with :math:`w_{ij} \ne 0` (:math:`s_{ij} > \tau`,
    resp. :math:`|s_{ij}| > \tau`); ``edge_weight`` holds :math:`w_{ij}`,
    differentiable with respect to :math:`W_q`, :math:`W_k` (and their biases),
    :math:`t` and the input. There is no ``k``: the degree falls as
    :math:`t` rises. The selection itself is not differentiable (it runs under
    ``no_grad``); gradients flow through the kept weights, as in STR.

    Candidates:

    - ``"all"``: every node of the same image (ViG-Ti's 196 nodes); accepts a
      map or node features with ``batch``.
    - ``"window"``, ``"halo"``, ``"global"``: the candidate sets of
      :func:`~pyg_glic.graph.window_graph`, :func:`~pyg_glic.graph.halo_graph`
      and :func:`~pyg_glic.graph.global_graph` (for ``"global"`` the keys are
      projections of the pooled map, the graph is bipartite pooled ->
      full-resolution), for large maps; these return ``blocks``.

    Scores are computed for chunks of at most about ``chunk_size`` entries;
    only the non-zero entries are kept, so no ``N x N`` tensor exists. The
    number of edges is not bounded unless ``max_degree`` is given (then each
    query keeps at most its ``max_degree`` largest :math:`|w_{ij}|`): with a
    low threshold early in training the graph is close to complete.

    Args:
        in_channels (int): input feature size ``C``.
        hidden_channels (int, optional): projection size ``d`` (default ``C``).
        form (str): ``"relu"`` or ``"str"``.
        init_threshold (float): initial value of the raw parameter :math:`t`
            (the threshold starts at :math:`\sigma(t)`; default ``-3.0``,
            :math:`\tau \approx 0.047`: low, so training starts dense).
        candidates (str): ``"all"``, ``"window"``, ``"halo"`` or ``"global"``.
        chunk_size (int): most score entries held at once.
        window, halo (int): window / halo sizes for ``"window"`` and ``"halo"``.
        grid, factor, group: pooling and query grouping for ``"global"``.
        bias (bool): biases in the projections.
        max_degree (int, optional): cap on the degree.

    Shapes:
        - **input:** ``(B, C, H, W)``, or ``(N, C)`` with ``batch (N,)`` and
          ``pos``/``size`` (``"all"`` only)
        - **output:** :class:`~pyg_glic.graph.ImageGraph` with ``edge_weight (E,)``
    """

    def __init__(self, in_channels: int, hidden_channels: Optional[int] = None, *,
                 form: str = "relu", init_threshold: float = -3.0, candidates: str = "all",
                 chunk_size: int = 2 ** 22, window: int = 8, halo: int = 4,
                 grid: Optional[int] = 16, factor: Optional[int] = None, group: int = 8,
                 bias: bool = True, max_degree: Optional[int] = None):
        super().__init__()
        check_int("in_channels", in_channels, 1)
        hidden_channels = in_channels if hidden_channels is None else hidden_channels
        check_int("hidden_channels", hidden_channels, 1)
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        if candidates not in CANDIDATES:
            raise ValueError(f"candidates must be one of {CANDIDATES}, got {candidates!r}")
        check_int("chunk_size", chunk_size, 1)
        check_int("window", window, 1)
        check_int("halo", halo, 0)
        check_int("group", group, 1)
        if max_degree is not None:
            check_int("max_degree", max_degree, 1)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.form = form
        self.init_threshold = float(init_threshold)
        self.candidates = candidates
        self.chunk_size = chunk_size
        self.window, self.halo = window, halo
        self.grid, self.factor, self.group = (None if factor is not None else grid), factor, group
        self.max_degree = max_degree
        self.lin_q = torch.nn.Linear(in_channels, hidden_channels, bias=bias)
        self.lin_k = torch.nn.Linear(in_channels, hidden_channels, bias=bias)
        self.t = torch.nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self):
        self.lin_q.reset_parameters()
        self.lin_k.reset_parameters()
        with torch.no_grad():
            self.t.fill_(self.init_threshold)

    @property
    def threshold(self) -> Tensor:
        r""":math:`\tau = \sigma(t)`."""
        return torch.sigmoid(self.t)

    def _structure(self, x: Tensor, batch, pos, size, check_finite: bool):
        r"""Queries/keys' inputs, blocks and positions for the candidate mode."""
        mode = self.candidates
        if mode == "all" and isinstance(x, Tensor) and x.dim() == 2:
            nodes, batch, pos, _ = parse_nodes(x, batch, pos, size, check_finite)
            G = int(batch.max()) + 1 if batch.numel() else 0
            qidx = batch_blocks(batch, G)
            return nodes, nodes, qidx, qidx, pos, pos, False
        if batch is not None or pos is not None:
            raise ValueError("batch and pos are for node input with candidates='all'; "
                             "pass a feature map (B, C, H, W)")
        x = as_map(x, size)
        B, C, H, W = check_map(x, check_finite=check_finite)
        nodes = map_nodes(x)
        pos = grid_positions(B, H, W, x.device, pos_dtype(x))
        if mode == "all":
            qidx = image_blocks(B, H * W, x.device)
            return nodes, nodes, qidx, qidx, pos, pos, False
        if mode == "window":
            qidx = window_blocks(B, H, W, self.window, x.device)
            return nodes, nodes, qidx, qidx, pos, pos, True
        if mode == "halo":
            qidx = window_blocks(B, H, W, self.window, x.device)
            cidx = halo_blocks(B, H, W, self.window, self.halo, x.device)
            return nodes, nodes, qidx, cidx, pos, pos, True
        from .global_ import global_candidates

        if H < 1 or W < 1:
            raise ValueError(f"candidates='global' needs a non-empty map, got {tuple(x.shape)}")
        gh, gw = pooled_size(H, W, self.grid, self.factor)
        pooled = map_nodes(pool_map(x.to(nodes.dtype), self.grid, self.factor))
        ppos = pooled_pos(H, W, self.grid, self.factor, batch_size=B, device=x.device,
                          dtype=pos.dtype)
        qidx, cidx = global_candidates(B, H, W, gh * gw, self.group, x.device)
        return nodes, pooled, qidx, cidx, ppos, pos, True

    def forward(self, x: Tensor, batch: Optional[Tensor] = None, *,
                pos: Optional[Tensor] = None, size: Optional[Tuple[int, int]] = None,
                check_finite: bool = True) -> ImageGraph:
        r"""Build the graph of ``x``.

        Args:
            x (Tensor): feature map ``(B, C, H, W)`` or (``candidates="all"``)
                node features ``(N, C)``.
            batch (LongTensor, optional): node input: sorted image ids.
            pos (Tensor, optional): node input: positions ``(N, 2)``.
            size (tuple, optional): node input: ``(H, W)`` of every image.
            check_finite (bool): raise on NaN/Inf features.
        """
        if isinstance(x, Tensor) and x.dim() in (2, 4):
            c = x.size(1) if x.dim() == 4 else x.size(-1)
            if c != self.in_channels:
                raise ValueError(f"x must have {self.in_channels} channels (in_channels), "
                                 f"got shape {tuple(x.shape)}")
        xq, xk, qidx, cidx, pos_src, pos_dst, with_blocks = self._structure(
            x, batch, pos, size, check_finite)
        dt = self.lin_q.weight.dtype
        q = self.lin_q(xq.to(dt))
        k = self.lin_k(xk.to(dt))
        scale = 1.0 / math.sqrt(self.hidden_channels)
        tau = self.threshold
        src, dst, val, mask = self._select(q.detach(), k.detach(), qidx, cidx, scale,
                                           float(tau.detach()), with_blocks)
        num_dst = pos_dst.size(0)
        ptr = degree_to_ptr(torch.bincount(dst, minlength=num_dst))
        s = _SampledScore.apply(q, k, src, dst, val, scale,
                                max(1, self.chunk_size // self.hidden_channels))
        if self.form == "relu":
            w = torch.relu(s - tau)
        else:
            w = torch.sign(s) * torch.relu(s.abs() - tau)
        blocks = CandidateBlocks(qidx, cidx, mask) if with_blocks else None
        return make_graph(src, ptr, pos_src, pos_dst, blocks=blocks, edge_weight=w)

    @torch.no_grad()
    def _select(self, q: Tensor, k: Tensor, qidx: Tensor, cidx: Tensor, scale: float,
                tau: float, with_blocks: bool):
        nb, Q = qidx.shape
        K = cidx.size(1)
        mask = torch.zeros(nb, Q, K, dtype=torch.bool, device=q.device) if with_blocks else None
        srcs, dsts, vals = [], [], []
        last, kc = None, None
        for b0, b1, q0, q1 in iter_chunks(nb, Q, K, q.size(1), self.chunk_size):
            qi, ci = qidx[b0:b1, q0:q1], cidx[b0:b1]
            if last != (b0, b1):  # one large block split into query chunks: gather once
                kc, last = _rows(k, ci.clamp_min(0)).transpose(1, 2), (b0, b1)
            S = torch.bmm(_rows(q, qi.clamp_min(0)), kc).mul_(scale)
            key = S if self.form == "relu" else S.abs()
            keep = (key > tau) & (qi >= 0).unsqueeze(-1) & (ci >= 0).unsqueeze(1)
            if self.max_degree is not None and self.max_degree < K:
                ranked = key.masked_fill(~keep, float("-inf"))
                top = ranked.topk(self.max_degree, dim=-1).indices
                capped = torch.zeros_like(keep).scatter_(-1, top, True)
                keep &= capped
            b, i, j = keep.nonzero(as_tuple=True)
            dsts.append(qi[b, i])
            srcs.append(ci[b, j])
            vals.append(S[b, i, j])
            if mask is not None:
                mask[b0:b1, q0:q1] = keep
        src = torch.cat(srcs) if srcs else torch.empty(0, dtype=torch.long, device=q.device)
        dst = torch.cat(dsts) if dsts else torch.empty(0, dtype=torch.long, device=q.device)
        val = torch.cat(vals) if vals else q.new_empty(0)
        perm = torch.argsort(dst, stable=True)
        return src[perm], dst[perm], val[perm], mask

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.hidden_channels}, "
                f"form={self.form!r}, candidates={self.candidates!r}")
