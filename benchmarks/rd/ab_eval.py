r"""A/B of the recipe pieces that cost no training: one checkpoint coded with and
without each of them, on the campaign curve's images and rates.

    python benchmarks/rd/ab_eval.py CHECKPOINT --kodak DIR [--images 01,05,07,13,15,23] \
        [--qualities 1.5,3,4.5,6] [--out benchmarks/results/rd_campaign] [--threads 1]

The pieces (the issue's recipe, point 3):

- **EMA**: the exponential moving average of the weights the trainer keeps
  (``ema``) against the raw weights of the same step (``raw``);
- **quantile refresh**: ``net.update(force=True, update_quantiles=True)`` before
  coding, which re-derives the entropy bottleneck's quantiles from its learned
  density (CompressAI), against ``update(force=True)``, which builds the coding
  tables from the quantiles the auxiliary loss has trained.

All four combinations are coded for real (``net.compress`` -> bytes ->
``net.decompress``, as ``curve.py`` does: same images, rates and JPEG
interpolation). Per variant: mean bpp and PSNR per rate, JPEG's PSNR at that bpp,
the gain over JPEG per rate and its mean; per piece: the BD-rate (cubic, over the
common PSNR range) of "with" against "without" for each state of the other piece.
Writes ``ab_eval_step<STEP>.{json,md}`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.rd import curve as C  # noqa: E402  (the curve's measuring functions)

VARIANTS = [("ema", True), ("ema", False), ("raw", True), ("raw", False)]


def code_rates(net, rgbs, jpeg_curves, qualities, device) -> List[Dict]:
    r"""Code every image at every quality for real; per quality the mean bpp and PSNR,
    JPEG's PSNR at that bpp (interpolated per image, then averaged) and the gain over it."""
    rates = []
    for q in qualities:
        pts = [C.code_learned(net, rgb, q, device) for rgb in rgbs]
        jp = float(np.mean([C.psnr_at(c, r["bpp"])[0] for c, r in zip(jpeg_curves, pts)]))
        bpp = float(np.mean([r["bpp"] for r in pts]))
        psnr = float(np.mean([r["psnr"] for r in pts]))
        rates.append(dict(quality=q, bpp=round(bpp, 5), psnr=round(psnr, 3),
                          jpeg_psnr=round(jp, 3), gain_vs_jpeg_db=round(psnr - jp, 3)))
    return rates


def bd_with_vs_without(with_rates: List[Dict], without_rates: List[Dict]) -> Dict:
    r"""BD-rate (cubic) of the ``code_rates`` points "with" a piece against "without" it."""
    from pyg_glic.evaluation.bdrate import bd_rate
    return bd_rate([x["bpp"] for x in without_rates], [x["psnr"] for x in without_rates],
                   [x["bpp"] for x in with_rates], [x["psnr"] for x in with_rates]).to_dict()


def _name(weights: str, quantiles: bool) -> str:
    return f"{weights} weights, {'refreshed' if quantiles else 'trained'} quantiles"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path, help="a pyg-glic train checkpoint holding EMA weights")
    p.add_argument("--kodak", type=Path, required=True, help="the Kodak folder")
    p.add_argument("--images", default=C.DEFAULT_IMAGES)
    p.add_argument("--qualities", default=C.DEFAULT_QUALITIES)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rd_campaign")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    try:
        qualities = C.parse_qualities(a.qualities)
        images = C.resolve_images(a.kodak, a.images)
        if not a.checkpoint.is_file():
            raise C.InputError(f"{a.checkpoint} does not exist")
    except C.InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import torch

    from benchmarks._common import machine_info
    from pyg_glic.evaluation import classical
    from pyg_glic.training.checkpoint import load_checkpoint
    from pyg_glic.training.data import read_rgb
    from pyg_glic.training.models import load_model_file

    torch.set_num_threads(a.threads)
    device = torch.device("cpu")
    ckpt = load_checkpoint(a.checkpoint)
    step = int(ckpt.get("step") or 0)
    cpu_h = float(ckpt.get("cpu_seconds") or 0) / 3600
    if "ema" not in ckpt or not ckpt["ema"]:
        print(f"error: {a.checkpoint} holds no EMA weights to compare", file=sys.stderr)
        return 2
    del ckpt
    rgbs = [np.asarray(read_rgb(f), dtype=np.uint8).copy() for f in images]
    jpeg = classical.resolve(["jpeg"])["jpeg"]
    curves = [C.classical_curve(rgb, jpeg, C.SWEEPS["jpeg"]) for rgb in rgbs]

    t0 = time.perf_counter()
    variants: List[Dict] = []
    for weights, quantiles in VARIANTS:
        net = load_model_file(a.checkpoint, ema=(weights == "ema")).model.eval().to(device)
        net.update(force=True, update_quantiles=quantiles)
        rates = code_rates(net, rgbs, curves, qualities, device)
        variants.append(dict(name=_name(weights, quantiles), weights=weights,
                             update_quantiles=quantiles, rates=rates,
                             gain_vs_jpeg_db=round(float(np.mean(
                                 [r["gain_vs_jpeg_db"] for r in rates])), 3)))
        print(f"{variants[-1]['name']:40s} gain over JPEG {variants[-1]['gain_vs_jpeg_db']:+.3f} dB",
              flush=True)
    seconds = time.perf_counter() - t0

    by = {(v["weights"], v["update_quantiles"]): v for v in variants}
    pieces = {
        "EMA (ema vs raw)": {f"quantiles {'refreshed' if qq else 'trained'}":
                             bd_with_vs_without(by[("ema", qq)]["rates"],
                                                by[("raw", qq)]["rates"]) for qq in (True, False)},
        "quantile refresh (refreshed vs trained)": {
            f"{w} weights": bd_with_vs_without(by[(w, True)]["rates"], by[(w, False)]["rates"])
            for w in ("ema", "raw")},
    }
    info = machine_info(device)
    rep = {"tool": "benchmarks/rd/ab_eval.py", "checkpoint": os.fspath(a.checkpoint),
           "step": step, "cpu_hours": round(cpu_h, 4), "images": [f.name for f in images],
           "qualities": qualities, "variants": variants, "bd_rate_with_vs_without": pieces,
           "seconds": round(seconds, 1), "machine": info}
    a.out.mkdir(parents=True, exist_ok=True)
    stem = a.out / f"ab_eval_step{step}"
    stem.with_suffix(".json").write_text(json.dumps(rep, indent=1) + "\n")
    lines = [f"# A/B of the free recipe pieces at campaign step {step} ({cpu_h:.2f} CPU-hours)",
             "", f"{len(images)} Kodak images ({', '.join(f.stem for f in images)}), "
             f"qualities {', '.join(C.qlabel(q) for q in qualities)}, real bitstreams; JPEG "
             f"(Pillow) PSNR interpolated at the same bpp per image; {info['processor']}, "
             f"{a.threads} thread(s), torch {info['torch']}, commit {info['git_commit']}.", "",
             "| variant | " + " | ".join(f"q{C.qlabel(q)}: bpp, PSNR (vs JPEG)"
                                        for q in qualities) + " | mean gain vs JPEG |",
             "|---|" + "---|" * (len(qualities) + 1)]
    for v in variants:
        cells = [f"{r['bpp']:.4f}, {r['psnr']:.2f} ({r['gain_vs_jpeg_db']:+.2f})"
                 for r in v["rates"]]
        lines.append(f"| {v['name']} | " + " | ".join(cells) + f" | {v['gain_vs_jpeg_db']:+.3f} dB |")
    lines += ["", "BD-rate of each piece, with against without (negative: the piece saves "
              "bits at equal PSNR):", "", "| piece | other piece | BD-rate |", "|---|---|---|"]
    for piece, rows in pieces.items():
        for other, r in rows.items():
            val = "n/a (" + str(r["reason"]) + ")" if r["value"] is None else \
                f"{r['value']:+.2f}% (overlap {100 * r['overlap_fraction']:.0f}%)"
            lines.append(f"| {piece} | {other} | {val} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and .md ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
