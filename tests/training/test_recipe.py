import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from pyg_glic.training import TrainConfig, train
from pyg_glic.training.checkpoint import load_checkpoint
from pyg_glic.training.models import load_model_file
from pyg_glic.training.trainer import (DEFAULTS, WeightEMA, learning_rate, level_of_step,
                                       phases)

ROOT = Path(__file__).resolve().parents[2]


def _s(**kw):
    return dict(DEFAULTS, **kw)


def test_warmup_then_each_schedule():
    s = _s(lr=1e-3, warmup=4, lr_schedule="step", lr_milestones=[0.5], lr_gamma=0.1)
    assert [learning_rate(i, s, 10) for i in range(4)] == pytest.approx(
        [2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert learning_rate(4, s, 10) == pytest.approx(1e-3)
    assert learning_rate(5, s, 10) == pytest.approx(1e-4)  # milestone 0.5 of 10 steps

    s = _s(lr=1e-4, lr_schedule="drop", lr_drop_at=0.8, lr_min=1e-5)
    assert learning_rate(799, s, 1000) == pytest.approx(1e-4)
    assert learning_rate(800, s, 1000) == pytest.approx(1e-5)

    s = _s(lr=3e-4, warmup=100, lr_schedule="cosine", lr_min=1e-5)
    total = 1101
    assert learning_rate(100, s, total) == pytest.approx(3e-4)
    mid = 100 + 500
    assert learning_rate(mid, s, total) == pytest.approx(1e-5 + 0.5 * (3e-4 - 1e-5))
    assert learning_rate(total - 1, s, total) == pytest.approx(1e-5)
    lrs = [learning_rate(i, s, total) for i in range(100, total)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # decays monotonically


def test_phases_of_a_late_large_crop_run():
    s = _s(crop_size=128, batch_size=8, late_crop_size=256, late_batch_size=2, late_from=0.9)
    p = phases(s, 1000)
    assert [(x.start, x.end, x.crop_size, x.batch_size) for x in p] == [
        (0, 900, 128, 8), (900, 1000, 256, 2)]
    assert [(x.start, x.end) for x in phases(_s(), 50)] == [(0, 50)]
    # a late phase from a whole step number
    assert phases(dict(s, late_from=400), 1000)[1].start == 400


def test_levels_are_drawn_uniformly_and_reproducibly():
    draws = [level_of_step(i, 0, 6) for i in range(3000)]
    assert draws == [level_of_step(i, 0, 6) for i in range(3000)]
    assert draws != [level_of_step(i, 1, 6) for i in range(3000)]
    counts = Counter(draws)
    assert set(counts) == set(range(1, 7))
    assert all(abs(c - 500) < 100 for c in counts.values()), counts


def test_weight_average_matches_the_formula():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    ema = WeightEMA(net, decay=0.9)
    ref = {k: v.clone() for k, v in net.state_dict().items()}
    for n in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        ema.update(net)
        d = min(0.9, (1 + n) / (10 + n))
        for k, v in net.state_dict().items():
            ref[k] = d * ref[k] + (1 - d) * v
    got = ema.state_dict_for(net)
    for k in ref:
        assert torch.allclose(got[k], ref[k], atol=1e-6), k
    avg = ema.averaged_copy(net)
    assert torch.allclose(avg.weight, ref["weight"], atol=1e-6)
    assert not torch.allclose(net.weight, ref["weight"])  # the model itself is untouched


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("recipe") / "data"
    d.mkdir()
    rng = np.random.RandomState(0)
    for i in range(2):
        Image.fromarray((rng.rand(80, 96, 3) * 255).astype(np.uint8)).save(d / f"{i}.png")
    return d


FAST = dict(config="glic-tiny", crop_size=64, batch_size=1, workers=0, lr=1e-3, log_every=1,
            seed=3, progress=False, warmup=1, lr_schedule="cosine", ema_decay=0.9)


def test_stop_at_and_resume_equal_the_straight_run(data, tmp_path):
    straight = train(TrainConfig(train_dirs=[data], out=tmp_path / "a", steps=3, **FAST))
    assert straight["finished"]
    paused = train(TrainConfig(train_dirs=[data], out=tmp_path / "b", steps=3, stop_at=2,
                               **FAST))
    assert paused["step"] == 2 and not paused["finished"] and paused["export"] is None
    resumed = train(TrainConfig(resume=str(tmp_path / "b" / "checkpoint.pt"), progress=False))
    assert resumed["step"] == 3 and resumed["finished"]
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    assert a["ema_updates"] == b["ema_updates"] == 3
    assert b["cpu_seconds"] > 0 and b["wall_seconds"] > 0
    # the checkpoint's EMA weights are what load_model_file gives by default
    ema_net = load_model_file(tmp_path / "a" / "checkpoint.pt").model
    raw_net = load_model_file(tmp_path / "a" / "checkpoint.pt", ema=False).model
    k = "g_a.down0.weight"
    assert torch.equal(ema_net.state_dict()[k], a["ema"][k])
    assert torch.equal(raw_net.state_dict()[k], a["model"][k])


def test_late_phase_and_orthogonality_are_logged(data, tmp_path):
    train(TrainConfig(train_dirs=[data], out=tmp_path / "r", steps=3, late_crop_size=128,
                      late_batch_size=1, late_from=2, **FAST))
    args = json.loads((tmp_path / "r" / "args.json").read_text())
    assert [p["crop_size"] for p in args["phases"]] == [64, 128]
    assert args["variable_rate"] and args["levels"] == 6
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all("ortho" in r and math.isfinite(r["ortho"]) for r in rows)


def test_sigterm_stops_cleanly_with_a_whole_checkpoint(data, tmp_path):
    out = tmp_path / "sig"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyg_glic", "train", str(data), "-c", "glic-tiny", "--steps",
         "1000", "--crop-size", "64", "--batch-size", "1", "--workers", "0", "--log-every",
         "1", "--no-progress", "-o", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            m = out / "metrics.jsonl"
            if m.is_file() and m.read_text().strip():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run logged no step within 120 s")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 128 + signal.SIGTERM, proc.stderr.read().decode()[-2000:]
    ck = load_checkpoint(out / "checkpoint.pt")
    assert 1 <= ck["step"] < 1000
    assert not list(out.glob(".*tmp*"))
