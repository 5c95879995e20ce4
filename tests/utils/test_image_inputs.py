import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from pyg_glic.utils.image import InputImageWarning, load_image, load_image_noting

RNG = np.random.RandomState(0)
RGB = (RNG.rand(6, 10, 3) * 255).astype(np.uint8)


def _load(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = load_image(path)
    notes = [str(w.message) for w in caught if issubclass(w.category, InputImageWarning)]
    return (x[0].permute(1, 2, 0).mul(255).round().byte().numpy()), notes


def test_rgb_is_exact_and_silent(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    got, notes = _load(tmp_path / "a.png")
    assert np.array_equal(got, RGB) and notes == []


def test_exif_orientation_is_applied(tmp_path):
    im = Image.fromarray(RGB)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "o.jpg", exif=exif, quality=100, subsampling=0)
    got, notes = _load(tmp_path / "o.jpg")
    assert got.shape == (10, 6, 3) and notes == []
    stored = np.asarray(Image.open(tmp_path / "o.jpg").convert("RGB"))
    assert np.array_equal(got, np.rot90(stored, k=-1))


def test_grayscale_and_palette_are_converted_faithfully(tmp_path):
    g = RGB[..., 0]
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    got, notes = _load(tmp_path / "g.png")
    assert notes == [] and all(np.array_equal(got[..., c], g) for c in range(3))
    p = Image.fromarray(RGB).quantize(16)
    p.save(tmp_path / "p.png")
    got, notes = _load(tmp_path / "p.png")
    assert notes == [] and np.array_equal(got, np.asarray(p.convert("RGB")))


def test_alpha_is_dropped_with_a_warning_only_when_it_matters(tmp_path):
    a = np.full((6, 10, 1), 255, np.uint8)
    Image.fromarray(np.concatenate([RGB, a], 2), "RGBA").save(tmp_path / "opaque.png")
    got, notes = _load(tmp_path / "opaque.png")
    assert np.array_equal(got, RGB) and notes == []
    a[0, 0] = 10
    Image.fromarray(np.concatenate([RGB, a], 2), "RGBA").save(tmp_path / "alpha.png")
    got, notes = _load(tmp_path / "alpha.png")
    assert np.array_equal(got, RGB)
    assert len(notes) == 1 and "alpha channel is not coded" in notes[0]


def test_16_bit_grayscale_is_reduced_with_a_warning(tmp_path):
    g16 = (RNG.rand(5, 7) * 65535).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    got, notes = _load(tmp_path / "g16.png")
    assert len(notes) == 1 and "16-bit" in notes[0] and "8 bits" in notes[0]
    expect = np.round(g16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert np.array_equal(got[..., 1], expect)


def test_cmyk_is_converted_with_a_warning(tmp_path):
    cmyk = Image.fromarray(RGB).convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", quality=100)
    got, notes = _load(tmp_path / "c.jpg")
    assert got.shape == (6, 10, 3)
    assert len(notes) == 1 and "CMYK" in notes[0]


def test_animation_codes_the_first_frame_with_a_warning(tmp_path):
    frames = [Image.fromarray(np.full((4, 4, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    got, notes = _load(tmp_path / "anim.gif")
    assert len(notes) == 1 and "only the first frame" in notes[0]
    assert int(got.mean()) < 50  # the first frame, not the second


def test_tiny_images_code_and_decode(tmp_path):
    from pyg_glic.models.glic import glic_model

    torch.manual_seed(0)
    net = glic_model("glic-tiny").eval()
    net.update(force=True)
    for h, w in ((1, 1), (3, 5)):
        Image.fromarray(RGB[:h, :w]).save(tmp_path / f"{h}x{w}.png")
        x, notes = load_image_noting(tmp_path / f"{h}x{w}.png")
        assert x.shape == (1, 3, h, w) and notes == []
        with torch.no_grad():
            enc = net.compress(x)
            out = net.decompress(enc["strings"], enc["shape"])["x_hat"]
        assert out.shape == x.shape


def test_not_an_image_is_a_value_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not an image file that Pillow can read"):
        load_image(tmp_path / "x.png")
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
