r"""Training-step benchmark: what one optimizer step of a codec costs, and where it goes.

One step is what ``pyg-glic train`` does per batch: forward of the model on a batch of
random crops, the rate-distortion loss (plus the wavelet branch's orthogonality
penalty), backward, gradient clipping, the Adam step, the auxiliary loss and its Adam
step. Each *variant* changes one execution setting, never the model or the result:

- ``fp32``: the default;
- ``channels_last``: model and batch in ``torch.channels_last`` memory format;
- ``bf16``: the transforms under CPU bf16 autocast (entropy models kept fp32, as the
  trainer does);
- ``threads1``: one intra-op thread instead of all cores;
- ``foreach_adam``: Adam's multi-tensor (``foreach``) implementation;
- ``trainer``: what ``pyg-glic train`` does on the CPU (channels-last, default Adam).

Time: median of ``--repeats`` steps after ``--warmup``. With ``--profile`` the first
variant is also profiled (torch profiler, self CPU time grouped by operator) over
``--profile-steps`` steps. Writes ``training_<device>.{json,md}``.

    python benchmarks/training/bench.py                           # glic-lite, 8 x 128x128
    python benchmarks/training/bench.py --quick --out /tmp/t      # seconds: glic-tiny
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Dict, List

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._common import machine_info, time_call  # noqa: E402

PATHS = ("pyg_glic", "benchmarks/training", "benchmarks/_common.py")
VARIANTS = ("fp32", "channels_last", "bf16", "threads1", "foreach_adam", "trainer")


def make_step(config: str, batch: int, crop: int, variant: str, seed: int = 0):
    r"""A closure running one training step of ``config`` under ``variant``."""
    from pyg_glic.training.loss import RDLoss, keep_entropy_models_fp32
    from pyg_glic.training.models import build_model, split_parameters
    from pyg_glic.zoo import QUALITY_LAMBDAS

    torch.manual_seed(seed)
    model = build_model(config, 3).train()
    x = torch.rand(batch, 3, crop, crop, generator=torch.Generator().manual_seed(seed))
    if variant in ("channels_last", "trainer"):
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = contextlib.nullcontext
    if variant == "bf16":
        keep_entropy_models_fp32(model, "cpu")

        def autocast():
            return torch.autocast("cpu", dtype=torch.bfloat16)
    main, aux = split_parameters(model)
    fused = {"foreach": True} if variant == "foreach_adam" else {}
    opt = torch.optim.Adam(main, lr=1e-5, **fused)
    aux_opt = torch.optim.Adam(aux, lr=1e-5, **fused)
    levels = getattr(model, "levels", None)
    kw = {"quality": 3} if levels else {}
    crit = RDLoss(QUALITY_LAMBDAS[3])
    ortho = hasattr(model, "ortho_loss")

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = model(x, **kw)
        loss = crit(out, x)["loss"]
        if ortho:
            loss = loss + 0.1 * model.ortho_loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        opt.step()
        aux_opt.zero_grad(set_to_none=True)
        a = model.aux_loss()
        a.backward()
        aux_opt.step()
        return float(loss.detach())

    return step, sum(p.numel() for p in model.parameters())


def profile_breakdown(step, steps: int, top: int = 25) -> List[Dict]:
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = []
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        rows.append({"op": e.key, "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
                     "share": e.self_cpu_time_total / total if total else 0.0,
                     "calls_per_step": e.count / steps})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="glic-lite")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-steps", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="glic-tiny, 2 x 64x64, 1 repeat")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = ap.parse_args(argv)
    if args.quick:
        args.config, args.batch, args.crop, args.repeats, args.warmup = "glic-tiny", 2, 64, 1, 1
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        print(f"error: unknown variants {bad}; expected some of {list(VARIANTS)}",
              file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    device = torch.device("cpu")
    threads = torch.get_num_threads()
    info = machine_info(device, PATHS)
    rows, profile = [], None
    for v in variants:
        torch.set_num_threads(1 if v == "threads1" else threads)
        step, params = make_step(args.config, args.batch, args.crop, v)
        med, ts, _ = time_call(step, device, args.warmup, args.repeats)
        rows.append({"variant": v, "threads": torch.get_num_threads(), "median_s": med,
                     "times_s": ts, "parameters": params})
        print(f"{v:14s} {med:.3f} s/step  ({', '.join(f'{t:.2f}' for t in ts)})", flush=True)
        if args.profile and profile is None:
            profile = profile_breakdown(step, args.profile_steps)
        del step
    torch.set_num_threads(threads)
    result = {"machine": info, "config": args.config, "batch": args.batch, "crop": args.crop,
              "warmup": args.warmup, "repeats": args.repeats, "rows": rows,
              "profile_of": variants[0] if profile else None, "profile": profile}
    name = "training_cpu" + ("_quick" if args.quick else "")
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(result, f, indent=2)
    base = rows[0]["median_s"]
    lines = [f"# Training step: {args.config}, batch {args.batch} x {args.crop}x{args.crop}",
             "",
             f"Machine: {info['platform']}, {info['cpu_count']} CPUs, torch {info['torch']}, "
             f"device cpu, {info['date']}, load average at start "
             f"{info.get('load_average_at_start')}, commit {info['git_commit']}.",
             "", "| variant | threads | s/step (median) | vs first |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['threads']} | {r['median_s']:.3f} | "
                     f"{r['median_s'] / base:.2f} |")
    if profile:
        lines += ["", f"Profile of `{variants[0]}` (self CPU time per step, top operators):",
                  "", "| operator | ms/step | share | calls/step |", "|---|---|---|---|"]
        for p in profile:
            lines.append(f"| `{p['op']}` | {p['self_cpu_ms_per_step']:.1f} | "
                         f"{100 * p['share']:.1f}% | {p['calls_per_step']:.0f} |")
    with open(os.path.join(args.out, name + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {os.path.join(args.out, name)}.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
