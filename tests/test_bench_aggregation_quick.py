import json

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/aggregation/bench.py")


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
    # --quick measures GLIC attention on all three graph kinds, every row says which
    glic = [r for r in data["results"] if r["layer"] == "glic_attention"]
    assert {r["graph"] for r in glic} == {"local", "global", "learned"}
    for graph in ("local", "global", "learned"):
        rows = [r for r in glic if r["graph"] == graph]
        assert {(r["form"], r["mode"]) for r in rows} >= {
            (f, m) for f in ("sparse", "dense", "auto") for m in ("forward", "forward+backward")}
        assert all(r["mean_degree"] > 0 and 0 < r["density"] <= 1 for r in rows)
    assert {r["degree"] for r in glic if r["graph"] == "global"} == {"16", "64", "a64"}
    assert any(r["graph"] == "global" and r["form"] == "dense_ref" for r in glic)
    assert all(r["num_src"] == 256 for r in glic if r["graph"] == "global")  # 16x16 pooled
    learned = [r for r in glic if r["graph"] == "learned"]
    assert {r["degree"] for r in learned} == {"~16", "~64"}
    for r in learned:  # the calibrated threshold gives the target mean degree
        assert r["target_reached"] and abs(r["mean_degree"] - r["target_degree"]) < 1
        assert r["form"] != "dense_ref"
    modes = {r["mode"] for r in data["results"]}
    assert modes == {"forward", "forward+backward"}
    for r in data["results"]:
        assert r["time_ms_median"] > 0
        assert r.get("peak_mib") is None or r["peak_mib"] >= 0
    # --check: every blocked-dense and dense-reference row of GLIC attention records its
    # difference to the sparse form, and it is float32 rounding
    checked = [r for r in glic if r["form"] in ("dense", "dense_ref")]
    assert {r["form"] for r in checked} == {"dense", "dense_ref"}
    for r in checked:
        assert "max_abs_diff_vs_sparse" in r, r
        assert 0 <= r["max_abs_diff_vs_sparse"] < 1e-4, r
    assert set(data["fitted_policy"]) == {"forward", "forward+backward"}
    assert set(data["policy_check"]) == {"global", "learned"}
    md = stem.with_suffix(".md").read_text()
    assert "| batch | nodes | degree |" in md and "Max-relative conv" in md
    for graph in ("local", "global", "learned"):
        assert f"## GLIC attention, {graph} graph" in md
    assert report["files"][0].endswith(".json")
    assert (tmp_path / "aggregation_cpu_quick_graphs.png").stat().st_size > 0
    # fitting from the written file gives the same thresholds
    refit = bench.main(["--fit", str(stem.with_suffix(".json"))])["fitted_policy"]
    assert refit == data["fitted_policy"]
    # the fit uses the local rows only; rows without a graph field (older results) are local
    old = {"results": [{k: v for k, v in r.items() if k != "graph"} for r in glic
                       if r["graph"] == "local"]}
    assert bench.fit_policy(old) == data["fitted_policy"]


@pytest.mark.slow
def test_compiled_probe_quick_run(load_script, tmp_path):
    mod = load_script("benchmarks/aggregation/compiled.py")
    report = mod.main(["--quick", "--out", str(tmp_path), "--degrees", "16",
                       "--modes", "forward", "--no-memory"])
    stem = tmp_path / "aggregation_compiled_cpu_quick"
    for ext in (".json", ".md", ".png"):
        assert stem.with_suffix(ext).stat().st_size > 0
    forms = {r["form"] for r in report["results"]}
    assert forms == {"sparse", "sparse_compiled", "dense", "dense_compiled"}
    for r in report["results"]:  # every core, eager or compiled, gives the same output
        assert r["max_abs_diff_vs_sparse"] < 1e-4
