import json

import compressai  # noqa: F401  (in install_requires: a broken import must fail)
import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/codec/bench.py")


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


@pytest.mark.slow
def test_tiles_quick_run(load_script, tmp_path):
    # fresh processes per measurement (peak memory), so seconds, not milliseconds
    mod = load_script("benchmarks/codec/tiles.py")
    mod.main(["--quick", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "codec_tiles_cpu_quick.json").read_text())
    assert data["config"] == "glic-tiny" and data["machine"]["device"] == "cpu"
    assert [r["tiles"] for r in data["scaling"]] == [1, 6]  # 256x192 whole; 632x472 in 256s
    for r in data["scaling"]:
        assert r["encode_peak_mib"] > data["baseline_mib"] * 0.9 and r["decode_s"] > 0
    mean = data["rd"]["mean"]
    # forced 128-pixel tiles cost some rate, and the edge bands are measured on both decodes
    assert mean["t128_bpp"] > 0 and mean["whole_bpp"] > 0
    assert {"t128_edge_psnr", "t128_rest_psnr", "t128_whole_edge_psnr"} <= set(mean)
    assert "| 128x128 |" in (tmp_path / "codec_tiles_cpu_quick.md").read_text()
