r"""Helpers shared by the benchmarks: CUDA-synchronised timing, peak memory
(CUDA: ``max_memory_allocated``; CPU: torch profiler memory events), machine
and git description. Import with ``from benchmarks._common import ...`` after
putting the repository root on ``sys.path``.
"""
from __future__ import annotations

import datetime as _dt
import gc
import os
import platform
import statistics
import subprocess
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device, warmup: int, repeats: int
              ) -> Tuple[float, List[float], object]:
    out = None
    for _ in range(warmup):
        out = fn()
    _sync(device)
    ts = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts, out


def _profiler_peak_bytes(fn: Callable[[], object]) -> Optional[int]:
    r"""Peak of the bytes held by tensors allocated during ``fn`` (torch profiler
    memory events, CPU), output included; ``None`` where unsupported."""
    try:
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile
    except Exception:  # pragma: no cover
        return None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    del out
    allocs = []

    def walk(node):
        if node.tag == _EventType.Allocation:
            allocs.append((node.start_time_ns, node.extra_fields.alloc_size,
                           node.extra_fields.total_allocated))
        for c in node.children:
            walk(c)
    try:
        for root in prof.profiler.kineto_results.experimental_event_tree():
            walk(root)
    except Exception:  # pragma: no cover - private API moved
        return None
    if not allocs:
        return 0
    allocs.sort()
    base = allocs[0][2] - allocs[0][1]
    return max(a[2] for a in allocs) - base


def peak_memory(fn: Callable[[], object], device) -> Tuple[Optional[float], str]:
    r"""Peak memory of one call in MiB above what was allocated before it."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return peak / 2 ** 20, "cuda.max_memory_allocated"
    peak = _profiler_peak_bytes(fn)
    if peak is None:  # pragma: no cover
        return None, "unavailable"
    return peak / 2 ** 20, "torch.profiler CPU tensor allocations"


def git_commit(paths: Sequence[str] = ("pyg_glic", "benchmarks")) -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown (no commit)"
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *paths],
                               cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")
    except Exception:  # pragma: no cover
        return "unknown"


def machine_info(device: torch.device, paths: Sequence[str] = ("pyg_glic", "benchmarks")
                 ) -> Dict[str, object]:
    info: Dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "git_commit": git_commit(paths),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    try:
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        pass
    try:
        import torch_geometric
        info["torch_geometric"] = torch_geometric.__version__
    except Exception:  # pragma: no cover
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
