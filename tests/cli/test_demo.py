r"""``pyg-glic demo``: the codec's numbers and JPEG's PSNR at the same rate."""
import io

import numpy as np
import pytest
from PIL import Image

from pyg_glic.cli.demo import jpeg_psnr_at_bpp
from pyg_glic.cli.main import main


def _rgb(h=96, w=128, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 2, y * 2, (x + y)], -1) + rng.integers(-20, 21, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def _jpeg(rgb, q):  # Pillow directly, as the demo's settings say
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=q, optimize=True)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        rec = np.asarray(im.convert("RGB"), dtype=np.float64)
    mse = np.mean((rec - rgb.astype(np.float64)) ** 2)
    return 8 * len(buf.getvalue()) / (rgb.shape[0] * rgb.shape[1]), 10 * np.log10(255 ** 2 / mse)


def test_jpeg_brackets_and_interpolates():
    rgb = _rgb()
    b20, _ = _jpeg(rgb, 20)
    b60, _ = _jpeg(rgb, 60)
    target = (b20 + b60) / 2
    res = jpeg_psnr_at_bpp(rgb, target)
    (qa, ba, pa), (qb, bb, pb) = res["lo"], res["hi"]
    assert res["reached"] == "bracketed" and qb == qa + 1
    assert ba <= target < bb
    # independent numbers for the two bracketing qualities
    for q, b, p in ((qa, ba, pa), (qb, bb, pb)):
        rb, rp = _jpeg(rgb, q)
        assert b == pytest.approx(rb) and p == pytest.approx(rp)
    assert res["psnr"] == pytest.approx(pa + (target - ba) / (bb - ba) * (pb - pa))


def test_jpeg_out_of_reach():
    rgb = _rgb()
    below = jpeg_psnr_at_bpp(rgb, 0.01)
    assert below["reached"] == "below" and below["psnr"] is None
    assert below["lo"][1] == pytest.approx(_jpeg(rgb, 1)[0])
    above = jpeg_psnr_at_bpp(rgb, 50.0)
    assert above["reached"] == "above" and above["psnr"] == pytest.approx(_jpeg(rgb, 100)[1])


def test_demo_prints_the_jpeg_comparison(tmp_path, capsys, one_thread):
    p = tmp_path / "img.png"
    Image.fromarray(_rgb()).save(p)
    assert main(["demo", str(p), "-c", "glic-tiny", "-q", "2.5"]) == 0
    out = capsys.readouterr().out
    assert "quality 2.5" in out and "WARNING: no trained weights" in out
    for key in ("bpp ", "PSNR ", "MS-SSIM ", "JPEG ", "time "):
        assert key in out
    assert "untrained: no verdict" in out


def test_demo_bad_quality(tmp_path, capsys):
    p = tmp_path / "img.png"
    Image.fromarray(_rgb()).save(p)
    assert main(["demo", str(p), "-c", "glic-tiny", "-q", "7"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
