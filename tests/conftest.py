r"""Fixtures shared by several test folders."""
import numpy as np
import pytest
import torch
from PIL import Image


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
