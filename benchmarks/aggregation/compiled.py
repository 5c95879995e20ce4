r"""GLIC attention's two cores, eager and under ``torch.compile``: does compiling
the sparse core close the gap to blocked-dense execution?

The sparse core (:func:`pyg_glic.nn.functional.sparse_attention`) runs eagerly as
chunked per-edge gathers (``index_select``, multiply, sum), each pass streaming
``E x D`` values through memory. Under :func:`torch.compile` (Inductor's C++/OpenMP
code on the CPU, Triton on CUDA) the gather, product and reduction fuse into one
loop that never writes the per-edge rows. This probe times both cores both ways on
GLIC's local graph (``halo_graph``, window 8, halo 4: 256 candidates per node), on
the functional cores with fixed ``q, k, v`` and per-edge bias (the layer's
projections and position MLP are the same for both and left out):

    PYTHONPATH=. .venv/bin/python benchmarks/aggregation/compiled.py
    PYTHONPATH=. .venv/bin/python benchmarks/aggregation/compiled.py --quick --out /tmp/b

Writes ``aggregation_compiled_<device>[_quick].{json,md,png}`` under ``--out``
(default ``benchmarks/results``). Time: median of ``--repeats`` after a warm-up
that includes compilation (compile time recorded separately, per form and mode).
Peak memory: ``benchmarks/_common.peak_memory``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._common import machine_info, peak_memory, time_call  # noqa: E402
from pyg_glic.graph import halo_graph  # noqa: E402
from pyg_glic.nn.functional import (blocked_attention, block_edge_slots,  # noqa: E402
                                    sparse_attention)

PATHS = ("pyg_glic/nn", "pyg_glic/graph", "benchmarks")
FORMS = ("sparse", "sparse_compiled", "dense", "dense_compiled")
MODES = ("forward", "forward+backward")


def _case(side: int, degree: int, C: int, H: int, device, gen):
    feat = torch.randn(1, C, side, side, generator=gen).to(device)
    g = halo_graph(feat, window=8, halo=4, k=degree)
    N = side * side
    q, k, v = (torch.randn(N, H, C // H, generator=gen).to(device) for _ in range(3))
    bias = torch.randn(g.edge_index.size(1), H, generator=gen).to(device)
    slots = block_edge_slots(g.blocks, g.edge_index, N)
    return g, N, (q, k, v, bias), slots


def _fns(g, N, slots):
    def sparse(q, k, v, b):
        return sparse_attention(q, k, v, b, g.edge_index, g.ptr, N)

    def dense(q, k, v, b):
        return blocked_attention(q, k, v, b, g.edge_index, g.blocks, N, slots=slots)
    return {"sparse": sparse, "dense": dense}


def _runner(core, tensors, mode):
    if mode == "forward":
        def run():
            with torch.no_grad():
                return core(*tensors)
        return run
    leaves = [t.detach().requires_grad_() for t in tensors]

    def run_fb():
        out = core(*leaves)
        out.backward(torch.ones_like(out))
        for t in leaves:
            t.grad = None
    return run_fb


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="16x16 map, C=32, one repeat")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    p.add_argument("--sides", nargs="*", type=int, default=None, help="maps side x side (64 128)")
    p.add_argument("--degrees", nargs="*", type=int, default=[16, 64])
    p.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    p.add_argument("--channels", type=int, default=None, help="C (default 192; quick 32)")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--repeats", type=int, default=None, help="default 3; quick 1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-memory", action="store_true")
    args = p.parse_args(argv)
    sides = args.sides or ([16] if args.quick else [64, 128])
    C = args.channels or (32 if args.quick else 192)
    repeats = args.repeats or (1 if args.quick else 3)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    results = []
    t_start = time.perf_counter()
    for side in sides:
        for degree in args.degrees:
            g, N, tensors, slots = _case(side, degree, C, args.heads, device, gen)
            cores = _fns(g, N, slots)
            ref = None
            for mode in args.modes:
                for form in FORMS:
                    base = form.split("_")[0]
                    core = cores[base]
                    if form.endswith("compiled"):
                        torch._dynamo.reset()
                        core = torch.compile(core, dynamic=False)
                    run = _runner(core, tensors, mode)
                    t0 = time.perf_counter()
                    out = run()
                    first_s = time.perf_counter() - t0
                    if mode == "forward":
                        if ref is None:
                            ref = out
                        diff = float((out - ref).abs().max())
                    med, ts, _ = time_call(run, device, 1, repeats)
                    mem, how = (None, "skipped") if args.no_memory else peak_memory(run, device)
                    rec = {"side": side, "nodes": N, "degree": degree, "edges": int(g.edge_index.size(1)),
                           "mode": mode, "form": form, "time_ms_median": med * 1e3,
                           "times_ms": [t * 1e3 for t in ts], "first_call_s": first_s,
                           "peak_mib": mem, "memory_method": how}
                    if mode == "forward":
                        rec["max_abs_diff_vs_sparse"] = diff
                    results.append(rec)
                    print(f"{side}x{side} deg {degree} {mode:16s} {form:16s} {med * 1e3:9.1f} ms "
                          f"(first call {first_s:.1f} s)", flush=True)
    report = {"benchmark": "aggregation_compiled",
              "meta": {**machine_info(device, PATHS), "quick": bool(args.quick), "channels": C,
                       "heads": args.heads, "repeats": repeats,
                       "total_seconds": round(time.perf_counter() - t_start, 1),
                       "argv": sys.argv[1:] if argv is None else list(argv)},
              "results": results}
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, "aggregation_compiled_" + device.type + ("_quick" if args.quick else ""))
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(to_markdown(report))
    plot(report, base + ".png")
    report["files"] = [base + ext for ext in (".json", ".md", ".png")]
    print("wrote", ", ".join(report["files"]))
    return report


def _index(report):
    return {(r["side"], r["degree"], r["mode"], r["form"]): r for r in report["results"]}


def to_markdown(report) -> str:
    m = report["meta"]
    idx = _index(report)
    lines = [f"# GLIC attention cores, eager and compiled ({m['device']})", "",
             f"Machine: {m['platform']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch "
             f"thread(s); torch {m['torch']}; commit {m['git_commit']}; {m['date']}; "
             f"C = {m['channels']}, {m['heads']} heads, 256 candidates per node; median of "
             f"{m['repeats']}. Ratios are against the eager blocked-dense core (the "
             "layer's dense execution); < 1: faster than it.", "",
             "| map | degree | mode | form | time ms | / dense | peak MiB | / dense | first call s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (side, deg, mode, form), r in idx.items():
        d = idx.get((side, deg, mode, "dense"))
        rt = r["time_ms_median"] / d["time_ms_median"] if d else float("nan")
        rm = (r["peak_mib"] / d["peak_mib"] if d and r["peak_mib"] is not None
              and d["peak_mib"] else float("nan"))
        mem = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.1f}"
        lines.append(f"| {side}x{side} | {deg} | {mode} | {form} | {r['time_ms_median']:.1f} | "
                     f"{rt:.2f} | {mem} | {rm:.2f} | {r['first_call_s']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(report, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    idx = _index(report)
    cases = sorted({(s, d, m) for s, d, m, _ in idx})
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(cases)), 4))
    width = 0.8 / len(FORMS)
    for i, form in enumerate(FORMS):
        vals = []
        for s, d, m in cases:
            r, dn = idx.get((s, d, m, form)), idx.get((s, d, m, "dense"))
            vals.append(r["time_ms_median"] / dn["time_ms_median"] if r and dn else float("nan"))
        ax.bar([j + i * width for j in range(len(cases))], vals, width, label=form)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cases))])
    ax.set_xticklabels([f"{s}x{s}\ndeg {d}\n{'fwd' if m == 'forward' else 'fwd+bwd'}"
                        for s, d, m in cases], fontsize=8)
    ax.set_ylabel("time / eager blocked-dense")
    ax.set_yscale("log")
    ax.set_title(f"GLIC attention cores, {report['meta']['device']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
