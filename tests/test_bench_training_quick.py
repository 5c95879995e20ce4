import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks", "training", "bench.py")


def _bench():
    spec = importlib.util.spec_from_file_location("training_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_writes_json_and_markdown(tmp_path):
    bench = _bench()
    assert bench.main(["--quick", "--variants", "fp32,channels_last", "--profile",
                       "--profile-steps", "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "training_cpu_quick.json").read_text())
    assert [r["variant"] for r in result["rows"]] == ["fp32", "channels_last"]
    assert all(r["median_s"] > 0 for r in result["rows"])
    assert result["machine"]["torch"] and result["profile"]
    md = (tmp_path / "training_cpu_quick.md").read_text()
    assert "| channels_last |" in md and "Profile of `fp32`" in md


def test_unknown_variant_is_refused(tmp_path, capsys):
    assert _bench().main(["--quick", "--variants", "fp64", "--out", str(tmp_path)]) == 2
    assert "unknown variants ['fp64']" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
