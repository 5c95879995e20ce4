from collections import Counter


def test_seeded_fuzz_subset_has_no_crash_or_hang(load_script, tmp_path):
    fuzz = load_script("benchmarks/fuzz/fuzz.py")
    r = fuzz.run(cases=120, seed=1, cli=0, sample_named=2, out=str(tmp_path))
    total = Counter()
    for c in r["counts"].values():
        total.update(c)
    assert sum(total.values()) == 120
    assert total["crash"] == 0 and total["hang"] == 0, r["crashes"]
    assert set(r["counts"]) == set(fuzz.KINDS)
    # most mutations are refused; replaced payload bytes decode to some image
    assert total["refused"] >= 80 and r["counts"]["payload"].get("decoded", 0) > 0
