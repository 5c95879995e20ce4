r"""Ablation of GLIC's design decisions: the base configuration and each of its
variants (:data:`pyg_glic.models.glic.VARIANTS`) trained with the same seed, data,
steps, crops, batch and schedule, then coded for real on Kodak at every quality,
with the BD-rate of each variant against the base.

    PYTHONPATH=. .venv/bin/python benchmarks/ablation/run.py --base glic-tiny \
        --train ../shared/datasets/train/bsds500/train --kodak ../shared/datasets/kodak \
        --steps 300 --images 4 --out benchmarks/results/ablation_smoke

Training runs ``python -m pyg_glic train`` once per variant, each in its own
process and run folder (``--runs``, default ``runs/ablation/<base>/<variant>``);
a finished run (its exported weights exist and its ``args.json`` matches) is
skipped, an interrupted one resumed, and a folder that holds a run with other
settings is refused. Coding: every evaluation image is compressed to the bytes of
a ``.glic`` file (:func:`pyg_glic.codec.compress`: header, entropy-coded strings,
CRC) and decoded from those bytes; the rate is the file's size less its
configuration-name field (see :func:`code_image`). Writes
``results.json``, ``results.md`` and ``rd.png`` into ``--out``. See README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._common import machine_info  # noqa: E402

BASE = "base"  # the run-folder and row name of the base configuration

#: What the papers say about each design decision, beside our numbers.
#: GLIC (arXiv 2603.25316) ablations are BD-rates against VTM-9.1 on Kodak;
#: the "against adaptive" figure is derived: (1 - 0.1697) / (1 - 0.1929) - 1.
CLAIMS: Dict[str, str] = {
    BASE: "published design: dual-scale graph, adaptive degree, strided global "
          "candidates, wavelet branch",
    "fixed-degree": "worse than adaptive: -16.97% vs -19.29% against VTM-9.1 on Kodak "
                    "(about +2.9% against adaptive, derived)",
    "local-only": "worse than dual-scale (no number published)",
    "global-only": "worse than dual-scale, and the worst of the scope variants",
    "pooled-global": "no published ablation (the published model uses strided real-node "
                     "candidates; pooled cell means are this project's earlier form)",
    "no-wavelet": "AuxT (arXiv 2501.13751): the branch gives about 1% BD-rate and about "
                  "2x faster training, so expect about +1% without it",
}
SMOKE_STEPS = 5000  # below this the README and results.md call a run a smoke run


class BadInput(Exception):
    r"""A bad argument or input: one line on stderr and exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the usage too)
        raise BadInput(message)


# ------------------------------------------------------------------ the code under test

def code_fingerprint(package_dir) -> str:
    r"""SHA-256 (first 16 hex digits) of every ``.py`` file under ``package_dir``."""
    import hashlib

    h = hashlib.sha256()
    root = Path(package_dir)
    if not root.is_dir():
        return "unknown"
    for f in sorted(root.rglob("*.py")):
        if "__pycache__" in f.parts:
            continue
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


class CodeSnapshot:
    r"""The ``pyg_glic`` every run of one invocation trains and codes with.

    Other work edits ``pyg_glic`` in this checkout while an ablation runs (hours to
    days); a child process started later would import other code than the runs
    before it, and the parent, which codes, might not even load its weights. So,
    unless ``pyg_glic`` is already imported (or ``--in-process``), the package is
    copied once to a temporary folder that the parent imports from and every child
    runs in. Its fingerprint is recorded per run.
    """

    def __init__(self, use_copy: bool):
        import shutil

        self.dir: Optional[str] = None
        if use_copy and "pyg_glic" not in sys.modules:
            self.dir = tempfile.mkdtemp(prefix="pyg_glic-code-")
            shutil.copytree(os.path.join(ROOT, "pyg_glic"), os.path.join(self.dir, "pyg_glic"),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            sys.path.insert(0, self.dir)
            self.fingerprint = code_fingerprint(os.path.join(self.dir, "pyg_glic"))
        else:
            import pyg_glic

            self.fingerprint = code_fingerprint(os.path.dirname(pyg_glic.__file__))

    def child_fingerprint(self) -> str:
        r"""The code a child started now runs."""
        return self.fingerprint if self.dir else code_fingerprint(os.path.join(ROOT, "pyg_glic"))

    def close(self) -> None:
        import shutil

        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- arguments

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = _Parser(
        description="Train GLIC's base configuration and its ablation variants with one "
                    "recipe, code Kodak for real with each, BD-rate of each variant "
                    "against the base.")
    p.add_argument("--base", default="glic-tiny",
                   help="base configuration: glic-tiny, glic-lite (variable-rate) or glic "
                        "(fixed-rate: one --quality) (default glic-tiny)")
    p.add_argument("--train", nargs="+", required=True, metavar="DIR",
                   help="folders of training images")
    p.add_argument("--kodak", required=True, metavar="DIR", help="folder of evaluation images")
    p.add_argument("--steps", type=int, required=True, help="training steps per variant")
    p.add_argument("--out", default="benchmarks/results/ablation",
                   help="results folder (results.json, results.md, rd.png)")
    p.add_argument("--runs", help="run folders (default runs/ablation/<base>)")
    p.add_argument("--variants", help="comma-separated variants (default: all of "
                                      "pyg_glic.models.glic.VARIANTS); the base always runs")
    p.add_argument("--images", type=int, help="code the first N evaluation images (default all)")
    p.add_argument("--eval-crop", type=int, metavar="S",
                   help="centre-crop every evaluation image to S x S (default: as they are)")
    p.add_argument("--qualities", help="comma-separated qualities in [1, levels] of a "
                                       "variable-rate base (default 1,2,3,4,5,6)")
    p.add_argument("--quality", type=int,
                   help="the one quality (1..6) a fixed-rate base is trained and coded at")
    p.add_argument("--crop", type=int, default=64, help="training crop side (default 64)")
    p.add_argument("--batch", type=int, default=4, help="crops per step (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    p.add_argument("--lr", type=float, help="learning rate (default: the trainer's)")
    p.add_argument("--lr-schedule", choices=("step", "drop", "cosine"))
    p.add_argument("--warmup", type=int, metavar="STEPS")
    p.add_argument("--ema-decay", type=float)
    p.add_argument("--ortho-weight", type=float)
    p.add_argument("--checkpoint-every", type=int, default=100,
                   help="steps between checkpoints of each run (default 100)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for training and coding (default 1)")
    p.add_argument("--bd-method", default="cubic", choices=("cubic", "pchip", "akima"),
                   help="BD interpolation (default cubic; pchip where a curve has fewer "
                        "than 4 points)")
    p.add_argument("--ms-ssim", action="store_true", help="also compute MS-SSIM (slow on a CPU)")
    p.add_argument("--in-process", action="store_true",
                   help="train in this process (the same command line, through "
                        "pyg_glic.cli.main) instead of one child process per run: saves the "
                        "start-up of each (the quick test); a crash then ends everything")
    return p.parse_args(argv)


def _parse_qualities(text: str) -> List[float]:
    try:
        qs = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise BadInput(f"--qualities must be comma-separated numbers, got {text!r}") from None
    if not qs:
        raise BadInput("--qualities is empty")
    return list(dict.fromkeys(qs))


def plan_runs(args: argparse.Namespace) -> Dict:
    r"""Check every input before anything is trained or written; returns the plan."""
    from pyg_glic.models.glic import BASE_CONFIGS, CONFIGS, VARIANTS
    from pyg_glic.training.data import InputError, find_images

    if args.base not in BASE_CONFIGS:
        raise BadInput(f"--base must be one of {sorted(BASE_CONFIGS)}, got {args.base!r}")
    levels = BASE_CONFIGS[args.base].get("levels")
    if args.variants is None:
        variants = list(VARIANTS)
    else:
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        bad = [v for v in variants if v not in VARIANTS]
        if bad:
            raise BadInput(f"unknown variant(s) {bad}; expected some of {list(VARIANTS)}")
        variants = list(dict.fromkeys(variants))
    for name, value, lo in (("--steps", args.steps, 1), ("--batch", args.batch, 1),
                            ("--threads", args.threads, 1),
                            ("--checkpoint-every", args.checkpoint_every, 1)):
        if value < lo:
            raise BadInput(f"{name} must be at least {lo}, got {value}")
    if args.crop < 64 or args.crop % 64:
        raise BadInput(f"--crop must be a positive multiple of 64, got {args.crop}")
    if args.images is not None and args.images < 1:
        raise BadInput(f"--images must be at least 1, got {args.images}")
    if args.eval_crop is not None and args.eval_crop < 16:
        raise BadInput(f"--eval-crop must be at least 16, got {args.eval_crop}")
    if args.lr is not None and not args.lr > 0:
        raise BadInput(f"--lr must be positive, got {args.lr}")
    if levels:
        if args.quality is not None:
            raise BadInput(f"{args.base} is variable-rate: give --qualities, not --quality")
        qualities = _parse_qualities(args.qualities or "1,2,3,4,5,6")
        for q in qualities:
            if not (math.isfinite(q) and 1 <= q <= levels):
                raise BadInput(f"--qualities must lie in [1, {levels}] for {args.base}, got {q:g}")
        qualities.sort()
    else:
        # A fixed-rate model is trained per quality: one run per variant and quality
        # is too costly, so a fixed-rate ablation compares one rate point.
        if args.qualities is not None:
            raise BadInput(f"{args.base} is fixed-rate: give one --quality (1..6), not "
                           f"--qualities (one run per variant and quality is too costly)")
        if args.quality is None or not 1 <= args.quality <= 6:
            raise BadInput(f"{args.base} is fixed-rate: give one --quality in 1..6")
        qualities = [float(args.quality)]
    try:
        train_files = find_images([os.path.abspath(d) for d in args.train])
        eval_files = find_images(os.path.abspath(args.kodak),
                                 (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm"))
    except InputError as e:
        raise BadInput(str(e)) from None
    if args.images is not None:
        if args.images > len(eval_files):
            raise BadInput(f"--images {args.images}: {args.kodak} holds only "
                           f"{len(eval_files)} images")
        eval_files = eval_files[:args.images]
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} exists and is not a folder")
    runs = Path(os.path.abspath(args.runs or os.path.join("runs", "ablation", args.base)))
    if runs.exists() and not runs.is_dir():
        raise BadInput(f"--runs {runs} exists and is not a folder")
    if args.device != "cpu" and not args.device.startswith("cuda"):
        raise BadInput(f"--device must be cpu or cuda[:N], got {args.device!r}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput("--device cuda: no CUDA device is available")

    entries = []
    for name in [BASE] + variants:
        config = args.base if name == BASE else f"{args.base}/{name}"
        assert config in CONFIGS
        folder = runs / name
        entries.append({"name": name, "config": config, "dir": folder,
                        "export": folder / "weights.pt", "state": run_state(folder, args, config)})
    return {"base": args.base, "levels": levels, "variants": variants, "qualities": qualities,
            "train_dirs": [os.path.abspath(d) for d in args.train],
            "train_images": len(train_files), "eval_files": eval_files, "out": out,
            "runs": runs, "entries": entries}


def _wanted_settings(args, config) -> Dict:
    r"""Settings a finished or resumable run must share with this invocation."""
    want = {"config": config, "steps": args.steps, "crop_size": args.crop,
            "batch_size": args.batch, "seed": args.seed,
            "train_dirs": [os.path.abspath(d) for d in args.train]}
    for key, value in (("lr", args.lr), ("lr_schedule", args.lr_schedule),
                       ("warmup", args.warmup), ("ema_decay", args.ema_decay),
                       ("ortho_weight", args.ortho_weight), ("quality", args.quality)):
        if value is not None:
            want[key] = value
    return want


def run_state(folder: Path, args, config: str) -> str:
    r"""``"new"``, ``"resume"`` or ``"done"``; raises :class:`BadInput` for a folder
    that holds a run with other settings."""
    if not (folder / "checkpoint.pt").exists():
        if folder.exists() and not folder.is_dir():
            raise BadInput(f"run folder {folder} exists and is not a folder")
        return "new"
    try:
        saved = json.loads((folder / "args.json").read_text())
    except (OSError, ValueError):
        raise BadInput(f"{folder} holds a checkpoint without a readable args.json; remove "
                       f"it or choose another --runs") from None
    for key, value in _wanted_settings(args, config).items():
        have = saved.get(key)
        if key == "train_dirs":
            have = [os.path.abspath(d) for d in (have or [])]
        if have != value and not (isinstance(value, float) and isinstance(have, (int, float))
                                  and math.isclose(have, value)):
            raise BadInput(f"{folder} holds a run with {key}={have!r}, not {value!r}; remove "
                           f"it or choose another --runs")
    return "done" if (folder / "weights.pt").exists() else "resume"


# ---------------------------------------------------------------------------- training

def _child_env(threads: int, code_dir: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = code_dir + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                    else "")
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def train_command(args, plan, entry) -> List[str]:
    cmd = [sys.executable, "-m", "pyg_glic", "train"]
    common = ["--export", str(entry["export"]), "--force", "--no-progress",
              "--device", args.device]
    if entry["state"] == "resume":
        return cmd + ["--resume", str(entry["dir"] / "checkpoint.pt")] + common
    cmd += plan["train_dirs"] + [
        "-c", entry["config"], "--steps", str(args.steps), "-o", str(entry["dir"]),
        "--crop-size", str(args.crop), "--batch-size", str(args.batch),
        "--seed", str(args.seed), "--workers", "0",
        "--checkpoint-every", str(args.checkpoint_every),
        "--log-every", str(max(1, min(25, args.steps)))]
    if plan["levels"] is None:
        cmd += ["-q", str(args.quality)]
    for flag, value in (("--lr", args.lr), ("--lr-schedule", args.lr_schedule),
                        ("--warmup", args.warmup), ("--ema-decay", args.ema_decay),
                        ("--ortho-weight", args.ortho_weight)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd + common


def _train_in_process(argv: List[str], log) -> int:
    import contextlib
    import traceback

    from pyg_glic.cli.main import main as cli_main

    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            return int(cli_main(argv) or 0)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else 1
        except Exception:  # noqa: BLE001 - a failed run is reported, not raised
            traceback.print_exc(file=log)
            return 1


def _last_metrics(folder: Path) -> Optional[Dict]:
    last = None
    try:
        with open(folder / "metrics.jsonl") as f:
            for line in f:
                rec = json.loads(line)
                if "time" in rec and "loss" in rec:
                    last = rec
    except (OSError, ValueError):
        return None
    return last


def train_entry(args, plan, entry, code: CodeSnapshot) -> Dict:
    r"""Train (or resume, or skip) one run; returns its training record."""
    folder = entry["dir"]
    folder.parent.mkdir(parents=True, exist_ok=True)
    rec = {"run_dir": os.fspath(folder), "state_before": entry["state"]}
    history = folder / "code_fingerprints.txt"
    if entry["state"] != "done":
        cmd = train_command(args, plan, entry)
        rec["command"] = " ".join(cmd)
        print(f"== {entry['name']}: {'resume' if entry['state'] == 'resume' else 'train'} "
              f"{entry['config']} ({args.steps} steps)", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        with open(history, "a") as f:
            f.write(f"{code.child_fingerprint()} {entry['state']}\n")
        t0 = time.perf_counter()
        with open(folder / "train.log", "a") as log:
            if args.in_process:
                rc = _train_in_process(cmd[3:], log)
            else:
                where = code.dir or ROOT  # not ROOT when a copy: -m puts the cwd first
                rc = subprocess.run(cmd, cwd=where, env=_child_env(args.threads, where),
                                    stdout=log, stderr=subprocess.STDOUT).returncode
        rec["process_wall_s"] = time.perf_counter() - t0
        if rc != 0 or not entry["export"].exists():
            tail = (folder / "train.log").read_text(errors="replace").strip().splitlines()[-5:]
            rec["error"] = f"training exited with code {rc}: " + " | ".join(tail)[-600:]
            print(f"   failed: {rec['error']}", file=sys.stderr, flush=True)
            return rec
    else:
        print(f"== {entry['name']}: finished run in {folder}, skipped", flush=True)
    try:
        rec["code_fingerprints"] = sorted({ln.split()[0] for ln in
                                           history.read_text().splitlines() if ln.strip()})
    except OSError:
        rec["code_fingerprints"] = ["unknown"]
    m = _last_metrics(folder) or {}
    rec.update(steps=m.get("step"), train_wall_s=m.get("time"),
               train_cpu_s=m.get("cpu_seconds"),
               s_per_step=(m["time"] / m["step"]) if m.get("step") else None,
               final_train={k: m.get(k) for k in ("loss", "bpp", "mse", "psnr", "aux", "ortho",
                                                 "lr")},
               skipped_nonfinite_steps=m.get("skipped"))
    if rec["steps"] != args.steps:
        rec["error"] = f"the run stopped at step {rec['steps']} of {args.steps}"
    return rec


# ------------------------------------------------------------------------------ coding

def load_eval_images(files, crop: Optional[int]) -> List[Dict]:
    from pyg_glic.training.data import read_rgb

    out = []
    for f in files:
        rgb = np.asarray(read_rgb(f), dtype=np.uint8)
        if crop is not None:
            H, W = rgb.shape[:2]
            s_h, s_w = min(crop, H), min(crop, W)
            y0, x0 = (H - s_h) // 2, (W - s_w) // 2
            rgb = rgb[y0:y0 + s_h, x0:x0 + s_w]
        out.append({"name": Path(f).name, "rgb": np.ascontiguousarray(rgb)})
    return out


@torch.no_grad()
def code_image(net, config: str, quality, x: torch.Tensor, device: torch.device):
    r"""``(file bytes, rate bytes, decoded uint8 image, encode s, decode s)``: ``x``
    coded to a real ``.glic`` file (:func:`pyg_glic.codec.compress`) and decoded
    from its bytes (:func:`pyg_glic.codec.decompress`).

    The rate counts the whole file less its configuration-name field, whose length
    differs between variants (``glic-tiny`` against ``glic-tiny/pooled-global``, up
    to 14 bytes) and would otherwise bias the comparison by the names alone.
    """
    from pyg_glic import codec
    from pyg_glic.utils.image import to_uint8

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    x = x.to(device)
    sync()
    t0 = time.perf_counter()
    data = codec.compress(x, config, quality, model=net)
    sync()
    t1 = time.perf_counter()
    x_hat, header = codec.decompress(data, model=net)
    rec = to_uint8(x_hat.cpu())
    sync()
    t2 = time.perf_counter()
    return len(data), len(data) - len(header.config.encode("ascii")), rec, t1 - t0, t2 - t1


def code_entry(args, plan, entry, images) -> Dict:
    r"""Code every image at every quality with one trained run; returns its curve."""
    from pyg_glic.evaluation import metrics
    from pyg_glic.evaluation.report import make_curve
    from pyg_glic.training.models import load_model_file

    device = torch.device(args.device)
    lm = load_model_file(entry["export"])
    net = lm.model.eval().to(device)
    net.update(force=True)
    params = sum(p.numel() for p in net.parameters())
    variable = plan["levels"] is not None
    qualities = plan["qualities"]  # floats; a fixed-rate model codes its integer one
    tensors = [torch.from_numpy(im["rgb"].copy()).permute(2, 0, 1)[None].float().div(255)
               for im in images]
    coding_q = qualities if variable else [int(q) for q in qualities]
    code_image(net, lm.config, coding_q[0], tensors[0], device)  # warm-up, not timed
    per_point = []
    for q in coding_q:
        recs = []
        for im, x in zip(images, tensors):
            nfile, nbytes, rec, te, td = code_image(net, lm.config, q, x, device)
            H, W = im["rgb"].shape[:2]
            recs.append({"image": im["name"], "file_bytes": nfile, "bytes": nbytes,
                         "bpp": metrics.bpp(nbytes, H, W),
                         "psnr-rgb": metrics.psnr_rgb(im["rgb"], rec),
                         "ms-ssim-rgb": metrics.ms_ssim_rgb(im["rgb"], rec, device)
                         if args.ms_ssim else float("nan"),
                         "encoding_time": te, "decoding_time": td})
        per_point.append(recs)
        r = recs
        print(f"   q{q:g}: bpp {np.mean([v['bpp'] for v in r]):.4f}, "
              f"PSNR {np.mean([v['psnr-rgb'] for v in r]):.2f} dB", flush=True)
    curve = make_curve(entry["name"], f"{lm.config} from {entry['export']}", "learned",
                       qualities, per_point)
    curve["parameters"] = params
    return curve


# ------------------------------------------------------------------------------ report

def bd_against_base(results: Dict, method: str) -> Dict[str, Dict]:
    from pyg_glic.evaluation.bdrate import MIN_POINTS, bd_rate

    base = results[BASE].get("curve")
    out = {}
    for name, r in results.items():
        if name == BASE:
            continue
        c = r.get("curve")
        if base is None or c is None:
            why = "base failed" if base is None else "variant failed"
            out[name] = {"value": None, "reason": why, "overlap_db": None,
                         "overlap_fraction": 0.0, "method": method, "points": None}
            continue
        n = min(len(base["results"]["bpp"]), len(c["results"]["bpp"]))
        m = method if n >= MIN_POINTS[method] else "pchip"
        res = bd_rate(base["results"]["bpp"], base["results"]["psnr-rgb"],
                      c["results"]["bpp"], c["results"]["psnr-rgb"], method=m).to_dict()
        out[name] = res
    return out


def _fmt(v, spec=".3f", none="-"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return format(v, spec)


def _bd_cell(bd: Dict) -> str:
    if bd.get("value") is None:
        return f"n/a ({bd.get('reason')})"
    return f"{bd['value']:+.2f}%"


def _overlap_cell(bd: Dict) -> str:
    if not bd.get("overlap_db"):
        return "-"
    lo, hi = bd["overlap_db"]
    return f"{lo:.2f}-{hi:.2f} dB ({100 * bd['overlap_fraction']:.0f}%)"


def write_markdown(report: Dict) -> str:
    s = report["settings"]
    meta = report["meta"]
    res = report["variants"]
    smoke = s["steps"] < SMOKE_STEPS
    L = [f"# GLIC ablation: {s['base']} and its variants", ""]
    L.append(f"Measured {meta['date']} on {meta['platform']} ({meta['cpu_count']} CPUs, "
             f"{s['threads']} torch thread(s), load average at start "
             f"{meta.get('load_average_at_start')}), device {meta['device']}"
             f"{' (' + meta['gpu'] + ')' if meta.get('gpu') else ''}, torch {meta['torch']}, "
             f"commit {meta['git_commit']}. Whole run: {report['wall_s'] / 60:.1f} min.")
    L.append("")
    fps = report["code_fingerprints"]
    if len(fps) > 1:
        mixed = ", ".join(f"{n} ({'/'.join(r['training'].get('code_fingerprints', []))})"
                          for n, r in res.items())
        L += [f"**Warning: the runs did not all train and code with the same `pyg_glic`** "
              f"(fingerprints {', '.join(fps)}; coded with {meta['pyg_glic_fingerprint']}; "
              f"per run: {mixed}): the package changed between them, so the comparison "
              f"mixes code versions. Retrain the affected runs (remove their folders).", ""]
    else:
        L += [f"Every run trained and coded with the same `pyg_glic` (source fingerprint "
              f"{fps[0]}{', a copy taken at the start' if meta.get('pyg_glic_copy') else ''}).",
              ""]
    lr = s["lr"] if s["lr"] is not None else "the trainer's default"
    L.append(f"Every run: {s['steps']} steps of {s['batch']} crops of {s['crop']}x{s['crop']}, "
             f"seed {s['seed']}, lr {lr}"
             + "".join(f", {k} {s[k]}" for k in ("lr_schedule", "warmup", "ema_decay",
                                                  "ortho_weight") if s.get(k) is not None)
             + f", from {s['train_images']} images of {', '.join(s['train_dirs'])}"
             + (" (variable rate: one level drawn per batch)" if s["levels"] else
                f" (fixed rate, quality {s['qualities'][0]:g})") + ".")
    crop = (f"centre-cropped to {s['eval_crop']}x{s['eval_crop']}" if s["eval_crop"]
            else "at full size")
    L.append(f"Coded: {len(s['eval_images'])} images of {s['kodak']} ({', '.join(s['eval_images'])}), "
             f"{crop}, at qualities {', '.join(f'{q:g}' for q in s['qualities'])}; each image "
             f"coded to a real `.glic` file and decoded from its bytes; rate = the file's "
             f"size (header, strings, CRC) less its configuration-name field (whose length "
             f"differs between variants); "
             f"PSNR on 8-bit RGB; means over the images.")
    L.append("")
    if smoke:
        L += [f"**Smoke budget ({s['steps']} steps per run): this shows that the machinery "
              f"works end to end. Its numbers say nothing about the paper's claims**: "
              f"models this undertrained differ by noise and by how fast each starts to "
              f"learn, not by what they can reach.", ""]
    if not s["levels"]:
        L += ["Fixed-rate base: one quality, one rate point per variant, so no BD-rate "
              "exists; compare the points below.", ""]
    L += ["## BD-rate of each variant against the base", "",
          f"Bits at equal PSNR ({report['bd_method']}; negative = the variant needs fewer "
          "bits than the base = better), over the PSNR range both curves cover.", "",
          "| variant | configuration | status | BD-rate vs base | PSNR overlap (of union) "
          "| paper's claim |", "|---|---|---|---|---|---|"]
    for name, r in res.items():
        bd = report["bd_rates"].get(name)
        status = r["status"] if r["status"] == "ok" else f"**{r['status']}**"
        L.append(f"| {name} | `{r['config']}` | {status} | "
                 f"{'-' if bd is None else _bd_cell(bd)} | "
                 f"{'-' if bd is None else _overlap_cell(bd)} | {CLAIMS.get(name, '')} |")
    L += ["", "## Training and coding cost", "",
          "| variant | parameters | steps | training wall (s) | wall s/step | CPU s/step "
          "| final train loss | train bpp | train PSNR (dB) | mean encode / decode (s) |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        t = r.get("training", {})
        ft = t.get("final_train") or {}
        c = r.get("curve")
        cpu = t["train_cpu_s"] / t["steps"] if t.get("train_cpu_s") and t.get("steps") else None
        codet = "-"
        if c:
            codet = (f"{np.mean(c['results']['encoding_time']):.3f} / "
                     f"{np.mean(c['results']['decoding_time']):.3f}")
        L.append(f"| {name} | {_fmt(r.get('parameters'), ',')} | {_fmt(t.get('steps'), 'd')} | "
                 f"{_fmt(t.get('train_wall_s'), '.0f')} | {_fmt(t.get('s_per_step'), '.2f')} | "
                 f"{_fmt(cpu, '.2f')} | "
                 f"{_fmt(ft.get('loss'), '.4f')} | {_fmt(ft.get('bpp'), '.4f')} | "
                 f"{_fmt(ft.get('psnr'), '.2f')} | {codet} |")
    L += ["", "Training wall time counts the optimizer steps with data loading (the "
          "trainer's clock), not start-up or export; on a shared machine it follows the "
          "other load, and the CPU time of the training process (user + system) is the "
          "steadier measure of a variant's cost. The final train numbers average the last "
          "logging window over the levels drawn in it.", "",
          "## Rate-distortion points", "",
          "| variant | " + " | ".join(f"q{q:g} bpp / PSNR" for q in s["qualities"]) + " |",
          "|---|" + "---|" * len(s["qualities"])]
    for name, r in res.items():
        c = r.get("curve")
        if not c:
            L.append(f"| {name} | " + " | ".join("-" for _ in s["qualities"]) + " |")
            continue
        L.append(f"| {name} | " + " | ".join(
            f"{b:.4f} / {p:.2f}" for b, p in zip(c["results"]["bpp"], c["results"]["psnr-rgb"]))
            + " |")
    failed = [(n, r) for n, r in res.items() if r["status"] != "ok"]
    if failed:
        L += ["", "## Failures", ""]
        for n, r in failed:
            L.append(f"- **{n}** (`{r['config']}`): {r.get('error')}")
    L += ["", "Plot: `rd.png`. Machine-readable: `results.json` (per-image records, "
          "commands, run folders).", ""]
    return "\n".join(L)


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_outputs(report: Dict, out: Path) -> List[str]:
    from pyg_glic.evaluation.report import dumps, plot_rd

    out.mkdir(parents=True, exist_ok=True)
    report["files"] = [os.fspath(out / f) for f in ("results.json", "results.md", "rd.png")]
    md = write_markdown(report)
    _atomic_write(out / "results.json", lambda p: Path(p).write_text(dumps(report)))
    _atomic_write(out / "results.md", lambda p: Path(p).write_text(md))
    curves = []
    for name, r in report["variants"].items():
        if r.get("curve"):
            c = dict(r["curve"], name=name if name != BASE else f"{report['settings']['base']} (base)")
            curves.append(c)
    s = report["settings"]
    title = (f"{s['base']} ablation, {s['steps']} steps each, {len(s['eval_images'])} images"
             + (" (smoke budget)" if s["steps"] < SMOKE_STEPS else ""))

    def plot(p):
        plot_rd(curves, [], p + ".png", title=title)
        os.replace(p + ".png", p)
    _atomic_write(out / "rd.png", plot)
    return report["files"]


# -------------------------------------------------------------------------------- main

def run(argv: Optional[Sequence[str]] = None) -> Dict:
    r"""The whole ablation; returns the report (also written to ``--out``).

    Raises:
        BadInput: a bad argument or input (nothing trained or written).
    """
    args = parse_args(argv)
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    code = CodeSnapshot(use_copy=not args.in_process)
    try:
        return _run(args, argv, code, t_start)
    finally:
        code.close()


def _run(args, argv, code: CodeSnapshot, t_start: float) -> Dict:
    plan = plan_runs(args)
    device = torch.device(args.device)
    meta = machine_info(device)
    images = load_eval_images(plan["eval_files"], args.eval_crop)
    results: Dict[str, Dict] = {}
    for entry in plan["entries"]:
        r = {"config": entry["config"], "claim": CLAIMS.get(entry["name"], "")}
        r["training"] = train_entry(args, plan, entry, code)
        if "error" in r["training"]:
            r["status"], r["error"] = "training failed", r["training"]["error"]
        else:
            print(f"== {entry['name']}: coding {len(images)} images at "
                  f"{len(plan['qualities'])} qualities", flush=True)
            t0 = time.perf_counter()
            try:
                curve = code_entry(args, plan, entry, images)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                r["status"], r["error"] = "coding failed", f"{type(e).__name__}: {e}"[:600]
                print(f"   coding failed: {r['error']}", file=sys.stderr, flush=True)
            else:
                r["status"], r["curve"] = "ok", curve
                r["parameters"] = curve.pop("parameters")
                r["coding_wall_s"] = time.perf_counter() - t0
        results[entry["name"]] = r
    bd = bd_against_base(results, args.bd_method)
    settings = {
        "base": args.base, "levels": plan["levels"], "variants": plan["variants"],
        "qualities": plan["qualities"], "steps": args.steps, "crop": args.crop,
        "batch": args.batch, "seed": args.seed, "lr": args.lr, "lr_schedule": args.lr_schedule,
        "warmup": args.warmup, "ema_decay": args.ema_decay, "ortho_weight": args.ortho_weight,
        "train_dirs": plan["train_dirs"], "train_images": plan["train_images"],
        "kodak": os.path.abspath(args.kodak), "eval_images": [im["name"] for im in images],
        "eval_crop": args.eval_crop, "runs": os.fspath(plan["runs"]), "threads": args.threads,
        "device": args.device, "ms_ssim": args.ms_ssim,
        "command": " ".join([os.path.relpath(__file__, ROOT)] + list(argv if argv is not None
                                                                     else sys.argv[1:])),
    }
    used = sorted({fp for r in results.values()
                   for fp in r["training"].get("code_fingerprints", [])} | {code.fingerprint})
    meta["pyg_glic_fingerprint"] = code.fingerprint
    meta["pyg_glic_copy"] = code.dir is not None
    report = {"meta": meta, "settings": settings, "bd_method": args.bd_method,
              "code_fingerprints": used,
              "variants": results, "bd_rates": bd, "claims": CLAIMS,
              "wall_s": time.perf_counter() - t_start}
    write_outputs(report, plan["out"])
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        report = run(argv)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = [n for n, r in report["variants"].items() if r["status"] != "ok"]
    print(f"wrote {', '.join(report['files'])} in {report['wall_s'] / 60:.1f} min"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
