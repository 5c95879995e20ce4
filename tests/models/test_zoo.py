r"""pyg_glic.zoo without shipped weights: naming, qualities, fingerprints, a weights
folder of our own, and CompressAI's evaluator.

Weight files are exported here from untrained glic-tiny models with the trainer's
exporter, into a temporary folder that stands in for ``pyg_glic/zoo/weights``.
A fixed-rate tiny configuration is added to the configuration table for the
fixed-rate paths (the real fixed-rate ``glic`` is too big for unit tests).
"""
import hashlib
import json

import numpy as np
import pytest
import torch
from torch import nn

import pyg_glic.zoo as zoo
from pyg_glic import codec
from pyg_glic.bitstream import BitstreamError
from pyg_glic.models import glic as glic_module
from pyg_glic.models.glic import GLIC, glic_model
from pyg_glic.training.models import export_weights

FIXED = "glic-tiny-fixed"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def fixed_tiny(monkeypatch):
    monkeypatch.setitem(glic_module.CONFIGS, FIXED, dict(glic_module.CONFIGS["glic-tiny"],
                                                         levels=None))


@pytest.fixture()
def weights_dir(tmp_path, monkeypatch):
    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", d)
    return d


def _tiny(seed, config="glic-tiny"):
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return glic_model(config).eval()
    finally:
        torch.random.set_rng_state(state)


def _image(h=64, w=64, seed=3):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------- naming


def test_weight_file_names():
    d = zoo.WEIGHTS_DIR
    assert zoo.weights_path("glic-lite") == d / "glic-lite.pt"
    assert zoo.weights_path("glic-lite", 2.5) == d / "glic-lite.pt"
    assert zoo.weights_path("glic-lite/fixed-degree") == d / "glic-lite+fixed-degree.pt"
    assert zoo.weights_path("glic", 3) == d / "glic-q3.pt"
    assert zoo.weights_path("glic/no-wavelet", 6) == d / "glic+no-wavelet-q6.pt"
    for bad in [("glic",), ("glic", 2.5), ("glic-lite", 7), ("glic-huge",)]:
        with pytest.raises(ValueError):
            zoo.weights_path(*bad)


def test_kinds_and_quality_checks():
    assert zoo.levels_of("glic-lite") == 6 and zoo.levels_of("glic") is None
    assert zoo.check_quality("glic-lite", 2.5) == 2.5
    assert zoo.check_quality("glic-lite", 6) == 6.0
    assert zoo.check_quality("glic", 3.0) == 3 and isinstance(zoo.check_quality("glic", 3.0), int)
    for config, q in [("glic-lite", 0.99), ("glic-lite", 6.01), ("glic-lite", float("nan")),
                      ("glic-lite", True), ("glic-lite", "3"), ("glic", 2.5), ("glic", 0),
                      ("glic", 7)]:
        with pytest.raises(ValueError):
            zoo.check_quality(config, q)


def test_nothing_ships_in_the_package():
    # The day weights ship, tests/models/test_zoo_pretrained.py runs on them.
    assert all(p.suffix == ".pt" for p in zoo.WEIGHTS_DIR.glob("*.pt"))
    for config, q in zoo.shipped_weights():
        assert zoo.weights_path(config, q).is_file()


def test_shipped_weights_reads_a_folder(weights_dir):
    net = _tiny(0)
    export_weights(net, weights_dir / "glic-tiny.pt", "glic-tiny", None)
    export_weights(_tiny(0, "glic-tiny/no-wavelet"), weights_dir / "glic-tiny+no-wavelet.pt",
                   "glic-tiny/no-wavelet", None)
    export_weights(_tiny(1, FIXED), weights_dir / f"{FIXED}-q2.pt", FIXED, 2)
    for junk in ("glic-tiny-q3.pt", f"{FIXED}.pt", f"{FIXED}-q9.pt", "other.pt", "glic-lite.txt"):
        (weights_dir / junk).write_bytes(b"")
    assert zoo.shipped_weights() == [("glic-tiny", None), (FIXED, 2),
                                     ("glic-tiny/no-wavelet", None)]
    assert zoo.shipped_qualities("glic-tiny") == [1, 2, 3, 4, 5, 6]
    assert zoo.shipped_qualities(FIXED) == [2]
    assert zoo.shipped_qualities("glic-lite") == []
    assert zoo.codec_name("glic-tiny") == "glic-tiny"
    assert zoo.codec_name(FIXED, 2) == FIXED and zoo.codec_name(FIXED, 3) == FIXED + "+untrained"


# ------------------------------------------------------------------- loading


def test_untrained_fallback_is_deterministic():
    a = zoo.load_codec("glic-tiny+untrained", 5.5)
    b = zoo.load_codec("glic-tiny+untrained")
    assert not a.training and a.quality == 5.5 and b.quality == 3.0
    # one model (one seed) for every quality of a variable-rate configuration
    assert zoo.weights_fingerprint(a) == zoo.weights_fingerprint(b)
    # a fixed-rate configuration: one seed per quality
    f2, f3 = (zoo.load_codec(FIXED + "+untrained", q) for q in (2, 3))
    assert zoo.weights_fingerprint(f2) != zoo.weights_fingerprint(f3)
    with pytest.raises(ValueError, match="fixed-rate"):
        zoo.load_codec(FIXED + "+untrained")
    # the global RNG is left as it was
    state = torch.random.get_rng_state()
    zoo.untrained_model("glic-tiny")
    assert torch.equal(state, torch.random.get_rng_state())


def test_glic_factory(weights_dir):
    net = zoo.glic("glic-tiny", 2.5)
    assert isinstance(net, GLIC) and net.quality == 2.5 and net.levels == 6
    with pytest.raises(ValueError):
        zoo.glic("glic-tiny", 6.5)
    with pytest.raises(ValueError):
        zoo.glic(FIXED, 2.5)
    with pytest.raises(FileNotFoundError, match="no trained weights ship for glic-tiny"):
        zoo.glic("glic-tiny", 3, pretrained=True)
    with pytest.raises(FileNotFoundError, match=f"{FIXED} quality 4"):
        zoo.load_codec(FIXED, 4)
    export_weights(_tiny(0), weights_dir / "glic-tiny.pt", "glic-tiny", None)
    loaded = zoo.glic("glic-tiny", 4.5, pretrained=True)
    assert not loaded.training and loaded.quality == 4.5 and loaded.config == "glic-tiny"
    assert zoo.load_codec("glic-tiny", 1.5).quality == 1.5


def test_codec_with_weights_in_the_folder(weights_dir):
    path = export_weights(_tiny(0), weights_dir / "glic-tiny.pt", "glic-tiny", None)
    x = _image()
    data = codec.compress(x, "glic-tiny", 2.5)
    x_hat, bs = codec.decompress(data)
    assert bs.config == "glic-tiny" and bs.quality == 2.5 and x_hat.shape == x.shape
    # the file records the fingerprint of the fp16 file itself
    assert bs.fingerprint == zoo.weights_fingerprint(torch.load(path, weights_only=True))
    # weights replaced under the same name: the old file is refused, by fingerprint
    export_weights(_tiny(1), path, "glic-tiny", None)
    with pytest.raises(BitstreamError, match="weights mismatch"):
        codec.decompress(data)


def test_fixed_rate_codec_and_rate_control(weights_dir):
    for q in (2, 4):
        export_weights(_tiny(10 + q, FIXED), weights_dir / f"{FIXED}-q{q}.pt", FIXED, q)
    x = _image()
    files = {q: codec.compress(x, FIXED, q) for q in (2, 4)}
    x_hat, bs = codec.decompress(files[4])
    assert bs.config == FIXED and bs.quality == 4 and x_hat.shape == x.shape
    with pytest.raises(ValueError, match="integer"):
        codec.compress(x, FIXED, 2.5)
    sizes = {q: len(d) for q, d in files.items()}
    # rate control tries the shipped qualities only: the highest that fits
    target = min(sizes.values())
    got, q = codec.compress_to_size(x, FIXED, max_bytes=target)
    assert q == max(q for q in sizes if sizes[q] <= target) and got == files[q]
    with pytest.raises(codec.RateControlError, match=f"{target} bytes"):
        codec.compress_to_size(x, FIXED, max_bytes=target - 1)


# -------------------------------------------------------------------- fingerprints


class _Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("count", torch.tensor([7, -1], dtype=torch.int32))


def test_fingerprint_follows_the_specification():
    m = _Small()
    h = hashlib.sha256()
    for key in sorted(["lin.weight", "lin.bias", "count"]):
        t = m.state_dict()[key]
        if t.is_floating_point():
            kind, raw = b"f16", t.half().numpy().astype("<f2").tobytes()
        else:
            kind, raw = b"i4", t.numpy().astype("<i4").tobytes()
        shape = ",".join(str(s) for s in t.shape).encode()
        h.update(key.encode() + b"\0" + kind + b"\0" + shape + b"\0" + raw)
    assert zoo.weights_fingerprint(m) == h.digest()[:8]
    assert len(zoo.weights_fingerprint(m)) == 8


def test_fingerprint_fp16_file_and_fp32_model_agree(tmp_path):
    net = _tiny(0)
    path = export_weights(net, tmp_path / "w.pt", "glic-tiny", None)
    state = torch.load(path, weights_only=True)
    assert any(v.dtype == torch.float16 for v in state.values() if torch.is_tensor(v))
    loaded = GLIC.from_state_dict({k: (v.float() if torch.is_tensor(v) and v.is_floating_point()
                                       else v) for k, v in state.items()})
    fp = zoo.weights_fingerprint(state)
    assert zoo.weights_fingerprint(loaded) == fp == zoo.weights_fingerprint(net)


def test_fingerprint_stable_under_coding_and_update_sensitive_to_weights():
    net = _tiny(0)
    fp = zoo.weights_fingerprint(net)
    net.update(force=True)  # coding tables: not hashed
    assert zoo.weights_fingerprint(net) == fp
    with torch.no_grad():  # masked convolutions mask their weights on first use
        net.compress(_image(), quality=3)
    assert zoo.weights_fingerprint(net) == fp
    with torch.no_grad():
        net.g_a.down0.weight[0, 0, 0, 0] += 0.5  # in place: the cache must notice
    assert zoo.weights_fingerprint(net) != fp
    assert zoo.weights_fingerprint(_tiny(1)) != fp


# ------------------------------------------------------------ CompressAI's evaluator


def test_registered_with_compressai():
    import compressai.zoo as czoo
    from compressai.zoo.image import model_architectures

    for name in ("glic", "glic-lite", "glic-tiny"):
        assert name in czoo.image_models and name in model_architectures
    net = czoo.image_models["glic-tiny"](quality=2, metric="mse", pretrained=False)
    assert isinstance(net, GLIC) and net.quality == 2.0
    with pytest.raises(ValueError, match="MSE"):
        czoo.image_models["glic-tiny"](quality=2, metric="ms-ssim")


def test_compressai_architecture_reads_exported_weights(tmp_path, monkeypatch):
    from compressai.zoo.image import model_architectures

    path = export_weights(_tiny(0), tmp_path / "w.pt", "glic-tiny", None)
    state = torch.load(path, weights_only=True)
    net = model_architectures["glic"].from_state_dict(state)
    assert isinstance(net, GLIC) and net.config == "glic-tiny" and net.quality == 3.0
    assert zoo.weights_fingerprint(net) == zoo.weights_fingerprint(state)
    monkeypatch.setenv(zoo.EVAL_QUALITY_ENV, "4.5")
    assert model_architectures["glic"].from_state_dict(state).quality == 4.5
    monkeypatch.setenv(zoo.EVAL_QUALITY_ENV, "9")
    with pytest.raises(ValueError, match=r"\[1, 6\]"):
        model_architectures["glic"].from_state_dict(state)


def test_compressai_eval_model_checkpoint_mode(tmp_path, monkeypatch, capsys, one_thread):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):  # MS-SSIM in the evaluator needs sides above 160
        Image.fromarray((rng.random((176, 192, 3)) * 255).astype(np.uint8)).save(
            images / f"im{i}.png")
    path = export_weights(_tiny(0), tmp_path / "glic-tiny.pt", "glic-tiny", None)

    def run():
        zoo.run_compressai_eval(["checkpoint", str(images), "-a", "glic", "-p", str(path)])
        out = capsys.readouterr().out
        return json.loads(out[out.index("{"):])["results"]

    default = run()
    monkeypatch.setenv(zoo.EVAL_QUALITY_ENV, "1")
    low = run()
    assert default["bpp"][0] > low["bpp"][0] > 0
    assert np.isfinite(default["psnr-rgb"][0])
