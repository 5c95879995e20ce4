r"""The ``.glic`` file format: one compressed image, self-describing and checked.

Version 2 layout (all integers little-endian; the specification, with version 1,
is ``docs/FORMAT.md``)::

    offset  size  field
    0       4     magic  b"GLIC"
    4       1     format version (2)
    5       1     L = length of the model configuration name (1..255)
    6       L     configuration name, ASCII (e.g. "glic-lite", "glic-lite+untrained")
    6+L     2     quality x 1000, rounded (1000..65535: quality 1.000..65.535)
    8+L     8     weights fingerprint (pyg_glic.zoo.weights_fingerprint)
    16+L    4     original image height (1..65535)
    20+L    4     original image width  (1..65535)
    24+L    2     tile height in pixels (0: the tile spans the image height)
    26+L    2     tile width in pixels  (0: the tile spans the image width)
    28+L    2     S = number of entropy-coded strings (1..65535), all tiles
    then S times:
            4     length n of the string
            n     the string (CompressAI's ANS output)
    end-4   4     CRC32 of every byte before it

:func:`encode` writes version 2; an image of one tile has tile size 0 x 0, a
tiled one its tile size (multiples of 64; tiles row-major, each tile's strings
in the model's order: :mod:`pyg_glic.codec`). :func:`decode` reads versions 1
and 2; it checks every field, in file order, before it allocates or believes
anything, and raises :class:`BitstreamError` naming the problem.
"""
from __future__ import annotations

import math
import numbers
import struct
import zlib
from dataclasses import dataclass
from typing import Iterable, List, Optional, Union

MAGIC = b"GLIC"
#: The version :func:`encode` writes.
VERSION = 2
#: The versions :func:`decode` reads.
SUPPORTED_VERSIONS = (1, 2)
MAX_SIDE = 65535
#: Most strings a version-2 file holds (all tiles together: the count is a uint16);
#: version 1 holds 1..64.
MAX_STRINGS = 65535
MAX_STRINGS_V1 = 64
#: The stored quality is ``round(quality * QUALITY_SCALE)`` in a uint16.
QUALITY_SCALE = 1000
MIN_QUALITY_CODE, MAX_QUALITY_CODE = 1000, 65535
FINGERPRINT_SIZE = 8
#: Tile sides are 0 (one tile across) or multiples of this.
TILE_MULTIPLE = 64

_V2_HEADER = "<H8sIIHHH"  # quality code, fingerprint, height, width, tile h, tile w, count


class BitstreamError(ValueError):
    r"""A ``.glic`` file that cannot be decoded; the message says why."""


#: Largest image (pixels) :func:`pyg_glic.codec.decompress` decodes unless told otherwise: Pillow's
#: ``Image.MAX_IMAGE_PIXELS`` (about 89.5 megapixels). Memory no longer grows with
#: the image beyond its own buffers (tiles, :data:`TILE`), so the limit is about
#: time and output size: checked from the header, before any allocation (a 98-byte
#: file claiming 20000 x 20000 pixels is refused at once).
MAX_PIXELS = 89_478_485


class ImageTooLargeError(BitstreamError):
    r"""A ``.glic`` file claims more pixels than the decoder's limit allows.

    Attributes:
        height, width (int): the claimed size.
        max_pixels (int): the limit.
    """

    def __init__(self, height: int, width: int, max_pixels: int):
        super().__init__(f"the file claims a {width}x{height} image ({height * width:,} "
                         f"pixels), more than the limit of {max_pixels:,} pixels; raise it "
                         f"with max_pixels= (pyg-glic decompress --max-pixels) if you trust "
                         f"the file and have the memory")
        self.height, self.width, self.max_pixels = height, width, max_pixels


def check_size(bs: "Bitstream", max_pixels: Optional[int] = MAX_PIXELS) -> None:
    r"""Raise :class:`ImageTooLargeError` if ``bs`` claims more than ``max_pixels``
    pixels (``None``: no limit). Needs only the header: a command line can refuse a
    file before it loads any model."""
    if max_pixels is not None and bs.height * bs.width > max_pixels:
        raise ImageTooLargeError(bs.height, bs.width, int(max_pixels))


def quality_code(quality: Union[int, float]) -> int:
    r"""The uint16 a version-2 file stores for ``quality``: ``round(quality * 1000)``
    (Python's rounding, half to even).

    Raises:
        ValueError: not a finite number, or outside 1.000..65.535 once rounded.
    """
    if isinstance(quality, bool) or not isinstance(quality, numbers.Real) \
            or not math.isfinite(quality):
        raise ValueError(f"quality must be a finite number, got {quality!r}")
    code = int(round(float(quality) * QUALITY_SCALE))
    if not MIN_QUALITY_CODE <= code <= MAX_QUALITY_CODE:
        raise ValueError(f"quality {quality} is not representable: a .glic file stores "
                         f"1.000..65.535 in steps of 0.001")
    return code


def stored_quality(quality: Union[int, float]) -> float:
    r"""``quality`` as a version-2 file stores it and a decoder reads it back
    (rounded to 0.001); encoders code with this value so both sides agree."""
    return quality_code(quality) / QUALITY_SCALE


@dataclass(frozen=True)
class Bitstream:
    r"""The decoded content of a ``.glic`` file.

    Attributes:
        config (str): codec name (``"glic-lite"``, ``"glic-lite+untrained"``, ...).
        quality (float or int): the quality the strings were coded at; version 2
            stores it to 0.001 (:func:`stored_quality`), version 1 as an integer.
        height, width (int): original image size in pixels.
        strings (list[bytes]): the entropy-coded strings, in the model's order.
        fingerprint (bytes, optional): the 8-byte fingerprint of the encoder's
            weights (:func:`pyg_glic.zoo.weights_fingerprint`); ``None`` in a
            version-1 file. Required to encode.
        tile_height, tile_width (int): tile size in pixels, 0 for a tile that
            spans that whole side (``0, 0``: the image is one tile).
        version (int): the format version of the file (``encode`` writes 2).
    """

    config: str
    quality: Union[int, float]
    height: int
    width: int
    strings: List[bytes]
    fingerprint: Optional[bytes] = None
    tile_height: int = 0
    tile_width: int = 0
    version: int = VERSION

    @property
    def tiled(self) -> bool:
        return bool(self.tile_height or self.tile_width)


def _check_name(config) -> bytes:
    name = config.encode("ascii") if isinstance(config, str) and config.isascii() else None
    if not name or len(name) > 255:
        raise ValueError(f"config must be a non-empty ASCII name of at most 255 bytes, "
                         f"got {config!r}")
    return name


def encode(bs: Bitstream) -> bytes:
    r"""Serialise a :class:`Bitstream` as a version-2 file.

    Raises:
        ValueError: a field that version 2 cannot represent (including a missing
            fingerprint, or ``bs.version`` other than 2).
    """
    if bs.version != VERSION:
        raise ValueError(f"this encoder writes format version {VERSION} only, "
                         f"got version {bs.version}")
    name = _check_name(bs.config)
    code = quality_code(bs.quality)
    fp = bs.fingerprint
    if not isinstance(fp, (bytes, bytearray)) or len(fp) != FINGERPRINT_SIZE:
        raise ValueError(f"fingerprint must be {FINGERPRINT_SIZE} bytes, got {fp!r}")
    for side, v in (("height", bs.height), ("width", bs.width)):
        if not 1 <= v <= MAX_SIDE:
            raise ValueError(f"{side} must be in 1..{MAX_SIDE}, got {v}")
    for side, v in (("tile height", bs.tile_height), ("tile width", bs.tile_width)):
        if not 0 <= v <= 65535 or v % TILE_MULTIPLE:
            raise ValueError(f"{side} must be 0 or a multiple of {TILE_MULTIPLE} in "
                             f"0..65535, got {v}")
    if not 1 <= len(bs.strings) <= MAX_STRINGS:
        raise ValueError(f"expected 1..{MAX_STRINGS} strings, got {len(bs.strings)}")
    parts = [MAGIC, struct.pack("<BB", VERSION, len(name)), name,
             struct.pack(_V2_HEADER, code, bytes(fp), bs.height, bs.width, bs.tile_height,
                         bs.tile_width, len(bs.strings))]
    for s in bs.strings:
        if len(s) > 0xFFFFFFFF:
            raise ValueError("a string is longer than 4 GiB")
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


def _check_sides(height: int, width: int) -> None:
    for side, v in (("height", height), ("width", width)):
        if not 1 <= v <= MAX_SIDE:
            raise BitstreamError(f"image {side} {v} out of range 1..{MAX_SIDE}")


def _check_count(count: int, most: int) -> None:
    if not 1 <= count <= most:
        raise BitstreamError(f"string count {count} out of range 1..{most}")


def decode(data: bytes, known_configs: Optional[Iterable[str]] = None) -> Bitstream:
    r"""Parse and check a ``.glic`` file of format version 1 or 2.

    Args:
        data (bytes): the whole file.
        known_configs (iterable of str, optional): codec names this decoder can
            reconstruct; another name raises :class:`BitstreamError`.

    Raises:
        BitstreamError: bad magic, unsupported version, truncated file, a field
            out of range, trailing bytes, checksum mismatch, a tile size that is
            not a multiple of 64, or an unknown model.
    """
    data = bytes(data)
    if data[:4] != MAGIC[:len(data[:4])]:
        raise BitstreamError(f"bad magic: not a .glic file (expected {MAGIC!r}, "
                             f"got {data[:4]!r})")
    if len(data) < 5:
        raise BitstreamError(f"truncated file: {len(data)} bytes, no format version")
    version = data[4]
    if version not in SUPPORTED_VERSIONS:
        raise BitstreamError(f"unsupported format version {version} (this decoder reads "
                             f"versions {', '.join(map(str, SUPPORTED_VERSIONS))})")
    r = _Reader(data)
    r.pos = 5
    (name_len,) = r.unpack("<B", "configuration name length")
    if name_len == 0:
        raise BitstreamError("empty configuration name")
    raw_name = r.take(name_len, "configuration name")
    fingerprint, tile_h, tile_w = None, 0, 0
    if version == 1:
        quality, height, width, count = r.unpack("<BIIB", "header")
        if quality == 0:
            raise BitstreamError("quality 0 is not valid (1..255)")
        _check_sides(height, width)
        _check_count(count, MAX_STRINGS_V1)
    else:
        code, fingerprint, height, width, tile_h, tile_w, count = r.unpack(_V2_HEADER,
                                                                           "header")
        if code < MIN_QUALITY_CODE:
            raise BitstreamError(f"quality {code / QUALITY_SCALE:.3f} out of range "
                                 f"1.000..65.535")
        quality = code / QUALITY_SCALE
        _check_sides(height, width)
        _check_count(count, MAX_STRINGS)
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
    for side, v in (("height", tile_h), ("width", tile_w)):
        if v % TILE_MULTIPLE:
            raise BitstreamError(f"tile {side} {v} is not a multiple of {TILE_MULTIPLE} "
                                 f"(0 for one tile across)")
    try:
        config = raw_name.decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("configuration name is not ASCII") from None
    if known_configs is not None:
        known = sorted(known_configs)
        if config not in known:
            raise BitstreamError(f"unknown model configuration {config!r}; this decoder "
                                 f"knows {known}")
    return Bitstream(config, quality, height, width, strings, fingerprint, tile_h, tile_w,
                     version)
