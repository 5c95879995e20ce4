r"""Execution policy of the attention layers: blocked-dense or sparse, per call.

:class:`~pyg_glic.nn.conv.GLICAttention` can aggregate in two ways that give
the same result up to rounding:

- ``"sparse"``: :func:`pyg_glic.nn.functional.sparse_attention`, work
  proportional to the number of edges ``E``;
- ``"dense"``: :func:`pyg_glic.nn.functional.blocked_attention`, all ``Q x K``
  pairs of every candidate block (GLIC: 64 x 256) through batched matrix
  products, non-edges masked; work proportional to ``nb * Q * K``, which
  needs the graph's :class:`~pyg_glic.graph.base.CandidateBlocks`.

With ``execution="auto"`` (the default) :func:`choose_attention_execution`
picks dense when the graph's *density* (edges per valid query-candidate pair
of the blocks, i.e. mean degree / candidates per block) reaches the threshold
fitted for the device and for whether a backward pass follows (autograd on),
and the map is large enough for the dense form's fixed costs to amortise.

The caller can force either, per layer (``GLICAttention(...,
execution="dense")``) or for a region of code::

    with pyg_glic.nn.policy.execution("sparse"):
        out = model(x)

The context manager overrides the layers' own setting. Without blocks
(``blocks=None``) the layer always runs sparse.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Dict, Iterator, Optional, Tuple

import torch

__all__ = ["EXECUTIONS", "DENSE_MIN_DENSITY", "DENSE_MIN_QUERIES", "execution",
           "forced_execution", "choose_attention_execution", "block_density"]

EXECUTIONS = ("auto", "sparse", "dense")

# Thresholds: (device type, backward follows) -> smallest density at which the
# blocked-dense form is chosen.
#
# CPU values fitted on benchmarks/results/aggregation_cpu.json (run of 2026-12-01,
# 2-core CPU, 1 torch thread, torch 2.15; GLICAttention C=192, 8 heads, halo graphs
# with 256 candidates, 32x32 to 256x256 nodes, batch 1 and 8) by
# benchmarks/aggregation/bench.py's fit_policy (re-run it with
# ``python benchmarks/aggregation/bench.py --fit benchmarks/results/aggregation_cpu.json``):
# the threshold minimising the summed log-slowdown against the faster form.
# Measured with the CPU sparse core of sampled/sparse matrix products
# (pyg_glic.nn.kernels.csr_attention): sparse is faster at every degree up to 128 of
# 256 (density <= 0.65), forward and forward+backward, on the local, global and learned
# graphs; blocked-dense is faster only when every candidate is an edge (degree 256,
# density 1.0: 1.25-1.56x at 64x64; within 10% either way at 32x32). The previous fit
# (chunked-gather sparse core, 2026-11-23) was 0.0764 / 0.1119.
FITTED_FROM = "benchmarks/results/aggregation_cpu.json (2026-12-01)"
DENSE_MIN_DENSITY: Dict[Tuple[str, bool], float] = {
    ("cpu", False): 0.8265,  # inference (no autograd)
    ("cpu", True): 0.8265,   # training (forward + backward)
    # NOT fitted by this project's benchmark (no GPU run yet): from the probe in
    # docs/CALIBRATION.md (H100): dense wins the forward pass at every degree >= 16
    # of 256 and forward+backward from degree 64 on (sparse_gather won at degree 16);
    # replace with a fit on aggregation_cuda.json.
    ("cuda", False): 0.0,
    ("cuda", True): 0.2,
}
#: Below this many block queries (nodes) the sparse form is used regardless
#: (no size effect was fitted: the measured crossover did not move with size
#: enough to pay for a second parameter).
DENSE_MIN_QUERIES: Dict[Tuple[str, bool], int] = {
    ("cpu", False): 0,
    ("cpu", True): 0,
    ("cuda", False): 0,
    ("cuda", True): 0,
}

_state = threading.local()


def forced_execution() -> Optional[str]:
    r"""The execution forced by the innermost :func:`execution` context, or ``None``."""
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def execution(mode: str) -> Iterator[None]:
    r"""Force ``"sparse"``, ``"dense"`` or ``"auto"`` for every attention layer
    called inside the block (overrides the layers' ``execution`` argument)."""
    if mode not in EXECUTIONS:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {mode!r}")
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    stack.append(mode)
    try:
        yield
    finally:
        stack.pop()


def block_density(num_edges: int, blocks) -> Tuple[float, int]:
    r"""``(density, queries)``: edges per valid (query, candidate) pair of the
    blocks, and the number of valid queries."""
    qv = (blocks.query_index >= 0).sum(dim=1)
    cv = (blocks.cand_index >= 0).sum(dim=1)
    pairs = int((qv * cv).sum())
    return (num_edges / pairs if pairs else 0.0), int(qv.sum())


@torch.compiler.disable
def choose_attention_execution(num_edges: int, blocks, device: torch.device,
                               backward: Optional[bool] = None) -> str:
    r"""``"dense"`` or ``"sparse"`` for one call of the attention core.

    Args:
        num_edges (int): ``E``.
        blocks (CandidateBlocks, optional): ``None`` gives ``"sparse"``.
        device (torch.device): where the call runs (``"cuda"`` thresholds for
            any accelerator other than the CPU).
        backward (bool, optional): whether a backward pass follows; default
            ``torch.is_grad_enabled()``.
    """
    if blocks is None:
        return "sparse"
    if backward is None:
        backward = torch.is_grad_enabled()
    dev = "cpu" if torch.device(device).type == "cpu" else "cuda"
    density, queries = block_density(num_edges, blocks)
    key = (dev, bool(backward))
    if queries < DENSE_MIN_QUERIES[key]:
        return "sparse"
    return "dense" if density >= DENSE_MIN_DENSITY[key] else "sparse"
