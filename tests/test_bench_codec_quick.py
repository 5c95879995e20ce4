import importlib.util
import json
import os

import compressai  # noqa: F401  (in install_requires: a broken import must fail)
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks", "codec", "bench.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("codec_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_writes_json_markdown_and_plot(bench, tmp_path):
    report = bench.main(["--quick", "--out", str(tmp_path), "--threads", "1", "--warmup", "0"])
    stem = tmp_path / "codec_cpu_quick"
    for ext in (".json", ".md", ".png"):
        assert stem.with_suffix(ext).stat().st_size > 0
    data = json.loads(stem.with_suffix(".json").read_text())
    for key in ("platform", "cpu_count", "device", "torch", "git_commit", "torch_threads"):
        assert key in data["meta"]
    assert {r["model"] for r in data["results"]} == {"mbt2018-mean", "glic-tiny"}
    for r in data["results"]:
        assert r["encode_s_median"] > 0 and r["decode_s_median"] > 0 and r["bytes"] > 0
    assert "| model |" in stem.with_suffix(".md").read_text()
    assert report["files"][0].endswith(".json")


def test_1080p_image_is_synthesised(bench):
    imgs = bench.load_images(quick=False)
    assert tuple(imgs["kodak"][0].shape) == (1, 3, 512, 768)
    assert tuple(imgs["1080p"][0].shape) == (1, 3, 1080, 1920)
