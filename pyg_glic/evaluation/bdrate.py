r"""Bjontegaard delta rate, computed by the ``bjontegaard`` package, only where it is honest.

BD-rate is the average difference of ``log10(rate)`` between two rate-distortion
curves, each interpolated as a function of PSNR, over the PSNR range *both*
curves cover, reported in percent (negative: the test codec needs fewer bits).
``method="cubic"`` is Bjontegaard's original cubic polynomial fit (4 points or
more); ``"pchip"`` and ``"akima"`` are piecewise interpolations (2 or more).

Nothing is extrapolated: curves whose PSNR ranges do not overlap, or with too few
points, give ``nan`` and a reason instead of a number. A small overlap gives a
number over that small range; :attr:`BDResult.overlap_fraction` says how small.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

METHODS = ("cubic", "pchip", "akima")
MIN_POINTS = {"cubic": 4, "pchip": 2, "akima": 2}


@dataclass
class BDResult:
    r"""A BD-rate (percent) with what it rests on.

    Attributes:
        value (float): BD-rate in percent, ``nan`` if not computable.
        reason (str, optional): why ``value`` is ``nan``.
        overlap_db (tuple, optional): the common PSNR range ``(lo, hi)`` in dB.
        overlap_fraction (float): ``(hi - lo)`` over the union of both ranges.
        method (str): the interpolation.
        points (tuple): points used ``(anchor, test)``.
    """

    value: float
    reason: Optional[str]
    overlap_db: Optional[Tuple[float, float]]
    overlap_fraction: float
    method: str
    points: Tuple[int, int]

    @property
    def ok(self) -> bool:
        return not math.isnan(self.value)

    def to_dict(self):
        d = asdict(self)
        d["value"] = None if math.isnan(self.value) else self.value
        d["overlap_db"] = list(self.overlap_db) if self.overlap_db else None
        return d

    def __str__(self) -> str:
        if not self.ok:
            return f"n/a ({self.reason})"
        return f"{self.value:+.2f}%"


def _clean(rate: Sequence[float], psnr: Sequence[float]):
    r = np.asarray(rate, dtype=np.float64).ravel()
    d = np.asarray(psnr, dtype=np.float64).ravel()
    if r.shape != d.shape:
        raise ValueError(f"{r.size} rates but {d.size} PSNR values")
    keep = np.isfinite(r) & np.isfinite(d) & (r > 0)
    r, d = r[keep], d[keep]
    order = np.argsort(d, kind="stable")
    r, d = r[order], d[order]
    d, first = np.unique(d, return_index=True)  # one rate per PSNR value
    return r[first], d


def bd_rate(anchor_rate: Sequence[float], anchor_psnr: Sequence[float],
            test_rate: Sequence[float], test_psnr: Sequence[float],
            method: str = "cubic") -> BDResult:
    r"""BD-rate of the test curve against the anchor, in percent.

    Args:
        anchor_rate, anchor_psnr: the reference codec's points (bpp, dB).
        test_rate, test_psnr: the codec under test.
        method (str): ``"cubic"`` (default), ``"pchip"`` or ``"akima"``.

    Points with a non-finite value or a non-positive rate are dropped; a repeated
    PSNR value keeps its first point.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    ra, da = _clean(anchor_rate, anchor_psnr)
    rt, dt = _clean(test_rate, test_psnr)
    pts = (int(ra.size), int(rt.size))
    need = MIN_POINTS[method]
    if min(pts) < need:
        return BDResult(float("nan"), f"too few points for {method} (need {need}, have "
                        f"{pts[0]} and {pts[1]})", None, 0.0, method, pts)
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    union = max(da.max(), dt.max()) - min(da.min(), dt.min())
    if hi <= lo:
        return BDResult(float("nan"), f"no overlap (PSNR {da.min():.2f}-{da.max():.2f} vs "
                        f"{dt.min():.2f}-{dt.max():.2f} dB)", None, 0.0, method, pts)
    import bjontegaard

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overlap is reported by us; polyfit conditioning
        value = float(bjontegaard.bd_rate(ra, da, rt, dt, method=method,
                                          require_matching_points=False, min_overlap=0))
    frac = float((hi - lo) / union) if union > 0 else 1.0
    if not math.isfinite(value):
        return BDResult(float("nan"), "interpolation failed", (float(lo), float(hi)), frac,
                        method, pts)
    return BDResult(value, None, (float(lo), float(hi)), frac, method, pts)
