r"""One point of the campaign's learning curve: a checkpoint coded for real on a few
Kodak images at a few rates, against JPEG and WebP at the same bpp on the same image.

    python benchmarks/rd/curve.py CHECKPOINT --kodak DIR [--images 01,05,07,13,15,23] \
        [--qualities 1.5,3,4.5,6] [--csv benchmarks/results/rd_campaign/curve.csv] \
        [--plot benchmarks/results/rd_campaign/curve.png] [--device cpu] [--threads 2]

``CHECKPOINT`` is a ``pyg-glic train`` checkpoint (its EMA weights are coded when it
holds them, else its raw weights) or an exported weights file, of a variable-rate GLIC
configuration (``glic-lite``). Each image is coded at each quality through
``net.compress`` -> bytes -> ``net.decompress`` after ``net.update(force=True,
update_quantiles=True)`` (CompressAI's quantile refresh); bpp is 8 x the bytes of
the entropy-coded strings over the pixels, PSNR-RGB is
measured on the 8-bit rounded output (:mod:`pyg_glic.evaluation.metrics`). JPEG and WebP
(Pillow, :mod:`pyg_glic.evaluation.classical`) are coded over their quality range on the
same image and their PSNR at the learned codec's bpp is interpolated, linearly in
log(bpp) on each codec's upper envelope (extrapolated from the end segment, and flagged
in the JSON, where the learned bpp lies outside the codec's range); then the numbers are
averaged over the images.

One row is appended to the CSV (created with its header if missing; the whole file is
rewritten to a temporary file and renamed into place): ``utc, step, total_steps,
cpu_hours, weights`` then, per quality ``Q``, ``bpp_qQ, psnr_qQ, jpeg_psnr_qQ,
webp_psnr_qQ`` (means over the images), then ``gain_vs_jpeg_db`` and ``gain_vs_webp_db``
(the mean over the rates of ``psnr - jpeg_psnr`` and ``psnr - webp_psnr``). A JSON sidecar
next to the CSV (same name, ``.json``) holds the same rows, the machine of every run
(platform, torch, device, as ``benchmarks/_common.py`` describes it) and the per-image
numbers of the latest row. ``--plot`` redraws the curve from the whole CSV: the PSNR gap
to JPEG at equal bpp per rate and its mean against the CPU-hours of training, and the
bpp per rate.

Bad input (a missing or unreadable checkpoint, an empty Kodak folder, a bad quality
list) ends with a one-line ``error: ...`` and exit status 2 before anything is written.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# torch_geometric's import calls the deprecated torch.jit.script: not ours to report.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated",
                        category=FutureWarning)
# torch, PyG and pyg_glic are imported after the arguments are checked (a bad input
# fails in a fraction of a second, not after ten seconds of imports).

DEFAULT_IMAGES = "01,05,07,13,15,23"
DEFAULT_QUALITIES = "1.5,3,4.5,6"
#: Classical sweeps, denser and wider than ``pyg-glic eval``'s so that the low rates of
#: an early checkpoint (0.1-0.3 bpp on Kodak) mostly fall inside each codec's range.
SWEEPS = {"jpeg": (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95),
          "webp": (0, 1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95)}
FIXED = ("utc", "step", "total_steps", "cpu_hours", "weights")
GAINS = ("gain_vs_jpeg_db", "gain_vs_webp_db")
PER_Q = ("bpp", "psnr", "jpeg_psnr", "webp_psnr")


class InputError(ValueError):
    r"""A bad input; ``pyg_glic.training.data.InputError`` is caught the same way."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


# ----------------------------------------------------------------------- inputs

def parse_qualities(text: str) -> List[float]:
    r"""``"1.5,3,4.5,6"`` -> ``[1.5, 3.0, 4.5, 6.0]`` (sorted, without repeats)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            q = float(part)
        except ValueError:
            raise InputError(f"--qualities: {part!r} is not a number") from None
        if not math.isfinite(q):
            raise InputError(f"--qualities: {part!r} is not a finite number")
        out.append(q)
    if not out:
        raise InputError(f"--qualities: no quality in {text!r}")
    return sorted(set(out))


def qlabel(q: float) -> str:
    return f"{q:g}"


def resolve_images(folder: Path, ids: str) -> List[Path]:
    r"""Kodak image ids (``01`` -> ``kodim01.png``) or file names/stems in ``folder``."""
    if not folder.is_dir():
        raise InputError(f"--kodak {folder} is not a folder")
    files = {p.name: p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in (".png", ".ppm", ".bmp", ".tif", ".tiff")}
    if not files:
        raise InputError(f"--kodak {folder} holds no image (.png)")
    stems = {p.stem: p for p in files.values()}
    out = []
    for i in [s.strip() for s in ids.split(",") if s.strip()]:
        p = files.get(i) or stems.get(f"kodim{i}") or stems.get(i)
        if p is None:
            raise InputError(f"--images: no kodim{i}.png (nor {i}) in {folder}")
        if p not in out:
            out.append(p)
    if not out:
        raise InputError(f"--images: no image id in {ids!r}")
    return out


def load_codec(path: Path):
    r"""``(net, info)``: the EMA (else raw) weights of a checkpoint, or an exported file.

    ``info``: ``kind`` (checkpoint/weights), ``weights`` (ema/raw/export), ``step``,
    ``total_steps``, ``cpu_seconds``, ``config``.
    """
    from pyg_glic.training.checkpoint import load_checkpoint
    from pyg_glic.training.models import is_glic, load_model_file

    lm = load_model_file(path)  # the EMA weights of a checkpoint that has them; InputError
    info = {"kind": lm.kind, "config": lm.config, "step": lm.step, "total_steps": None,
            "cpu_seconds": None, "weights": "export"}
    if lm.kind.startswith("checkpoint"):  # "checkpoint" or "checkpoint-ema"
        ckpt = load_checkpoint(path)
        info.update(kind="checkpoint", weights="ema" if lm.kind == "checkpoint-ema" else "raw",
                    step=int(ckpt.get("step") or 0),
                    total_steps=(ckpt.get("args") or {}).get("steps"),
                    cpu_seconds=ckpt.get("cpu_seconds"))
    net = lm.model
    if not is_glic(lm.config) or getattr(net, "levels", None) is None:
        raise InputError(f"{path} holds a {lm.config} model; curve.py codes a variable-rate "
                         f"GLIC configuration (such as glic-lite)")
    return net, info


def read_csv(path: Path) -> Tuple[List[str], List[Dict[str, str]]]:
    if not path.exists():
        return [], []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise InputError(f"--csv {path} is not readable ({e})") from None
    if header and not set(FIXED + GAINS) <= set(header):
        raise InputError(f"--csv {path} is not a curve.py file (its header lacks "
                         f"{sorted(set(FIXED + GAINS) - set(header))})")
    return header, rows


# ---------------------------------------------------------------------- measuring

def _nbytes(strings) -> int:
    if isinstance(strings, (bytes, bytearray)):
        return len(strings)
    return sum(_nbytes(s) for s in strings)


def code_learned(net, rgb: np.ndarray, q: float, device) -> Dict:
    import torch

    from pyg_glic.evaluation import metrics
    from pyg_glic.utils.image import to_uint8

    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255).to(device)
    with torch.no_grad():
        t0 = time.perf_counter()
        enc = net.compress(x, quality=q)
        nbytes = _nbytes(enc["strings"])
        t1 = time.perf_counter()
        x_hat = net.decompress(enc["strings"], enc["shape"], quality=q)["x_hat"]
        t2 = time.perf_counter()
    rec = to_uint8(x_hat)
    H, W = rgb.shape[:2]
    return {"bytes": nbytes, "bpp": metrics.bpp(nbytes, H, W),
            "psnr": metrics.psnr_rgb(rgb, rec), "encode_s": t1 - t0, "decode_s": t2 - t1}


def classical_curve(rgb: np.ndarray, codec, sweep: Sequence) -> Dict:
    from pyg_glic.evaluation import classical as C

    pts = [C.measure(rgb, codec, v, ms_ssim=False) for v in sweep]
    return {"settings": list(sweep), "bpp": [p["bpp"] for p in pts],
            "psnr": [p["psnr-rgb"] for p in pts]}


def psnr_at(curve: Dict, bpp: float) -> Tuple[float, bool]:
    r"""PSNR of a classical codec at ``bpp`` (linear in log bpp on the upper envelope);
    ``(psnr, extrapolated)``."""
    pts = sorted((b, p) for b, p in zip(curve["bpp"], curve["psnr"])
                 if b > 0 and math.isfinite(p))
    env: List[Tuple[float, float]] = []
    for b, p in pts:  # keep the points no cheaper setting beats
        if env and b <= env[-1][0]:
            if p > env[-1][1]:
                env[-1] = (env[-1][0], p)
            continue
        if not env or p > env[-1][1]:
            env.append((b, p))
    if len(env) < 2:
        raise RuntimeError("a classical codec gave fewer than two distinct points")
    lb = np.log([b for b, _ in env])
    ps = np.array([p for _, p in env])
    x = math.log(bpp)
    if lb[0] <= x <= lb[-1]:
        return float(np.interp(x, lb, ps)), False
    i = 0 if x < lb[0] else len(lb) - 2
    slope = (ps[i + 1] - ps[i]) / (lb[i + 1] - lb[i])
    return float(ps[i] + slope * (x - lb[i])), True


# -------------------------------------------------------------------------- output

def header_for(qualities: Sequence[float], old: Sequence[str]) -> List[str]:
    r"""The CSV header: fixed columns, per-quality groups (the union with an existing
    file's, by quality), the two gains, then any other column an old file has."""
    qs = set(qlabel(q) for q in qualities)
    for c in old:
        if c.startswith("bpp_q"):
            qs.add(c[len("bpp_q"):])
    cols = list(FIXED)
    for q in sorted(qs, key=float):
        cols += [f"{k}_q{q}" for k in PER_Q]
    cols += list(GAINS)
    cols += [c for c in old if c not in cols]
    return cols


def _csv_text(header: Sequence[str], rows: Sequence[Dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(header), restval="", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in header})
    return buf.getvalue()


def _num(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _json_value(key: str, v):
    if key in ("utc", "weights"):
        return v
    f = _num(v)
    return int(f) if f is not None and key in ("step", "total_steps") else f


def render_plot(header: Sequence[str], rows: Sequence[Dict], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qs = [c[len("bpp_q"):] for c in header if c.startswith("bpp_q")]
    pts = sorted((r for r in rows if _num(r.get("cpu_hours")) is not None),
                 key=lambda r: _num(r["cpu_hours"]))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 7.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def series(key):
        xy = [(_num(r["cpu_hours"]), _num(r.get(key))) for r in pts]
        xy = [(x, y) for x, y in xy if y is not None]
        return [x for x, _ in xy], [y for _, y in xy]

    for i, q in enumerate(qs):
        c = colors[i % len(colors)]
        xy = [(_num(r["cpu_hours"]), _num(r.get(f"psnr_q{q}")), _num(r.get(f"jpeg_psnr_q{q}")))
              for r in pts]
        xy = [(x, a - b) for x, a, b in xy if a is not None and b is not None]
        ax1.plot([x for x, _ in xy], [y for _, y in xy], "o-", ms=3, lw=1, color=c,
                 label=f"q{q}")
        x, y = series(f"bpp_q{q}")
        ax2.plot(x, y, "o-", ms=3, lw=1, color=c, label=f"q{q}")
    x, y = series("gain_vs_jpeg_db")
    ax1.plot(x, y, "s-", ms=4, lw=2.2, color="k", label="mean vs JPEG")
    x, y = series("gain_vs_webp_db")
    ax1.plot(x, y, "s--", ms=3, lw=1.5, color="0.45", label="mean vs WebP")
    ax1.axhline(0.0, color="0.6", lw=0.8)
    ax1.set_ylabel("PSNR - JPEG's PSNR at equal bpp (dB)")
    ax1.set_title(title, fontsize=9)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8, ncol=3)
    ax2.set_ylabel("bpp")
    ax2.set_xlabel("training CPU-hours")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8, ncol=len(qs) or 1)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = _Parser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path, help="checkpoint.pt (or an exported weights file)")
    p.add_argument("--kodak", type=Path, required=True, help="folder of the Kodak PNGs")
    p.add_argument("--images", default=DEFAULT_IMAGES,
                   help=f"Kodak ids or file names, comma-separated (default {DEFAULT_IMAGES})")
    p.add_argument("--qualities", default=DEFAULT_QUALITIES,
                   help=f"qualities in [1, levels], comma-separated (default {DEFAULT_QUALITIES})")
    p.add_argument("--csv", type=Path, default=ROOT / "benchmarks/results/rd_campaign/curve.csv")
    p.add_argument("--plot", type=Path, help="PNG redrawn from the whole CSV")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    a = p.parse_args(argv)
    try:
        # the inputs that need no torch first
        if a.threads < 1:
            raise InputError(f"--threads must be at least 1, got {a.threads}")
        if not a.checkpoint.is_file():
            raise InputError(f"no such checkpoint or weights file: {a.checkpoint}")
        qualities = parse_qualities(a.qualities)
        images = resolve_images(a.kodak, a.images)
        if a.csv.parent.exists() and not a.csv.parent.is_dir():
            raise InputError(f"--csv: {a.csv.parent} is not a folder")
        old = read_csv(a.csv)
        from pyg_glic.training.data import InputError as LibInputError

        try:
            return run(a, qualities, images, old)
        except LibInputError as e:
            raise InputError(str(e)) from None
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(a, qualities: List[float], images: List[Path], old) -> int:
    import torch

    from benchmarks._common import machine_info
    from pyg_glic.evaluation import classical as C
    from pyg_glic.training.data import read_rgb
    from pyg_glic.training.distributed import resolve_device
    from pyg_glic.utils.image import atomic_write

    t_start = time.perf_counter()
    # ---- the inputs that need torch, still before coding anything --------------------
    torch.set_num_threads(a.threads)
    old_header, old_rows = old
    try:
        device = resolve_device(a.device)
    except (ValueError, RuntimeError) as e:
        raise InputError(f"--device: {e}") from None
    rgbs = [np.asarray(read_rgb(f), dtype=np.uint8).copy() for f in images]
    try:
        codecs = C.resolve(["jpeg", "webp"])
    except ValueError as e:
        raise InputError(str(e)) from None
    net, info = load_codec(a.checkpoint)
    for q in qualities:
        if not 1 <= q <= net.levels:
            raise InputError(f"--qualities: {qlabel(q)} is outside [1, {net.levels}] "
                             f"({info['config']} has {net.levels} levels)")

    # ---- code ---------------------------------------------------------------------
    net = net.eval().to(device)
    net.update(force=True, update_quantiles=True)
    t_learned = time.perf_counter()
    per_image = []
    for f, rgb in zip(images, rgbs):
        for q in qualities:
            r = code_learned(net, rgb, q, device)
            per_image.append({"image": f.name, "height": rgb.shape[0], "width": rgb.shape[1],
                              "quality": q, **r})
    t_classical = time.perf_counter()
    curves = {name: {f.name: classical_curve(rgb, codecs[name], SWEEPS[name])
                     for f, rgb in zip(images, rgbs)} for name in ("jpeg", "webp")}
    t_end = time.perf_counter()
    for r in per_image:
        for name in ("jpeg", "webp"):
            psnr, extra = psnr_at(curves[name][r["image"]], r["bpp"])
            r[f"{name}_psnr"] = psnr
            r[f"{name}_extrapolated"] = extra

    # ---- the row --------------------------------------------------------------------
    utc = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cpu = info["cpu_seconds"]
    row: Dict[str, object] = {
        "utc": utc, "step": "" if info["step"] is None else int(info["step"]),
        "total_steps": "" if info["total_steps"] is None else int(info["total_steps"]),
        "cpu_hours": "" if cpu is None else f"{float(cpu) / 3600:.4f}",
        "weights": info["weights"]}
    gains = {"jpeg": [], "webp": []}
    for q in qualities:
        rs = [r for r in per_image if r["quality"] == q]
        mean = {k: float(np.mean([r[k] for r in rs])) for k in PER_Q}
        L = qlabel(q)
        row[f"bpp_q{L}"] = f"{mean['bpp']:.5f}"
        for k in ("psnr", "jpeg_psnr", "webp_psnr"):
            row[f"{k}_q{L}"] = f"{mean[k]:.3f}"
        gains["jpeg"].append(mean["psnr"] - mean["jpeg_psnr"])
        gains["webp"].append(mean["psnr"] - mean["webp_psnr"])
    row["gain_vs_jpeg_db"] = f"{np.mean(gains['jpeg']):.3f}"
    row["gain_vs_webp_db"] = f"{np.mean(gains['webp']):.3f}"
    header = header_for(qualities, old_header)
    rows = old_rows + [row]

    # ---- render everything, then write (each file atomically) ---------------------
    json_path = a.csv.with_suffix(".json")
    runs = []
    if json_path.is_file():
        try:
            runs = list(json.loads(json_path.read_text()).get("runs") or [])
        except (ValueError, OSError, AttributeError):
            runs = []
    from PIL import __version__ as pil_version

    run_info = {"utc": utc, "step": row["step"], "checkpoint": os.fspath(a.checkpoint),
                "weights": info["weights"], "config": info["config"],
                "update_quantiles": True, "machine": machine_info(device),
                "seconds": {"learned": round(t_classical - t_learned, 2),
                            "classical": round(t_end - t_classical, 2),
                            "total": round(time.perf_counter() - t_start, 2)}}
    sidecar = {
        "tool": "benchmarks/rd/curve.py", "csv": os.fspath(a.csv), "columns": header,
        "rows": [{k: _json_value(k, r.get(k)) for k in header} for r in rows],
        "runs": runs + [run_info],
        "latest": {"utc": utc, "checkpoint": os.fspath(a.checkpoint), "config": info["config"],
                   "step": row["step"], "weights": info["weights"],
                   "images": [f.name for f in images], "qualities": qualities,
                   "per_image": per_image, "classical": {
                       name: {"pillow": pil_version, "options": codecs[name].options(50),
                              "curves": curves[name]} for name in curves},
                   "method": "learned: net.compress/decompress, bytes of the strings; "
                             "classical: PSNR interpolated linearly in log(bpp) on each "
                             "codec's upper envelope at the learned bpp, per image, "
                             "then averaged"},
    }
    png = None
    if a.plot is not None:
        title = (f"{info['config']} ({info['weights']} weights) on {len(images)} Kodak images, "
                 f"real bitstreams; latest step {row['step']}"
                 + (f" of {row['total_steps']}" if row["total_steps"] != "" else ""))
        png = render_plot(header, rows, title)
    umask = os.umask(0)
    os.umask(umask)

    def write(path: Path, data: bytes) -> None:  # atomically, readable as the umask allows
        atomic_write(path, data, force=True)
        os.chmod(path, 0o666 & ~umask)

    a.csv.parent.mkdir(parents=True, exist_ok=True)
    write(a.csv, _csv_text(header, rows).encode())
    write(json_path, (json.dumps(sidecar, indent=1) + "\n").encode())
    if png is not None:
        a.plot.parent.mkdir(parents=True, exist_ok=True)
        write(a.plot, png)
    print(f"step {row['step']} ({row['cpu_hours'] or '?'} CPU-h, {info['weights']}): "
          + ", ".join(f"q{qlabel(q)} {row[f'bpp_q{qlabel(q)}']} bpp "
                      f"{row[f'psnr_q{qlabel(q)}']} dB" for q in qualities)
          + f"; vs JPEG {row['gain_vs_jpeg_db']} dB, vs WebP {row['gain_vs_webp_db']} dB "
          f"({run_info['seconds']['total']:.0f} s) -> {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
