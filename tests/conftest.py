r"""Fixtures shared by several test folders."""
import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

_TORCH_TRACE = logging.getLogger("torch.__trace")
ROOT = Path(__file__).resolve().parents[1]


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item):
    r"""Keep torch's structured trace off while a test runs, as it is outside pytest.

    pytest (9.x) attaches its log-capture handler to every non-propagating logger,
    ``torch.__trace`` included, and torch switches its structured trace (what
    ``TORCH_TRACE`` turns on) on whenever that logger has a handler: every compile
    then also builds trace artifacts. One of them, ``fx_graph_runnable`` (torch 2.15),
    fails with ``PendingUnbackedSymbolNotFound`` on a graph whose input is an
    ``EdgeIndex`` (docs/ARCHITECTURE.md, "torch.compile"). This hook runs inside
    pytest's logging wrapper (``trylast``), after it attached the handler.
    """
    for handler in list(_TORCH_TRACE.handlers):
        if type(handler).__module__.startswith("_pytest"):
            _TORCH_TRACE.removeHandler(handler)
    return (yield)


def _load_script(relpath):
    path = ROOT / relpath
    name = "_script_" + "_".join(Path(relpath).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def load_script():
    r"""``load_script("benchmarks/rd/curve.py")``: a fresh module of a script outside the
    package (a benchmark or an example), executed from its file under the repository."""
    return _load_script


@pytest.fixture(scope="module")
def one_thread():
    r"""One intra-op thread: these tiny models run several times faster on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_codec(one_thread):
    r"""An untrained glic-tiny with its own seed, ready to code: it stands in for
    trained weights (fast, and its fingerprint is not the ``+untrained`` model's)."""
    from pyg_glic.models.glic import glic_model

    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    m = glic_model("glic-tiny").eval()
    torch.random.set_rng_state(state)
    m.update(force=True)
    return m


def _gradient(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                  (x + y) * 128 // max(h + w - 2, 1) + 64], -1)
    a = a + rng.integers(-12, 13, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)


@pytest.fixture()
def make_images():
    r"""``make_images(folder, [(h, w), ...], fmt="png")`` -> paths of gradient+noise images."""

    def make(folder, sizes, fmt="png", seed=0):
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (h, w) in enumerate(sizes):
            p = folder / f"img{i}.{fmt}"
            Image.fromarray(_gradient(h, w, seed + i)).save(p)
            paths.append(p)
        return paths

    return make
