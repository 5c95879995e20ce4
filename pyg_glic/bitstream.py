r"""The ``.glic`` file format: one compressed image, self-describing and checked.

Layout (all integers little-endian; the specification is ``docs/FORMAT.md``)::

    offset  size  field
    0       4     magic  b"GLIC"
    4       1     format version (1)
    5       1     L = length of the model configuration name
    6       L     configuration name, ASCII (e.g. "glic-lite")
    6+L     1     quality (1..255)
    7+L     4     original image height (1..65535)
    11+L    4     original image width  (1..65535)
    15+L    1     S = number of entropy-coded strings (1..64)
    then S times:
            4     length n of the string
            n     the string (CompressAI's ANS output)
    end-4   4     CRC32 of every byte before it

:func:`decode` checks every field, in file order, before it allocates or
believes anything, and raises :class:`BitstreamError` naming the problem.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Iterable, List, Optional

MAGIC = b"GLIC"
VERSION = 1
MAX_SIDE = 65535
MAX_STRINGS = 64


class BitstreamError(ValueError):
    r"""A ``.glic`` file that cannot be decoded; the message says why."""


@dataclass(frozen=True)
class Bitstream:
    r"""The decoded content of a ``.glic`` file.

    Attributes:
        config (str): model configuration name (``"glic-lite"``, ``"glic"``, ...).
        quality (int): quality level, 1..255.
        height, width (int): original image size in pixels.
        strings (list[bytes]): the entropy-coded strings, in the model's order.
    """

    config: str
    quality: int
    height: int
    width: int
    strings: List[bytes]


def encode(bs: Bitstream) -> bytes:
    r"""Serialise a :class:`Bitstream`; raises ``ValueError`` for unrepresentable fields."""
    name = bs.config.encode("ascii", errors="strict") if bs.config.isascii() else None
    if not name or len(name) > 255:
        raise ValueError(f"config must be a non-empty ASCII name of at most 255 bytes, "
                         f"got {bs.config!r}")
    if not 1 <= bs.quality <= 255:
        raise ValueError(f"quality must be in 1..255, got {bs.quality}")
    for side, v in (("height", bs.height), ("width", bs.width)):
        if not 1 <= v <= MAX_SIDE:
            raise ValueError(f"{side} must be in 1..{MAX_SIDE}, got {v}")
    if not 1 <= len(bs.strings) <= MAX_STRINGS:
        raise ValueError(f"expected 1..{MAX_STRINGS} strings, got {len(bs.strings)}")
    parts = [MAGIC, struct.pack("<BB", VERSION, len(name)), name,
             struct.pack("<BIIB", bs.quality, bs.height, bs.width, len(bs.strings))]
    for s in bs.strings:
        parts += [struct.pack("<I", len(s)), bytes(s)]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        # The last 4 bytes are the checksum: fields must end before it.
        if self.pos + n > len(self.data) - 4:
            raise BitstreamError(f"truncated file: {len(self.data)} bytes end inside the {what} "
                                 f"(at offset {self.pos}, {n} bytes needed)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def decode(data: bytes, known_configs: Optional[Iterable[str]] = None) -> Bitstream:
    r"""Parse and check a ``.glic`` file.

    Args:
        data (bytes): the whole file.
        known_configs (iterable of str, optional): configuration names this
            decoder can reconstruct; another name raises :class:`BitstreamError`.

    Raises:
        BitstreamError: bad magic, unsupported version, truncated file, a field
            out of range, trailing bytes, checksum mismatch or unknown model.
    """
    data = bytes(data)
    if data[:4] != MAGIC[:len(data[:4])]:
        raise BitstreamError(f"bad magic: not a .glic file (expected {MAGIC!r}, "
                             f"got {data[:4]!r})")
    if len(data) < 5:
        raise BitstreamError(f"truncated file: {len(data)} bytes, no format version")
    if data[4] != VERSION:
        raise BitstreamError(f"unsupported format version {data[4]} (this decoder reads "
                             f"version {VERSION})")
    r = _Reader(data)
    r.pos = 5
    (name_len,) = r.unpack("<B", "configuration name length")
    if name_len == 0:
        raise BitstreamError("empty configuration name")
    raw_name = r.take(name_len, "configuration name")
    quality, height, width, count = r.unpack("<BIIB", "header")
    if quality == 0:
        raise BitstreamError("quality 0 is not valid (1..255)")
    for side, v in (("height", height), ("width", width)):
        if not 1 <= v <= MAX_SIDE:
            raise BitstreamError(f"image {side} {v} out of range 1..{MAX_SIDE}")
    if not 1 <= count <= MAX_STRINGS:
        raise BitstreamError(f"string count {count} out of range 1..{MAX_STRINGS}")
    strings = []
    for i in range(count):
        (n,) = r.unpack("<I", f"length of string {i}")
        strings.append(r.take(n, f"string {i}"))
    if r.pos != len(data) - 4:
        raise BitstreamError(f"{len(data) - 4 - r.pos} unexpected bytes before the checksum")
    (crc,) = struct.unpack("<I", data[-4:])
    actual = zlib.crc32(data[:-4])
    if crc != actual:
        raise BitstreamError(f"checksum mismatch: the file is corrupted (stored CRC32 "
                             f"{crc:08x}, computed {actual:08x})")
    try:
        config = raw_name.decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("configuration name is not ASCII") from None
    if known_configs is not None:
        known = sorted(known_configs)
        if config not in known:
            raise BitstreamError(f"unknown model configuration {config!r}; this decoder "
                                 f"knows {known}")
    return Bitstream(config, quality, height, width, strings)
