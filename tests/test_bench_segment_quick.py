import json

import torch


def test_forms_agree_with_a_loop_over_targets(load_script):
    # both forms against a plain Python loop over each target's edges
    bench = load_script("benchmarks/aggregation/segment.py")
    gen = torch.Generator().manual_seed(0)
    ptr = bench._pointer(7, 3, gen)
    for site, width in (("attention", 2), ("mrconv", 3)):
        _, tf, sf = bench._forms(site, ptr, width, torch.Generator().manual_seed(1))
        # rebuild the same values to reduce them by hand
        E = int(ptr[-1])
        g = torch.Generator().manual_seed(1)
        v = torch.randn(width, E, generator=g) if site == "attention" else \
            torch.randn(E, width, generator=g)
        segs = [(int(a), int(b)) for a, b in zip(ptr[:-1], ptr[1:])]
        if site == "attention":
            ref = [torch.stack([torch.stack([v[h, a:b].max() for a, b in segs])
                                for h in range(width)]),
                   torch.stack([torch.stack([v[h, a:b].sum() for a, b in segs])
                                for h in range(width)])]
        else:
            ref = [torch.stack([v[a:b].amax(0) for a, b in segs])]
        for form in (tf, sf):
            for out, r in zip(form(), ref):
                torch.testing.assert_close(out, r)


def test_quick_run_writes_json_and_table(load_script, tmp_path):
    bench = load_script("benchmarks/aggregation/segment.py")
    assert bench.main(["--quick", "--out", str(tmp_path), "--repeats", "1"]) == 0
    data = json.loads((tmp_path / "segment_reduce_cpu_quick.json").read_text())
    assert {r["site"] for r in data["rows"]} == {"attention", "mrconv"}
    assert all(r["torch_ms"] > 0 and r["segment_csr_ms"] > 0 for r in data["rows"])
    for key in ("torch", "torch_scatter", "cpu_count", "git_commit"):
        assert key in data["machine"]
    assert "| attention |" in (tmp_path / "segment_reduce_cpu_quick.md").read_text()
