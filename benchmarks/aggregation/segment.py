r"""The CSR paths' segment reductions: torch's :func:`torch.segment_reduce` (what the
code uses) against torch-scatter's ``segment_csr`` (a dependency already), on the
shapes the layers reduce.

Two call sites reduce over each target's edges with a CSR pointer:

- ``attention``: the CPU CSR attention executor (``pyg_glic/nn/attention/csr.py``,
  ``_CSR.reduce``) takes the per-target max and sum of ``(H, E)`` scores on graphs
  with adaptive (non-uniform) degrees: torch reduces head by head
  (``segment_reduce`` on each ``(E,)`` row, stacked), torch-scatter all heads in one
  call (``segment_csr`` along the last dimension with the pointer broadcast).
- ``mrconv``: ``csr_max`` (``pyg_glic/nn/segment.py``) takes the per-target channel
  max of ``(E, C)`` gathered rows (MRConv; ViG's k-NN graphs with a variable degree).

Both run forward only (the values the executors need); each pair is checked to give
equal results before it is timed. Uniform-degree graphs take neither path (the code
reshapes and reduces a dense ``(N, k)`` view), so the degrees here vary, drawn
uniformly from ``[1, 2 * mean - 1]``::

    PYTHONPATH=. .venv/bin/python benchmarks/aggregation/segment.py
    PYTHONPATH=. .venv/bin/python benchmarks/aggregation/segment.py --quick --out /tmp/b

Writes ``segment_reduce_<device>[_quick].{json,md}`` under ``--out`` (default
``benchmarks/results``): the median of ``--repeats`` timed calls after a warm-up,
one intra-op thread unless ``--threads``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._common import machine_info, time_call  # noqa: E402

try:
    from torch_scatter import segment_csr
except ImportError:  # pragma: no cover - a dependency of pyg_glic
    segment_csr = None

# (site, nodes, mean degree, heads or channels): GLIC attention at glic-lite's H/4 and
# H/8 stages on a training batch (8 crops of 128x128: 8192 and 2048 nodes) and on a
# 768x512 Kodak image at H/4 (24576 nodes), degree 16 (glic-lite) and 64 (GLIC);
# MRConv on ViG-Ti's 196 nodes x batch 32 (k 9..18) and a pyramid stage (3136 x 8).
CASES = [("attention", 8192, 16, 4), ("attention", 2048, 16, 4),
         ("attention", 24576, 16, 4), ("attention", 8192, 64, 8),
         ("mrconv", 6272, 9, 192), ("mrconv", 6272, 18, 192), ("mrconv", 25088, 9, 48)]
QUICK = [("attention", 2048, 16, 4), ("mrconv", 1568, 9, 48)]


def _pointer(nodes: int, mean: int, gen: torch.Generator) -> torch.Tensor:
    deg = torch.randint(1, 2 * mean, (nodes,), generator=gen)
    return torch.cat([torch.zeros(1, dtype=torch.long), deg.cumsum(0)])


def _forms(site: str, ptr: torch.Tensor, width: int, gen: torch.Generator):
    E = int(ptr[-1])
    if site == "attention":  # (H, E) scores, per-target max and sum of every head
        v = torch.randn(width, E, generator=gen)
        ptr_b = ptr.view(1, -1).expand(width, -1)

        def torch_form():
            return [torch.stack([torch.segment_reduce(r, how, offsets=ptr, axis=0) for r in v])
                    for how in ("max", "sum")]

        def scatter_form():
            return [segment_csr(v, ptr_b, reduce=how) for how in ("max", "sum")]
    else:  # (E, C) rows, per-target channel max
        v = torch.randn(E, width, generator=gen)

        def torch_form():
            return [torch.segment_reduce(v, "max", offsets=ptr, axis=0)]

        def scatter_form():
            return [segment_csr(v, ptr, reduce="max")]
    return E, torch_form, scatter_form


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="two small cases, few repeats")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = p.parse_args(argv)
    if segment_csr is None:
        print("error: torch-scatter is not installed", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    repeats = args.repeats or (5 if args.quick else 30)
    rows: List[Dict] = []
    for site, nodes, mean, width in (QUICK if args.quick else CASES):
        gen = torch.Generator().manual_seed(0)
        ptr = _pointer(nodes, mean, gen)
        E, tf, sf = _forms(site, ptr, width, gen)
        for a, b in zip(tf(), sf()):
            torch.testing.assert_close(a, b)
        t_torch, _, _ = time_call(tf, device, warmup=3, repeats=repeats)
        t_scatter, _, _ = time_call(sf, device, warmup=3, repeats=repeats)
        rows.append(dict(site=site, nodes=nodes, mean_degree=mean, edges=E, width=width,
                         torch_ms=round(t_torch * 1e3, 3),
                         segment_csr_ms=round(t_scatter * 1e3, 3),
                         speedup=round(t_torch / t_scatter, 2)))
        r = rows[-1]
        print(f"{site:9s} nodes {nodes:6d} degree ~{mean:2d} width {width:3d}: "
              f"torch {r['torch_ms']:8.3f} ms  segment_csr {r['segment_csr_ms']:8.3f} ms  "
              f"x{r['speedup']}", flush=True)
    info = machine_info(device)
    import torch_scatter
    info["torch_scatter"] = torch_scatter.__version__
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"segment_reduce_{device.type}{'_quick' if args.quick else ''}")
    with open(stem + ".json", "w") as f:
        json.dump({"machine": info, "repeats": repeats, "rows": rows}, f, indent=1)
    lines = [f"# Segment reductions on the CSR paths: torch.segment_reduce vs torch_scatter."
             f"segment_csr ({device.type})", "",
             f"{info['processor']}, {info['cpu_count']} CPUs, {args.threads} thread(s), "
             f"torch {info['torch']}, torch-scatter {info['torch_scatter']}, commit "
             f"{info['git_commit']}, {info['date']}; median of {repeats} forward calls; "
             f"degrees uniform in [1, 2 x mean - 1].", "",
             "| site | nodes | mean degree | edges | heads / channels | torch (ms) | "
             "segment_csr (ms) | torch / segment_csr |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['site']} | {r['nodes']} | {r['mean_degree']} | {r['edges']} | "
                     f"{r['width']} | {r['torch_ms']} | {r['segment_csr_ms']} | "
                     f"{r['speedup']} |")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
