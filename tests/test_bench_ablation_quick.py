import json

import compressai  # noqa: F401  (in install_requires: a broken import must fail)
import pytest


@pytest.fixture(scope="module")
def ablation(load_script):
    return load_script("benchmarks/ablation/run.py")


def _args(tmp_path, *extra):
    return ["--base", "glic-tiny", "--train", str(tmp_path / "train"),
            "--kodak", str(tmp_path / "kodak"), "--steps", "2", "--crop", "64", "--batch", "2",
            "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), *extra]


def test_quick_run_trains_codes_and_writes_the_table(ablation, make_images, tmp_path):
    make_images(tmp_path / "train", [(64, 64)] * 4)
    make_images(tmp_path / "kodak", [(64, 64)] * 2, seed=7)
    argv = _args(tmp_path, "--variants", "no-wavelet", "--qualities", "1,6", "--images", "1",
                 "--in-process")
    assert ablation.main(argv) == 0
    out = tmp_path / "out"
    for f in ("results.json", "results.md", "rd.png"):
        assert (out / f).stat().st_size > 0
    data = json.loads((out / "results.json").read_text())
    for key in ("platform", "cpu_count", "device", "torch", "git_commit"):
        assert key in data["meta"]
    assert list(data["variants"]) == ["base", "no-wavelet"]
    for name, r in data["variants"].items():
        assert r["status"] == "ok", r.get("error")
        assert r["training"]["steps"] == 2 and r["training"]["train_wall_s"] > 0
        assert r["parameters"] > 0
        assert r["curve"]["settings"] == [1.0, 6.0]
        assert all(b > 0 for b in r["curve"]["results"]["bpp"])
    # the wavelet branch has parameters: the variant without it is smaller
    assert data["variants"]["no-wavelet"]["parameters"] < data["variants"]["base"]["parameters"]
    assert set(data["bd_rates"]) == {"no-wavelet"}
    md = (out / "results.md").read_text()
    table = md.split("## BD-rate")[1].split("##")[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert [r.split("|")[1].strip() for r in rows] == ["variant", "base", "no-wavelet"]
    assert "Smoke budget" in md
    assert "--seed 0" in data["variants"]["base"]["training"]["command"]
    # a second invocation would skip the finished runs; one with other settings is refused
    args = ablation.parse_args(argv)
    assert ablation.run_state(tmp_path / "runs" / "base", args, "glic-tiny") == "done"
    with pytest.raises(ablation.BadInput, match="steps=2, not 3"):
        ablation.run_state(tmp_path / "runs" / "base",
                           ablation.parse_args(argv + ["--steps", "3"]), "glic-tiny")


@pytest.mark.parametrize("extra, message", [
    (["--variants", "no-such-variant"], "unknown variant"),
    (["--qualities", "0.5,3"], "must lie in [1, 6]"),
    (["--quality", "3"], "variable-rate"),
    (["--base", "glic", "--qualities", "1,2"], "fixed-rate"),
    (["--crop", "100"], "multiple of 64"),
    (["--images", "5"], "holds only"),
])
def test_bad_inputs_are_one_line_and_exit_2(ablation, make_images, tmp_path, capsys,
                                            extra, message):
    make_images(tmp_path / "train", [(64, 64)])
    make_images(tmp_path / "kodak", [(64, 64)])
    assert ablation.main(_args(tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
