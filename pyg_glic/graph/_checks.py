r"""Input validation shared by the graph builders (private); the selection keywords
are checked by :class:`~pyg_glic.graph.SelectionOptions`."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor


def check_map(x, name: str = "x", *, check_finite: bool = True) -> Tuple[int, int, int, int]:
    r"""Validate a feature map ``(B, C, H, W)``; return its shape."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a feature map of shape (B, C, H, W), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.size(1) < 1:
        raise ValueError(f"{name} must have at least one channel, got shape {tuple(x.shape)}")
    if check_finite:
        check_finite_values(x, name)
    B, C, H, W = x.shape
    return B, C, H, W


def check_finite_values(x: Tensor, name: str = "x") -> None:
    # one reduction is enough unless it overflows or meets a NaN/Inf: then look closer
    if x.numel() and not bool(torch.isfinite(x.sum())) \
            and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or Inf); graph "
                         f"construction needs finite features")


def check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def score_to_nodes(score: Tensor, B: int, H: int, W: int) -> Tensor:
    r"""A per-node score given as ``(B, 1, H, W)``, ``(B, H, W)`` or ``(B*H*W,)``
    -> ``(B*H*W,)``."""
    n = B * H * W
    if not isinstance(score, Tensor):
        raise ValueError(f"score must be a tensor of shape (B, 1, H, W) = ({B}, 1, {H}, {W}), "
                         f"got {type(score).__name__}")
    if tuple(score.shape) in ((B, 1, H, W), (B, H, W), (n,)):
        s = score.reshape(n)
    else:
        raise ValueError(f"score must have shape (B, 1, H, W) = ({B}, 1, {H}, {W}), "
                         f"(B, H, W) or (B*H*W,), got {tuple(score.shape)}")
    if n and not bool(torch.isfinite(s).all()):
        raise ValueError("score contains non-finite values")
    if n and bool((s < 0).any()):
        raise ValueError("score must be non-negative")
    return s


def work_dtype(x: Tensor) -> torch.dtype:
    r"""Dtype the similarities are computed in: float64 stays, everything else is float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def as_map(x, size=None, name: str = "x") -> Tensor:
    r"""Accept a map ``(B, C, H, W)`` or nodes ``(B*H*W, C)`` with ``size=(H, W)``."""
    if isinstance(x, Tensor) and x.dim() == 2 and size is not None:
        H, W = _pair(size, "size")
        if H * W == 0 or x.size(0) % (H * W):
            raise ValueError(f"{name} of shape {tuple(x.shape)} cannot be read as B images of "
                             f"size=({H}, {W}): expected (B*H*W, C) nodes")
        B = x.size(0) // (H * W)
        return x.reshape(B, H, W, x.size(1)).permute(0, 3, 1, 2)
    if isinstance(x, Tensor) and x.dim() == 2:
        raise ValueError(f"{name} of shape {tuple(x.shape)} holds node features; pass "
                         f"size=(H, W) or a feature map of shape (B, C, H, W)")
    return x


def _pair(v, name: str) -> Tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return v, v
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(
            isinstance(a, int) and not isinstance(a, bool) for a in v):
        return int(v[0]), int(v[1])
    raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")


def pos_dtype(x: Tensor) -> torch.dtype:
    r"""Dtype of positions and offsets: float64 for float64 input, else float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def map_nodes(x: Tensor) -> Tensor:
    r"""``(B, C, H, W)`` -> ``(B*H*W, C)`` in the work dtype (pyg_glic node order)."""
    B, C, H, W = x.shape
    return x.permute(0, 2, 3, 1).reshape(B * H * W, C).to(work_dtype(x))


def node_scores(x: Tensor, score: Optional[Tensor], adaptive: bool) -> Optional[Tensor]:
    r"""The complexity score per node ``(B*H*W,)`` when adaptive, else ``None``."""
    if not adaptive:
        return None
    B, _, H, W = x.shape
    if score is None:
        from .adaptive import complexity_map

        score = complexity_map(x)
    return score_to_nodes(score.to(x.device), B, H, W)


def parse_nodes(x: Tensor, batch: Optional[Tensor], pos: Optional[Tensor], size,
                check_finite: bool):
    r"""Node input ``(N, C)`` with an optional sorted ``batch`` and ``pos (N, 2)`` or
    ``size=(H, W)``. Returns ``(nodes, batch, pos, default_pos_scale)``."""
    from ._blocks import grid_positions

    if not x.is_floating_point():
        raise ValueError(f"x must be floating point, got {x.dtype}")
    if check_finite:
        check_finite_values(x)
    N = x.size(0)
    nodes = x.to(work_dtype(x))
    if pos is None:
        if size is None:
            raise ValueError("node input (N, C) needs pos (N, 2) or size=(H, W) to give "
                             "the edges their offsets")
        H, W = _pair(size, "size")
        if H * W == 0 or N % (H * W):
            raise ValueError(f"size=({H}, {W}) does not divide the {N} nodes; expected "
                             f"x of shape (B*H*W, C)")
        pos = grid_positions(N // (H * W), H, W, x.device, pos_dtype(x))
        scale = float(max(H, W))
        if batch is None:
            batch = torch.arange(N // (H * W), device=x.device).repeat_interleave(H * W)
    else:
        if not isinstance(pos, Tensor) or pos.shape != (N, 2):
            raise ValueError(f"pos must have shape (N, 2) = ({N}, 2), got "
                             f"{tuple(pos.shape) if isinstance(pos, Tensor) else pos!r}")
        pos = pos.to(pos_dtype(x))
        ext = (pos.max(0).values - pos.min(0).values).max() if N else torch.tensor(0.0)
        scale = max(float(ext) + 1.0, 1.0)
    if batch is None:
        batch = torch.zeros(N, dtype=torch.long, device=x.device)
    if not isinstance(batch, Tensor) or batch.shape != (N,):
        raise ValueError(f"batch must have shape (N,) = ({N},), got "
                         f"{tuple(batch.shape) if isinstance(batch, Tensor) else batch!r}")
    batch = batch.long()
    if N > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted in ascending order")
    return nodes, batch, pos, scale
