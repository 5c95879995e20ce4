import os
import subprocess
import sys

import pytest

from pyg_glic import typing as t


def test_flags_match_imports():
    try:
        import torch_cluster  # noqa: F401
        has_cluster = True
    except ImportError:
        has_cluster = False
    disabled = os.environ.get("PYG_GLIC_DISABLE_EXTENSIONS", "0") not in ("", "0")
    assert t.WITH_TORCH_CLUSTER == (has_cluster and not disabled)
    assert ("torch_cluster" in t.available_backends("knn")) == t.WITH_TORCH_CLUSTER
    assert ("torch_scatter" in t.available_backends("scatter")) == t.WITH_TORCH_SCATTER


def test_resolve_backend():
    assert t.resolve_backend("knn") == "torch"
    assert t.resolve_backend("knn", "torch") == "torch"
    expect = "torch_scatter" if t.WITH_TORCH_SCATTER else "torch"
    assert t.resolve_backend("scatter", "auto") == expect
    with pytest.raises(ValueError, match="unknown operation"):
        t.resolve_backend("sort")
    with pytest.raises(ValueError, match="expected 'auto' or one of"):
        t.resolve_backend("knn", "cuda")


def test_disable_switch_gives_pure_torch():
    code = ("from pyg_glic import typing as t; "
            "print(t.WITH_TORCH_CLUSTER, t.WITH_TORCH_SCATTER, t.resolve_backend('scatter'))")
    env = dict(os.environ, PYG_GLIC_DISABLE_EXTENSIONS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False", "torch"]
