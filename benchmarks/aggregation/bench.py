r"""Aggregation benchmark: our sparse layers against their dense references on the same graphs.

Two layers, each on graphs built by :mod:`pyg_glic.graph` from random feature maps:

- **GLIC attention** (:class:`~pyg_glic.nn.conv.GLICAttention`, width 192, 8 heads) on
  the GLIC local graph (:func:`~pyg_glic.graph.halo_graph`: 8x8 windows, 256 halo
  candidates per node), degree fixed at 8 ... 256 and adaptive with mean 64. Forms:
  ``sparse`` (the layer's sparse core), ``dense`` (the layer's blocked-dense core,
  :func:`pyg_glic.nn.functional.blocked_attention`), ``dense_ref`` (the published way,
  :func:`pyg_glic.nn.dense.dense_glic_attention`: position MLP on every
  query-candidate pair; degree-independent, measured at two degrees only) and
  ``auto`` (what :mod:`pyg_glic.nn.policy` picks, derived from the measured forms).
- **max-relative conv** (:class:`~pyg_glic.nn.conv.MRConv`, 192 -> 192) on ViG's
  k-NN graph (:func:`~pyg_glic.graph.knn_graph`), k = 9, 16, 32, dilation 1 and 2:
  ``sparse`` (PyG message passing, scatter-max) against ``dense``
  (:func:`pyg_glic.nn.dense.dense_mr_conv`, ViG's gather into ``(B, C, N, k)``).

Modes: ``forward`` (under ``torch.no_grad``, inference) and ``forward+backward``
(autograd on, backward of a fixed random cotangent). Time: median of ``--repeats`` calls
after ``--warmup``; peak memory of one call (CUDA: ``max_memory_allocated``; CPU: torch
profiler memory events). A series stops growing (in degree and in size) once a call
takes longer than ``--max-seconds``. Writes ``aggregation_<device>.{json,md,png}``.

    python benchmarks/aggregation/bench.py                 # full run (CPU: ~15 min)
    python benchmarks/aggregation/bench.py --quick --out /tmp/b   # seconds
    python benchmarks/aggregation/bench.py --device cuda
    python benchmarks/aggregation/bench.py --fit benchmarks/results/aggregation_cpu.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._common import machine_info, peak_memory, time_call  # noqa: E402
from pyg_glic.convert import edge_index_to_knn_index  # noqa: E402
from pyg_glic.graph import halo_graph, knn_graph  # noqa: E402
from pyg_glic.nn import policy  # noqa: E402
from pyg_glic.nn.conv import GLICAttention, MRConv  # noqa: E402
from pyg_glic.nn.dense import dense_glic_attention, dense_mr_conv  # noqa: E402
from pyg_glic.nn.functional import block_edge_slots, compress_offsets  # noqa: E402

FULL_SIZES = [(32, 32), (64, 64), (128, 128), (256, 256)]
QUICK_SIZES = [(16, 16)]
FULL_DEGREES = ["8", "16", "32", "64", "128", "256", "a64"]
QUICK_DEGREES = ["8", "64", "a16"]
# a GLIC halo graph with 16x16 maps has 64 of 256 candidates inside the map at the
# corners: degree 64 is capped per node there (density is computed from valid pairs)
MODES = ("forward", "forward+backward")
PATHS = ("pyg_glic", "benchmarks/aggregation", "benchmarks/_common.py")


def _measure(fn: Callable[[], object], device, args) -> Tuple[float, List[float], Optional[float], str]:
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - t0
    slow = first > args.max_seconds / 3
    med, ts, _ = time_call(fn, device, 0 if slow else args.warmup, 1 if slow else args.repeats)
    mem, how = (None, "skipped") if args.no_memory else peak_memory(fn, device)
    return med, ts, mem, how


def _call(fn: Callable[[], torch.Tensor], mode: str, grad_out: Dict[str, torch.Tensor],
          inputs: List[torch.Tensor]) -> Callable[[], object]:
    if mode == "forward":
        def run():
            with torch.no_grad():
                return fn()
        return run

    def run_fb():
        out = fn()
        g = grad_out.get("g")
        if g is None or g.shape != out.shape:
            g = grad_out["g"] = torch.randn_like(out)
        out.backward(g)
        for t in inputs:
            t.grad = None
        return None
    return run_fb


def bench_glic(args, device, results, skipped) -> None:
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    degrees = args.degrees or (QUICK_DEGREES if args.quick else FULL_DEGREES)
    C, heads = args.channels, 8
    torch.manual_seed(0)
    layer = GLICAttention(C, C, heads=heads).to(device)
    params = list(layer.parameters())
    for batch in args.batches:
        too_slow: Dict[Tuple[str, str, str], bool] = {}  # (form, mode, degree) -> stop growing
        for (H, W) in sizes:
            if batch > 1 and batch * H * W > args.batch_max_nodes:
                skipped.append(f"glic batch {batch} {H}x{W}: above --batch-max-nodes "
                               f"{args.batch_max_nodes}")
                continue
            gen = torch.Generator().manual_seed(0)
            fmap = torch.randn(batch, C, H, W, generator=gen).to(device)
            x = fmap.permute(0, 2, 3, 1).reshape(-1, C).contiguous().requires_grad_()
            n_nodes = batch * H * W
            size_degrees = degrees
            if not args.degrees and not args.quick:
                if n_nodes > args.mid_nodes:
                    size_degrees = args.large_degrees
                elif n_nodes > args.small_nodes:
                    size_degrees = args.mid_degrees
                if size_degrees is not degrees:
                    skipped.append(f"glic batch {batch} {H}x{W}: degrees {size_degrees} only "
                                   f"(CPU time cap; --degrees overrides)")
            for deg in size_degrees:
                adaptive = deg.startswith("a")
                k = int(deg.lstrip("a"))
                t0 = time.perf_counter()
                graph = halo_graph(fmap, k, window=8, halo=4, adaptive=adaptive)
                build_s = time.perf_counter() - t0
                uniq, oidx = compress_offsets(graph.edge_attr)
                t0 = time.perf_counter()
                slots = block_edge_slots(graph.blocks, graph.edge_index, graph.num_dst)
                slots_s = time.perf_counter() - t0
                assert slots is not None
                density, queries = policy.block_density(graph.num_edges, graph.blocks)
                common = dict(layer="glic_attention", batch=batch, height=H, width=W,
                              nodes=batch * H * W, degree=deg, adaptive=adaptive,
                              edges=graph.num_edges,
                              mean_degree=round(graph.num_edges / graph.num_dst, 2),
                              density=round(density, 5), channels=C, heads=heads,
                              graph_build_ms=round(build_s * 1e3, 2),
                              block_slots_ms=round(slots_s * 1e3, 2))

                def sparse_fn():
                    with policy.execution("sparse"):
                        return layer(x, graph.edge_index, uniq, ptr=graph.ptr,
                                     offset_index=oidx, blocks=graph.blocks)

                def dense_fn():
                    with policy.execution("dense"):
                        return layer(x, graph.edge_index, uniq, ptr=graph.ptr,
                                     offset_index=oidx, blocks=graph.blocks)

                def ref_fn():
                    return dense_glic_attention(layer, x, graph.blocks, graph.pos_src,
                                                graph.pos_dst)

                forms = [("sparse", sparse_fn), ("dense", dense_fn)]
                if (deg in args.ref_degrees and batch * H * W <= args.ref_max_nodes):
                    forms.append(("dense_ref", ref_fn))
                outs = {}
                for form, fn in forms:
                    for mode in args.modes:
                        key = (form, mode, deg)
                        if too_slow.get(key) or (form == "sparse" and any(
                                too_slow.get((form, mode, d)) for d in degrees
                                if d.isdigit() and deg.isdigit() and int(d) < int(deg))):
                            skipped.append(f"glic {form} {mode} batch {batch} {H}x{W} "
                                           f"degree {deg}: a smaller size or degree took "
                                           f"more than {args.max_seconds} s")
                            continue
                        if args.check and mode == "forward":
                            with torch.no_grad():
                                outs[form] = fn()
                        run = _call(fn, mode, {}, [x] + params)
                        med, ts, mem, how = _measure(run, device, args)
                        row = dict(common, form=form, mode=mode,
                                   time_ms_median=round(med * 1e3, 3),
                                   times_ms=[round(t * 1e3, 3) for t in ts],
                                   peak_mib=None if mem is None else round(mem, 2),
                                   memory_method=how)
                        results.append(row)
                        print(f"glic b{batch} {H:3d}x{W:<3d} deg {deg:>4s} {form:9s} "
                              f"{mode:16s} {med * 1e3:10.1f} ms "
                              f"{'-' if mem is None else f'{mem:8.1f}'} MiB", flush=True)
                        if max(ts) > args.max_seconds:
                            too_slow[key] = True
                if args.check and "sparse" in outs and "dense" in outs:
                    err = (outs["sparse"] - outs["dense"]).abs().max().item()
                    for r in results[-2 * len(forms) * len(args.modes):]:
                        if r.get("form") == "dense" and r["degree"] == deg:
                            r["max_abs_diff_vs_sparse"] = err
                del graph, slots, uniq, oidx


def bench_mrconv(args, device, results, skipped) -> None:
    sizes = [(16, 16)] if args.quick else [tuple(int(v) for v in s.split("x"))
                                           for s in args.mr_sizes]
    ks = [9] if args.quick else [9, 16, 32]
    dilations = [1, 2]
    C = args.channels
    torch.manual_seed(0)
    layer = MRConv(C, C).to(device)
    params = list(layer.parameters())
    for batch in args.batches:
        for (H, W) in sizes:
            N = H * W
            if batch > 1 and batch * N > args.batch_max_nodes:
                skipped.append(f"mrconv batch {batch} {H}x{W}: above --batch-max-nodes")
                continue
            gen = torch.Generator().manual_seed(0)
            fmap = torch.randn(batch, C, H, W, generator=gen).to(device)
            x = fmap.permute(0, 2, 3, 1).reshape(-1, C).contiguous().requires_grad_()
            xd = fmap.reshape(batch, C, N).clone().requires_grad_()
            for k in ks:
                for dil in dilations:
                    if k * dil > N:
                        continue
                    graph = knn_graph(fmap, k, dilation=dil)
                    knn_index = edge_index_to_knn_index(graph.edge_index, batch, N, k)
                    common = dict(layer="mr_conv", batch=batch, height=H, width=W,
                                  nodes=batch * N, k=k, dilation=dil, edges=graph.num_edges,
                                  channels=C)
                    forms = [("sparse", lambda: layer(x, graph.edge_index), [x]),
                             ("dense", lambda: dense_mr_conv(layer, xd, knn_index), [xd])]
                    for form, fn, inp in forms:
                        for mode in args.modes:
                            run = _call(fn, mode, {}, inp + params)
                            med, ts, mem, how = _measure(run, device, args)
                            results.append(dict(common, form=form, mode=mode,
                                                time_ms_median=round(med * 1e3, 3),
                                                times_ms=[round(t * 1e3, 3) for t in ts],
                                                peak_mib=None if mem is None else round(mem, 2),
                                                memory_method=how))
                            print(f"mrconv b{batch} {H:3d}x{W:<3d} k {k:2d} d {dil} {form:6s} "
                                  f"{mode:16s} {med * 1e3:10.1f} ms "
                                  f"{'-' if mem is None else f'{mem:8.1f}'} MiB", flush=True)


# -- policy fitting ----------------------------------------------------------------------
def _pairs(report) -> Dict[Tuple, Dict[str, dict]]:
    r"""(batch, H, W, degree, mode) -> form -> row, for the GLIC rows."""
    out: Dict[Tuple, Dict[str, dict]] = {}
    for r in report["results"]:
        if r["layer"] != "glic_attention":
            continue
        out.setdefault((r["batch"], r["height"], r["width"], r["degree"], r["mode"]),
                       {})[r["form"]] = r
    return out


def fit_policy(report) -> Dict[str, object]:
    r"""Fit the density threshold of :mod:`pyg_glic.nn.policy` per mode.

    For every mode, the threshold ``t`` (``dense`` when density >= t) is chosen among
    the measured densities (and 0 / above all) to minimise the summed log-slowdown of
    the chosen form against the faster one over all configurations with both forms
    measured. A configuration where only ``dense`` was measured (sparse too slow) counts
    as dense-wins. Returns thresholds, the regret and the per-configuration choices.
    """
    fitted: Dict[str, object] = {}
    pairs = _pairs(report)
    for mode in MODES:
        cfg = []
        for key, forms in pairs.items():
            if key[-1] != mode or "dense" not in forms:
                continue
            d = forms["dense"]
            td = d["time_ms_median"]
            ts = forms["sparse"]["time_ms_median"] if "sparse" in forms else math.inf
            cfg.append((d["density"], d["nodes"], td, ts))
        if not cfg:
            continue
        cands = sorted({0.0} | {c[0] for c in cfg} | {2.0})

        def regret(t):
            total = 0.0
            for dens, _, td, ts in cfg:
                chosen = td if dens >= t else ts
                total += math.log(chosen / min(td, ts)) if math.isfinite(chosen) else 50.0
            return total
        best = min(cands, key=lambda t: (regret(t), t))
        # place the threshold halfway between the measured densities around it
        below = [c for c in cands if c < best]
        thr = best if not below or best in (0.0, 2.0) else round((best + below[-1]) / 2, 4)
        fitted[mode] = {"dense_min_density": thr, "summed_log_regret": round(regret(best), 4),
                        "configurations": len(cfg),
                        "dense_faster_at": sorted({c[0] for c in cfg if c[2] < c[3]}),
                        "sparse_faster_at": sorted({c[0] for c in cfg if c[3] <= c[2]})}
    return fitted


def add_auto_rows(report, fitted) -> None:
    r"""The ``auto`` form: the policy's choice with the fitted thresholds, and its time
    (the time of the chosen form; the decision itself is timed separately as
    ``policy_overhead_ms``)."""
    rows = []
    for key, forms in _pairs(report).items():
        mode = key[-1]
        if "dense" not in forms or mode not in fitted:
            continue
        d = forms["dense"]
        choice = "dense" if d["density"] >= fitted[mode]["dense_min_density"] else "sparse"
        if choice not in forms:
            continue
        src = forms[choice]
        best = min((f for f in ("sparse", "dense") if f in forms),
                   key=lambda f: forms[f]["time_ms_median"])
        rows.append(dict({k: v for k, v in src.items() if k not in ("times_ms",)},
                         form="auto", chose=choice, best=best,
                         time_ms_median=src["time_ms_median"]))
    report["results"].extend(rows)


def policy_overhead_ms(device) -> float:
    g = halo_graph(torch.randn(1, 16, 128, 128, device=device), 64)
    block_edge_slots(g.blocks, g.edge_index, g.num_dst)
    med, _, _ = time_call(lambda: (policy.choose_attention_execution(
        g.num_edges, g.blocks, device), block_edge_slots(g.blocks, g.edge_index, g.num_dst)),
        device, 2, 20)
    return round(med * 1e3, 4)


# -- output ------------------------------------------------------------------------------
def _fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def to_markdown(report) -> str:
    meta = report["meta"]
    lines = [
        "# Aggregation: sparse layers against their dense references", "",
        f"- device: {meta['device']}" + (f" ({meta['gpu']})" if "gpu" in meta else ""),
        f"- machine: {meta['platform']}, {meta['cpu_count']} CPUs, torch threads "
        f"{meta['torch_threads']}, load average at start {meta.get('load_average_at_start')}",
        f"- torch {meta['torch']}, torch_geometric {meta.get('torch_geometric')}",
        f"- git commit: {meta['git_commit']}; date {meta['date']}; median of "
        f"{meta['repeats']} after {meta['warmup']} warm-up (one run when a call takes more "
        f"than a third of --max-seconds={meta['max_seconds']}); total {meta['total_seconds']} s",
        f"- peak memory: {meta['memory_method']}, above what existed before the call, "
        "output included; forward = under torch.no_grad (inference), forward+backward = "
        "autograd on, backward of a random cotangent",
        "- random weights and random features (N(0,1)); graphs from the features", "",
        "## GLIC attention (C=192, 8 heads, halo graph: 8x8 windows, 256 candidates)", "",
        "`sparse`: the layer's sparse core; `dense`: the layer's blocked-dense core "
        "(`execution=\"dense\"`); `dense_ref`: `pyg_glic.nn.dense.dense_glic_attention` "
        "(the published form, position MLP on every pair); `auto`: the fitted policy's "
        "choice (time of the chosen form). Ratios are sparse / dense (> 1: dense faster or "
        "smaller).", "",
        "| batch | nodes | degree | density | mode | sparse ms | dense ms | dense_ref ms | "
        "sparse/dense time | sparse MiB | dense MiB | sparse/dense memory | auto picks |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, forms in sorted(_pairs(report).items(),
                             key=lambda kv: (kv[0][0], kv[0][1] * kv[0][2], kv[0][4],
                                             FULL_DEGREES.index(kv[0][3])
                                             if kv[0][3] in FULL_DEGREES else 99)):
        b, H, W, deg, mode = key
        s, d, ref, a = (forms.get(f) for f in ("sparse", "dense", "dense_ref", "auto"))
        base = d or s
        tr = mr = None
        if s and d:
            tr = s["time_ms_median"] / d["time_ms_median"]
            if s["peak_mib"] and d["peak_mib"]:
                mr = s["peak_mib"] / d["peak_mib"]
        lines.append(
            f"| {b} | {H}x{W} | {deg} | {base['density']:.3f} | {mode} | "
            f"{_fmt(s and s['time_ms_median'])} | {_fmt(d and d['time_ms_median'])} | "
            f"{_fmt(ref and ref['time_ms_median'])} | {_fmt(tr, 2)} | "
            f"{_fmt(s and s['peak_mib'])} | {_fmt(d and d['peak_mib'])} | {_fmt(mr, 2)} | "
            f"{(a['chose'] + ('' if a['chose'] == a['best'] else ' (slower)')) if a else '-'} |")
    fitted = report.get("fitted_policy") or {}
    if fitted:
        lines += ["", "Fitted policy (dense when density >= threshold):", ""]
        for mode, f in fitted.items():
            lines.append(f"- {mode}: threshold {f['dense_min_density']} "
                         f"(summed log-regret {f['summed_log_regret']} over "
                         f"{f['configurations']} configurations)")
        lines.append(f"- policy decision overhead per call (density + cached slots): "
                     f"{report['meta'].get('policy_overhead_ms')} ms")
    mr_rows = [r for r in report["results"] if r["layer"] == "mr_conv"]
    if mr_rows:
        lines += ["", "## Max-relative conv (C=192 -> 192, ViG k-NN graph)", "",
                  "`sparse`: `MRConv` (PyG scatter-max); `dense`: `dense_mr_conv` (gather "
                  "into (B, C, N, k), the dense index built outside the timing).", "",
                  "| batch | nodes | k | dilation | mode | sparse ms | dense ms | "
                  "sparse/dense time | sparse MiB | dense MiB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        groups: Dict[Tuple, Dict[str, dict]] = {}
        for r in mr_rows:
            groups.setdefault((r["batch"], r["height"], r["width"], r["k"], r["dilation"],
                               r["mode"]), {})[r["form"]] = r
        for (b, H, W, k, dil, mode), f in sorted(groups.items()):
            s, d = f.get("sparse"), f.get("dense")
            tr = s["time_ms_median"] / d["time_ms_median"] if s and d else None
            lines.append(f"| {b} | {H}x{W} | {k} | {dil} | {mode} | "
                         f"{_fmt(s and s['time_ms_median'])} | {_fmt(d and d['time_ms_median'])}"
                         f" | {_fmt(tr, 2)} | {_fmt(s and s['peak_mib'])} | "
                         f"{_fmt(d and d['peak_mib'])} |")
    if report["skipped"]:
        lines += ["", "Skipped:", ""] + [f"- {s}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def plot(report, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    glic = [r for r in report["results"] if r["layer"] == "glic_attention"
            and r["batch"] == 1 and r["form"] in ("sparse", "dense") and r["degree"].isdigit()]
    sizes = sorted({(r["height"], r["width"]) for r in glic}, key=lambda s: s[0] * s[1])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ai, mode in enumerate(MODES):
        ax = axes[ai]
        for si, (H, W) in enumerate(sizes):
            for form, style in (("sparse", "-o"), ("dense", "--s")):
                rows = sorted([r for r in glic if r["mode"] == mode and r["form"] == form
                               and (r["height"], r["width"]) == (H, W)],
                              key=lambda r: int(r["degree"]))
                if rows:
                    ax.plot([int(r["degree"]) for r in rows],
                            [r["time_ms_median"] for r in rows], style,
                            color=colors[si % len(colors)], label=f"{form} {H}x{W}")
        ax.set_title(f"GLIC attention, batch 1, {mode}", fontsize=9)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("degree (of 256 candidates)")
        ax.set_ylabel("ms (median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    ax = axes[2]
    for si, (H, W) in enumerate(sizes):
        for form, style in (("sparse", "-o"), ("dense", "--s")):
            rows = sorted([r for r in glic if r["mode"] == "forward+backward"
                           and r["form"] == form and (r["height"], r["width"]) == (H, W)
                           and r["peak_mib"] is not None], key=lambda r: int(r["degree"]))
            if rows:
                ax.plot([int(r["degree"]) for r in rows], [r["peak_mib"] for r in rows],
                        style, color=colors[si % len(colors)], label=f"{form} {H}x{W}")
    ax.set_title("peak memory, forward+backward", fontsize=9)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("degree (of 256 candidates)")
    ax.set_ylabel("MiB")
    ax.grid(True, which="both", alpha=0.3)
    meta = report["meta"]
    fig.suptitle(f"aggregation: sparse vs blocked-dense, {meta['device']}, torch "
                 f"{meta['torch']}, {meta['torch_threads']} thread(s)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and C=32 (seconds)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    p.add_argument("--sizes", nargs="*", help="GLIC maps as HxW")
    p.add_argument("--degrees", nargs="*", help="GLIC degrees: 8 ... 256, a64 = adaptive mean 64")
    p.add_argument("--mr-sizes", nargs="*", default=["32x32", "64x64"])
    p.add_argument("--batches", nargs="*", type=int, default=None,
                   help="default 1 8 (quick: 1 2)")
    p.add_argument("--batch-max-nodes", type=int, default=8 * 64 * 64,
                   help="largest batch*H*W for batch > 1")
    p.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    p.add_argument("--layers", nargs="*", default=["glic", "mrconv"], choices=["glic", "mrconv"])
    p.add_argument("--channels", type=int, default=None, help="C (default 192; quick 32)")
    p.add_argument("--small-nodes", type=int, default=64 * 64,
                   help="above this many nodes (batch*H*W) only --mid-degrees run")
    p.add_argument("--mid-nodes", type=int, default=128 * 128,
                   help="above this many nodes only --large-degrees run")
    p.add_argument("--mid-degrees", nargs="*", default=["16", "64", "a64"])
    p.add_argument("--large-degrees", nargs="*", default=["16", "64"])
    p.add_argument("--ref-degrees", nargs="*", default=["64"],
                   help="degrees at which dense_ref (degree-independent) is measured")
    p.add_argument("--ref-max-nodes", type=int, default=64 * 64)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=None, help="timed runs (default 3; quick 1)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--max-seconds", type=float, default=10.0,
                   help="stop growing a series (degree, size) once a call takes longer")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--check", action="store_true", help="record max |sparse - dense| (forward)")
    p.add_argument("--tag", default=None)
    p.add_argument("--fit", metavar="JSON", help="only fit the policy on an existing result")
    args = p.parse_args(argv)
    if args.fit:
        with open(args.fit) as f:
            rep = json.load(f)
        fitted = fit_policy(rep)
        print(json.dumps(fitted, indent=1))
        return {"fitted_policy": fitted}
    if args.batches is None:
        args.batches = [1, 2] if args.quick else [1, 8]
    if args.quick:
        args.ref_degrees = ["64"]
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.channels is None:
        args.channels = 32 if args.quick else 192
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    results: List[dict] = []
    skipped: List[str] = []
    t_start = time.perf_counter()
    if "glic" in args.layers:
        bench_glic(args, device, results, skipped)
    if "mrconv" in args.layers:
        bench_mrconv(args, device, results, skipped)
    mem_method = next((r["memory_method"] for r in results), "-")
    report = {
        "benchmark": "aggregation",
        "meta": {**machine_info(device, PATHS), "quick": bool(args.quick),
                 "warmup": args.warmup, "repeats": args.repeats, "channels": args.channels,
                 "max_seconds": args.max_seconds, "memory_method": mem_method,
                 "total_seconds": round(time.perf_counter() - t_start, 1),
                 "policy_overhead_ms": policy_overhead_ms(device),
                 "argv": sys.argv[1:] if argv is None else list(argv)},
        "results": results,
        "skipped": skipped,
    }
    report["fitted_policy"] = fit_policy(report)
    add_auto_rows(report, report["fitted_policy"])
    os.makedirs(args.out, exist_ok=True)
    stem = "aggregation_" + device.type + ("_quick" if args.quick else "")
    if args.tag:
        stem += "_" + args.tag
    base = os.path.join(args.out, stem)
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(to_markdown(report))
    plot(report, base + ".png")
    report["files"] = [base + ext for ext in (".json", ".md", ".png")]
    print("fitted policy:", json.dumps(report["fitted_policy"]))
    print("wrote", ", ".join(report["files"]))
    return report


if __name__ == "__main__":
    main()
