r"""The trained-codec target, checked on a Kodak report: is the codec better than JPEG
at equal rate at every point of a bpp window (default 0.25-1.0), with a BD-rate
against JPEG of at most -10% over at least 80% overlap?

    python benchmarks/rd/target.py OUT [--codec glic-lite] [--anchor JPEG]
        [--window 0.25 1.0] [--max-bd -10] [--min-overlap 0.8] [--shipped FILE]
        [--weights FILE]

``OUT`` is a results folder of ``pyg-glic eval`` (its ``results.json``: the mean
bpp and PSNR-RGB of every curve over the same images). The window fixes a quality
range: the PSNR the anchor reaches from the window's low end to its high end (its
points inside the window plus both ends, interpolated linearly in log-bpp between
neighbouring points; nothing is extrapolated). The BD-rate (the report's
interpolation method) compares the codec's whole curve with the anchor's cut one,
so it runs over the part of that quality range the codec also covers; the
**overlap** is that part's share of the range (1.0 when the codec's points span
the quality JPEG has at the window's ends). Per point: the codec's PSNR minus the
anchor's at the same bpp (the same log-bpp interpolation of the anchor's sweep),
for every codec point inside the window. Between the points, the same log-bpp
interpolation of both curves on a fine grid gives the margin along the window
(``along_window``: its smallest value and where the codec is below the anchor): a
stricter reading than the points, reported beside the criteria, not one of them. ``--shipped`` (a campaign ``shipped.json``) adds the training
budget of the weights. Writes ``OUT/target.json`` and ``OUT/target.md``; exit 0 when
the target holds, 1 when it does not.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyg_glic.evaluation.bdrate import bd_rate  # noqa: E402


def _curve(results: Dict, name: str) -> Tuple[np.ndarray, np.ndarray]:
    for c in results["curves"]:
        if c["name"] == name:
            r = np.asarray(c["results"]["bpp"], dtype=np.float64)
            d = np.asarray(c["results"]["psnr-rgb"], dtype=np.float64)
            order = np.argsort(r)
            return r[order], d[order]
    names = [c["name"] for c in results["curves"]]
    raise SystemExit(f"error: no curve named {name!r} in results.json (have {names})")


def psnr_at(rate: np.ndarray, psnr: np.ndarray, at: float) -> Optional[float]:
    r"""PSNR of a curve (sorted by rate) at bpp ``at``, linear in log-bpp between the
    two neighbouring points; ``None`` outside the curve (no extrapolation)."""
    if at < rate[0] or at > rate[-1]:
        return None
    return float(np.interp(math.log(at), np.log(rate), psnr))


def cut(rate: np.ndarray, psnr: np.ndarray, lo: float, hi: float
        ) -> Tuple[np.ndarray, np.ndarray]:
    r"""The curve's points inside ``[lo, hi]`` bpp plus the window's ends it spans."""
    keep = (rate >= lo) & (rate <= hi)
    r, d = list(rate[keep]), list(psnr[keep])
    for end in (lo, hi):
        v = psnr_at(rate, psnr, end)
        if v is not None and end not in r:
            r.append(end)
            d.append(v)
    order = np.argsort(r)
    return np.asarray(r)[order], np.asarray(d)[order]


def check(results: Dict, codec: str, anchor: str, window: Tuple[float, float],
          max_bd: float, min_overlap: float) -> Dict:
    lo, hi = window
    rc, dc = _curve(results, codec)
    ra, da = _curve(results, anchor)
    method = results.get("bd_method", "cubic")
    ar, ad = cut(ra, da, lo, hi)
    if ar.size < 2 or ar[0] != lo or ar[-1] != hi:
        raise SystemExit(f"error: the {anchor} sweep does not span {lo:g}-{hi:g} bpp "
                         f"(it covers {ra[0]:.3f}-{ra[-1]:.3f})")
    bd = bd_rate(ar, ad, rc, dc, method=method)
    span = float(ad[-1] - ad[0])
    overlap = 0.0
    if bd.overlap_db is not None and span > 0:
        overlap = (bd.overlap_db[1] - bd.overlap_db[0]) / span
    points: List[Dict] = []
    for r, d in zip(rc, dc):
        if lo <= r <= hi:
            ref = psnr_at(ra, da, float(r))
            points.append(dict(bpp=round(float(r), 4), psnr=round(float(d), 3),
                               anchor_psnr=None if ref is None else round(ref, 3),
                               margin_db=None if ref is None else round(float(d) - ref, 3)))
    grid = np.geomspace(max(lo, rc[0]), min(hi, rc[-1]), 400) if rc[0] < hi and rc[-1] > lo \
        else np.array([])
    along = [(float(b), psnr_at(rc, dc, float(b)) - psnr_at(ra, da, float(b))) for b in grid]
    below = [b for b, m in along if m <= 0]
    along_window = {"bpp_range": [round(float(grid[0]), 4), round(float(grid[-1]), 4)]
                    if grid.size else None,
                    "min_margin_db": round(min(m for _, m in along), 3) if along else None,
                    "below_anchor_bpp": [round(min(below), 4), round(max(below), 4)]
                    if below else None}
    margins = [p["margin_db"] for p in points]
    every = bool(points) and all(m is not None and m > 0 for m in margins)
    bd_ok = bd.ok and bd.value <= max_bd
    overlap_ok = bd.ok and overlap >= min_overlap
    return {"codec": codec, "anchor": anchor, "window_bpp": [lo, hi], "method": method,
            "quality_range_db": [round(float(ad[0]), 3), round(float(ad[-1]), 3)],
            "overlap": round(overlap, 4), "bd_rate": bd.to_dict(), "points": points,
            "along_window": along_window,
            "criteria": {"better_at_every_point": every,
                         f"bd_rate_at_most_{max_bd:g}%": bd_ok,
                         f"overlap_at_least_{min_overlap:g}": overlap_ok},
            "holds": bool(every and bd_ok and overlap_ok)}


def markdown(rep: Dict, budget: Optional[Dict], images: int, dataset: str) -> str:
    lo, hi = rep["window_bpp"]
    bd = rep["bd_rate"]
    if bd["value"] is None:
        bd_txt = f"n/a ({bd['reason']})"
    else:
        o = bd["overlap_db"]
        q = rep["quality_range_db"]
        bd_txt = (f"{bd['value']:+.2f}% over {o[0]:.2f}-{o[1]:.2f} dB, "
                  f"{100 * rep['overlap']:.0f}% of the {q[0]:.2f}-{q[1]:.2f} dB "
                  f"{rep['anchor']} reaches in the window")
    lines = [f"# Target check: {rep['codec']} against {rep['anchor']} in {lo:g}-{hi:g} bpp", "",
             f"{images} images of {dataset}; BD-rate ({rep['method']}) over the quality "
             f"range {rep['anchor']} spans in the window (its ends interpolated in log-bpp, "
             f"nothing extrapolated).", "",
             f"- BD-rate against {rep['anchor']}: **{bd_txt}**"]
    for k, v in rep["criteria"].items():
        lines.append(f"- {k.replace('_', ' ')}: {'yes' if v else '**no**'}")
    lines.append(f"- target holds: **{'yes' if rep['holds'] else 'no'}**")
    aw = rep["along_window"]
    if aw["bpp_range"] is not None:
        where = ("never below it" if aw["below_anchor_bpp"] is None else
                 f"below it from {aw['below_anchor_bpp'][0]:.3f} to "
                 f"{aw['below_anchor_bpp'][1]:.3f} bpp")
        lines.append(f"- between the points (both curves interpolated in log-bpp over "
                     f"{aw['bpp_range'][0]:.3f}-{aw['bpp_range'][1]:.3f} bpp): smallest margin "
                     f"{aw['min_margin_db']:+.2f} dB, {where}")
    if budget:
        lines.append(f"- weights: campaign step {budget['step']}, {budget['cpu_hours']:.2f} "
                     f"CPU-hours on {budget.get('device', 'the CPU')}, {budget['weights']} "
                     f"(exported {budget.get('exported_utc', '?')})")
    lines += ["", f"| bpp | {rep['codec']} PSNR (dB) | {rep['anchor']} PSNR at that bpp | "
              f"margin (dB) |", "|---|---|---|---|"]
    for p in rep["points"]:
        a = "-" if p["anchor_psnr"] is None else f"{p['anchor_psnr']:.2f}"
        m = "-" if p["margin_db"] is None else f"{p['margin_db']:+.2f}"
        lines.append(f"| {p['bpp']:.4f} | {p['psnr']:.2f} | {a} | {m} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="results folder of pyg-glic eval (holds results.json)")
    p.add_argument("--codec", default="glic-lite")
    p.add_argument("--anchor", default="JPEG")
    p.add_argument("--window", nargs=2, type=float, default=(0.25, 1.0), metavar=("LO", "HI"))
    p.add_argument("--max-bd", type=float, default=-10.0, help="BD-rate bound in percent")
    p.add_argument("--min-overlap", type=float, default=0.8)
    p.add_argument("--shipped", help="campaign shipped.json: the budget of the weights")
    p.add_argument("--weights", help="the weight file the report coded with: checked against "
                                     "the sha256 that --shipped records")
    p.add_argument("--device", default="a 2-core CPU", help="where the weights were trained")
    args = p.parse_args(argv)
    out = Path(args.out)
    path = out / "results.json"
    if not path.is_file():
        print(f"error: {path} does not exist (a folder written by pyg-glic eval)",
              file=sys.stderr)
        return 2
    lo, hi = args.window
    if not 0 < lo < hi:
        print(f"error: --window needs 0 < LO < HI, got {lo} {hi}", file=sys.stderr)
        return 2
    results = json.loads(path.read_text())
    rep = check(results, args.codec, args.anchor, (lo, hi), args.max_bd, args.min_overlap)
    budget = None
    if args.shipped:
        s = json.loads(Path(args.shipped).read_text())
        budget = {k: s.get(k) for k in ("step", "cpu_hours", "weights", "exported_utc",
                                        "gain_vs_jpeg_db")}
        budget["device"] = args.device
        if args.weights:
            digest = hashlib.sha256(Path(args.weights).read_bytes()).hexdigest()
            if digest != s.get("sha256"):
                print(f"error: {args.weights} (sha256 {digest[:16]}...) is not the file "
                      f"{args.shipped} describes ({str(s.get('sha256'))[:16]}...)",
                      file=sys.stderr)
                return 2
            budget["sha256"] = digest
        rep["budget"] = budget
    (out / "target.json").write_text(json.dumps(rep, indent=1) + "\n")
    text = markdown(rep, budget, len(results.get("images", [])), str(results.get("dataset", "?")))
    (out / "target.md").write_text(text)
    print(text, end="")
    return 0 if rep["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
