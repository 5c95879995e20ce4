import pytest
import torch


@pytest.mark.parametrize("graph", ["knn", "lrgc"])
def test_train_vig_quick(load_script, graph, tmp_path, capsys, monkeypatch):
    threads = torch.get_num_threads()
    mod = load_script("examples/train_vig.py")
    models, create = [], mod.create_model

    def keep(*args, **kwargs):  # keep the trained model, to check the accuracy it reports
        models.append(create(*args, **kwargs))
        return models[-1]
    monkeypatch.setattr(mod, "create_model", keep)
    out = mod.main(["--quick", "--graph", graph, "--no-progress",
                    "--json", str(tmp_path / "summary.json")])
    assert torch.get_num_threads() == threads  # the script restores the setting
    assert out["graph"] == graph and out["epochs"] == 1
    assert (tmp_path / "summary.json").exists()
    # the reported accuracy is the trained model's, in eval mode, on the 64 held-out
    # images --quick keeps (recomputed here from the script's own data split)
    assert len(models) == 1
    _, _, xva, yva = mod.load_data(32, 0.2, 0)
    model = models[0].eval()
    with torch.no_grad():
        correct = int((model(xva[:64]).argmax(-1) == yva[:64]).sum())
    assert out["val_acc"] == correct / 64 == out["history"][-1]["val_acc"], (out, correct)
    assert len(out["mean_degree_eval"]) == 4 and all(d > 0 for d in out["mean_degree_eval"])
    text = capsys.readouterr().out
    assert f"held-out accuracy {100 * out['val_acc']:.1f}%" in text
    if graph == "lrgc":
        rec = out["history"][0]
        assert len(rec["mean_degree"]) == len(rec["threshold"]) == 4
        assert "learned mean degree per layer" in text
    else:
        assert out["mean_degree_eval"] == [9.0, 12.0, 15.0, 18.0]  # ViG: k from 9 to 18
