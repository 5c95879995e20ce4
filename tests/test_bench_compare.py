import json


def _run(rows, date):
    return {"meta": {"date": date, "git_commit": "c", "torch_threads": 1},
            "results": [dict(r, times_ms=[r["time_ms_median"]], peak_mib=1.0) for r in rows]}


def test_rows_match_by_configuration_and_slower_ones_are_flagged(load_script, tmp_path):
    old = _run([{"graph": "halo", "height": 32, "time_ms_median": 10.0},
                {"graph": "halo", "height": 64, "time_ms_median": 40.0},
                {"graph": "window", "height": 32, "time_ms_median": 5.0}], "d0")
    new = _run([{"graph": "halo", "height": 32, "time_ms_median": 10.4},   # +4%: within
                {"graph": "halo", "height": 64, "time_ms_median": 44.0},   # +10%: slower
                {"graph": "global", "height": 32, "time_ms_median": 1.0}], "d1")
    for name, run in (("old", old), ("new", new)):
        (tmp_path / f"{name}.json").write_text(json.dumps(run))
    stem = tmp_path / "cmp"
    compare = load_script("benchmarks/compare.py")
    rc = compare.main([str(tmp_path / "old.json"), str(tmp_path / "new.json"),
                       "--out", str(stem)])
    assert rc == 1
    rep = json.loads(stem.with_suffix(".json").read_text())
    assert (rep["matched"], rep["only_old"], rep["only_new"], rep["slower"]) == (2, 1, 1, 1)
    by = {r["config"]: r for r in rep["rows"]}
    assert by["graph=halo, height=64"]["slower"] and by["graph=halo, height=64"]["ratio"] == 1.1
    assert not by["graph=halo, height=32"]["slower"]
    assert "**slower**" in stem.with_suffix(".md").read_text()
    assert compare.main([str(tmp_path / "old.json"), str(tmp_path / "new.json"),
                         "--tolerance", "0.2"]) == 0
