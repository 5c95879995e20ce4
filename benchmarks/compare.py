r"""Two runs of one benchmark, row by row: is every configuration within a tolerance of
its earlier time, or faster?

    python benchmarks/compare.py OLD.json NEW.json [--tolerance 0.05] [--out STEM]

Both files are result JSONs of ``benchmarks/aggregation/bench.py`` or
``benchmarks/construction/bench.py`` (a ``results`` list of rows). Rows are matched by
every field that describes the configuration, i.e. all but the measurements
(:data:`MEASURED`); a row present in one run only is listed, not compared. For each
matched row: the median times and their ratio new / old; a row is **slower** when the
ratio exceeds ``1 + tolerance``. Writes ``STEM.json`` and ``STEM.md`` when ``--out`` is
given, and prints the table. Exit status 0 when no matched row is slower, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Tuple

#: Fields that are measured, not configured (never part of a row's identity).
MEASURED = {"time_ms_median", "times_ms", "first_call_ms", "peak_mib", "memory_method",
            "index_cache_mib", "graph_build_ms", "block_slots_ms", "edges", "mean_degree",
            "density", "target_reached", "threshold", "skipped", "max_abs_diff_vs_sparse",
            "max_abs_diff_vs_dense", "max_abs_diff", "best", "chose", "max_node_degree",
            "nodes_without_edges", "threshold_param"}


def _key(row: Dict) -> Tuple:
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in row.items()
                        if k not in MEASURED))


def _label(row: Dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items()
                     if k not in MEASURED and k not in ("nodes", "channels", "heads"))


def compare(old: Dict, new: Dict, tolerance: float) -> Dict:
    a = {_key(r): r for r in old["results"] if r.get("time_ms_median") is not None}
    b = {_key(r): r for r in new["results"] if r.get("time_ms_median") is not None}
    rows: List[Dict] = []
    for k, r in b.items():
        if k not in a:
            continue
        t0, t1 = float(a[k]["time_ms_median"]), float(r["time_ms_median"])
        ratio = t1 / t0 if t0 > 0 else float("inf")
        rows.append({"config": _label(r), "old_ms": t0, "new_ms": t1,
                     "ratio": round(ratio, 4), "slower": ratio > 1 + tolerance})
    meta = {name: {k: run.get("meta", run.get("machine", {})).get(k)
                   for k in ("date", "git_commit", "load_average_at_start", "torch_threads",
                             "torch")} for name, run in (("old", old), ("new", new))}
    ratios = sorted(r["ratio"] for r in rows)
    return {"tolerance": tolerance, "meta": meta, "matched": len(rows),
            "only_old": len(set(a) - set(b)), "only_new": len(set(b) - set(a)),
            "slower": sum(r["slower"] for r in rows),
            "median_ratio": ratios[len(ratios) // 2] if ratios else None,
            "rows": rows}


def markdown(rep: Dict, old: str, new: str) -> str:
    m = rep["meta"]
    lines = [f"# {Path(new).name} against {Path(old).name}", "",
             f"- old: {old}, commit {m['old']['git_commit']}, {m['old']['date']}, load at "
             f"start {m['old']['load_average_at_start']}, {m['old']['torch_threads']} thread(s)",
             f"- new: {new}, commit {m['new']['git_commit']}, {m['new']['date']}, load at "
             f"start {m['new']['load_average_at_start']}, {m['new']['torch_threads']} thread(s)",
             f"- {rep['matched']} configurations in both ({rep['only_old']} only in the old "
             f"run, {rep['only_new']} only in the new); median ratio new / old "
             f"{rep['median_ratio']}; **{rep['slower']} slower than {1 + rep['tolerance']:.2f}x**",
             "", "| configuration | old ms | new ms | new / old |", "|---|---|---|---|"]
    for r in rep["rows"]:
        flag = " **slower**" if r["slower"] else ""
        lines.append(f"| {r['config']} | {r['old_ms']:.3f} | {r['new_ms']:.3f} | "
                     f"{r['ratio']:.3f}{flag} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--tolerance", type=float, default=0.05)
    p.add_argument("--out", help="write STEM.json and STEM.md")
    a = p.parse_args(argv)
    try:
        old, new = (json.loads(Path(f).read_text()) for f in (a.old, a.new))
        rep = compare(old, new, a.tolerance)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = markdown(rep, a.old, a.new)
    if a.out:
        Path(a.out).with_suffix(".json").write_text(json.dumps(rep, indent=1) + "\n")
        Path(a.out).with_suffix(".md").write_text(text)
    print(text, end="")
    return 1 if rep["slower"] else 0


if __name__ == "__main__":
    sys.exit(main())
