r"""State dicts of training checkpoints written before a change keep loading.

The layers must never rename, move or re-create a module attribute or
parameter. The reference is a real campaign checkpoint of ``glic-lite``
(``runs/tiles_bench_weights.pt``, written before the graphs became EdgeIndex
objects): its keys and shapes must be those of a freshly built model, and it
must load with ``strict=True``.
"""
from pathlib import Path

import pytest
import torch

from pyg_glic.models.glic import glic_model

CHECKPOINT = Path(__file__).resolve().parents[2] / "runs" / "tiles_bench_weights.pt"


@pytest.fixture(scope="module")
def checkpoint_state():
    if not CHECKPOINT.is_file():
        pytest.skip(f"no campaign checkpoint at {CHECKPOINT} (written by the glic-lite "
                    f"training campaign; not part of the repository)")
    ckpt = torch.load(CHECKPOINT, weights_only=False, map_location="cpu")
    return ckpt["model"]


def test_glic_lite_state_dict_matches_checkpoint(checkpoint_state):
    model = glic_model("glic-lite")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in checkpoint_state.items()}
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    assert not missing and not extra, f"missing {missing[:10]}, unexpected {extra[:10]}"
    wrong = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    assert not wrong, f"shapes differ: {dict(list(wrong.items())[:10])}"
    model.load_state_dict(checkpoint_state, strict=True)
