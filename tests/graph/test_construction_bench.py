import json

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/construction/bench.py")


def test_quick_run_writes_json_markdown_and_plot(bench, tmp_path):
    report = bench.main(["--quick", "--out", str(tmp_path), "--threads", "1",
                         "--sizes", "16x24", "--repeats", "1", "--warmup", "0"])
    stem = tmp_path / "construction_cpu_quick"
    for ext in (".json", ".md", ".png"):
        assert (stem.with_suffix(ext)).stat().st_size > 0
    data = json.loads(stem.with_suffix(".json").read_text())
    meta = data["meta"]
    for key in ("platform", "cpu_count", "device", "torch", "git_commit"):
        assert key in meta
    graphs = {r["graph"] for r in data["results"]}
    assert {"window", "halo", "halo_adaptive", "global", "knn", "learnable"} <= graphs
    for r in data["results"]:
        assert r["time_ms_median"] > 0 and r["edges"] > 0
        assert r["peak_mib"] is None or r["peak_mib"] >= 0
    md = stem.with_suffix(".md").read_text()
    assert "| graph | backend |" in md and "torch" in md
    assert report["files"][0].endswith(".json")
