import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, make_images):
    r"""Data-parallel on the CPU (gloo): 2 ranks, rank 0 writes, parameters stay in sync."""
    make_images(tmp_path / "d", [(64, 64), (64, 64), (64, 64), (64, 64)])
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "pyg_glic", "train", str(tmp_path / "d"), "--steps", "2", "-c", "glic-tiny",
           "--crop-size", "64", "--batch-size", "1", "--workers", "0", "--device", "cpu",
           "--no-progress", "--log-every", "1", "-o", str(out), "--export", str(out / "w.pt"),
           "--val", str(tmp_path / "d"), "--val-every", "1", "--val-max-images", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 process(es), 2 steps of 1x64" in p.stderr
    assert p.stdout.count("step 2: checkpoint") == 1, p.stdout  # only rank 0 reports
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2]
    assert [x["step"] for x in lines if "val" in x] == [1, 2]
    args = json.loads((out / "args.json").read_text())
    assert args["world_size"] == 2 and args["steps_per_epoch"] == 2
    assert (out / "checkpoint.pt").is_file() and (out / "w.pt").is_file()
