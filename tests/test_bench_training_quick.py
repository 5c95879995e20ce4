import json


def test_quick_run_writes_json_and_markdown(load_script, tmp_path):
    bench = load_script("benchmarks/training/bench.py")
    assert bench.main(["--quick", "--variants", "fp32,channels_last", "--profile",
                       "--profile-steps", "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "training_cpu_quick.json").read_text())
    assert [r["variant"] for r in result["rows"]] == ["fp32", "channels_last"]
    assert all(r["median_s"] > 0 for r in result["rows"])
    assert result["machine"]["torch"] and result["profile"]
    md = (tmp_path / "training_cpu_quick.md").read_text()
    assert "| channels_last |" in md and "Profile of `fp32`" in md


def test_unknown_variant_is_refused(load_script, tmp_path, capsys):
    bench = load_script("benchmarks/training/bench.py")
    assert bench.main(["--quick", "--variants", "fp64", "--out", str(tmp_path)]) == 2
    assert "unknown variants ['fp64']" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
