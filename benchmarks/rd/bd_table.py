r"""Recompute the BD-rate tables of an evaluation folder from its curves.

    python benchmarks/rd/bd_table.py RESULTS_DIR [--method cubic|pchip|akima]

``RESULTS_DIR`` is what ``pyg-glic eval -o`` wrote: one JSON per measured curve
(with its ``kind``) and ``results.json`` (with the reference curves). This
rebuilds ``bd_rates.json``, ``bd_rates.md`` and the ``bd_rates`` of
``results.json`` with :func:`pyg_glic.evaluation.runner.bd_report` (so a folder
measured before a change of the table, such as the head-to-head columns of two
learned codecs, gets the current table without coding the images again).
Nothing else is touched; each file is replaced atomically.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pyg_glic.evaluation.report import dumps
from pyg_glic.evaluation.runner import bd_report
from pyg_glic.utils.image import atomic_write

SKIP = {"results.json", "bd_rates.json", "training_budget.json"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results_dir", type=Path)
    p.add_argument("--method", default=None, help="default: the folder's own bd_method")
    a = p.parse_args(argv)
    res_path = a.results_dir / "results.json"
    if not res_path.is_file():
        print(f"error: {res_path} does not exist (expected a `pyg-glic eval -o` folder)",
              file=sys.stderr)
        return 2
    results = json.loads(res_path.read_text())
    method = a.method or results.get("bd_method", "cubic")
    by_name = {}
    for f in sorted(a.results_dir.glob("*.json")):
        if f.name in SKIP:
            continue
        c = json.loads(f.read_text())
        if isinstance(c, dict) and "kind" in c and "results" in c:
            by_name[c["name"]] = c
    order = [c["name"] for c in results["curves"]]
    missing = [n for n in order if n not in by_name]
    if missing:
        print(f"error: no curve file in {a.results_dir} for {missing}", file=sys.stderr)
        return 2
    curves = [by_name[n] for n in order]
    refs = results.get("references", [])
    where = f"{len(results['images'])} images of {results['dataset']}"
    _, md, bd_json = bd_report(curves, refs, method, where, [
        f"Tables rebuilt by benchmarks/rd/bd_table.py from the curves measured on "
        f"{results['date']}."])
    results["bd_rates"] = bd_json
    results["bd_method"] = method
    atomic_write(a.results_dir / "bd_rates.json",
                 dumps({"method": method, "bd_rates": bd_json}).encode(), force=True)
    atomic_write(a.results_dir / "bd_rates.md", md.encode(), force=True)
    atomic_write(res_path, dumps(results).encode(), force=True)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
