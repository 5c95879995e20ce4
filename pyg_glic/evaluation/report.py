r"""Results in CompressAI's JSON schema, the BD-rate table and the rate-distortion plot.

A *curve* is a dict in CompressAI's result schema::

    {"name": str, "description": str,
     "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...],
                 "encoding_time": [...], "decoding_time": [...]}}

one entry per quality point, each the mean over the images. Curves measured here
add ``"kind"`` (``"learned"``/``"classical"``), ``"settings"`` (the quality or
setting of each point) and ``"per_image"`` (per point, one record per image).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Dict, Optional, Sequence

from .bdrate import BDResult
from ..training.data import InputError

SCHEMA_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")


def slug(name: str) -> str:
    r"""A file-name-safe version of a curve name."""
    s = re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_")
    return s or "codec"


def _nan_to_none(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def dumps(obj) -> str:
    r"""Strict JSON (``nan``/``inf`` written as ``null``), indented."""
    return json.dumps(_nan_to_none(obj), indent=2, allow_nan=False) + "\n"


def mean(values: Sequence[float]) -> float:
    vals = [float(v) for v in values]
    if not vals or any(math.isnan(v) for v in vals):
        return float("nan")
    return sum(vals) / len(vals)


def make_curve(name: str, description: str, kind: str, settings: Sequence,
               per_point: Sequence[Sequence[Dict]]) -> Dict:
    r"""A curve from per-image records (``per_point[i]`` = the records of point ``i``)."""
    results = {k: [mean([r[k] for r in recs]) for recs in per_point] for k in SCHEMA_KEYS}
    return {"name": name, "description": description, "results": results, "kind": kind,
            "settings": list(settings), "per_image": [list(recs) for recs in per_point]}


def load_reference(path) -> Dict:
    r"""A reference curve from a JSON file in CompressAI's schema.

    Also accepts the flat ``{"bpp": [...], "psnr": [...]}`` form some published
    result files use.

    Raises:
        InputError: the file is missing, not JSON, or has no matching bpp and PSNR lists.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such reference file: {p}")
    try:
        data = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{p} is not a JSON file ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected a JSON object")
    res = data.get("results") if isinstance(data.get("results"), dict) else data
    bpp = res.get("bpp")
    psnr = res.get("psnr-rgb", res.get("psnr"))
    if not isinstance(bpp, list) or not isinstance(psnr, list):
        raise InputError(f"{p} has no 'bpp' and 'psnr-rgb' lists (CompressAI's result schema)")
    if len(bpp) != len(psnr) or not bpp:
        raise InputError(f"{p}: {len(bpp)} bpp values but {len(psnr)} PSNR values")
    try:
        bpp = [float(v) for v in bpp]
        psnr = [float(v) for v in psnr]
    except (TypeError, ValueError):
        raise InputError(f"{p}: bpp and PSNR must be numbers") from None
    name = data.get("name") or p.stem
    results = {"bpp": bpp, "psnr-rgb": psnr}
    for k in ("ms-ssim-rgb", "encoding_time", "decoding_time"):
        if isinstance(res.get(k), list) and len(res[k]) == len(bpp):
            results[k] = res[k]
    return {"name": str(name), "description": str(data.get("description", "")),
            "results": results, "kind": "reference", "file": str(p)}


def schema_view(curve: Dict) -> Dict:
    r"""Just CompressAI's keys (name, description, results)."""
    return {"name": curve["name"], "description": curve["description"],
            "results": {k: v for k, v in curve["results"].items()}}


# ------------------------------------------------------------------------- BD table

def bd_markdown(rows: Sequence[Dict], anchors: Sequence[str], method: str,
                notes: Sequence[str] = ()) -> str:
    r"""A markdown table: one row per tested codec, one column per anchor.

    ``rows`` are ``{"name": str, "bd": {anchor name: BDResult}}``.
    """
    lines = [f"# BD-rate (PSNR-RGB, {method} interpolation)", "",
             "Negative = fewer bits than the anchor at the same PSNR, averaged over the PSNR "
             "range both curves cover; `n/a` where that range is empty or a curve has too "
             "few points (nothing is extrapolated). \"(overlap N%)\" flags a common PSNR "
             "range under half of the union of both ranges.", ""]
    lines.append("| codec | " + " | ".join(anchors) + " |")
    lines.append("|---|" + "---|" * len(anchors))
    for row in rows:
        cells = []
        for a in anchors:
            r: Optional[BDResult] = row["bd"].get(a)
            if r is None:
                cells.append("-")
            elif not r.ok:
                cells.append(f"n/a ({r.reason})")
            else:
                cell = f"{r.value:+.2f}%"
                if r.overlap_fraction < 0.5:
                    cell += f" (overlap {100 * r.overlap_fraction:.0f}%)"
                cells.append(cell)
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- plot

def plot_rd(curves: Sequence[Dict], references: Sequence[Dict], path, title: str = "") -> None:
    r"""PSNR against bpp for every curve (PNG; references dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6), dpi=120)
    markers = "os^vD<>pP*hX"
    xmax = 0.0
    for i, c in enumerate(curves):
        pts = sorted((b, p) for b, p in zip(c["results"]["bpp"], c["results"]["psnr-rgb"])
                     if math.isfinite(b) and math.isfinite(p))
        if not pts:
            continue
        xs, ys = zip(*pts)
        xmax = max(xmax, max(xs))
        learned = c.get("kind") == "learned"
        ax.plot(xs, ys, marker=markers[i % len(markers)], linestyle="-",
                linewidth=2.0 if learned else 1.2, markersize=5 if learned else 4,
                label=c["name"])
    for r in references:
        pts = sorted(zip(r["results"]["bpp"], r["results"]["psnr-rgb"]))
        xs, ys = zip(*pts)
        ax.plot(xs, ys, linestyle="--", linewidth=1.2, marker=".", label=r["name"])
    if xmax > 0:
        ax.set_xlim(0, xmax * 1.08)
        shown = [p for c in list(curves) + list(references)
                 for b, p in zip(c["results"]["bpp"], c["results"]["psnr-rgb"])
                 if math.isfinite(b) and math.isfinite(p) and b <= xmax * 1.08]
        if shown:
            ax.set_ylim(min(shown) - 0.5, max(shown) + 0.5)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR-RGB (dB)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.4)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
