r"""Every execution switch and fitted threshold of the attention executors, in one place.

As :mod:`torch_geometric.backend` does, the settings are plain module attributes,
read at call time (set them, or ``monkeypatch.setattr`` them in tests, here and
nowhere else); each says what it switches and, for a number, where it was
measured. The dispatcher (:mod:`pyg_glic.nn.attention.dispatch`) and the
executors read them; nothing else holds a copy.

- :data:`FUSED_ATTENTION`, :data:`CSR_ATTENTION`: which sparse executor
  :func:`~pyg_glic.nn.attention.sparse_attention` may use.
- :data:`EXECUTIONS`, :func:`execution`, :func:`forced_execution`: blocked-dense
  or sparse, per layer or for a region of code.
- :data:`DENSE_MIN_DENSITY`, :data:`DENSE_MIN_QUERIES` (:data:`FITTED_FROM`): the
  thresholds of the ``"auto"`` choice between blocked-dense and sparse.
- :data:`CHUNK_ELEMENTS`: the size of the chunks the gather and blocked-dense
  executors (and :func:`pyg_glic.nn.segment.csr_max`) walk in eager mode.
- :data:`DEFAULT_BLOCK_E`, :data:`TRITON_NUM_WARPS`: the Triton kernels' tile
  and launch width.

Not a switch: the CSR paths' per-target max and sum (the CSR executor's segment
softmax, :func:`~pyg_glic.nn.segment.csr_max`) use :func:`torch.segment_reduce`,
not torch-scatter's ``segment_csr``, which measured 1.2-2.9x slower on every shape
tried (benchmarks/aggregation/segment.py; benchmarks/results/segment_reduce_cpu.md,
2-core CPU, 1 thread, torch 2.15: attention scores of 2k-25k nodes at degree 16
and 64, MRConv rows of 192 and 48 channels).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Dict, Iterator, Optional, Tuple

__all__ = ["FUSED_ATTENTION", "CSR_ATTENTION", "CHUNK_ELEMENTS", "EXECUTIONS",
           "FITTED_FROM", "DENSE_MIN_DENSITY", "DENSE_MIN_QUERIES", "DEFAULT_BLOCK_E",
           "TRITON_NUM_WARPS", "execution", "forced_execution"]

# -- which sparse executor -------------------------------------------------------------

#: Where :func:`~pyg_glic.nn.attention.sparse_attention` runs the fused Triton kernel:
#: ``"auto"`` (on CUDA devices when Triton is importable, not while
#: :func:`torch.compile` traces, where the kernel would be a graph break),
#: ``"always"`` (wherever :func:`~pyg_glic.nn.attention.fused_attention_available`
#: says it can run, including Triton's CPU interpreter under ``TRITON_INTERPRET=1``:
#: slow, for tests) or ``"never"`` (always one of the other executors).
#: A switch, not a measurement: the kernel has not been timed on a GPU yet.
FUSED_ATTENTION = "auto"

#: Whether :func:`~pyg_glic.nn.attention.sparse_attention` runs the CPU CSR executor
#: (:func:`~pyg_glic.nn.attention.csr_sparse_attention`: SDDMM, segment softmax,
#: SpMM) when given ``ptr``: ``"auto"`` (CPU float32/float64 tensors outside
#: :func:`torch.compile`) or ``"never"`` (the chunked gather executor).
#: ``"auto"`` from two runs of benchmarks/aggregation on the same 2-core CPU (1 torch
#: thread), not a head-to-head fit: with the chunked gathers as the sparse form
#: (2026-11-23) sparse lost to blocked-dense by 1.4-2.9x at degree 64 of 256; with
#: this executor (benchmarks/results/aggregation_cpu.json, 2026-12-01) it wins there
#: (sparse / dense time 0.29-0.53, GLICAttention C=192, 8 heads, batch 1, 64x64 to
#: 256x256 nodes).
CSR_ATTENTION = "auto"

# -- chunking --------------------------------------------------------------------------

#: Upper bound on the elements of one transient per-edge tensor in eager mode
#: (``2**22`` float32 values are 16 MiB; the blocked-dense executor's inference
#: chunks hold ``4 *`` this many scores); under :func:`torch.compile` the gathers
#: are fused by the compiler and not chunked. A memory bound chosen, not fitted.
CHUNK_ELEMENTS = 2 ** 22

# -- blocked-dense or sparse -----------------------------------------------------------

#: The values of :class:`~pyg_glic.nn.conv.GLICAttention`'s ``execution`` and of
#: :func:`execution`.
EXECUTIONS = ("auto", "sparse", "dense")

# Thresholds: (device type, backward follows) -> smallest density (edges per valid
# query-candidate pair of the blocks) at which the blocked-dense form is chosen.
#
# CPU values fitted on benchmarks/results/aggregation_cpu.json (run of 2026-12-01,
# 2-core CPU, 1 torch thread, torch 2.15; GLICAttention C=192, 8 heads, halo graphs
# with 256 candidates, 32x32 to 256x256 nodes, batch 1 and 8) by
# benchmarks/aggregation/bench.py's fit_policy (re-run it with
# ``python benchmarks/aggregation/bench.py --fit benchmarks/results/aggregation_cpu.json``):
# the threshold minimising the summed log-slowdown against the faster form.
# Measured with the CPU CSR executor of sampled/sparse matrix products
# (pyg_glic.nn.attention.csr): sparse is faster at every degree up to 128 of
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
#: (no size effect was fitted: the measured crossover in the same CPU run did not
#: move with size enough to pay for a second parameter; CUDA: not measured).
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
    called inside the block (overrides the layers' ``execution`` argument)::

        with pyg_glic.nn.attention.backend.execution("sparse"):
            out = model(x)
    """
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


# -- Triton kernels --------------------------------------------------------------------

#: Edges per tile in the Triton kernels' inner loop (a power of two). Not tuned: no
#: GPU measurement yet (see pyg_glic.nn.attention.triton_fused).
DEFAULT_BLOCK_E = 32
#: Warps per program of the Triton kernels. Not tuned either.
TRITON_NUM_WARPS = 2
