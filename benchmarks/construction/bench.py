r"""Graph construction benchmark: time and peak memory against the number of nodes.

Runs the builders of :mod:`pyg_glic.graph` on random feature maps ``(1, C, H, W)``
(C = 192 by default, GLIC's width at H/4 and H/8) from 32x32 nodes up to the H/4
map of a 1920x1080 image (270x480 nodes), with every k-NN backend a builder
supports, and writes ``construction_<device>.json``, ``.md`` and ``.png`` under
``--out`` (default ``benchmarks/results``). See README.md beside this file.

    python benchmarks/construction/bench.py             # full run (CPU: ~5-10 min)
    python benchmarks/construction/bench.py --quick     # tiny sizes, seconds
    python benchmarks/construction/bench.py --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._common import machine_info as _machine_info  # noqa: E402
from benchmarks._common import peak_memory, time_call  # noqa: E402
from pyg_glic import typing as pgt  # noqa: E402
from pyg_glic.graph import (LearnableGraph, global_graph, halo_graph, knn_graph,  # noqa: E402
                            window_graph)


def machine_info(device: torch.device) -> Dict[str, object]:
    return {**_machine_info(device, ("pyg_glic", "benchmarks/construction")),
            "with_torch_cluster": pgt.WITH_TORCH_CLUSTER}


FULL_SIZES = [(32, 32), (64, 64), (128, 128), (256, 256), (270, 480)]
QUICK_SIZES = [(16, 16), (24, 32)]


def graph_specs(quick: bool) -> Dict[str, Tuple[Callable, Tuple[str, ...], str]]:
    r"""name -> (builder(x, backend), backends it supports, description)."""
    k_loc = 16 if quick else 64
    lrgc: Dict[str, LearnableGraph] = {}

    def learnable(x, backend):
        C = x.size(1)
        if C not in lrgc:
            torch.manual_seed(0)
            lrgc[C] = LearnableGraph(C, candidates="halo", init_threshold=0.0).to(x.device)
        with torch.no_grad():
            return lrgc[C](x)

    both = ("torch", "torch_cluster")
    return {
        "window": (lambda x, b: window_graph(x, 16, window=8, backend=b), both,
                   "8x8 windows, k=16 of 64"),
        "halo": (lambda x, b: halo_graph(x, k_loc, window=8, halo=4, backend=b), both,
                 f"GLIC local: 8x8 windows, 16x16 patch, k={k_loc} of 256"),
        "halo_adaptive": (lambda x, b: halo_graph(x, k_loc, window=8, halo=4, adaptive=True,
                                                  backend=b), ("torch",),
                          f"as halo, adaptive degree (mean {k_loc}) incl. complexity map"),
        "global": (lambda x, b: global_graph(x, k_loc, grid=16, backend=b), both,
                   f"GLIC global: 16x16 pooled grid, k={k_loc} of 256, dilated 8x8 groups"),
        "knn": (lambda x, b: knn_graph(x, 9, backend=b), both,
                "ViG k-NN over all nodes of the image, k=9 (quadratic: small maps only)"),
        "learnable": (learnable, ("torch",),
                      "LRGC on halo candidates, threshold sigmoid(0)=0.5, forward (no grad)"),
    }


def run(args) -> Dict[str, object]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    channels = args.channels or (16 if args.quick else 192)
    specs = graph_specs(args.quick)
    names = args.graphs or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise SystemExit(f"unknown graphs {unknown}; choose from {list(specs)}")
    backends = args.backends or ["torch", "torch_cluster"]
    results: List[Dict[str, object]] = []
    skipped: List[str] = []
    t_start = time.perf_counter()
    for name in names:
        fn, supported, _ = specs[name]
        for backend in backends:
            if backend not in supported:
                continue
            if backend == "torch_cluster" and not pgt.WITH_TORCH_CLUSTER:
                skipped.append(f"{name}/{backend}: torch-cluster not installed")
                continue
            too_slow = False
            for (H, W) in sizes:
                n = H * W
                cap = args.knn_max_nodes if name == "knn" else None
                if backend == "torch_cluster":
                    cap = min(cap or n, args.cluster_max_nodes)
                if cap is not None and n > cap:
                    skipped.append(f"{name}/{backend} {H}x{W}: above the cap of {cap} nodes")
                    continue
                if too_slow:
                    skipped.append(f"{name}/{backend} {H}x{W}: previous size took more "
                                   f"than {args.max_seconds} s")
                    continue
                gen = torch.Generator().manual_seed(0)
                x = torch.randn(1, channels, H, W, generator=gen).to(device)

                def call(x=x, fn=fn, backend=backend):
                    return fn(x, backend)

                t0 = time.perf_counter()
                first = call()
                first_s = time.perf_counter() - t0
                slow = first_s > args.max_seconds / 2
                warm = 0 if slow else args.warmup
                reps = 1 if slow else args.repeats
                med, ts, g = time_call(call, device, warm, reps)
                mem, how = peak_memory(call, device)
                row = {
                    "graph": name, "backend": backend, "height": H, "width": W, "nodes": n,
                    "channels": channels, "edges": int(g.num_edges),
                    "mean_degree": round(g.num_edges / max(g.num_dst, 1), 2),
                    "time_ms_median": round(med * 1e3, 3),
                    "times_ms": [round(t * 1e3, 3) for t in ts],
                    "first_call_ms": round(first_s * 1e3, 3),
                    "peak_mib": None if mem is None else round(mem, 2),
                    "memory_method": how,
                }
                results.append(row)
                print(f"{name:14s} {backend:13s} {H:4d}x{W:<4d} {med * 1e3:10.1f} ms "
                      f"{'-' if mem is None else f'{mem:9.1f}'} MiB  E={g.num_edges}",
                      flush=True)
                del g, first
                if max(ts) > args.max_seconds:
                    too_slow = True
    return {
        "benchmark": "graph construction",
        "meta": {**machine_info(device), "quick": bool(args.quick), "warmup": args.warmup,
                 "repeats": args.repeats, "channels": channels,
                 "total_seconds": round(time.perf_counter() - t_start, 1),
                 "graphs": {n: specs[n][2] for n in names}},
        "results": results,
        "skipped": skipped,
    }


def to_markdown(report: Dict[str, object]) -> str:
    meta = report["meta"]
    lines = [
        "# Graph construction: time and peak memory against the number of nodes", "",
        f"- device: {meta['device']}" + (f" ({meta['gpu']})" if "gpu" in meta else ""),
        f"- machine: {meta['platform']}, {meta['cpu_count']} CPUs, torch threads "
        f"{meta['torch_threads']}, load average at start {meta.get('load_average_at_start')}",
        f"- torch {meta['torch']}, torch_geometric {meta.get('torch_geometric')}, "
        f"torch-cluster installed: {meta['with_torch_cluster']}",
        f"- git commit: {meta['git_commit']}; date {meta['date']}; "
        f"channels C = {meta['channels']}; median of {meta['repeats']} after "
        f"{meta['warmup']} warm-up (one run when a call takes long); total "
        f"{meta['total_seconds']} s",
        f"- peak memory: {report['results'][0]['memory_method'] if report['results'] else '-'}, "
        "above what existed before the call, output included", "",
        "Graphs:", "",
    ]
    lines += [f"- **{n}**: {d}" for n, d in meta["graphs"].items()]
    lines += ["", "| graph | backend | nodes (HxW) | edges | mean degree | time ms | peak MiB |",
              "|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        mem = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.1f}"
        lines.append(f"| {r['graph']} | {r['backend']} | {r['height']}x{r['width']} "
                     f"({r['nodes']}) | {r['edges']} | {r['mean_degree']} | "
                     f"{r['time_ms_median']:.1f} | {mem} |")
    if report["skipped"]:
        lines += ["", "Skipped:", ""] + [f"- {s}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def plot(report: Dict[str, object], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    series: Dict[Tuple[str, str], List[dict]] = {}
    for r in report["results"]:
        series.setdefault((r["graph"], r["backend"]), []).append(r)
    for (g, b), rows in sorted(series.items()):
        rows = sorted(rows, key=lambda r: r["nodes"])
        n = [r["nodes"] for r in rows]
        style = "-o" if b == "torch" else "--s"
        axes[0].plot(n, [r["time_ms_median"] for r in rows], style, label=f"{g} ({b})")
        mem = [(r["nodes"], r["peak_mib"]) for r in rows if r["peak_mib"] is not None]
        if mem:
            axes[1].plot(*zip(*mem), style, label=f"{g} ({b})")
    meta = report["meta"]
    for ax, ylab in zip(axes, ("time per build (ms, median)", "peak memory (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nodes (H x W)")
        ax.set_ylabel(ylab)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"graph construction, C={meta['channels']}, {meta['device']}, "
                 f"torch {meta['torch']}, {meta['cpu_count']} CPUs", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and C=16 (seconds)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    p.add_argument("--sizes", nargs="*", help="maps as HxW, e.g. 64x64 270x480")
    p.add_argument("--graphs", nargs="*", help="subset of the graphs")
    p.add_argument("--backends", nargs="*", choices=["torch", "torch_cluster"])
    p.add_argument("--channels", type=int, default=None, help="C (default 192; quick 16)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=None, help="timed runs (default 5; quick 2)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--cluster-max-nodes", type=int, default=64 * 64,
                   help="largest map for torch-cluster's (CPU k-d tree) backend")
    p.add_argument("--knn-max-nodes", type=int, default=128 * 128,
                   help="largest map for the quadratic all-pairs k-NN graph")
    p.add_argument("--max-seconds", type=float, default=30.0,
                   help="stop growing a series once one call takes longer")
    p.add_argument("--tag", default=None, help="suffix of the output file names")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    report = run(args)
    os.makedirs(args.out, exist_ok=True)
    stem = "construction_" + torch.device(args.device).type
    if args.quick:
        stem += "_quick"
    if args.tag:
        stem += "_" + args.tag
    base = os.path.join(args.out, stem)
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(to_markdown(report))
    plot(report, base + ".png")
    report["files"] = [base + ext for ext in (".json", ".md", ".png")]
    print("wrote", ", ".join(report["files"]))
    return report


if __name__ == "__main__":
    main()
