import math

import pytest

from pyg_glic.evaluation.bdrate import bd_rate

RATE = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNR = [28.0, 30.5, 32.6, 34.9, 37.0]


@pytest.mark.parametrize("method", ["cubic", "pchip", "akima"])
@pytest.mark.parametrize("factor,expected", [(0.9, -10.0), (1.25, 25.0), (1.0, 0.0)])
def test_constant_rate_ratio_is_exact(method, factor, expected):
    # Rate exactly factor x the anchor's at every PSNR: log-rate curves differ by a
    # constant, so BD-rate = factor - 1 whatever the interpolation.
    r = bd_rate(RATE, PSNR, [factor * v for v in RATE], PSNR, method=method)
    assert r.ok and r.value == pytest.approx(expected, abs=1e-9)
    assert r.overlap_db == (28.0, 37.0) and r.overlap_fraction == 1.0
    assert r.points == (5, 5)


@pytest.mark.parametrize("method", ["cubic", "pchip", "akima"])
def test_partial_overlap_uses_only_the_common_range(method):
    # log10(rate) linear in PSNR: every interpolation reproduces it exactly. The test
    # codec covers only 30-36 dB (the anchor 26-40), at 0.9x the rate there.
    psnr = [26.0, 28.0, 30.0, 32.0, 34.0, 36.0, 38.0, 40.0]
    rate = [10 ** (-3 + 0.09 * p) for p in psnr]
    r = bd_rate(rate, psnr, [0.9 * v for v in rate[2:6]], psnr[2:6], method=method)
    assert r.value == pytest.approx(-10.0, abs=1e-8)
    assert r.overlap_db == (30.0, 36.0)
    assert r.overlap_fraction == pytest.approx(6 / 14)


def test_unsorted_points_and_order_do_not_matter():
    a = bd_rate(RATE[::-1], PSNR[::-1], [0.9 * v for v in RATE], PSNR)
    assert a.value == pytest.approx(-10.0, abs=1e-9)


def test_no_overlap_is_nan_not_extrapolated():
    r = bd_rate(RATE, PSNR, RATE, [p + 20 for p in PSNR])
    assert math.isnan(r.value) and not r.ok
    assert "no overlap" in r.reason and "28.00-37.00 vs 48.00-57.00" in r.reason
    assert str(r).startswith("n/a (no overlap")
    assert r.to_dict()["value"] is None


def test_too_few_points():
    r = bd_rate(RATE, PSNR, RATE[:3], PSNR[:3], method="cubic")
    assert not r.ok and "too few points for cubic (need 4, have 5 and 3)" in r.reason
    assert bd_rate(RATE, PSNR, RATE[:2], PSNR[:2], method="pchip").ok


def test_bad_points_are_dropped():
    rate = RATE + [float("nan"), 0.0]
    psnr = PSNR + [40.0, 41.0]
    r = bd_rate(rate, psnr, [0.9 * v for v in RATE], PSNR)
    assert r.points == (5, 5) and r.value == pytest.approx(-10.0, abs=1e-9)
    with pytest.raises(ValueError, match="method"):
        bd_rate(RATE, PSNR, RATE, PSNR, method="linear")
    with pytest.raises(ValueError, match="PSNR values"):
        bd_rate(RATE, PSNR[:4], RATE, PSNR)


def test_against_published_glic_and_vtm_points():
    # GLIC's published Kodak points against VTM-9.1 (reference/kodak): the paper
    # reports -19.29%; the cubic fit over the common range gives -19.46%.
    import json
    from pathlib import Path

    ref = Path(__file__).resolve().parents[3] / "shared" / "reference" / "kodak"
    if not (ref / "vtm.json").is_file():
        pytest.skip("shared reference results not present")
    vtm = json.loads((ref / "vtm.json").read_text())["results"]
    glic = json.loads((ref / "paper-glic2026_mse.json").read_text())["results"]
    r = bd_rate(vtm["bpp"], vtm["psnr-rgb"], glic["bpp"], glic["psnr-rgb"])
    assert r.ok and r.value == pytest.approx(-19.29, abs=0.5), r
