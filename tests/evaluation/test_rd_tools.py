r"""benchmarks/rd/target.py (the trained-codec target on a report) and
benchmarks/rd/ab_eval.py (A/B of the recipe pieces that cost no training)."""
import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
AB = ROOT / "benchmarks" / "rd" / "ab_eval.py"


@pytest.fixture(scope="module")
def target(load_script):
    return load_script("benchmarks/rd/target.py")


def _target(target, *args):
    r"""target.py's ``main`` in this process: ``(exit status, stderr)``."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = target.main([str(a) for a in args])
        except SystemExit as e:
            rc = e.code
    return rc, err.getvalue()


def _jpeg(bpp):  # a smooth, JPEG-like curve: PSNR rises 4.8 dB per e-fold of rate
    return 30.0 + 4.8 * np.log(np.asarray(bpp) / 0.5)


def _results(tmp_path, codec_bpp, codec_psnr):
    jb = np.geomspace(0.1, 2.0, 15)
    res = {"images": ["a.png", "b.png"], "dataset": "kodak", "bd_method": "cubic",
           "curves": [{"name": "glic-lite", "results": {"bpp": list(codec_bpp),
                                                       "psnr-rgb": list(codec_psnr)}},
                      {"name": "JPEG", "results": {"bpp": list(jb),
                                                  "psnr-rgb": list(_jpeg(jb))}}]}
    out = tmp_path / "rep"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(res))
    return out


@pytest.mark.parametrize("saving,holds", [(0.2, True), (0.05, False), (-0.1, False)])
def test_target_on_curves_with_a_known_bd_rate(target, tmp_path, saving, holds):
    # the codec spends (1 - saving) x JPEG's rate at every PSNR: its BD-rate against
    # JPEG is -saving exactly, whatever the window; points reach beyond the window
    psnr = _jpeg(np.geomspace(0.15, 1.6, 7))
    rate = (1 - saving) * 0.5 * np.exp((psnr - 30.0) / 4.8)
    out = _results(tmp_path, rate, psnr)
    rc, err = _target(target, out)
    assert rc == (0 if holds else 1), err
    rep = json.loads((out / "target.json").read_text())
    assert rep["bd_rate"]["value"] == pytest.approx(-100 * saving, abs=0.3)
    assert rep["holds"] is holds
    inside = [b for b in rate if 0.25 <= b <= 1.0]
    assert [p["bpp"] for p in rep["points"]] == pytest.approx(inside, abs=1e-4)
    for p in rep["points"]:  # margin at equal rate: 4.8 ln(1 / (1 - saving)) dB
        assert p["margin_db"] == pytest.approx(-4.8 * math.log(1 - saving), abs=2e-3)
    assert rep["overlap"] == pytest.approx(1.0)  # the codec spans JPEG's window quality
    aw = rep["along_window"]
    assert aw["min_margin_db"] == pytest.approx(-4.8 * math.log(1 - saving), abs=2e-3)
    assert aw["below_anchor_bpp"] == (None if saving > 0 else [0.25, 1.0])
    assert rep["quality_range_db"] == pytest.approx([_jpeg(0.25), _jpeg(1.0)], abs=1e-3)
    assert "target holds" in (out / "target.md").read_text()


def test_target_cut_interpolates_the_ends_and_never_extrapolates(target):
    t = target
    rate, psnr = np.array([0.2, 0.4, 0.8]), np.array([28.0, 31.0, 34.0])
    r, d = t.cut(rate, psnr, 0.25, 1.0)
    # 0.25 lies between 0.2 and 0.4: linear in log-bpp; 1.0 is beyond the curve: absent
    w = math.log(0.25 / 0.2) / math.log(0.4 / 0.2)
    assert list(r) == [0.25, 0.4, 0.8]
    assert d[0] == pytest.approx(28.0 + 3.0 * w) and list(d[1:]) == [31.0, 34.0]
    assert t.psnr_at(rate, psnr, 1.0) is None and t.psnr_at(rate, psnr, 0.1) is None


def test_target_overlap_is_the_share_of_the_window_quality_covered(target, tmp_path):
    # a codec whose points stop at JPEG's quality at 0.6 bpp covers part of the range
    # JPEG spans in 0.25-1.0 bpp: ln(0.6/0.25) / ln(1/0.25) of it
    psnr = _jpeg(np.geomspace(0.15, 0.6, 5))
    out = _results(tmp_path, 0.8 * 0.5 * np.exp((psnr - 30.0) / 4.8), psnr)
    assert _target(target, out)[0] == 1
    rep = json.loads((out / "target.json").read_text())
    assert rep["overlap"] == pytest.approx(math.log(0.6 / 0.25) / math.log(4), abs=1e-3)
    assert rep["criteria"]["overlap_at_least_0.8"] is False
    assert rep["bd_rate"]["value"] == pytest.approx(-20, abs=0.3)


def test_target_refuses_a_missing_report_and_other_weights(target, tmp_path):
    rc, err = _target(target, tmp_path)
    assert rc == 2 and "results.json" in err
    out = _results(tmp_path, [0.3, 0.5, 0.7, 0.9], [28.0, 30.0, 31.5, 32.5])
    shipped = tmp_path / "shipped.json"
    shipped.write_text(json.dumps({"step": 1, "cpu_hours": 1.0, "weights": "ema",
                                   "sha256": "0" * 64}))
    w = tmp_path / "w.pt"
    w.write_bytes(b"weights")
    rc, err = _target(target, out, "--shipped", shipped, "--weights", w)
    assert rc == 2 and "is not the file" in err
    assert not (out / "target.json").exists()


def test_ab_eval_codes_four_variants(tmp_path, make_images):
    # a glic-tiny checkpoint whose raw weights are the EMA's plus noise: the EMA
    # variants code the EMA weights (as curve.py does), the raw ones differ
    from pyg_glic.models.glic import glic_model
    from pyg_glic.training.checkpoint import CHECKPOINT_VERSION
    from pyg_glic.training.models import CHECKPOINT_FORMAT

    torch.manual_seed(0)
    sd = {k: v.detach().clone() for k, v in glic_model("glic-tiny").state_dict().items()}
    ema = {k: v.float().clone() for k, v in sd.items() if v.is_floating_point()}
    for k, v in sd.items():
        if v.is_floating_point() and not k.endswith("quantiles"):
            sd[k] = v + 0.05 * torch.randn_like(v)
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": 7,
                "args": {"config": "glic-tiny", "quality": 3, "steps": 100}, "model": sd,
                "ema": ema, "ema_updates": 7, "cpu_seconds": 1800.0}, ckpt)
    paths = make_images(tmp_path / "kodak", [(64, 64)])
    paths[0].rename(paths[0].with_name("kodim01.png"))
    r = subprocess.run([sys.executable, str(AB), str(ckpt), "--kodak", str(tmp_path / "kodak"),
                        "--images", "01", "--qualities", "1,2,4,6", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "ab_eval_step7.json").read_text())
    assert [(v["weights"], v["update_quantiles"]) for v in rep["variants"]] == [
        ("ema", True), ("ema", False), ("raw", True), ("raw", False)]
    assert rep["step"] == 7 and rep["cpu_hours"] == 0.5
    ema_v, raw_v = rep["variants"][0], rep["variants"][2]
    assert [x["bpp"] for x in ema_v["rates"]] != [x["bpp"] for x in raw_v["rates"]]
    for v in rep["variants"]:
        assert len(v["rates"]) == 4 and all(x["bpp"] > 0 for x in v["rates"])
        assert v["gain_vs_jpeg_db"] == pytest.approx(
            np.mean([x["psnr"] - x["jpeg_psnr"] for x in v["rates"]]), abs=2e-3)
    assert set(rep["bd_rate_with_vs_without"]) == {"EMA (ema vs raw)",
                                                   "quantile refresh (refreshed vs trained)"}
    assert "| ema weights, refreshed quantiles |" in (tmp_path / "ab_eval_step7.md").read_text()


def test_extrapolate_recovers_a_known_curve(load_script, tmp_path):
    # margins that follow m = 1 - 2 / t exactly at q3 (and a + b ln t at q4.5): the fits
    # recover the parameters and the hours at which each reaches +0.5 dB
    ex = load_script("benchmarks/rd/extrapolate.py")
    rows = ["utc,step,total_steps,cpu_hours,weights,bpp_q3,psnr_q3,jpeg_psnr_q3,"
            "bpp_q4.5,psnr_q4.5,jpeg_psnr_q4.5"]
    for i, t in enumerate([1.0, 2.0, 4.0, 8.0]):
        m3, m45 = 1 - 2 / t, -1 + 0.5 * math.log(t)
        rows.append(f"x,{i},9,{t},ema,0.5,{30 + m3},30,0.9,{33 + m45},33")
    csv_path = tmp_path / "curve.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "ex"
    assert ex.main(["--csv", str(csv_path), "--out", str(out), "--at", "16"]) == 0
    rep = json.loads(out.with_suffix(".json").read_text())
    q3, q45 = rep["rates"]
    inv = q3["fits"]["inverse"]
    assert (inv["a"], inv["b"]) == (pytest.approx(1.0), pytest.approx(2.0))
    assert inv["hours_to_target"] == pytest.approx(4.0) and inv["rms_db"] < 1e-9
    assert inv["at"]["16"] == pytest.approx(1 - 2 / 16, abs=1e-3)
    lg = q45["fits"]["log"]
    assert (lg["a"], lg["b"]) == (pytest.approx(-1.0), pytest.approx(0.5))
    assert lg["hours_to_target"] == pytest.approx(math.exp(3.0))
    # the summary waits for the slowest in-window rate
    assert rep["hours_to_target_log"] == pytest.approx(max(math.exp(3.0), 8.0))


AB_TRAIN = ROOT / "benchmarks" / "rd" / "ab_train.py"


def _arm(bpp, psnr):
    return {"family": "fork", "steps": 4, "cpu_hours": 0.01, "train_loss_last100": 1.0,
            "gain_vs_jpeg_db": 0.0,
            "rates": [{"quality": q, "bpp": b, "psnr": p, "jpeg_psnr": p, "gain_vs_jpeg_db": 0.0}
                      for q, b, p in zip((1.5, 3, 4.5, 6), bpp, psnr)]}


def test_ab_train_verdicts_against_the_noise_floor(load_script, tmp_path):
    # arms that are the base curve at scaled rates: the BD-rate of a pure rate scaling s
    # is s - 1 exactly, so each verdict follows from the scale against the floor's 2%
    ab = load_script("benchmarks/rd/ab_train.py")
    bpp, psnr = np.array([0.3, 0.5, 0.8, 1.1]), [28.0, 30.2, 32.0, 33.1]
    results = {"base": _arm(bpp, psnr), "base-seed1": _arm(bpp * 1.02, psnr),
               "constant-lr": _arm(bpp * 1.10, psnr),   # base saves 9.1%: decay helps
               "no-ortho": _arm(bpp * 1.01, psnr),      # base saves 1%: within the 2% floor
               "crops-256": _arm(bpp * 1.05, psnr)}     # 5% more bits with 256 crops: hurts
    a = type("A", (), dict(out=tmp_path / "out", steps=4, scratch_steps=4, scratch_warmup=2,
                           lr=2.8e-4, threads=1, config="glic-tiny"))()
    ab.summarise(a, results, [Path("kodim01.png")], [1.5, 3, 4.5, 6],
                 {"path": "fork.pt", "step": 7, "cpu_hours": 0.5})
    rep = json.loads((tmp_path / "out" / "ab_train.json").read_text())
    by = {p["with"] + "/" + p["without"]: p for p in rep["pieces"]}
    assert by["base-seed1/base"]["bd_rate"]["value"] == pytest.approx(2.0, abs=0.01)
    assert by["base/constant-lr"]["bd_rate"]["value"] == pytest.approx(100 / 1.1 - 100, abs=0.01)
    assert [by[k]["verdict"] for k in ("base/constant-lr", "base/no-ortho", "crops-256/base",
                                       "scratch-warmup/scratch-no-warmup")] == [
        "helps", "within noise", "hurts", None]
    md = (tmp_path / "out" / "ab_train.md").read_text()
    assert "| learning-rate warm-up | scratch-warmup | scratch-no-warmup | not run |" in md


@pytest.mark.slow  # two short trainings and eight codings: about 35 s
def test_ab_train_trains_codes_and_resumes_arms(tmp_path, make_images):
    # two 4-step glic-tiny arms forked from one checkpoint: each trains with its own
    # settings from the fork's weights, is coded at every rate, and is neither trained
    # nor coded again by a second call
    from pyg_glic.models.glic import glic_model
    from pyg_glic.training.checkpoint import CHECKPOINT_VERSION
    from pyg_glic.training.models import CHECKPOINT_FORMAT

    torch.manual_seed(0)
    sd = glic_model("glic-tiny").state_dict()
    fork = tmp_path / "fork.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": 7,
                "args": {"config": "glic-tiny", "quality": 3, "steps": 100}, "model": sd,
                "ema": {k: v.float() for k, v in sd.items() if v.is_floating_point()},
                "ema_updates": 7, "cpu_seconds": 1800.0}, fork)
    for d in ("bsds500/train", "bsds500/test", "sun_hays80"):
        make_images(tmp_path / "train" / d, [(160, 160)], seed=len(d))
    make_images(tmp_path / "kodak", [(64, 64)])[0].rename(tmp_path / "kodak" / "kodim01.png")
    args = [sys.executable, str(AB_TRAIN), "--fork", str(fork), "--train-root",
            str(tmp_path / "train"), "--kodak", str(tmp_path / "kodak"), "--config", "glic-tiny",
            "--arms", "base,no-ortho", "--steps", "4", "--images", "01",
            "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for arm, ortho in (("base", 0.1), ("no-ortho", 0.0)):
        saved = json.loads((tmp_path / "runs" / arm / "args.json").read_text())
        assert (saved["steps"], saved["ortho_weight"], saved["lr_schedule"]) == (4, ortho, "cosine")
        assert saved["init_from"] == str(fork.resolve())
        res = json.loads((tmp_path / "runs" / arm / "result.json").read_text())
        assert [x["quality"] for x in res["rates"]] == [1.5, 3, 4.5, 6]
        assert all(x["bpp"] > 0 for x in res["rates"])
    ck = tmp_path / "runs" / "base" / "checkpoint.pt"
    mtime = ck.stat().st_mtime_ns
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "[base]" not in r.stdout, r.stdout + r.stderr[-2000:]
    assert ck.stat().st_mtime_ns == mtime
    md = (tmp_path / "out" / "ab_train.md").read_text()
    assert "| orthogonality loss (weight 0.1) | base | no-ortho |" in md and "no floor yet" in md


def test_ab_train_refuses_bad_input_before_writing(load_script, tmp_path):
    ab = load_script("benchmarks/rd/ab_train.py")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = ab.main(["--fork", str(tmp_path / "none.pt"), "--train-root", str(tmp_path),
                      "--kodak", str(tmp_path), "--arms", "base,bogus",
                      "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")])
    assert rc == 2 and "unknown ['bogus']" in err.getvalue()
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
