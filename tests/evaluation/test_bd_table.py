r"""benchmarks/rd/bd_table.py: the BD tables of an evaluation folder rebuilt from its
curves, with the head-to-head columns of two learned codecs."""
import json

import pytest

RATE = [0.2, 0.4, 0.7, 1.1, 1.6]
PSNR = [28.0, 31.0, 34.0, 36.5, 39.0]


def _curve(name, kind, factor):
    return {"name": name, "description": name, "kind": kind, "settings": [],
            "results": {"bpp": [factor * r for r in RATE], "psnr-rgb": PSNR}}


def test_rebuilds_tables_with_head_to_head_columns(load_script, tmp_path):
    curves = [_curve("model", "learned", 0.9), _curve("peer", "learned", 1.0),
              _curve("JPEG", "classical", 1.25)]
    for c in curves:
        (tmp_path / f"{c['name'].lower()}.json").write_text(json.dumps(c))
    results = {"dataset": "somewhere", "images": ["a.png"], "date": "2026-01-01",
               "bd_method": "cubic", "bd_rates": [], "references": [],
               "curves": [{k: c[k] for k in ("name", "description", "results")}
                          for c in curves]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert load_script("benchmarks/rd/bd_table.py").main([str(tmp_path)]) == 0
    bd = {r["codec"]: r["against"] for r in
          json.loads((tmp_path / "bd_rates.json").read_text())["bd_rates"]}
    # 0.9x the peer's rate at every PSNR: -10% against it, and the peer +11.1% back
    assert bd["model"]["peer"]["value"] == pytest.approx(-10.0, abs=1e-6)
    assert bd["peer"]["model"]["value"] == pytest.approx(100 / 0.9 - 100, abs=1e-6)
    assert bd["model"]["JPEG"]["value"] == pytest.approx(-28.0, abs=1e-6)
    assert "model" not in bd["model"]  # never against itself
    md = (tmp_path / "bd_rates.md").read_text()
    assert "| codec | model | peer | JPEG |" in md
    assert json.loads((tmp_path / "results.json").read_text())["bd_rates"]


def test_missing_folder_or_curve_is_named(load_script, tmp_path, capsys):
    assert load_script("benchmarks/rd/bd_table.py").main([str(tmp_path)]) == 2
    assert "results.json" in capsys.readouterr().err
    (tmp_path / "results.json").write_text(json.dumps(
        {"curves": [{"name": "x", "description": "", "results": {}}]}))
    assert load_script("benchmarks/rd/bd_table.py").main([str(tmp_path)]) == 2
    assert "no curve file" in capsys.readouterr().err
