r"""A/B of the recipe pieces that cost training: short arms trained on this machine,
each coded for real on the campaign curve's images and rates.

    python benchmarks/rd/ab_train.py --fork CHECKPOINT --train-root DIR --kodak DIR \
        [--arms base,constant-lr,...] [--steps 500] [--scratch-steps 300] \
        [--runs runs/ab] [--out benchmarks/results/rd_ab] [--threads 1]

A full A/B of a recipe piece is two whole training runs; on a 2-core CPU one costs
tens of CPU-hours, so each piece is measured where it acts, on short arms:

- **the end of a run** (``--fork``: every arm starts from the EMA weights of one
  campaign checkpoint and trains ``--steps`` steps from a fresh optimiser, whose
  rate ramps up over the first 25 steps):
  ``base`` is the recipe's end (cosine decay from ``--lr`` to 1e-5, the orthogonality
  loss at 0.1, 8 crops of 128x128); ``constant-lr`` keeps ``--lr`` (the decay's A/B);
  ``no-ortho`` drops the orthogonality loss; ``crops-256`` trains on 2 crops of
  256x256 (the same pixels per step; the late-crops' A/B); ``base-seed1`` is ``base``
  with another data order, so the spread between two identical recipes is measured
  beside the pieces (the noise floor);
- **the start of a run** (from random weights, ``--scratch-steps`` steps at a
  constant rate): ``scratch-warmup`` ramps the rate linearly over the first
  ``--scratch-warmup`` steps, ``scratch-no-warmup`` does not.

Every arm keeps a weight average with decay 0.99 (a 100-step horizon, so the arms'
short histories, not their common start, make the average) and is coded from it.
Coding is ``ab_eval``'s: ``net.update(force=True, update_quantiles=True)``, real
bitstreams, JPEG's PSNR at the same bpp per image. Per piece the BD-rate of "with"
against "without" (negative: the piece saves bits) is set beside the noise floor's;
the verdict is "helps" / "hurts" only where the piece's BD-rate is beyond the noise
floor's magnitude, else "within noise".

Arms are resumable (a killed run continues from its checkpoint; a finished arm is not
trained again, a coded one not coded again), so the arms can be run one by one, in
separate invocations, or two at once on two cores; each invocation rewrites the
summary ``ab_train.{json,md}`` under ``--out`` from every arm coded so far.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.rd import curve as C  # noqa: E402
from benchmarks.rd.ab_eval import bd_with_vs_without, code_rates  # noqa: E402

EMA_DECAY = 0.99
TRAIN_SUBDIRS = ("bsds500/train", "bsds500/test", "sun_hays80")

#: Arm -> (family, options over the family's base). "fork" arms start from --fork.
ARMS: Dict[str, tuple] = {
    "base": ("fork", []),
    "base-seed1": ("fork", ["--seed", "1"]),
    "constant-lr": ("fork", ["--lr-schedule", "step", "--lr-gamma", "1"]),
    "no-ortho": ("fork", ["--ortho-weight", "0"]),
    "crops-256": ("fork", ["--crop-size", "256", "--batch-size", "2"]),
    "scratch-warmup": ("scratch", None),  # filled in from --scratch-warmup
    "scratch-no-warmup": ("scratch", ["--warmup", "0"]),
}
#: (piece, arm with it, arm without it)
PIECES = [
    ("learning-rate decay to 1e-5 at the end", "base", "constant-lr"),
    ("orthogonality loss (weight 0.1)", "base", "no-ortho"),
    ("last stretch on 256x256 crops", "crops-256", "base"),
    ("learning-rate warm-up", "scratch-warmup", "scratch-no-warmup"),
]
NOISE = ("same recipe, another data order (noise floor)", "base-seed1", "base")


def _load_checkpoint(path: Path) -> Optional[Dict]:
    import torch
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def _arm_steps(a, arm: str) -> int:
    return a.steps if ARMS[arm][0] == "fork" else a.scratch_steps


def fork_ramp(steps: int) -> int:
    r"""The fork arms' warm-up for their fresh Adam: 25 steps (fewer on a short arm)."""
    return min(25, steps // 4)


def train_command(a, arm: str) -> List[str]:
    family, extra = ARMS[arm]
    if arm == "scratch-warmup":
        extra = ["--warmup", str(a.scratch_warmup)]
    out = a.runs / arm
    common = [sys.executable, "-m", "pyg_glic", "train"]
    ck = out / "checkpoint.pt"
    if ck.is_file():
        return common + ["--resume", os.fspath(ck), "--workers", "1", "--no-progress"]
    cmd = common + [os.fspath(a.train_root / d) for d in TRAIN_SUBDIRS] + [
        "-c", a.config, "-o", os.fspath(out), "--steps", str(_arm_steps(a, arm)),
        "--crop-size", "128", "--batch-size", "8", "--ema-decay", str(EMA_DECAY),
        "--ortho-weight", "0.1",
        "--workers", "1", "--cache-images", "--no-progress", "--checkpoint-every", "100"]
    if family == "fork":
        cmd += ["--init-from", os.fspath(a.fork), "--lr", str(a.lr), "--lr-schedule", "cosine",
                "--lr-min", "1e-5", "--warmup", str(fork_ramp(a.steps))]
    else:
        cmd += ["--lr", "3e-4", "--lr-schedule", "step", "--lr-gamma", "1"]
    return cmd + extra  # later options win


def train(a, arm: str) -> Dict:
    steps = _arm_steps(a, arm)
    ck = a.runs / arm / "checkpoint.pt"
    ckpt = _load_checkpoint(ck)
    if ckpt is None or int(ckpt.get("step") or 0) != steps:
        cmd = train_command(a, arm)
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads),
                   OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
        print(f"[{arm}] " + " ".join(cmd[1:]), flush=True)
        rc = subprocess.call(cmd, env=env, cwd=ROOT)
        ckpt = _load_checkpoint(ck)
        if rc != 0 or ckpt is None or int(ckpt.get("step") or 0) != steps:
            raise RuntimeError(f"arm {arm}: the trainer stopped (exit {rc}) before step {steps}")
    logs = [json.loads(line) for line in (a.runs / arm / "metrics.jsonl").read_text().splitlines()
            if line.strip()]
    tail = [r for r in logs if "loss" in r and r.get("step", 0) > steps - 100]
    return {"family": ARMS[arm][0], "steps": steps, "args": ckpt.get("args"),
            "cpu_hours": round(float(ckpt.get("cpu_seconds") or 0) / 3600, 4),
            "train_loss_last100": round(float(np.mean([r["loss"] for r in tail])), 4)
            if tail else None}


def code(a, arm: str, rgbs, curves, qualities) -> List[Dict]:
    import torch
    from pyg_glic.training.models import load_model_file
    net = load_model_file(a.runs / arm / "checkpoint.pt", ema=True).model.eval()
    net.update(force=True, update_quantiles=True)
    return code_rates(net, rgbs, curves, qualities, torch.device("cpu"))


def summarise(a, results: Dict[str, Dict], images, qualities, fork_info) -> None:
    import torch

    from benchmarks._common import machine_info

    def bd(w: str, wo: str) -> Optional[Dict]:
        if w not in results or wo not in results:
            return None
        return bd_with_vs_without(results[w]["rates"], results[wo]["rates"])

    noise = bd(*NOISE[1:])
    floor = abs(noise["value"]) if noise and noise["value"] is not None else None
    pieces = []
    for name, w, wo in PIECES + [NOISE]:
        r = bd(w, wo)
        verdict = None
        if r is not None and r["value"] is not None and floor is not None and (w, wo) != NOISE[1:]:
            verdict = ("helps" if r["value"] < -floor else "hurts" if r["value"] > floor
                       else "within noise")
        pieces.append({"piece": name, "with": w, "without": wo, "bd_rate": r, "verdict": verdict})
    info = machine_info(torch.device("cpu"))
    rep = {"tool": "benchmarks/rd/ab_train.py", "config": a.config, "fork": fork_info,
           "steps": a.steps,
           "scratch_steps": a.scratch_steps, "scratch_warmup": a.scratch_warmup, "lr": a.lr,
           "ema_decay": EMA_DECAY, "images": [f.name for f in images], "qualities": qualities,
           "arms": results, "pieces": pieces, "machine": info, "threads": a.threads}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ab_train.json").write_text(json.dumps(rep, indent=1) + "\n")
    L = [f"# A/B of the training recipe's pieces on short arms ({info['processor']}, "
         f"{a.threads} thread(s) per arm, torch {info['torch']})", "",
         f"Fork arms: {a.steps} steps each from the EMA weights of campaign step "
         f"{fork_info['step']} ({fork_info['cpu_hours']:.2f} CPU-h), fresh Adam at lr {a.lr:g} "
         f"({fork_ramp(a.steps)}-step ramp). Scratch arms: {a.scratch_steps} steps from "
         f"random weights at lr 3e-4, "
         f"warm-up {a.scratch_warmup} steps or none. All: 8 crops of 128x128 unless stated, "
         f"variable rate (one level per batch), EMA decay {EMA_DECAY}, coded from the EMA "
         f"weights on {len(images)} Kodak images ({', '.join(f.stem for f in images)}) at "
         f"qualities {', '.join(C.qlabel(q) for q in qualities)} with real bitstreams; JPEG is "
         "Pillow's at the same bpp per image.", "",
         "| arm | CPU-h | train loss, last 100 steps | " + " | ".join(
             f"q{C.qlabel(q)}: bpp, PSNR (vs JPEG)" for q in qualities) + " | mean vs JPEG |",
         "|---|---|---|" + "---|" * (len(qualities) + 1)]
    for arm in ARMS:
        if arm not in results:
            continue
        r = results[arm]
        cells = [f"{x['bpp']:.4f}, {x['psnr']:.2f} ({x['gain_vs_jpeg_db']:+.2f})"
                 for x in r["rates"]]
        L.append(f"| {arm} | {r['cpu_hours']:.2f} | {r['train_loss_last100']} | "
                 + " | ".join(cells) + f" | {r['gain_vs_jpeg_db']:+.3f} dB |")
    L += ["", "BD-rate with the piece against without (negative: it saves bits at equal PSNR); "
          "verdicts against the noise floor's magnitude:", "",
          "| piece | with | without | BD-rate | verdict |", "|---|---|---|---|---|"]
    for p in pieces:
        r = p["bd_rate"]
        val = "not run" if r is None else ("n/a (" + str(r["reason"]) + ")" if r["value"] is None
                                          else f"{r['value']:+.2f}% (overlap "
                                          f"{100 * r['overlap_fraction']:.0f}%)")
        is_noise = (p["with"], p["without"]) == NOISE[1:]
        verdict = p["verdict"] or ("-" if is_noise else "no floor yet")
        L.append(f"| {p['piece']} | {p['with']} | {p['without']} | {val} | {verdict} |")
    (a.out / "ab_train.md").write_text("\n".join(L) + "\n")
    print(f"wrote {a.out}/ab_train.json and .md")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fork", type=Path, required=True,
                   help="the campaign checkpoint the fork arms start from")
    p.add_argument("--train-root", type=Path, required=True,
                   help="folder holding bsds500/{train,test} and sun_hays80")
    p.add_argument("--kodak", type=Path, required=True)
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--config", default="glic-lite", help="the model (the campaign's by default)")
    p.add_argument("--steps", type=int, default=500, help="steps of each fork arm")
    p.add_argument("--scratch-steps", type=int, default=300)
    p.add_argument("--scratch-warmup", type=int, default=150)
    p.add_argument("--lr", type=float, default=2.8e-4,
                   help="the fork arms' starting rate (the campaign's at the fork)")
    p.add_argument("--images", default=C.DEFAULT_IMAGES)
    p.add_argument("--qualities", default=C.DEFAULT_QUALITIES)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "ab")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rd_ab")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    try:
        arms = [x.strip() for x in a.arms.split(",") if x.strip()]
        bad = [x for x in arms if x not in ARMS]
        if bad or not arms:
            raise C.InputError(f"--arms: unknown {bad}; expected some of {', '.join(ARMS)}")
        qualities = C.parse_qualities(a.qualities)
        images = C.resolve_images(a.kodak, a.images)
        if not a.fork.is_file():
            raise C.InputError(f"--fork: {a.fork} does not exist")
        for d in TRAIN_SUBDIRS:
            if not (a.train_root / d).is_dir():
                raise C.InputError(f"--train-root: {a.train_root / d} is not a folder")
        if min(a.steps, a.scratch_steps) < 4 or not 0 < a.scratch_warmup < a.scratch_steps:
            raise C.InputError("--steps and --scratch-steps must be at least 4 and "
                               "--scratch-warmup in (0, --scratch-steps)")
    except C.InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import torch

    from pyg_glic.evaluation import classical
    from pyg_glic.training.data import read_rgb

    torch.set_num_threads(a.threads)
    a.fork, a.runs = a.fork.resolve(), a.runs.resolve()
    fk = torch.load(a.fork, map_location="cpu", weights_only=True)
    fork_info = {"path": os.fspath(a.fork), "step": int(fk.get("step") or 0),
                 "cpu_hours": round(float(fk.get("cpu_seconds") or 0) / 3600, 4)}
    del fk
    rgbs = [np.asarray(read_rgb(f), dtype=np.uint8).copy() for f in images]
    jpeg = classical.resolve(["jpeg"])["jpeg"]
    curves = [C.classical_curve(rgb, jpeg, C.SWEEPS["jpeg"]) for rgb in rgbs]
    a.runs.mkdir(parents=True, exist_ok=True)
    for arm in arms:
        res = a.runs / arm / "result.json"
        if res.is_file():
            continue
        t0 = time.perf_counter()
        try:
            r = train(a, arm)
        except RuntimeError as e:  # the trainer said why on its stderr
            print(f"error: {e}", file=sys.stderr)
            return 1
        r["rates"] = code(a, arm, rgbs, curves, qualities)
        r["gain_vs_jpeg_db"] = round(float(np.mean([x["gain_vs_jpeg_db"] for x in r["rates"]])), 3)
        r["seconds"] = round(time.perf_counter() - t0, 1)
        res.write_text(json.dumps(r, indent=1) + "\n")
        print(f"[{arm}] gain over JPEG {r['gain_vs_jpeg_db']:+.3f} dB", flush=True)
    results = {arm: json.loads((a.runs / arm / "result.json").read_text()) for arm in ARMS
               if (a.runs / arm / "result.json").is_file()}
    summarise(a, results, images, qualities, fork_info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
