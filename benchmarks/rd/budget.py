r"""The training budget behind a rate-distortion report, read from the run folders.

    python benchmarks/rd/budget.py RUNS_DIR --models glic-lite mbt2018-mean \
        --qualities 1 3 4 6 -o OUT [--note TEXT]

For each ``RUNS_DIR/<model>-q<q>`` (written by ``pyg-glic train``; see
benchmarks/rd/train.sh): steps, wall time, learning rate, batch, crop, the run it
was initialised from, and the last training and validation metrics. Writes
``OUT/training_budget.json`` and ``OUT/training_budget.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import git_commit  # noqa: E402


def read_run(run: Path) -> dict:
    args = json.loads((run / "args.json").read_text())
    train, val = None, None
    offset, segments = 0.0, 1  # a resumed run restarts its clock: add the segments up
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "val" in rec:
            val = rec["val"]
            continue
        if train is not None and rec["time"] < train["time"] - offset:
            offset += train["time"] - offset
            segments += 1
        train = dict(rec, time=rec["time"] + offset)
    if train is None:
        raise SystemExit(f"error: {run}/metrics.jsonl has no training record")
    init = args.get("init_from")
    return {"run": run.name, "config": args["config"], "quality": args["quality"],
            "lmbda": args["lmbda"], "steps": train["step"], "seconds": round(train["time"], 1),
            "segments": segments, "lr": args["lr"], "batch_size": args["batch_size"], "crop_size": args["crop_size"],
            "init_from": Path(init).parent.name if init else None,
            "train_last": {k: train[k] for k in ("loss", "bpp", "psnr")},
            "val_last": val}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path)
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--qualities", nargs="+", type=int, required=True)
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--note", default="", help="free text recorded beside the table")
    a = p.parse_args(argv)
    rows = []
    for model in a.models:
        for q in a.qualities:
            run = a.runs / f"{model}-q{q}"
            if not run.is_dir() and model == "mbt2018-mean-n128":
                run = a.runs / f"mbt2018-mean-q{q}"  # same architecture at q1-4
            if not (run / "args.json").is_file() or not (run / "metrics.jsonl").is_file():
                p.error(f"{run} is not a finished training run (args.json and metrics.jsonl expected)")
            rows.append(read_run(run))
    totals = {}
    for r in rows:
        t = totals.setdefault(r["config"].replace("-n128", ""), {"steps": 0, "seconds": 0.0, "crops": 0})
        t["steps"] += r["steps"]
        t["seconds"] = round(t["seconds"] + r["seconds"], 1)
        t["crops"] += r["steps"] * r["batch_size"]
    meta = {"machine": platform.platform(), "cpu_count": os.cpu_count(),
            "git_commit": git_commit(), "note": a.note}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "training_budget.json").write_text(
        json.dumps({**meta, "runs": rows, "totals": totals}, indent=2) + "\n")
    lines = [f"Training budget (machine: {meta['machine']}, {meta['cpu_count']} CPUs; "
             f"commit {meta['git_commit']})", ""]
    if a.note:
        lines += [a.note, ""]
    lines += ["| run | lambda | init from | steps | batch x crop | lr | wall time | "
              "last train bpp / PSNR | last val bpp / PSNR |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        v = r["val_last"]
        vtxt = f"{v['bpp']:.3f} / {v['psnr']:.2f} dB" if v else "-"
        lines.append(f"| {r['run']} | {r['lmbda']} | {r['init_from'] or '-'} | {r['steps']} | "
                     f"{r['batch_size']} x {r['crop_size']}^2 | {r['lr']:g} | "
                     f"{r['seconds'] / 60:.1f} min | {r['train_last']['bpp']:.3f} / "
                     f"{r['train_last']['psnr']:.2f} dB | {vtxt} |")
    lines += ["", "| model | steps in all | crops seen | wall time in all |", "|---|---|---|---|"]
    for m, t in totals.items():
        lines.append(f"| {m} | {t['steps']} | {t['crops']} | {t['seconds'] / 60:.1f} min |")
    (a.out / "training_budget.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
