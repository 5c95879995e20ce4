r"""benchmarks/rd/curve.py: one learning-curve row per checkpoint, appended atomically."""
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "rd" / "curve.py"
COLUMNS = ["utc", "step", "total_steps", "cpu_hours", "weights",
           "bpp_q2", "psnr_q2", "jpeg_psnr_q2", "webp_psnr_q2",
           "bpp_q5", "psnr_q5", "jpeg_psnr_q5", "webp_psnr_q5",
           "gain_vs_jpeg_db", "gain_vs_webp_db"]


def _checkpoint(path: Path, ema: bool = True, step: int = 7) -> Path:
    r"""A checkpoint as ``pyg-glic train`` writes it (the keys curve.py reads), of glic-tiny."""
    from pyg_glic.models.glic import glic_model
    from pyg_glic.training.checkpoint import CHECKPOINT_VERSION
    from pyg_glic.training.models import CHECKPOINT_FORMAT

    torch.manual_seed(0)
    net = glic_model("glic-tiny")
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    shadow = None
    if ema:  # the EMA: the same weights; the raw ones are perturbed
        shadow = {k: v.float().clone() for k, v in sd.items() if v.is_floating_point()}
        for k, v in sd.items():
            if v.is_floating_point() and not k.endswith("quantiles"):
                sd[k] = v + 0.05 * torch.randn_like(v)
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
                "args": {"config": "glic-tiny", "quality": 3, "steps": 100}, "model": sd,
                "ema": shadow, "ema_updates": step if ema else 0, "cpu_seconds": 1800.0},
               path)
    return path


@pytest.fixture()
def kodak(tmp_path, make_images):
    paths = make_images(tmp_path / "kodak", [(64, 64), (48, 80)])
    for i, p in enumerate(paths):
        p.rename(p.with_name(f"kodim{i + 1:02d}.png"))
    return tmp_path / "kodak"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_curve_rows_appended(tmp_path, kodak):
    ck = _checkpoint(tmp_path / "checkpoint.pt")
    out = tmp_path / "res" / "curve.csv"
    common = ["--kodak", kodak, "--images", "01,02", "--qualities", "5,2", "--csv", out,
              "--threads", "1"]
    r = _run(ck, *common, "--plot", tmp_path / "res" / "curve.png")
    assert r.returncode == 0, r.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
        assert next(csv.reader(open(out))) == COLUMNS
    assert len(rows) == 1
    row = rows[0]
    assert (row["step"], row["total_steps"], row["weights"]) == ("7", "100", "ema")
    assert float(row["cpu_hours"]) == pytest.approx(0.5)
    nums = {k: float(v) for k, v in row.items() if k not in ("utc", "weights")}
    assert all(math.isfinite(v) for v in nums.values())
    assert 0 < nums["bpp_q2"] < nums["bpp_q5"]
    for c in ("jpeg", "webp"):
        gain = ((nums["psnr_q2"] - nums[f"{c}_psnr_q2"]) + (nums["psnr_q5"] - nums[f"{c}_psnr_q5"])) / 2
        assert nums[f"gain_vs_{c}_db"] == pytest.approx(gain, abs=2e-3)
    assert (tmp_path / "res" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    side = json.loads((tmp_path / "res" / "curve.json").read_text())
    assert side["columns"] == COLUMNS and len(side["rows"]) == 1 and len(side["runs"]) == 1
    assert side["runs"][0]["machine"]["torch"] == torch.__version__
    per = side["latest"]["per_image"]
    assert sorted((p["image"], p["quality"]) for p in per) == [
        ("kodim01.png", 2.0), ("kodim01.png", 5.0), ("kodim02.png", 2.0), ("kodim02.png", 5.0)]
    p = next(p for p in per if p["image"] == "kodim02.png" and p["quality"] == 2.0)
    assert p["bpp"] == pytest.approx(8 * p["bytes"] / (48 * 80))  # the real byte count

    # A second checkpoint (raw weights only) appends a second row; the first stays.
    before = out.read_text()
    r = _run(_checkpoint(tmp_path / "raw.pt", ema=False, step=9), *common)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert text.startswith(before)
    rows = list(csv.DictReader(open(out, newline="")))
    assert [(x["step"], x["weights"]) for x in rows] == [("7", "ema"), ("9", "raw")]
    assert len(json.loads((tmp_path / "res" / "curve.json").read_text())["runs"]) == 2

    # Bad input: one line, exit 2, the CSV untouched.
    r = _run(tmp_path / "missing.pt", *common)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: no such checkpoint or weights file: "
                                             f"{tmp_path / 'missing.pt'}"]
    assert out.read_text() == text
    assert not [f for f in out.parent.iterdir() if f.name.startswith(".")]


@pytest.mark.parametrize("change, message", [
    ({"--qualities": "2,abc"}, "not a number"),
    ({"--qualities": "0.5,2"}, "outside [1, 6]"),
    ({"--qualities": ","}, "no quality"),
    ({"--images": "03"}, "no kodim03.png"),
    ({"--kodak": "EMPTY"}, "holds no image"),
])
def test_curve_bad_input(load_script, tmp_path, kodak, capsys, change, message):
    mod = load_script("benchmarks/rd/curve.py")
    ck = _checkpoint(tmp_path / "checkpoint.pt")
    out = tmp_path / "curve.csv"
    keep = ",".join(COLUMNS) + "\n"
    out.write_text(keep)
    (tmp_path / "EMPTY").mkdir()
    opts = {"--kodak": str(kodak), "--images": "01,02", "--qualities": "2,5",
            "--csv": str(out), "--threads": "1"}
    opts.update({k: (str(tmp_path / v) if v == "EMPTY" else v) for k, v in change.items()})
    argv = [str(ck)] + [x for kv in opts.items() for x in kv]
    n = torch.get_num_threads()
    try:
        assert mod.main(argv) == 2
    finally:
        torch.set_num_threads(n)
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err, err
    assert out.read_text() == keep


def test_load_codec_prefers_ema(load_script, tmp_path):
    mod = load_script("benchmarks/rd/curve.py")
    ck = _checkpoint(tmp_path / "checkpoint.pt")
    saved = torch.load(ck, weights_only=True)
    net, info = mod.load_codec(ck)
    assert info["weights"] == "ema" and info["step"] == 7 and info["cpu_seconds"] == 1800.0
    sd = net.state_dict()
    for k, v in saved["ema"].items():
        assert torch.equal(sd[k].float(), v), k


def test_psnr_at_interpolates_in_log_bpp(load_script):
    mod = load_script("benchmarks/rd/curve.py")
    curve = {"bpp": [0.1, 0.4, 0.2, 0.8], "psnr": [24.0, 30.0, 27.0, 33.0]}
    assert mod.psnr_at(curve, 0.2) == (pytest.approx(27.0), False)
    assert mod.psnr_at(curve, math.sqrt(0.2 * 0.4))[0] == pytest.approx(28.5)
    p, extra = mod.psnr_at(curve, 0.05)  # below the range: the end segment, flagged
    assert extra and p == pytest.approx(21.0)
