r"""pyg_glic.codec: .glic files from a variable-rate model, checked against the model.

The references are the model's own ``compress``/``decompress`` (the file must
decode to exactly what ``net.decompress`` gives for that quality) and files
written by hand with ``struct`` from docs/FORMAT.md. An untrained glic-tiny with
its own seed stands in for trained weights (fast, and its fingerprint is not the
``+untrained`` model's).
"""
import re
import struct
import zlib

import pytest
import torch

from pyg_glic import bitstream, codec, zoo
from pyg_glic.bitstream import Bitstream, BitstreamError
from pyg_glic.models.glic import glic_model

UNTRAINED = "glic-tiny+untrained"


@pytest.fixture(scope="module")
def net(tiny_codec):
    return tiny_codec


@pytest.fixture(scope="module")
def image():
    g = torch.Generator().manual_seed(1)
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    base = torch.stack([x, y, (x + y) / 2])[None]
    return (base + 0.1 * torch.rand(1, 3, 64, 64, generator=g)).clamp(0, 1)


def _model_reference(net, x, q):
    with torch.no_grad():
        enc = net.compress(x, quality=q)
        dec = net.decompress(enc["strings"], enc["shape"], quality=q)
    return [s[0] for s in enc["strings"]], dec["x_hat"].clamp(0, 1)


def _v1_by_hand(name: bytes, q: int, h: int, w: int, strings) -> bytes:
    body = b"GLIC" + bytes([1, len(name)]) + name + bytes([q]) + struct.pack("<II", h, w)
    body += bytes([len(strings)])
    for s in strings:
        body += struct.pack("<I", len(s)) + s
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("q", [1, 2, 2.5, 3.7, 6])
def test_round_trip_equals_the_model(net, image, q):
    data = codec.compress(image, "glic-tiny", q, model=net)
    x_hat, bs = codec.decompress(data, model=net)
    strings, ref = _model_reference(net, image, q)
    assert bs.strings == strings
    assert torch.equal(x_hat, ref)
    assert (bs.config, bs.quality, bs.height, bs.width, bs.version) == (
        UNTRAINED, q, 64, 64, 2)
    assert bs.fingerprint == zoo.weights_fingerprint(net)


def test_non_multiple_size_and_quality_rounding(net):
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    data = codec.compress(x, "glic-tiny", 2.3456, model=net)
    # the file stores 2.346 and the encoder coded with exactly that value
    assert data == codec.compress(x, "glic-tiny", 2.346, model=net)
    x_hat, bs = codec.decompress(data, model=net)
    assert bs.quality == 2.346 and x_hat.shape == x.shape
    assert torch.equal(x_hat, _model_reference(net, x, 2.346)[1])


def test_quality_changes_the_rate(net, image):
    sizes = [len(codec.compress(image, "glic-tiny", q, model=net)) for q in (1, 3.5, 6)]
    assert sizes[0] < sizes[1] < sizes[2], sizes


def test_v1_file_built_by_hand_decodes(net, image):
    strings, ref = _model_reference(net, image, 2)
    data = _v1_by_hand(UNTRAINED.encode(), 2, 64, 64, strings)
    x_hat, bs = codec.decompress(data, model=net)
    assert bs.version == 1 and bs.fingerprint is None and bs.quality == 2
    assert torch.equal(x_hat, ref)


def test_v1_file_decodes_with_the_model_it_names(image):
    # No fingerprint in version 1: the named (+untrained) model is loaded and used.
    named = zoo.load_codec(UNTRAINED, 4)
    strings, ref = _model_reference(named, image, 4)
    x_hat, _ = codec.decompress(_v1_by_hand(UNTRAINED.encode(), 4, 64, 64, strings))
    assert torch.equal(x_hat, ref)


def test_the_untrained_codec_round_trips_without_a_model(image):
    data = codec.compress(image, "glic-tiny", 4.25)
    x_hat, bs = codec.decompress(data)
    assert bs.config == UNTRAINED
    assert bs.fingerprint == zoo.weights_fingerprint(zoo.load_codec(UNTRAINED))
    assert torch.equal(x_hat, _model_reference(zoo.load_codec(UNTRAINED), image, 4.25)[1])


def test_fingerprint_mismatch_is_refused(net, image):
    data = codec.compress(image, "glic-tiny", 3, model=net)
    mine = zoo.weights_fingerprint(net).hex()
    theirs = zoo.weights_fingerprint(zoo.load_codec(UNTRAINED)).hex()
    assert mine != theirs
    # no model given: the +untrained model the file names is loaded, and refused
    with pytest.raises(BitstreamError, match=f"{re.escape(UNTRAINED)}.*{mine}.*{theirs}"):
        codec.decompress(data)
    # another model given
    other = glic_model("glic-tiny").eval()
    other.update(force=True)
    with pytest.raises(BitstreamError, match="weights mismatch"):
        codec.decompress(data, model=other)


def _v2(name, q, fp, strings=(b"a",) * 9):
    return bitstream.encode(Bitstream(name, q, 64, 64, list(strings), fp))


@pytest.mark.parametrize("name,q,match", [
    (UNTRAINED, 7.5, r"quality 7\.5 is out of range.*\[1, 6\]"),
    (UNTRAINED, 6.001, "out of range"),
    ("glic+untrained", 2.5, r"quality 2\.5 is out of range.*integer"),
    ("glic+untrained", 7, "out of range"),
])
def test_out_of_range_quality_is_a_bitstream_error(name, q, match):
    with pytest.raises(BitstreamError, match=match):
        codec.decompress(_v2(name, q, b"\0" * 8))


def test_out_of_range_quality_against_the_model_given(net):
    with pytest.raises(BitstreamError, match="out of range"):
        codec.decompress(_v2(UNTRAINED, 7.5, zoo.weights_fingerprint(net)), model=net)
    with pytest.raises(BitstreamError, match="out of range"):  # version 1, quality 9
        codec.decompress(_v1_by_hand(UNTRAINED.encode(), 9, 64, 64, [b"a"] * 9), model=net)


@pytest.mark.parametrize("name,q", [("glic-tiny", 3), ("glic-lite/no-wavelet", 2.5), ("glic", 3),
                                    ("glic-lite/fixed-degree", 1)])
def test_trained_weights_that_do_not_ship_are_a_bitstream_error(name, q):
    assert not zoo.shipped_weights() or name not in dict(zoo.shipped_weights())
    with pytest.raises(BitstreamError, match="does not ship"):
        codec.decompress(_v2(name, q, b"\0" * 8))


def test_wrong_string_count(net):
    data = _v2(UNTRAINED, 3, zoo.weights_fingerprint(net), strings=[b"a"] * 5)
    with pytest.raises(BitstreamError, match="hold 9 strings, this one holds 5"):
        codec.decompress(data, model=net)


def test_compress_checks_its_arguments(net, image):
    with pytest.raises(ValueError, match=r"\[1, 6\]"):
        codec.compress(image, "glic-tiny", 6.5, model=net)
    with pytest.raises(ValueError, match="not glic-lite"):
        codec.compress(image, "glic-lite", 3, model=net)
    with pytest.raises(ValueError, match="integer"):
        codec.compress(image, "glic", 2.5)
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        codec.compress(image[0], "glic-tiny", 3, model=net)


# ---------------------------------------------------------------------- rate control


@pytest.fixture(scope="module")
def ends(net, image):
    return (len(codec.compress(image, "glic-tiny", 1, model=net)),
            len(codec.compress(image, "glic-tiny", 6, model=net)))


def test_rate_control_never_exceeds_its_target(net, image, ends):
    small, large = ends
    assert small < large
    for frac in (0.15, 0.5, 0.85):
        target = int(small + frac * (large - small))
        data, q = codec.compress_to_size(image, "glic-tiny", max_bytes=target, model=net)
        assert len(data) <= target, (frac, len(data), target)
        assert 1 <= q < 6
        # the file is what compress gives at that quality, and decodes
        assert data == codec.compress(image, "glic-tiny", q, model=net)
        assert codec.decompress(data, model=net)[1].quality == q


def test_rate_control_finds_the_largest_quality(net, image, ends):
    small, large = ends
    target = (small + large) // 2
    data, q = codec.compress_to_size(image, "glic-tiny", max_bytes=target, model=net,
                                     tolerance=0, steps=20)
    assert len(data) <= target
    # bisected down to the file's 0.001 grid: one step up is over the target
    assert len(codec.compress(image, "glic-tiny", round(q + 0.001, 3), model=net)) > target


def test_rate_control_bpp_target(net, image, ends):
    small, large = ends
    bpp = 8 * (small + large) / 2 / (64 * 64)
    data, q = codec.compress_to_size(image, "glic-tiny", bpp=bpp, model=net)
    assert 8 * len(data) / (64 * 64) <= bpp


def test_rate_control_generous_target_gives_the_top_quality(net, image, ends):
    data, q = codec.compress_to_size(image, "glic-tiny", max_bytes=ends[1] + 100, model=net)
    assert q == 6.0 and len(data) == ends[1]


def test_rate_control_impossible_target(net, image, ends):
    with pytest.raises(codec.RateControlError, match=f"smallest file.*{ends[0]} bytes") as e:
        codec.compress_to_size(image, "glic-tiny", max_bytes=ends[0] - 1, model=net)
    assert isinstance(e.value, ValueError)
    assert e.value.smallest_bytes == ends[0] and e.value.target_bytes == ends[0] - 1


@pytest.mark.parametrize("kwargs", [dict(), dict(max_bytes=100, bpp=0.5), dict(bpp=0),
                                    dict(bpp=-1.0), dict(max_bytes=0), dict(max_bytes=2.5)])
def test_rate_control_bad_targets(net, image, kwargs):
    with pytest.raises(ValueError):
        codec.compress_to_size(image, "glic-tiny", model=net, **kwargs)


def test_rate_control_fixed_rate_refuses_a_model(net, image):
    with pytest.raises(ValueError, match="fixed-rate"):
        codec.compress_to_size(image, "glic", max_bytes=1000, model=net)


def test_a_huge_claimed_size_is_refused_before_any_allocation(monkeypatch):
    # A small file with a valid checksum that claims 20000 x 20000 pixels.
    data = bitstream.encode(Bitstream("glic-tiny+untrained", 3.0, 20000, 20000,
                                      [b"\x00" * 16] * 9, b"\x01" * 8))
    assert len(data) < 300

    def no_model(*a, **k):  # the refusal must come before a codec is even loaded
        raise AssertionError("a codec was loaded for a file that should be refused")

    monkeypatch.setattr(zoo, "load_codec", no_model)
    with pytest.raises(codec.ImageTooLargeError, match=r"20000x20000 image \(400,000,000 "
                                                       r"pixels\).*89,478,485") as e:
        codec.decompress(data)
    assert isinstance(e.value, BitstreamError)
    assert (e.value.height, e.value.width, e.value.max_pixels) == (20000, 20000, 89_478_485)
    with pytest.raises(codec.ImageTooLargeError, match="limit of 100 pixels"):
        codec.decompress(bitstream.encode(Bitstream("glic-tiny+untrained", 3.0, 10, 11,
                                                    [b"\x00"] * 9, b"\x01" * 8)),
                         max_pixels=100)
