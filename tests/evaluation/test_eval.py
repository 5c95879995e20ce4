import json
from pathlib import Path

import pytest
import torch

from pyg_glic.cli.main import main

REF = Path(__file__).resolve().parents[3] / "shared" / "reference" / "kodak"
SCHEMA = {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}
FAST = ["--classical", "jpeg", "webp", "--sweep", "jpeg=10,40,70,90",
        "--sweep", "webp=10,40,70,90", "--device", "cpu", "--no-progress"]


@pytest.fixture()
def images(tmp_path, make_images):
    make_images(tmp_path / "imgs", [(64, 64), (48, 80)])
    return tmp_path / "imgs"


def _no_leftovers(parent: Path, out: Path):
    assert not out.exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_eval_writes_compressai_schema(tmp_path, images, capsys):
    out = tmp_path / "res"
    refs = []
    if (REF / "vtm.json").is_file():
        refs = ["-r", str(REF / "vtm.json"), "-r", str(REF / "jpeg.json")]
    assert main(["eval", str(images), "-o", str(out), "-c", "glic-tiny", "-q", "1", "2",
                 *FAST, *refs]) == 0
    text = capsys.readouterr()
    assert "| codec | JPEG | WebP" in text.out
    assert "untrained" in text.err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bd_rates.json", "bd_rates.md", "glic-tiny+untrained.json", "jpeg.json",
                     "rd.png", "results.json", "webp.json"]
    glic = json.loads((out / "glic-tiny+untrained.json").read_text())
    assert {"name", "description", "results"} <= set(glic)
    assert set(glic["results"]) == SCHEMA
    assert all(len(v) == 2 for v in glic["results"].values())  # one entry per quality
    assert glic["settings"] == [1, 2] and glic["kind"] == "learned"
    per = glic["per_image"]
    assert [r["image"] for r in per[0]] == ["img0.png", "img1.png"]
    # Real bitstreams: bpp is the .glic file size over the pixels, averaged.
    for point, mean_bpp in zip(per, glic["results"]["bpp"]):
        assert point[0]["bpp"] == pytest.approx(8 * point[0]["bytes"] / (64 * 64))
        assert point[1]["bpp"] == pytest.approx(8 * point[1]["bytes"] / (48 * 80))
        assert mean_bpp == pytest.approx((point[0]["bpp"] + point[1]["bpp"]) / 2)
    assert glic["results"]["ms-ssim-rgb"] == [None, None]  # images under 161 px: null
    jpeg = json.loads((out / "jpeg.json").read_text())
    assert jpeg["settings"] == [10, 40, 70, 90] and len(jpeg["results"]["bpp"]) == 4
    assert jpeg["results"]["bpp"] == sorted(jpeg["results"]["bpp"])
    allres = json.loads((out / "results.json").read_text())
    assert allres["images"] == ["img0.png", "img1.png"]
    assert [c["name"] for c in allres["curves"]] == ["glic-tiny+untrained", "JPEG", "WebP"]
    bd = json.loads((out / "bd_rates.json").read_text())["bd_rates"]
    row = next(r for r in bd if r["codec"] == "glic-tiny+untrained")
    # Two points cannot carry a cubic fit: reported, not invented.
    assert row["against"]["JPEG"]["value"] is None
    assert "too few points" in row["against"]["JPEG"]["reason"]
    jrow = next(r for r in bd if r["codec"] == "JPEG")
    assert "WebP" in jrow["against"] and "JPEG" not in jrow["against"]
    if refs:
        assert "VTM (ref.)" in jrow["against"] and "JPEG (ref.)" in jrow["against"]
        assert [r["name"] for r in allres["references"]] == ["VTM (ref.)", "JPEG (ref.)"]
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "n/a (too few points" in (out / "bd_rates.md").read_text()


def test_eval_codes_a_variable_rate_model_between_its_levels(tmp_path, images):
    # one variable-rate model, qualities between its trained levels: the rate rises
    # with the quality and every point is a real file of the codec at that quality
    from pyg_glic import codec
    from pyg_glic.utils.image import load_image
    from pyg_glic.zoo import load_codec

    out = tmp_path / "res"
    assert main(["eval", str(images), "-o", str(out), "-c", "glic-tiny", "-q", "1", "2.5",
                 "4.25", "--classical", "--no-ms-ssim", "--device", "cpu",
                 "--no-progress"]) == 0
    glic = json.loads((out / "glic-tiny+untrained.json").read_text())
    assert glic["settings"] == [1, 2.5, 4.25]
    x = load_image(images / "img0.png")
    sizes = []
    for q, point in zip([1, 2.5, 4.25], glic["per_image"]):
        sizes.append(len(codec.compress(x, "glic-tiny", q,
                                        model=load_codec("glic-tiny+untrained", q))))
        assert point[0]["bytes"] == sizes[-1]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_eval_weight_files_peer_and_checkpoint(tmp_path, images):
    from compressai.zoo import mbt2018_mean

    from pyg_glic.evaluation.runner import EvalConfig, evaluate
    from pyg_glic.training.checkpoint import save_checkpoint
    from pyg_glic.training.models import build_model, export_weights

    torch.manual_seed(0)
    peer = mbt2018_mean(quality=1, pretrained=False)
    export_weights(peer, tmp_path / "mbt-q1.pt", "mbt2018-mean", 1)
    net = build_model("glic-tiny", 4)
    opt = torch.optim.Adam(net.parameters())
    save_checkpoint(tmp_path / "ck.pt", model=net, optimizer=opt, aux_optimizer=opt,
                    scheduler=torch.optim.lr_scheduler.MultiStepLR(opt, [5]), scaler=None,
                    step=0, args={"config": "glic-tiny", "quality": 4})
    res = evaluate(EvalConfig(str(images), out=str(tmp_path / "res"), classical=(),
                              weights=[str(tmp_path / "mbt-q1.pt"), f"mine={tmp_path}/ck.pt"],
                              device="cpu", progress=False))
    curves = {c["name"]: c for c in res["curves"]}
    assert set(curves) == {"mbt2018-mean (weights)", "mine"}
    assert curves["mine"]["settings"] == [4]
    # The peer's rate is its real entropy-coded strings.
    x = torch.rand(1, 3, 64, 64)
    peer16 = __import__("pyg_glic.training.models", fromlist=["load_model_file"]) \
        .load_model_file(tmp_path / "mbt-q1.pt").model.eval()
    peer16.update(force=True)
    img0 = curves["mbt2018-mean (weights)"]["per_image"][0][0]
    from pyg_glic.training.data import read_rgb
    import numpy as np

    x = torch.from_numpy(np.asarray(read_rgb(images / "img0.png")).copy()).permute(2, 0, 1)
    with torch.no_grad():
        enc = peer16.compress(x[None].float() / 255)
    assert img0["bytes"] == sum(len(s) for g in enc["strings"] for s in g)
    # no classical codec or reference: the two learned codecs are each other's only
    # anchor (the head-to-head column), never their own; one point each is too few
    bd = {r["name"]: r["bd"] for r in res["bd"]}
    assert set(bd["mine"]) == {"mbt2018-mean (weights)"}
    assert set(bd["mbt2018-mean (weights)"]) == {"mine"}
    assert "too few points" in bd["mine"]["mbt2018-mean (weights)"].reason


def _bad_cases(tmp_path, images):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_text("no image here")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 10)
    badref = tmp_path / "ref.json"
    badref.write_text(json.dumps({"name": "x", "results": {"bpp": [0.1]}}))
    return {
        "missing dir": ([str(tmp_path / "none")], "no such folder"),
        "empty dir": ([str(empty)], "holds no images"),
        "unreadable image": ([str(broken)], "a.png is not an image file"),
        "bad weights": ([str(images), "-w", str(junk)], "is not a PyTorch weights file"),
        "missing weights": ([str(images), "-w", "nope.pt"], "no such weights file"),
        "bad reference": ([str(images), "-r", str(badref)], "no 'bpp' and 'psnr-rgb'"),
        "missing reference": ([str(images), "-r", "nope.json"], "no such reference file"),
        "unknown codec": ([str(images), "--classical", "heic"], "unknown classical codec"),
        "bad sweep": ([str(images), "--sweep", "jpeg=500"], "quality must be in 0..100"),
        "sweep not run": ([str(images), "--classical", "webp", "--sweep", "jpeg=5"],
                          "not among the classical codecs"),
        "quality above the levels": ([str(images), "-c", "glic-tiny", "-q", "7"],
                                     "quality for glic-tiny must be a number in [1, 6]"),
        "fractional fixed-rate quality": ([str(images), "-c", "glic", "-q", "2.5"],
                                          "quality for glic must be"),
    }


@pytest.mark.parametrize("case", ["missing dir", "empty dir", "unreadable image",
                                  "bad weights", "missing weights", "bad reference",
                                  "missing reference", "unknown codec", "bad sweep",
                                  "sweep not run", "quality above the levels",
                                  "fractional fixed-rate quality"])
def test_bad_inputs_exit_2_and_write_nothing(tmp_path, images, capsys, case):
    args, message = _bad_cases(tmp_path, images)[case]
    out = tmp_path / "res"
    zoo = [] if "-q" in args else ["-c", "glic-tiny", "-q", "1"]
    assert main(["eval", *args, "-o", str(out), *zoo, "--device", "cpu", "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    _no_leftovers(tmp_path, out)


@pytest.mark.parametrize("args", [["-q", "two"], ["--bd-method", "spline"],
                                  ["--sweep", "jpeg"]])
def test_bad_options_are_usage_errors(tmp_path, images, capsys, args):
    with pytest.raises(SystemExit) as e:
        main(["eval", str(images), "-o", str(tmp_path / "res"), *args])
    assert e.value.code == 2
    _no_leftovers(tmp_path, tmp_path / "res")


def test_existing_results_need_force(tmp_path, images, capsys):
    out = tmp_path / "res"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    args = ["eval", str(images), "-o", str(out), "--classical", "jpeg", "--sweep", "jpeg=20,80",
            "--no-zoo", "--no-ms-ssim", "--no-progress"]
    assert main(args) == 2
    assert "use --force" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    # With --force the results replace their files; other files stay.
    assert main(args + ["--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "bd_rates.json", "bd_rates.md", "jpeg.json", "keep.txt", "rd.png", "results.json"]
