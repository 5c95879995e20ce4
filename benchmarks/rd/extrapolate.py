r"""Where the campaign's learning curve is heading: per rate, the PSNR margin over JPEG
at equal bpp against training CPU-hours, fitted and carried forward.

    python benchmarks/rd/extrapolate.py [--csv benchmarks/results/rd_campaign/curve.csv] \
        [--at 12 20 30] [--target-margin 0.5] [--window 0.25 1.0] [--from-hours 0] \
        [--out benchmarks/results/rd_campaign/extrapolation]

Two forms, each fitted by least squares to every row at or after ``--from-hours``:

- ``log``: ``m(t) = a + b ln t`` (no ceiling: an upper guess while the curve rises);
- ``inverse``: ``m(t) = a - b / t`` (approaches ``a``: a lower guess).

For every rate: the fitted parameters, the residual, the margin each form predicts
at the ``--at`` CPU-hours, and the CPU-hours at which it reaches ``--target-margin``
dB (``None`` when it never does; the inverse form's ceiling ``a`` may lie below it).
``--target-margin`` stands for the issue's BD-rate target: at JPEG's slope on Kodak
(about 5 dB of PSNR per e-fold of rate at 0.3-1 bpp, from the same rows), 0.5 dB at
equal rate is about 10% of rate at equal PSNR. Only the rates whose latest bpp lies
in ``--window`` enter the summary line (the target's window). Writes
``OUT.json`` and ``OUT.md``. With fewer than three rows a fit is not attempted.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FORMS = {"log": lambda t: np.log(t), "inverse": lambda t: -1.0 / t}


def read_margins(path: Path) -> Dict[str, Dict[str, List[float]]]:
    r"""``{quality: {"t": hours, "m": margins, "bpp": bpps}}`` from a curve CSV."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out: Dict[str, Dict[str, List[float]]] = {}
    for r in rows:
        try:
            t = float(r["cpu_hours"])
        except (KeyError, ValueError):
            continue
        for key, v in r.items():
            if not key.startswith("psnr_q") or not v:
                continue
            q = key[len("psnr_q"):]
            jp, bpp = r.get(f"jpeg_psnr_q{q}"), r.get(f"bpp_q{q}")
            if not jp or not bpp:
                continue
            d = out.setdefault(q, {"t": [], "m": [], "bpp": []})
            d["t"].append(t)
            d["m"].append(float(v) - float(jp))
            d["bpp"].append(float(bpp))
    return out


def fit(t: np.ndarray, m: np.ndarray, form: str) -> Dict:
    r"""``m = a + b g(t)`` with ``g`` of the form (``inverse``: ``g = -1/t``, so ``b``
    is the ``b`` of ``a - b / t``); returns ``a``, ``b`` and the RMS residual."""
    g = FORMS[form](t)
    A = np.stack([np.ones_like(g), g], 1)
    (a, b), *_ = np.linalg.lstsq(A, m, rcond=None)
    rms = float(np.sqrt(np.mean((A @ np.array([a, b]) - m) ** 2)))
    return {"a": float(a), "b": float(b), "rms_db": rms}


def predict(p: Dict, form: str, t: float) -> float:
    return float(p["a"] + p["b"] * FORMS[form](np.array([t]))[0])


def hours_to(p: Dict, form: str, margin: float) -> Optional[float]:
    a, b = p["a"], p["b"]
    if b <= 0:
        return None  # not rising
    if form == "log":
        return float(math.exp((margin - a) / b))
    if margin >= a:
        return None  # the ceiling lies below the margin
    return float(b / (a - margin))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", type=Path, default=ROOT / "benchmarks/results/rd_campaign/curve.csv")
    p.add_argument("--at", type=float, nargs="+", default=[12.0, 20.0, 30.0])
    p.add_argument("--target-margin", type=float, default=0.5)
    p.add_argument("--window", type=float, nargs=2, default=(0.25, 1.0))
    p.add_argument("--from-hours", type=float, default=0.0,
                   help="fit only the rows from this many CPU-hours on")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    if not a.csv.is_file():
        print(f"error: {a.csv} does not exist", file=sys.stderr)
        return 2
    data = read_margins(a.csv)
    rates = []
    for q, d in sorted(data.items(), key=lambda kv: float(kv[0])):
        t, m = np.array(d["t"]), np.array(d["m"])
        keep = t >= a.from_hours
        t, m = t[keep], m[keep]
        rec = {"quality": q, "points": int(t.size), "latest_hours": float(t[-1]) if t.size else None,
               "latest_margin_db": float(m[-1]) if t.size else None,
               "latest_bpp": d["bpp"][-1], "in_window": a.window[0] <= d["bpp"][-1] <= a.window[1],
               "fits": {}}
        if t.size >= 3:
            for form in FORMS:
                f = fit(t, m, form)
                f["at"] = {f"{h:g}": round(predict(f, form, h), 3) for h in a.at}
                f["hours_to_target"] = hours_to(f, form, a.target_margin)
                rec["fits"][form] = f
        rates.append(rec)
    rep = {"csv": str(a.csv), "target_margin_db": a.target_margin, "window_bpp": list(a.window),
           "from_hours": a.from_hours, "rates": rates}
    win = [r for r in rates if r["in_window"] and r["fits"]]
    for form in FORMS:
        hs = [r["fits"][form]["hours_to_target"] for r in win]
        rep[f"hours_to_target_{form}"] = (None if not hs or any(h is None for h in hs)
                                          else max(max(hs), max(r["latest_hours"] for r in win)))
    lines = ["# Campaign curve, extrapolated", "",
             f"Margin over JPEG at equal bpp (dB) per rate against training CPU-hours, from "
             f"{a.csv.name}; fits from {a.from_hours:g} CPU-hours on; target margin "
             f"{a.target_margin:+.2f} dB at every rate whose bpp lies in "
             f"{a.window[0]:g}-{a.window[1]:g}.", "",
             "| rate | latest bpp | latest margin | form | a | b | rms | "
             + " | ".join(f"at {h:g} h" for h in a.at) + " | hours to target |",
             "|---|---|---|---|---|---|---|" + "---|" * len(a.at) + "---|"]
    for r in rates:
        for form, f in r["fits"].items():
            h = f["hours_to_target"]
            lines.append(f"| q{r['quality']}{'' if r['in_window'] else ' (outside)'} | "
                         f"{r['latest_bpp']:.3f} | {r['latest_margin_db']:+.2f} | {form} | "
                         f"{f['a']:+.2f} | {f['b']:.2f} | {f['rms_db']:.2f} | "
                         + " | ".join(f"{v:+.2f}" for v in f["at"].values())
                         + f" | {'never' if h is None else f'{h:.1f}'} |")
        if not r["fits"]:
            lines.append(f"| q{r['quality']} | {r['latest_bpp']:.3f} | - | fewer than 3 rows | "
                         + " | ".join("-" for _ in range(4 + len(a.at))) + " |")
    for form in FORMS:
        h = rep[f"hours_to_target_{form}"]
        lines.append("")
        lines.append(f"- {form}: every in-window rate at the target margin after "
                     f"{'never (or not yet fittable)' if h is None else f'{h:.1f} CPU-hours'}")
    text = "\n".join(lines) + "\n"
    if a.out:
        a.out.with_suffix(".json").write_text(json.dumps(rep, indent=1) + "\n")
        a.out.with_suffix(".md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
