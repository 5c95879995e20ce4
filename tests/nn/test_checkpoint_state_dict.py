r"""State dicts written before a change keep loading: no parameter or buffer of any
model is renamed, moved, added or reshaped.

Two references, both from code before issue 15's refactor (commit 999b3c2):

- the shipped ``glic-lite`` weights (``pyg_glic/zoo/weights/glic-lite.pt``, exported
  by the training campaign running that code) load with ``strict=True``;
- ``tests/data/state_dict_manifest.json``: for every GLIC configuration and every
  ViG model and graph kind, the number of state-dict entries and the sha256 of its
  sorted ``key:shape`` lines, as that code built them. ViG's ``graph="window"`` is
  built here under its new name ``"halo"`` (the same model).
"""
import hashlib
import json
from pathlib import Path

import pytest
import torch

from pyg_glic.models import vig
from pyg_glic.models.glic import glic_model
from pyg_glic.zoo import WEIGHTS_DIR

MANIFEST = json.loads((Path(__file__).resolve().parents[1] / "data"
                       / "state_dict_manifest.json").read_text())["models"]
#: Built in seconds; the others (69 M-parameter GLIC, ViG-S/B...) run with the slow tests.
FAST = {"glic:glic-lite", "glic:glic-tiny", "glic:glic-tiny/no-wavelet", "vig:vig_test:knn",
        "vig:vig_test:window", "vig:pvig_test:dual", "vig:pvig_test:lrgc"}


def _build(name: str) -> torch.nn.Module:
    kind, model, *graph = name.split(":")
    if kind == "glic":
        return glic_model(model)
    g = {"window": "halo"}.get(graph[0], graph[0])
    return vig.create_model(model, graph=g)


def _manifest_entry(state) -> dict:
    text = "\n".join(f"{k}:{','.join(map(str, v.shape))}" for k, v in sorted(state.items()))
    return {"entries": len(state), "sha256": hashlib.sha256(text.encode()).hexdigest()}


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow)
                                  for n in sorted(MANIFEST)])
def test_state_dict_keys_and_shapes_unchanged(name):
    torch.manual_seed(0)
    assert _manifest_entry(_build(name).state_dict()) == MANIFEST[name]


def test_shipped_glic_lite_weights_load_strictly():
    sd = torch.load(WEIGHTS_DIR / "glic-lite.pt", map_location="cpu", weights_only=True)
    sd.pop("_hparams", None)
    model = glic_model("glic-lite")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in sd.items()}
    assert sorted(set(theirs) ^ set(ours)) == [], "state-dict keys differ"
    assert {k: ours[k] for k in ours if ours[k] != theirs[k]} == {}, "shapes differ"
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
