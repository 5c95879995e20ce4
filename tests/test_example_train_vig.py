import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "train_vig.py"


def _load():
    spec = importlib.util.spec_from_file_location("train_vig_example", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("graph", ["knn", "lrgc"])
def test_train_vig_quick(graph, tmp_path, capsys):
    threads = torch.get_num_threads()
    out = _load().main(["--quick", "--graph", graph, "--no-progress",
                        "--json", str(tmp_path / "summary.json")])
    assert torch.get_num_threads() == threads  # the script restores the setting
    assert out["graph"] == graph and out["epochs"] == 1
    assert 0.0 <= out["val_acc"] <= 1.0 and (tmp_path / "summary.json").exists()
    assert len(out["mean_degree_eval"]) == 4 and all(d > 0 for d in out["mean_degree_eval"])
    text = capsys.readouterr().out
    assert "held-out accuracy" in text
    if graph == "lrgc":
        rec = out["history"][0]
        assert len(rec["mean_degree"]) == len(rec["threshold"]) == 4
        assert "learned mean degree per layer" in text
    else:
        assert out["mean_degree_eval"] == [9.0, 12.0, 15.0, 18.0]  # ViG: k from 9 to 18
