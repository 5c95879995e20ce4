import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks", "aggregation", "bench.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("aggregation_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_writes_json_markdown_and_plot(bench, tmp_path):
    report = bench.main(["--quick", "--out", str(tmp_path), "--threads", "1", "--warmup", "0",
                         "--batches", "1", "--check"])
    stem = tmp_path / "aggregation_cpu_quick"
    for ext in (".json", ".md", ".png"):
        assert stem.with_suffix(ext).stat().st_size > 0
    data = json.loads(stem.with_suffix(".json").read_text())
    for key in ("platform", "cpu_count", "device", "torch", "git_commit", "torch_threads"):
        assert key in data["meta"]
    forms = {(r["layer"], r["form"]) for r in data["results"]}
    assert {("glic_attention", "sparse"), ("glic_attention", "dense"),
            ("glic_attention", "dense_ref"), ("glic_attention", "auto"),
            ("mr_conv", "sparse"), ("mr_conv", "dense")} <= forms
    modes = {r["mode"] for r in data["results"]}
    assert modes == {"forward", "forward+backward"}
    for r in data["results"]:
        assert r["time_ms_median"] > 0
        assert r.get("peak_mib") is None or r["peak_mib"] >= 0
        if "max_abs_diff_vs_sparse" in r:  # blocked-dense equals sparse (float32)
            assert r["max_abs_diff_vs_sparse"] < 1e-4
    assert set(data["fitted_policy"]) == {"forward", "forward+backward"}
    md = stem.with_suffix(".md").read_text()
    assert "| batch | nodes | degree |" in md and "Max-relative conv" in md
    assert report["files"][0].endswith(".json")
    # fitting from the written file gives the same thresholds
    refit = bench.main(["--fit", str(stem.with_suffix(".json"))])["fitted_policy"]
    assert refit == data["fitted_policy"]


@pytest.mark.slow
def test_compiled_probe_quick_run(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "aggregation_compiled", os.path.join(ROOT, "benchmarks", "aggregation", "compiled.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    report = mod.main(["--quick", "--out", str(tmp_path), "--degrees", "16",
                       "--modes", "forward", "--no-memory"])
    stem = tmp_path / "aggregation_compiled_cpu_quick"
    for ext in (".json", ".md", ".png"):
        assert stem.with_suffix(ext).stat().st_size > 0
    forms = {r["form"] for r in report["results"]}
    assert forms == {"sparse", "sparse_compiled", "dense", "dense_compiled"}
    for r in report["results"]:  # every core, eager or compiled, gives the same output
        assert r["max_abs_diff_vs_sparse"] < 1e-4
