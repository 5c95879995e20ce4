import json

import pytest
import torch

from pyg_glic.models.glic import GLIC
from pyg_glic.training import TrainConfig, train
from pyg_glic.training.checkpoint import load_checkpoint
from pyg_glic.training.data import InputError
from pyg_glic.training.loss import RDLoss, keep_entropy_models_fp32
from pyg_glic.training.models import build_model, load_model_file, load_weights_into
from pyg_glic.training.trainer import lr_at, milestone_steps

# One 64x64 image, crop 64, no flips: every batch is the same (a fixed batch,
# repeated), so the loss must fall. An absolute milestone (step 2) makes a run
# of 1 step + resume to 3 follow the same schedule as 3 steps straight.
TINY = dict(config="glic-tiny", crop_size=64, batch_size=1, workers=0, flips=False,
            lr=1e-3, lr_milestones=[2], log_every=1, seed=7, progress=False)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run3(tmp_path_factory):
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("train")
    data = root / "data"
    data.mkdir()
    y, x = np.mgrid[0:64, 0:64]
    arr = np.stack([x * 4, y * 4, (x + y) * 2], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(arr).save(data / "a.png")
    (root / "export").mkdir()
    summary = train(TrainConfig(train_dirs=[data], out=root / "run3", steps=3,
                                export=root / "export", val_dirs=[data], val_every=2, **TINY))
    return root, data, summary


def test_loss_falls_and_files_written(run3):
    root, _, summary = run3
    run = root / "run3"
    m = [r for r in _metrics(run) if "loss" in r]
    assert [r["step"] for r in m] == [1, 2, 3]
    assert m[-1]["loss"] < 0.8 * m[0]["loss"], [r["loss"] for r in m]
    # the rate each logged step ran at: the milestone (step 2) lowers the third
    assert [r["lr"] for r in m] == pytest.approx([1e-3, 1e-3, 1e-4])
    val = [r["val"] for r in _metrics(run) if "val" in r]
    assert [v["step"] for v in val] == [2, 3]
    assert val[0]["bpp"] > 0 and val[0]["psnr"] > 0
    args = json.loads((run / "args.json").read_text())
    assert args["lmbda"] == 0.0067 and args["steps"] == 3 and args["milestone_steps"] == [2]
    assert summary["step"] == 3 and summary["skipped_steps"] == 0
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["step"] == 3 and ckpt["args"]["config"] == "glic-tiny"
    assert set(ckpt) >= {"model", "optimizer", "aux_optimizer", "scheduler", "rng", "args"}
    assert not list(run.glob(".*tmp"))  # no temporary files left


def test_resume_continues_from_saved_step(run3, tmp_path):
    root, data, _ = run3
    out = tmp_path / "run"
    train(TrainConfig(train_dirs=[data], out=out, steps=1, **TINY))
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 1
    # Settings come back from the checkpoint; only the length is new.
    summary = train(TrainConfig(resume=str(out / "checkpoint.pt"), steps=3, progress=False))
    assert summary["step"] == 3
    steps = [r["step"] for r in _metrics(out) if "loss" in r]
    assert steps == [1, 2, 3]
    # Resuming a finished run only exports (no step is taken).
    s2 = train(TrainConfig(resume=str(out), export=str(out / "w.pt"), progress=False))
    assert s2["step"] == 3 and (out / "w.pt").is_file()
    assert [r["step"] for r in _metrics(out) if "loss" in r] == [1, 2, 3]
    a = load_checkpoint(out / "checkpoint.pt")["model"]
    b = load_checkpoint(root / "run3" / "checkpoint.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:  # the interrupted run ends where the straight run ends
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6, rtol=0), k


def test_resume_refuses_other_model_or_lambda(run3, tmp_path):
    root, data, _ = run3
    ck = str(root / "run3" / "checkpoint.pt")
    with pytest.raises(InputError, match="quality 5 differs"):
        train(TrainConfig(resume=ck, steps=5, quality=5, out=tmp_path / "x", progress=False))
    with pytest.raises(InputError, match="use --init-from"):
        train(TrainConfig(resume=ck, steps=5, lmbda=0.1, out=tmp_path / "x", progress=False))
    assert not (tmp_path / "x").exists()


def test_export_loads_with_the_zoo_loader(run3, monkeypatch):
    root, _, summary = run3
    path = root / "export" / "glic-tiny.pt"  # variable rate: one file for every quality
    assert summary["export"] == path and path.is_file()
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["_hparams"]["config"] == "glic-tiny"
    floats = [v for v in state.values() if torch.is_tensor(v) and v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    # The zoo's own loading: fp16 -> fp32, GLIC.from_state_dict.
    net = GLIC.from_state_dict({k: (v.float() if torch.is_tensor(v) and v.is_floating_point()
                                    else v) for k, v in state.items()}).eval()
    trained = load_model_file(root / "run3" / "checkpoint.pt").model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net.g_a(x), trained.g_a(x), atol=0.05)
    # Dropped into a weights folder, pyg_glic.zoo serves it and the codec codes with it.
    import pyg_glic.zoo as zoo
    from pyg_glic import codec

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", root / "export")
    assert zoo.codec_name("glic-tiny", 3) == "glic-tiny"
    data = codec.compress(x, "glic-tiny", 3)
    x_hat, bs = codec.decompress(data)
    assert bs.config == "glic-tiny" and x_hat.shape == x.shape


def test_init_from_loads_weights_for_a_new_lambda(run3, tmp_path):
    root, data, _ = run3
    ck = root / "run3" / "checkpoint.pt"
    net = build_model("glic-tiny", 5)
    info = load_weights_into(net, ck, "glic-tiny")
    assert info["kind"] == "checkpoint" and info["quality"] == 3 and info["step"] == 3
    ref = load_checkpoint(ck)["model"]
    assert torch.equal(net.state_dict()["g_a.down0.weight"], ref["g_a.down0.weight"])
    with pytest.raises(InputError, match="holds a glic-tiny model, not glic-lite"):
        load_weights_into(torch.nn.Linear(1, 1), ck, "glic-lite")  # checked before loading
    s = train(TrainConfig(train_dirs=[data], out=tmp_path / "ft", steps=1, quality=5,
                          init_from=str(ck), **TINY))
    assert s["settings"]["lmbda"] == 0.025 and s["step"] == 1


def test_peer_trains_and_exports(tmp_path, make_images):
    make_images(tmp_path / "d", [(64, 64)])
    s = train(TrainConfig(train_dirs=[tmp_path / "d"], out=tmp_path / "mbt", steps=1,
                          config="mbt2018-mean", quality=1, crop_size=64, batch_size=1,
                          workers=0, progress=False, export=tmp_path / "mbt" / "w.pt"))
    assert s["step"] == 1
    lm = load_model_file(tmp_path / "mbt" / "w.pt")
    assert lm.config == "mbt2018-mean" and lm.quality == 1 and lm.kind == "weights"
    assert type(lm.model).__name__ == "MeanScaleHyperprior"


def test_fixed_size_peer_fine_tunes_from_zoo_sized_peer(tmp_path, make_images):
    # mbt2018-mean q1-4 and mbt2018-mean-n128 (any quality) share the architecture,
    # so a q6 fine-tune can start from a q3 run; q6 at the zoo size cannot.
    make_images(tmp_path / "d", [(64, 64)])
    s = train(TrainConfig(train_dirs=[tmp_path / "d"], out=tmp_path / "q3", steps=1,
                          config="mbt2018-mean", quality=3, crop_size=64, batch_size=1,
                          workers=0, progress=False))
    ck = tmp_path / "q3" / "checkpoint.pt"
    net = build_model("mbt2018-mean-n128", 6)
    load_weights_into(net, ck, "mbt2018-mean-n128")
    ref = load_checkpoint(ck)["model"]
    assert all(torch.equal(v, ref[k]) for k, v in net.state_dict().items())
    with pytest.raises(InputError, match="do not fit"):
        load_weights_into(build_model("mbt2018-mean", 6), ck, "mbt2018-mean")
    assert s["step"] == 1


def test_rd_loss_is_compressai_form():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    out = {"x_hat": x + 0.1, "likelihoods": {"y": torch.full((2, 4, 2, 2), 0.5)}}
    r = RDLoss(0.01)(out, x)
    bpp = 2 * 4 * 2 * 2 / (2 * 8 * 8)  # one bit per latent element
    assert float(r["bpp_loss"]) == pytest.approx(bpp)
    assert float(r["loss"]) == pytest.approx(0.01 * 255 ** 2 * 0.01 + bpp, rel=1e-5)


def test_entropy_models_stay_fp32_under_autocast():
    torch.manual_seed(0)
    net = build_model("glic-tiny", 3).train()
    assert keep_entropy_models_fp32(net, "cpu") > 0
    seen = {}
    net.g_s.up0.register_forward_hook(lambda m, i, o: seen.update(g_s=o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.rand(1, 3, 64, 64))
    assert seen["g_s"] == torch.bfloat16  # the transforms ran in bf16
    assert all(v.dtype == torch.float32 for v in out["likelihoods"].values())
    assert keep_entropy_models_fp32(net, "cpu") == 0  # idempotent


def test_milestones_and_rate():
    assert milestone_steps([0.8, 0.95], 1000) == [800, 950]
    assert milestone_steps([500, 0.5], 100) == [50, 500]
    assert lr_at(799, 1e-4, [800, 950], 0.1) == pytest.approx(1e-4)
    assert lr_at(800, 1e-4, [800, 950], 0.1) == pytest.approx(1e-5)
    assert lr_at(999, 1e-4, [800, 950], 0.1) == pytest.approx(1e-6)


def test_exported_weights_leave_out_the_derived_coding_tables(tmp_path):
    from pyg_glic.training.models import export_state, export_weights
    from pyg_glic.zoo import DERIVED_BUFFERS

    torch.manual_seed(0)
    lite = build_model("glic-lite", 3).eval()
    lite.update(force=True)  # fills the CDF tables (about 4 MB of int32)
    state = export_state(lite, "glic-lite", None)
    size = sum(v.numel() * v.element_size() for v in state.values() if torch.is_tensor(v))
    assert size <= 14e6, size  # the shipped file's budget
    derived = [k for k in state if k.rsplit(".", 1)[-1] in DERIVED_BUFFERS]
    assert derived and all(state[k].numel() == 0 for k in derived)
    # loaded and updated again, the file codes exactly as the model it came from
    # (with its weights rounded to fp16, as the file stores them)
    torch.manual_seed(0)
    tiny = build_model("glic-tiny", 3).eval()
    tiny.update(force=True)
    path = export_weights(tiny, tmp_path / "t.pt", "glic-tiny", None)
    net = load_model_file(path).model.eval()
    net.update(force=True)
    tiny.half().float()
    tiny.update(force=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = net.compress(x)["strings"]
        b = tiny.compress(x)["strings"]
    assert a == b
