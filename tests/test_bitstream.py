r"""The .glic container: version 2 written and read, version 1 still read.

Expected bytes are written out from docs/FORMAT.md with ``struct`` here, not
produced by the encoder under test.
"""
import math
import struct
import zlib

import pytest

from pyg_glic import bitstream
from pyg_glic.bitstream import Bitstream, BitstreamError, decode, encode

FP = bytes.fromhex("0123456789abcdef")
SAMPLE = Bitstream("glic-lite", 2.375, 512, 768, [b"\x01\x02\x03", b"", b"z" * 10], FP)


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def v2_by_hand(name: bytes, q_code: int, fp: bytes, h: int, w: int, th: int, tw: int,
               strings, count=None) -> bytes:
    body = b"GLIC" + bytes([2, len(name)]) + name + struct.pack("<H", q_code) + fp
    body += struct.pack("<IIHHH", h, w, th, tw, len(strings) if count is None else count)
    for s in strings:
        body += struct.pack("<I", len(s)) + s
    return _with_crc(body)


def v1_by_hand(name: bytes, q: int, h: int, w: int, strings) -> bytes:
    body = b"GLIC" + bytes([1, len(name)]) + name + bytes([q]) + struct.pack("<II", h, w)
    body += bytes([len(strings)])
    for s in strings:
        body += struct.pack("<I", len(s)) + s
    return _with_crc(body)


def test_v2_bytes_follow_the_specification():
    data = encode(SAMPLE)
    assert data == v2_by_hand(b"glic-lite", 2375, FP, 512, 768, 0, 0, SAMPLE.strings)
    L = len("glic-lite")
    assert data[4] == 2 and data[5] == L
    assert struct.unpack_from("<H", data, 6 + L)[0] == 2375
    assert data[8 + L:16 + L] == FP
    assert struct.unpack_from("<IIHHH", data, 16 + L) == (512, 768, 0, 0, 3)
    assert len(data) == 34 + L + 4 * 3 + 13  # header, prefixes, strings


def test_v2_round_trip_of_every_field():
    out = decode(encode(SAMPLE), known_configs=["glic", "glic-lite"])
    assert out == SAMPLE
    assert (out.config, out.quality, out.height, out.width, out.strings, out.fingerprint,
            out.tile_height, out.tile_width, out.version) == (
        "glic-lite", 2.375, 512, 768, [b"\x01\x02\x03", b"", b"z" * 10], FP, 0, 0, 2)
    assert not out.tiled


def test_v2_decodes_a_hand_built_file():
    data = v2_by_hand(b"glic+untrained", 4000, b"\xff" * 8, 1, 65535, 0, 0, [b"abc"])
    bs = decode(data)
    assert (bs.config, bs.quality, bs.height, bs.width, bs.fingerprint, bs.strings,
            bs.version) == ("glic+untrained", 4.0, 1, 65535, b"\xff" * 8, [b"abc"], 2)


@pytest.mark.parametrize("q,code", [(1, 1000), (1.0004, 1000), (2.0006, 2001), (2.5, 2500),
                                    (6, 6000), (65.535, 65535)])
def test_quality_is_stored_to_a_thousandth(q, code):
    data = encode(Bitstream("glic-lite", q, 8, 8, [b"a"], FP))
    assert struct.unpack_from("<H", data, 6 + 9)[0] == code
    assert decode(data).quality == code / 1000 == bitstream.stored_quality(q)


@pytest.mark.parametrize("q", [0.9994, 0, -1, 65.5356, 70, math.nan, math.inf, True, "3"])
def test_unrepresentable_quality_is_refused_by_the_encoder(q):
    with pytest.raises(ValueError):
        encode(Bitstream("glic-lite", q, 8, 8, [b"a"], FP))


def test_v1_file_built_by_hand_still_decodes():
    strings = [b"\x01\x02\x03", b"", b"z" * 10]
    data = v1_by_hand(b"glic-lite", 3, 512, 768, strings)
    bs = decode(data, known_configs=["glic-lite"])
    assert (bs.config, bs.quality, bs.height, bs.width, bs.strings, bs.fingerprint,
            bs.version, bs.tiled) == ("glic-lite", 3, 512, 768, strings, None, 1, False)
    assert isinstance(bs.quality, int)


def test_v1_checks_are_kept():
    body = v1_by_hand(b"glic-lite", 3, 512, 768, [b"abc"])[:-4]
    at = 6 + len("glic-lite")
    with pytest.raises(BitstreamError, match="quality 0"):
        decode(_with_crc(body[:at] + b"\x00" + body[at + 1:]))
    with pytest.raises(BitstreamError, match="height 0 out of range"):
        decode(_with_crc(body[:at + 1] + struct.pack("<I", 0) + body[at + 5:]))
    with pytest.raises(BitstreamError, match="string count 0 out of range 1..64"):
        decode(_with_crc(body[:at + 9] + b"\x00"))


@pytest.mark.parametrize("make", [lambda: encode(SAMPLE),
                                  lambda: v1_by_hand(b"glic-lite", 3, 512, 768, [b"ab", b"c"])])
def test_every_truncation_is_rejected(make):
    data = make()
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            decode(data[:n])


def test_truncation_messages():
    data = encode(SAMPLE)
    for n in (2, 4, 8, 20, len(data) - 5):
        with pytest.raises(BitstreamError, match="truncated|checksum"):
            decode(data[:n])


def test_every_flipped_byte_is_rejected():
    data = encode(SAMPLE)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x40
        with pytest.raises(BitstreamError):
            decode(bytes(bad))


@pytest.mark.parametrize("mutate,match", [
    (lambda d: b"PNG\x00" + d[4:], "bad magic"),
    (lambda d: d[:4] + b"\x07" + d[5:], "unsupported format version 7"),
    (lambda d: d[:4] + b"\x00" + d[5:], "unsupported format version 0"),
    (lambda d: _with_crc(d[:-4] + b"xx"), "unexpected bytes"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum mismatch"),
])
def test_named_errors(mutate, match):
    with pytest.raises(BitstreamError, match=match):
        decode(mutate(encode(SAMPLE)))


@pytest.mark.parametrize("fields,match", [
    (dict(q_code=999), r"quality 0\.999 out of range"),
    (dict(q_code=0), r"quality 0\.000 out of range"),
    (dict(h=0), "height 0 out of range"),
    (dict(w=70000), "width 70000 out of range"),
    (dict(count=0), "string count 0 out of range 1..65535"),
    (dict(th=100), "tile height 100 is not a multiple of 64"),
    (dict(tw=65535), "tile width 65535 is not a multiple of 64"),
])
def test_v2_field_range_errors(fields, match):
    args = dict(q_code=3000, fp=FP, h=8, w=8, th=0, tw=0, count=None)
    args.update(fields)
    data = v2_by_hand(b"glic-lite", args["q_code"], args["fp"], args["h"], args["w"],
                      args["th"], args["tw"], [b"a"], count=args["count"])
    with pytest.raises(BitstreamError, match=match):
        decode(data)


def test_huge_string_length_is_refused_before_allocating():
    body = encode(SAMPLE)[:-4]
    at = 6 + len("glic-lite") + 24
    big = _with_crc(body[:at] + struct.pack("<I", 2 ** 31) + body[at + 4:])
    with pytest.raises(BitstreamError, match="truncated"):
        decode(big)


@pytest.mark.parametrize("th,tw", [(256, 0), (0, 128), (64, 64), (65472, 65472)])
def test_tiled_headers_round_trip(th, tw):
    data = v2_by_hand(b"glic-lite", 3000, FP, 512, 768, th, tw, [b"a", b"b"])
    bs = decode(data)
    assert (bs.tile_height, bs.tile_width, bs.tiled) == (th, tw, True)
    # the encoder writes the same bytes as the specification, by hand
    assert encode(Bitstream("glic-lite", 3, 512, 768, [b"a", b"b"], FP, th, tw)) == data
    # a corrupted tiled file is reported as corrupted
    with pytest.raises(BitstreamError, match="checksum"):
        decode(data[:-1] + bytes([data[-1] ^ 1]))


def test_many_strings():
    strings = [bytes([i % 256]) for i in range(bitstream.MAX_STRINGS)]
    bs = Bitstream("glic-lite", 3, 8, 8, strings, FP)
    assert decode(encode(bs)).strings == strings
    with pytest.raises(ValueError):
        encode(Bitstream("glic-lite", 3, 8, 8, strings + [b""], FP))


def test_unknown_model():
    data = encode(Bitstream("glic-huge", 1, 8, 8, [b"a"], FP))
    with pytest.raises(BitstreamError, match="unknown model configuration 'glic-huge'"):
        decode(data, known_configs=["glic", "glic-lite"])


@pytest.mark.parametrize("bad", [
    Bitstream("", 1, 8, 8, [b""], FP), Bitstream("glïc", 1, 8, 8, [b""], FP),
    Bitstream("g" * 256, 1, 8, 8, [b""], FP),
    Bitstream("glic", 0, 8, 8, [b""], FP), Bitstream("glic", 1, 0, 8, [b""], FP),
    Bitstream("glic", 1, 8, 70000, [b""], FP), Bitstream("glic", 1, 8, 8, [], FP),
    Bitstream("glic", 1, 8, 8, [b""]), Bitstream("glic", 1, 8, 8, [b""], FP[:7]),
    Bitstream("glic", 1, 8, 8, [b""], FP, tile_height=-1),
    Bitstream("glic", 1, 8, 8, [b""], FP, tile_width=65536),
    Bitstream("glic", 1, 8, 8, [b""], FP, tile_width=100),
    Bitstream("glic", 1, 8, 8, [b""], FP, version=1),
])
def test_encode_rejects_unrepresentable(bad):
    with pytest.raises(ValueError):
        encode(bad)
