r"""Aggregation benchmark: our sparse layers against their dense references on the same graphs.

Two layers, each on graphs built by :mod:`pyg_glic.graph` from random feature maps:

- **GLIC attention** (:class:`~pyg_glic.nn.conv.GLICAttention`, width 192, 8 heads) on
  three graph kinds (``--graphs``, every row has a ``graph`` field):

  - ``local``: GLIC's local graph (:func:`~pyg_glic.graph.halo_graph`: 8x8 windows,
    256 halo candidates per node), degree fixed at 8 ... 256 and adaptive with mean 64;
  - ``global``: GLIC's global graph (:func:`~pyg_glic.graph.global_graph`, bipartite:
    the 16x16 pooled nodes as sources, every node as target, dilated 8x8 query groups
    sharing the 256 pooled candidates), degree 16, 64 and adaptive mean 64; the layer
    runs on ``x = (pooled nodes, nodes)`` as ``GraphAttentionBlock(scope="global")``;
  - ``learned``: ViG-LRGC's learned graph (:class:`~pyg_glic.graph.LearnableGraph`,
    ``candidates="halo"``: the local graph's 256 candidates, edges where the
    key-query score passes the learned threshold), the threshold calibrated per map
    to a mean degree of 16 and 64 (labels ``~16``, ``~64``), ``edge_weight`` passed.

  Forms: ``sparse`` (the layer's sparse core), ``dense`` (the layer's blocked-dense
  core, :func:`pyg_glic.nn.functional.blocked_attention`), ``dense_ref`` (the published
  way, :func:`pyg_glic.nn.dense.dense_glic_attention`: position MLP on every
  query-candidate pair; degree-independent, measured at degree 64 only; not on the
  learned graph, which it cannot weight) and ``auto`` (what :mod:`pyg_glic.nn.policy`
  picks with the thresholds fitted on the local graph, derived from the measured forms).
- **max-relative conv** (:class:`~pyg_glic.nn.conv.MRConv`, 192 -> 192) on ViG's
  k-NN graph (:func:`~pyg_glic.graph.knn_graph`), k = 9, 16, 32, dilation 1 and 2:
  ``sparse`` (PyG message passing, scatter-max) against ``dense``
  (:func:`pyg_glic.nn.dense.dense_mr_conv`, ViG's gather into ``(B, C, N, k)``).

Modes: ``forward`` (under ``torch.no_grad``, inference) and ``forward+backward``
(autograd on, backward of a fixed random cotangent). Time: median of ``--repeats`` calls
after ``--warmup``; peak memory of one call (CUDA: ``max_memory_allocated``; CPU: torch
profiler memory events). A series stops growing (in degree and in size) once a call
takes longer than ``--max-seconds``. Writes ``aggregation_<device>.{json,md,png}`` and
``aggregation_<device>_graphs.png`` (global and learned graphs).

    python benchmarks/aggregation/bench.py                 # full run (CPU: ~15 min local)
    python benchmarks/aggregation/bench.py --graphs global learned --layers glic
    python benchmarks/aggregation/bench.py --quick --out /tmp/b   # seconds
    python benchmarks/aggregation/bench.py --device cuda
    python benchmarks/aggregation/bench.py --fit benchmarks/results/aggregation_cpu.json
"""
from __future__ import annotations

import argparse
import copy
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
from pyg_glic.graph import (LearnableGraph, global_graph, halo_graph, knn_graph,  # noqa: E402
                            pool_map)
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
GRAPHS = ("local", "global", "learned")
WINDOW, HALO = 8, 4             # local and learned graphs: 8x8 windows, 16x16 halo patch
GLOBAL_GRID, GLOBAL_GROUP = 16, 8  # global graph: 16x16 pooled sources, 8x8 query groups
GLOBAL_DEGREES = ["16", "64", "a64"]  # of the 256 pooled candidates (quick and full)
LEARNED_DEGREES = ["16", "64"]  # target mean degrees of the learned threshold (labels ~16, ~64)
LEARNED_T_LOW = -30.0           # raw threshold of the calibration build: tau = sigmoid(-30)
NONLOCAL_CPU_MAX_NODES = 128 * 128  # default cap of batch*H*W for global/learned on the CPU
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


def _deg_num(deg: str) -> Optional[int]:
    r"""The fixed degree of a label (``"64"``, learned ``"~64"``); ``None`` for adaptive."""
    d = deg.lstrip("~")
    return int(d) if d.isdigit() else None


def _learned_label(deg: str) -> str:
    return "~" + str(int(deg.lstrip("~")))


def _sorted_scores(lrgc, fmap) -> Tuple[torch.Tensor, int]:
    r"""Scores of all candidate pairs above a near-zero threshold of the learned graph of
    ``fmap``, in descending order, and its number of targets (for the calibration)."""
    lrgc.t.data.fill_(LEARNED_T_LOW)
    with torch.no_grad():
        g = lrgc(fmap)
    tau = float(torch.sigmoid(lrgc.t.detach()))
    # edge_weight = relu(s - tau): the scores themselves up to the (tiny) threshold
    vals = torch.sort((g.edge_weight.detach().double() + tau).cpu(), descending=True).values
    return vals, g.num_dst


def _learned_threshold(vals: torch.Tensor, num_dst: int, target: int) -> Tuple[float, bool]:
    r"""Raw threshold ``t`` of :class:`LearnableGraph` (``tau = sigmoid(t)``) keeping the
    ``target * num_dst`` highest scores; ``(t, reached)``, ``reached`` False when fewer
    pairs have a positive score (then the near-zero threshold is returned)."""
    n = target * num_dst
    if n >= vals.numel():
        return LEARNED_T_LOW, n == vals.numel()
    tau = float(vals[n - 1] + vals[n]) / 2
    if tau <= 0.0:
        return LEARNED_T_LOW, False
    return math.log(tau / (1.0 - tau)) if tau < 1.0 else 30.0, True


def _graph_degrees(kind: str, args) -> List[str]:
    if kind == "local":
        return args.degrees or (QUICK_DEGREES if args.quick else FULL_DEGREES)
    if kind == "global":
        return args.global_degrees or GLOBAL_DEGREES
    return [_learned_label(d) for d in (args.learned_degrees or LEARNED_DEGREES)]


def _build_glic_graph(kind: str, deg: str, fmap: torch.Tensor, x: torch.Tensor, lrgc,
                      calib) -> dict:
    r"""The graph of one configuration and how the layer is called on it.

    Returns ``graph``, ``x_in`` (the layer's input: nodes, or ``(x_src, x_dst)`` for the
    bipartite global graph), ``kw`` (extra layer arguments), ``inputs`` (tensors whose
    gradients the forward+backward mode computes), ``fields`` (extra row fields),
    ``ref`` (whether ``dense_glic_attention`` applies), ``build_s``.
    """
    C = fmap.size(1)
    out = dict(x_in=x, kw={}, inputs=[x], fields={}, ref=True)
    if kind == "local":
        adaptive = deg.startswith("a")
        t0 = time.perf_counter()
        graph = halo_graph(fmap, int(deg.lstrip("a")), window=WINDOW, halo=HALO,
                           adaptive=adaptive)
        out["build_s"] = time.perf_counter() - t0
        out["fields"] = dict(adaptive=adaptive)
    elif kind == "global":
        adaptive = deg.startswith("a")
        t0 = time.perf_counter()
        graph = global_graph(fmap, int(deg.lstrip("a")), grid=GLOBAL_GRID, group=GLOBAL_GROUP,
                             adaptive=adaptive)
        out["build_s"] = time.perf_counter() - t0
        # as GraphAttentionBlock(scope="global"): pooled map as the sources
        pooled = pool_map(fmap, GLOBAL_GRID)
        x_src = pooled.permute(0, 2, 3, 1).reshape(-1, C).contiguous().requires_grad_()
        assert x_src.size(0) == graph.num_src
        out.update(x_in=(x_src, x), inputs=[x_src, x])
        out["fields"] = dict(adaptive=adaptive, grid=GLOBAL_GRID, group=GLOBAL_GROUP,
                             num_src=graph.num_src)
    else:
        target = int(deg.lstrip("~"))
        vals, num_dst = calib
        t, reached = _learned_threshold(vals, num_dst, target)
        lrgc.t.data.fill_(t)
        t0 = time.perf_counter()
        with torch.no_grad():
            graph = lrgc(fmap)
        out["build_s"] = time.perf_counter() - t0
        # detached from the graph module (its projections are not timed), a leaf that
        # requires grad: forward+backward includes the gradient of the edge weights
        ew = graph.edge_weight.detach().clone().requires_grad_()
        deg_per_node = graph.degree
        out.update(kw=dict(edge_weight=ew), inputs=[x, ew], ref=False)
        out["fields"] = dict(adaptive=None, target_degree=target, target_reached=reached,
                             threshold=round(float(lrgc.threshold.detach()), 6),
                             threshold_param=round(float(lrgc.t.detach()), 6),
                             max_node_degree=int(deg_per_node.max()) if graph.num_dst else 0,
                             nodes_without_edges=int((deg_per_node == 0).sum()),
                             lrgc_form=lrgc.form)
    out["graph"] = graph
    return out


def bench_glic(args, device, results, skipped) -> None:
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    C, heads = args.channels, 8
    torch.manual_seed(0)
    layer = GLICAttention(C, C, heads=heads).to(device)
    params = list(layer.parameters())
    lrgc = None
    if "learned" in args.graphs:
        torch.manual_seed(1)
        lrgc = LearnableGraph(C, candidates="halo", window=WINDOW, halo=HALO).to(device)
    for kind in args.graphs:
        _bench_glic_graph(kind, layer, params, lrgc, sizes, args, device, results, skipped)


def _index_cache_mib(form, graph, slots, x_in) -> Optional[float]:
    # what each form caches per graph, built on the first call and not in the timed
    # calls' peak memory: the CSR core's index structure (CPU sparse) or the
    # blocked-dense form's edge slots and mask
    if form == "dense":
        return round(sum(t.numel() * t.element_size() for t in slots) / 2 ** 20, 3)
    if form == "sparse" and graph.ptr is not None and graph.ptr.device.type == "cpu":
        from pyg_glic.nn.kernels import csr_attention
        num_src = (x_in[0] if isinstance(x_in, tuple) else x_in).size(0)
        pat = csr_attention._pattern(graph.ptr, graph.edge_index[0], graph.num_dst, num_src)
        return round(pat.nbytes() / 2 ** 20, 3)
    return None


def _bench_glic_graph(kind, layer, params, lrgc, sizes, args, device, results,
                      skipped) -> None:
    degrees = _graph_degrees(kind, args)
    explicit = bool(args.degrees if kind == "local" else
                    args.global_degrees if kind == "global" else args.learned_degrees)
    C, heads = layer.out_channels, layer.heads
    name = "glic" if kind == "local" else f"glic {kind}"
    for batch in args.batches:
        too_slow: Dict[Tuple[str, str, str], bool] = {}  # (form, mode, degree) -> stop growing
        for (H, W) in sizes:
            n_nodes = batch * H * W
            if batch > 1 and n_nodes > args.batch_max_nodes:
                skipped.append(f"{name} batch {batch} {H}x{W}: above --batch-max-nodes "
                               f"{args.batch_max_nodes}")
                continue
            if kind != "local" and args.nonlocal_max_nodes and \
                    n_nodes > args.nonlocal_max_nodes:
                skipped.append(f"{name} batch {batch} {H}x{W}: above --nonlocal-max-nodes "
                               f"{args.nonlocal_max_nodes} (CPU time cap)")
                continue
            gen = torch.Generator().manual_seed(0)
            fmap = torch.randn(batch, C, H, W, generator=gen).to(device)
            x = fmap.permute(0, 2, 3, 1).reshape(-1, C).contiguous().requires_grad_()
            size_degrees = degrees
            if not explicit and not args.quick and kind != "learned":
                if n_nodes > args.mid_nodes:
                    size_degrees = (args.large_degrees if kind == "local" else
                                    [d for d in degrees if d in args.large_degrees])
                elif n_nodes > args.small_nodes and kind == "local":
                    size_degrees = args.mid_degrees
                if size_degrees != degrees:
                    flag = "--degrees" if kind == "local" else "--global-degrees"
                    skipped.append(f"{name} batch {batch} {H}x{W}: degrees {size_degrees} "
                                   f"only (CPU time cap; {flag} overrides)")
            calib = _sorted_scores(lrgc, fmap) if kind == "learned" else None
            for deg in size_degrees:
                built = _build_glic_graph(kind, deg, fmap, x, lrgc, calib)
                graph, x_in = built["graph"], built["x_in"]
                kw, inputs = built["kw"], built["inputs"]
                if kind == "learned" and not built["fields"]["target_reached"]:
                    skipped.append(f"{name} batch {batch} {H}x{W} degree {deg}: mean degree "
                                   f"{graph.num_edges / max(graph.num_dst, 1):.1f} at most "
                                   f"(only the positive scores pass the relu threshold)")
                uniq, oidx = compress_offsets(graph.edge_attr)
                t0 = time.perf_counter()
                slots = block_edge_slots(graph.blocks, graph.edge_index, graph.num_dst)
                slots_s = time.perf_counter() - t0
                assert slots is not None
                density, queries = policy.block_density(graph.num_edges, graph.blocks)
                common = dict(layer="glic_attention", graph=kind, batch=batch, height=H,
                              width=W, nodes=n_nodes, degree=deg,
                              edges=graph.num_edges,
                              mean_degree=round(graph.num_edges / max(graph.num_dst, 1), 2),
                              density=round(density, 5), channels=C, heads=heads,
                              graph_build_ms=round(built["build_s"] * 1e3, 2),
                              block_slots_ms=round(slots_s * 1e3, 2))
                common.update(built["fields"])

                def run_layer(execution):
                    def fn():
                        with policy.execution(execution):
                            return layer(x_in, graph.edge_index, uniq, offset_index=oidx,
                                         blocks=graph.blocks, **kw)
                    return fn

                def ref_fn():
                    return dense_glic_attention(layer, x_in, graph.blocks, graph.pos_src,
                                                graph.pos_dst)

                forms = [("sparse", run_layer("sparse")), ("dense", run_layer("dense"))]
                if (built["ref"] and deg in args.ref_degrees
                        and n_nodes <= args.ref_max_nodes):
                    forms.append(("dense_ref", ref_fn))
                outs = {}
                rows = []
                for form, fn in forms:
                    for mode in args.modes:
                        key = (form, mode, deg)
                        dn = _deg_num(deg)
                        if too_slow.get(key) or (form == "sparse" and dn is not None and any(
                                too_slow.get((form, mode, d)) for d in degrees
                                if _deg_num(d) is not None and _deg_num(d) < dn)):
                            skipped.append(f"{name} {form} {mode} batch {batch} {H}x{W} "
                                           f"degree {deg}: a smaller size or degree took "
                                           f"more than {args.max_seconds} s")
                            continue
                        if args.check and mode == "forward":
                            with torch.no_grad():
                                outs[form] = fn()
                        run = _call(fn, mode, {}, inputs + params)
                        med, ts, mem, how = _measure(run, device, args)
                        row = dict(common, form=form, mode=mode,
                                   time_ms_median=round(med * 1e3, 3),
                                   times_ms=[round(t * 1e3, 3) for t in ts],
                                   peak_mib=None if mem is None else round(mem, 2),
                                   memory_method=how,
                                   index_cache_mib=_index_cache_mib(form, graph, slots,
                                                                    x_in))
                        results.append(row)
                        rows.append(row)
                        print(f"{name:12s} b{batch} {H:3d}x{W:<3d} deg {deg:>4s} "
                              f"(mean {common['mean_degree']:6.1f}) {form:9s} "
                              f"{mode:16s} {med * 1e3:10.1f} ms "
                              f"{'-' if mem is None else f'{mem:8.1f}'} MiB", flush=True)
                        if max(ts) > args.max_seconds:
                            too_slow[key] = True
                if args.check and "sparse" in outs:
                    for form in ("dense", "dense_ref"):
                        if form not in outs:
                            continue
                        err = (outs["sparse"] - outs[form]).abs().max().item()
                        for r in rows:
                            if r["form"] == form:
                                r["max_abs_diff_vs_sparse"] = err
                del graph, slots, uniq, oidx, built, x_in, kw, inputs, outs


def bench_mrconv(args, device, results, skipped) -> None:
    sizes = [(16, 16)] if args.quick else [tuple(int(v) for v in s.split("x"))
                                           for s in args.mr_sizes]
    ks = [9] if args.quick else [9, 16, 32]
    dilations = [1, 2]
    C = args.channels
    torch.manual_seed(0)
    layer = MRConv(C, C).to(device)
    unfused = copy.copy(layer)  # the same parameters; PyG's message passing, not the CSR max
    unfused.fuse = False
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
                    # sparse: the layer as Grapher calls it (the CSR max on the graph's
                    # EdgeIndex); propagate: PyG message passing (E x C messages), the
                    # same weights with fuse off
                    forms = [("sparse", lambda: layer(x, graph.edge_index), [x]),
                             ("propagate", lambda: unfused(x, graph.edge_index), [x]),
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
                            print(f"mrconv b{batch} {H:3d}x{W:<3d} k {k:2d} d {dil} {form:9s} "
                                  f"{mode:16s} {med * 1e3:10.1f} ms "
                                  f"{'-' if mem is None else f'{mem:8.1f}'} MiB", flush=True)


# -- policy fitting ----------------------------------------------------------------------
def _graph_of(row) -> str:
    r"""The graph kind of a GLIC row (rows written before ``graph`` existed: local)."""
    return row.get("graph", "local")


def _graph_kinds(report) -> List[str]:
    kinds = {_graph_of(r) for r in report["results"] if r["layer"] == "glic_attention"}
    return [g for g in GRAPHS if g in kinds] + sorted(kinds - set(GRAPHS))


def _pairs(report, graph: str = "local") -> Dict[Tuple, Dict[str, dict]]:
    r"""(batch, H, W, degree, mode) -> form -> row, for the GLIC rows of one graph kind."""
    out: Dict[Tuple, Dict[str, dict]] = {}
    for r in report["results"]:
        if r["layer"] != "glic_attention" or _graph_of(r) != graph:
            continue
        out.setdefault((r["batch"], r["height"], r["width"], r["degree"], r["mode"]),
                       {})[r["form"]] = r
    return out


def _configs(report, mode: str, graph: str) -> List[Tuple[float, int, float, float]]:
    r"""``(density, nodes, dense ms, sparse ms)`` of every configuration of ``mode`` on
    ``graph`` with ``dense`` measured (sparse ``inf`` when it was not: too slow)."""
    cfg = []
    for key, forms in _pairs(report, graph).items():
        if key[-1] != mode or "dense" not in forms:
            continue
        d = forms["dense"]
        td = d["time_ms_median"]
        ts = forms["sparse"]["time_ms_median"] if "sparse" in forms else math.inf
        cfg.append((d["density"], d["nodes"], td, ts))
    return cfg


def _regret(cfg, t: float) -> float:
    total = 0.0
    for dens, _, td, ts in cfg:
        chosen = td if dens >= t else ts
        total += math.log(chosen / min(td, ts)) if math.isfinite(chosen) else 50.0
    return total


def fit_policy(report, graph: str = "local") -> Dict[str, object]:
    r"""Fit the density threshold of :mod:`pyg_glic.nn.policy` per mode.

    For every mode, the threshold ``t`` (``dense`` when density >= t) is chosen among
    the measured densities (and 0 / above all) to minimise the summed log-slowdown of
    the chosen form against the faster one over all configurations with both forms
    measured. A configuration where only ``dense`` was measured (sparse too slow) counts
    as dense-wins. Only the rows of ``graph`` are used (default: the local graph, on
    which the policy's thresholds are fitted; rows without a ``graph`` field are local).
    Returns thresholds, the regret and the per-configuration choices.
    """
    fitted: Dict[str, object] = {}
    for mode in MODES:
        cfg = _configs(report, mode, graph)
        if not cfg:
            continue
        cands = sorted({0.0} | {c[0] for c in cfg} | {2.0})
        best = min(cands, key=lambda t: (_regret(cfg, t), t))
        # place the threshold halfway between the measured densities around it
        below = [c for c in cands if c < best]
        thr = best if not below or best in (0.0, 2.0) else round((best + below[-1]) / 2, 4)
        fitted[mode] = {"dense_min_density": thr,
                        "summed_log_regret": round(_regret(cfg, best), 4),
                        "configurations": len(cfg),
                        "dense_faster_at": sorted({c[0] for c in cfg if c[2] < c[3]}),
                        "sparse_faster_at": sorted({c[0] for c in cfg if c[3] <= c[2]})}
    return fitted


def policy_check(report, fitted) -> Dict[str, Dict[str, object]]:
    r"""How the thresholds fitted on the local graph do on the other graph kinds: per
    graph and mode, the summed log-regret of the local thresholds over its
    configurations, how many of them they get wrong, and the threshold (and regret) a
    fit on that graph alone would give. Informational: the policy is fitted on local
    rows only."""
    out: Dict[str, Dict[str, object]] = {}
    for graph in _graph_kinds(report):
        if graph == "local":
            continue
        own = fit_policy(report, graph)
        for mode, f in fitted.items():
            cfg = _configs(report, mode, graph)
            if not cfg:
                continue
            thr = f["dense_min_density"]
            wrong = sum(1 for dens, _, td, ts in cfg
                        if (td if dens >= thr else ts) > min(td, ts))
            out.setdefault(graph, {})[mode] = {
                "local_threshold": thr,
                "summed_log_regret_local_threshold": round(_regret(cfg, thr), 4),
                "slower_choices": wrong, "configurations": len(cfg),
                "own_fit_dense_min_density": own[mode]["dense_min_density"],
                "own_fit_summed_log_regret": own[mode]["summed_log_regret"]}
    return out


def add_auto_rows(report, fitted) -> None:
    r"""The ``auto`` form: the policy's choice with the fitted thresholds, and its time
    (the time of the chosen form; the decision itself is timed separately as
    ``policy_overhead_ms``). Added for every graph kind, with the thresholds fitted on
    the local graph (what the layer's ``execution="auto"`` would do on any graph)."""
    rows = []
    for graph in _graph_kinds(report):
        for key, forms in _pairs(report, graph).items():
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


GRAPH_TITLES = {
    "local": "local graph (`halo_graph`: 8x8 windows, 16x16 halo patch, 256 candidates)",
    "global": "global graph (`global_graph`, bipartite: 16x16 pooled sources -> every node, "
              "dilated 8x8 query groups, 256 candidates)",
    "learned": "learned graph (`LearnableGraph(candidates=\"halo\")`: 8x8 windows, 256 halo "
               "candidates, edges where score > learned threshold, `edge_weight` passed)",
}
GRAPH_NOTES = {
    "local": "",
    "global": "The layer runs bipartite, `x = (pooled nodes, nodes)` as in "
              "`GraphAttentionBlock(scope=\"global\")`; degree of the 256 pooled candidates, "
              "`a64`: adaptive with mean 64. ",
    "learned": "Degree `~16` / `~64`: the learned threshold is set (per map, from the "
               "graph's own scores) so that the mean degree is 16 / 64; per-node degrees "
               "vary (`mean degree` is measured). The edge weights are detached from the "
               "graph module (not timed) and passed as a leaf requiring grad. No "
               "`dense_ref`: `dense_glic_attention` takes no edge weights. ",
}


def _degree_order(deg: str) -> Tuple[int, int]:
    if deg in FULL_DEGREES:
        return 0, FULL_DEGREES.index(deg)
    num = "".join(ch for ch in deg if ch.isdigit())
    return 1, int(num) if num else 0


def _glic_table(report, graph: str) -> List[str]:
    C = report["meta"].get("channels") or 192
    lines = [
        f"## GLIC attention, {GRAPH_TITLES.get(graph, graph + ' graph')} (C={C}, 8 heads)", "",
        GRAPH_NOTES.get(graph, "") +
        "`sparse`: the layer's sparse core; `dense`: the layer's blocked-dense core "
        "(`execution=\"dense\"`); `dense_ref`: `pyg_glic.nn.dense.dense_glic_attention` "
        "(the published form, position MLP on every pair); `auto`: the fitted policy's "
        "choice (time of the chosen form). Ratios are sparse / dense (> 1: dense faster or "
        "smaller).", "",
        "| batch | nodes | degree | mean degree | density | mode | sparse ms | dense ms | "
        "dense_ref ms | sparse/dense time | sparse/dense_ref time | sparse MiB | dense MiB | "
        "dense_ref MiB | sparse/dense memory | sparse/dense_ref memory | "
        "cached index MiB (sparse / dense) | auto picks |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, forms in sorted(_pairs(report, graph).items(),
                             key=lambda kv: (kv[0][0], kv[0][1] * kv[0][2], kv[0][4],
                                             _degree_order(kv[0][3]))):
        b, H, W, deg, mode = key
        s, d, ref, a = (forms.get(f) for f in ("sparse", "dense", "dense_ref", "auto"))
        base = d or s or ref
        tr = mr = trr = mrr = None
        if s and d:
            tr = s["time_ms_median"] / d["time_ms_median"]
            if s["peak_mib"] and d["peak_mib"]:
                mr = s["peak_mib"] / d["peak_mib"]
        if s and ref:
            trr = s["time_ms_median"] / ref["time_ms_median"]
            if s["peak_mib"] and ref["peak_mib"]:
                mrr = s["peak_mib"] / ref["peak_mib"]
        cache = (f"{_fmt(s and s.get('index_cache_mib'))} / "
                 f"{_fmt(d and d.get('index_cache_mib'))}")
        lines.append(
            f"| {b} | {H}x{W} | {deg} | {_fmt(base.get('mean_degree'))} | "
            f"{base['density']:.3f} | {mode} | "
            f"{_fmt(s and s['time_ms_median'])} | {_fmt(d and d['time_ms_median'])} | "
            f"{_fmt(ref and ref['time_ms_median'])} | {_fmt(tr, 2)} | {_fmt(trr, 2)} | "
            f"{_fmt(s and s['peak_mib'])} | {_fmt(d and d['peak_mib'])} | "
            f"{_fmt(ref and ref['peak_mib'])} | {_fmt(mr, 2)} | {_fmt(mrr, 2)} | {cache} | "
            f"{(a['chose'] + ('' if a['chose'] == a['best'] else ' (slower)')) if a else '-'} |")
    if graph == "local":
        fitted = report.get("fitted_policy") or {}
        if fitted:
            lines += ["", "Fitted policy (dense when density >= threshold; fitted on the "
                      "local graph only):", ""]
            for mode, f in fitted.items():
                lines.append(f"- {mode}: threshold {f['dense_min_density']} "
                             f"(summed log-regret {f['summed_log_regret']} over "
                             f"{f['configurations']} configurations)")
            lines.append(f"- policy decision overhead per call (density + cached slots): "
                         f"{report['meta'].get('policy_overhead_ms')} ms")
    else:
        check = (report.get("policy_check") or {}).get(graph) or {}
        if check:
            lines += ["", "The local graph's fitted thresholds on this graph (`auto picks`):",
                      ""]
            for mode, c in check.items():
                lines.append(
                    f"- {mode}: threshold {c['local_threshold']} picks the slower form in "
                    f"{c['slower_choices']} of {c['configurations']} configurations (summed "
                    f"log-regret {c['summed_log_regret_local_threshold']}); a fit on this "
                    f"graph alone would give {c['own_fit_dense_min_density']} (regret "
                    f"{c['own_fit_summed_log_regret']})")
    return lines


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
    ]
    for i, graph in enumerate(_graph_kinds(report)):
        lines += ([""] if i else []) + _glic_table(report, graph)
    mr_rows = [r for r in report["results"] if r["layer"] == "mr_conv"]
    if mr_rows:
        lines += ["", "## Max-relative conv (C=192 -> 192, ViG k-NN graph)", "",
                  "`sparse`: `MRConv` as `Grapher` calls it, with the graph's CSR pointer "
                  "(`pyg_glic.nn.functional.csr_max`: max_j x_j - x_i, chunked gathers, "
                  "nothing per edge kept for backward); `propagate`: `MRConv` without the "
                  "pointer (PyG message passing, scatter-max over E x C messages); "
                  "`dense`: `dense_mr_conv` (gather into (B, C, N, k), the dense index "
                  "built outside the timing).", "",
                  "| batch | nodes | k | dilation | mode | sparse ms | propagate ms | dense ms | "
                  "sparse/dense time | sparse MiB | propagate MiB | dense MiB | "
                  "sparse/dense memory |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        groups: Dict[Tuple, Dict[str, dict]] = {}
        for r in mr_rows:
            groups.setdefault((r["batch"], r["height"], r["width"], r["k"], r["dilation"],
                               r["mode"]), {})[r["form"]] = r
        for (b, H, W, k, dil, mode), f in sorted(groups.items()):
            s, p, d = f.get("sparse"), f.get("propagate"), f.get("dense")
            tr = s["time_ms_median"] / d["time_ms_median"] if s and d else None
            mr = (s["peak_mib"] / d["peak_mib"] if s and d and s.get("peak_mib") is not None
                  and d.get("peak_mib") else None)
            lines.append(f"| {b} | {H}x{W} | {k} | {dil} | {mode} | "
                         f"{_fmt(s and s['time_ms_median'])} | "
                         f"{_fmt(p and p['time_ms_median'])} | "
                         f"{_fmt(d and d['time_ms_median'])} | {_fmt(tr, 2)} | "
                         f"{_fmt(s and s['peak_mib'])} | {_fmt(p and p['peak_mib'])} | "
                         f"{_fmt(d and d['peak_mib'])} | {_fmt(mr, 2)} |")
    if report["skipped"]:
        lines += ["", "Skipped:", ""] + [f"- {s}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def plot(report, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    glic = [r for r in report["results"] if r["layer"] == "glic_attention"
            and _graph_of(r) == "local" and r["batch"] == 1
            and r["form"] in ("sparse", "dense") and r["degree"].isdigit()]
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
        ax.set_title(f"GLIC attention, local graph, batch 1, {mode}", fontsize=9)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("degree (of 256 candidates)")
        ax.set_ylabel("ms (median)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
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
    ax.set_title("local graph, peak memory, forward+backward", fontsize=9)
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


def plot_graphs(report, path: str) -> bool:
    r"""Global and learned graphs (batch 1): time against mean degree per map size, both
    modes, and the forward+backward peak memory; one row of panels per graph kind.
    Returns False (nothing written) when there are no such rows."""
    kinds = [g for g in _graph_kinds(report) if g != "local"]
    rows_all = [r for r in report["results"] if r["layer"] == "glic_attention"
                and _graph_of(r) in kinds and r["batch"] == 1
                and r["form"] in ("sparse", "dense") and not r["degree"].startswith("a")]
    kinds = [g for g in kinds if any(_graph_of(r) == g for r in rows_all)]
    if not kinds:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(kinds), 3, figsize=(16, 4.4 * len(kinds)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for gi, graph in enumerate(kinds):
        glic = [r for r in rows_all if _graph_of(r) == graph]
        sizes = sorted({(r["height"], r["width"]) for r in glic}, key=lambda s: s[0] * s[1])
        panels = [(m, "time_ms_median", f"{graph} graph, batch 1, {m}", "ms (median)")
                  for m in MODES]
        panels.append(("forward+backward", "peak_mib",
                       f"{graph} graph, peak memory, forward+backward", "MiB"))
        for ai, (mode, field, title, ylabel) in enumerate(panels):
            ax = axes[gi][ai]
            for si, (H, W) in enumerate(sizes):
                for form, style in (("sparse", "-o"), ("dense", "--s")):
                    rows = sorted([r for r in glic if r["mode"] == mode and r["form"] == form
                                   and (r["height"], r["width"]) == (H, W)
                                   and r.get(field) is not None],
                                  key=lambda r: r["mean_degree"])
                    if rows:
                        ax.plot([r["mean_degree"] for r in rows], [r[field] for r in rows],
                                style, color=colors[si % len(colors)], label=f"{form} {H}x{W}")
            ax.set_title(title, fontsize=9)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("mean degree (of 256 candidates)")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            if ai == 0 and ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
    meta = report["meta"]
    fig.suptitle(f"aggregation, global and learned graphs: sparse vs blocked-dense, "
                 f"{meta['device']}, torch {meta['torch']}, {meta['torch_threads']} thread(s)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and C=32 (seconds)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    p.add_argument("--sizes", nargs="*", help="GLIC maps as HxW (every graph kind; global "
                   "and learned capped by --nonlocal-max-nodes)")
    p.add_argument("--degrees", nargs="*",
                   help="local-graph GLIC degrees: 8 ... 256, a64 = adaptive mean 64")
    p.add_argument("--graphs", nargs="*", default=list(GRAPHS), choices=list(GRAPHS),
                   help="GLIC graph kinds (default all): local = halo_graph, global = "
                        "global_graph (bipartite, 16x16 pooled sources), learned = "
                        "LearnableGraph(candidates='halo') with edge_weight")
    p.add_argument("--global-degrees", nargs="*",
                   help="global-graph degrees of the 256 pooled candidates (default 16 64 a64)")
    p.add_argument("--learned-degrees", nargs="*",
                   help="target mean degrees of the learned graph, its threshold calibrated "
                        "per map (default 16 64; rows labelled ~16, ~64)")
    p.add_argument("--nonlocal-max-nodes", type=int, default=None,
                   help="largest batch*H*W for the global and learned graphs (default "
                        f"{NONLOCAL_CPU_MAX_NODES} = 128x128 on the CPU, no cap on other "
                        "devices; 0: no cap)")
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
                   help="degrees at which dense_ref (degree-independent) is measured "
                        "(local and global graphs)")
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
        check = policy_check(rep, fitted)
        if check:  # informational, not part of the fitted policy
            print("local thresholds on the other graphs:", json.dumps(check), file=sys.stderr)
        return {"fitted_policy": fitted}
    if args.batches is None:
        args.batches = [1, 2] if args.quick else [1, 8]
    if args.quick:
        args.ref_degrees = ["64"]
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.channels is None:
        args.channels = 32 if args.quick else 192
    for d in args.learned_degrees or []:
        if not d.lstrip("~").isdigit() or int(d.lstrip("~")) < 1:
            p.error(f"--learned-degrees takes target mean degrees (16, 64), got {d!r}")
    if args.nonlocal_max_nodes is None:
        args.nonlocal_max_nodes = (NONLOCAL_CPU_MAX_NODES
                                   if torch.device(args.device).type == "cpu" else 0)
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
                 "graphs": list(args.graphs) if "glic" in args.layers else [],
                 "nonlocal_max_nodes": args.nonlocal_max_nodes,
                 "argv": sys.argv[1:] if argv is None else list(argv)},
        "results": results,
        "skipped": skipped,
    }
    report["fitted_policy"] = fit_policy(report)
    report["policy_check"] = policy_check(report, report["fitted_policy"])
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
    if plot_graphs(report, base + "_graphs.png"):
        report["files"].append(base + "_graphs.png")
    print("fitted policy:", json.dumps(report["fitted_policy"]))
    print("wrote", ", ".join(report["files"]))
    return report


if __name__ == "__main__":
    main()
