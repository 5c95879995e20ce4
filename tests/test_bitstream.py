import struct
import zlib

import pytest

from pyg_glic.bitstream import Bitstream, BitstreamError, decode, encode

SAMPLE = Bitstream("glic-lite", 3, 512, 768, [b"\x01\x02\x03", b"", b"z" * 10])


def test_round_trip():
    data = encode(SAMPLE)
    assert decode(data, known_configs=["glic", "glic-lite"]) == SAMPLE
    # Layout spot checks written out from the specification.
    assert data[:4] == b"GLIC" and data[4] == 1 and data[5] == len("glic-lite")
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_every_truncation_is_rejected():
    data = encode(SAMPLE)
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


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("mutate,match", [
    (lambda d: b"PNG\x00" + d[4:], "bad magic"),
    (lambda d: d[:4] + b"\x07" + d[5:], "unsupported format version 7"),
    (lambda d: _with_crc(d[:-4] + b"xx"), "unexpected bytes"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum mismatch"),
])
def test_named_errors(mutate, match):
    with pytest.raises(BitstreamError, match=match):
        decode(mutate(encode(SAMPLE)))


def test_field_range_errors():
    body = encode(SAMPLE)[:-4]
    at = 6 + len("glic-lite")
    zero_q = _with_crc(body[:at] + b"\x00" + body[at + 1:])
    with pytest.raises(BitstreamError, match="quality 0"):
        decode(zero_q)
    zero_h = _with_crc(body[:at + 1] + struct.pack("<I", 0) + body[at + 5:])
    with pytest.raises(BitstreamError, match="height 0 out of range"):
        decode(zero_h)
    huge_w = _with_crc(body[:at + 5] + struct.pack("<I", 10 ** 6) + body[at + 9:])
    with pytest.raises(BitstreamError, match="width 1000000 out of range"):
        decode(huge_w)
    # A string length that points far past the end must not allocate anything.
    big = _with_crc(body[:at + 10] + struct.pack("<I", 2 ** 31) + body[at + 14:])
    with pytest.raises(BitstreamError, match="truncated"):
        decode(big)


def test_unknown_model():
    data = encode(Bitstream("glic-huge", 1, 8, 8, [b"a"]))
    with pytest.raises(BitstreamError, match="unknown model configuration 'glic-huge'"):
        decode(data, known_configs=["glic", "glic-lite"])


@pytest.mark.parametrize("bad", [
    Bitstream("", 1, 8, 8, [b""]), Bitstream("glïc", 1, 8, 8, [b""]),
    Bitstream("glic", 0, 8, 8, [b""]), Bitstream("glic", 1, 0, 8, [b""]),
    Bitstream("glic", 1, 8, 70000, [b""]), Bitstream("glic", 1, 8, 8, []),
])
def test_encode_rejects_unrepresentable(bad):
    with pytest.raises(ValueError):
        encode(bad)
