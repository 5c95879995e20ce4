r"""Tiled coding for :mod:`pyg_glic.codec`: the tile grid, how tiles meet, and
the thread policy that keeps coding deterministic.

How an image is cut (``docs/FORMAT.md``, "Tiles"): the image is padded
(replicate) to a multiple of 64, as the model does, and cut into tiles of
``tile x tile`` pixels (a multiple of 64) from the top left; the last row and
column of tiles are what remains (also multiples of 64). Each tile's latent,
``tile / 16`` positions a side, is entropy-coded on its own (its own hyperprior
and contexts), so the tiles' strings decode independently.

How tiles meet, without seams:

* **Analysis** (encoder only): a tile's latent is cut from ``g_a`` of the tile
  with :data:`ANALYSIS_MARGIN` pixels of the image around it, so the latent
  near a tile edge sees the image across it.
* **Synthesis** (part of the format: every decoder does this): a tile's pixels
  come from ``g_s`` of the decoded latent of the tile with
  :data:`SYNTHESIS_MARGIN` latent positions of the neighbouring tiles around it.
  Neighbouring tiles therefore synthesise their shared edge from the same
  latents; what differences remain (graph neighbourhoods and the global graph
  see different extents) are cross-faded linearly over :data:`BLEND` pixels
  centred on each tile edge, with weights that sum to 1.

Memory is set by the tile, not the image: one tile's window at a time, plus
the image itself and the decoded latent.

Determinism: float convolutions and matrix products round differently with
different numbers of intra-op threads (measured: up to 1e-6 per layer, enough
to flip a graph edge or, in the entropy networks, a scale index). A flipped
scale index desynchronises the entropy decoder and corrupts the whole image, so
the entropy coding (hyperprior, channel and spatial contexts, the ANS coder)
always runs with **one intra-op thread** (:func:`intra_op_threads`), whatever
the caller's setting: a file decodes exactly on any thread count. The transforms
``g_a`` and ``g_s`` run with the codec's ``threads`` (default 1): with the
default, the same image encodes to the same bytes and a file decodes to the same
pixels whatever the process's own thread count (``OMP_NUM_THREADS``,
``torch.set_num_threads``). With more they are faster, and the results may
differ from a one-thread run by rounding: a decode by under 0.1 of a level
before rounding to 8 bits (measured on a 320x448 crop), an encode in its bytes
(such a file still decodes exactly, on any thread count).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, List, Tuple

import torch
from torch import Tensor

from .bitstream import TILE_MULTIPLE  # tile sides are multiples of the model's padding

#: Default tile side in pixels: Kodak (768x512) and 1080p (1920x1080) images are one tile.
TILE = 2048
#: Pixels of image around a tile that the encoder's analysis sees (a multiple of 64).
ANALYSIS_MARGIN = 128
#: Latent positions around a tile that the decoder's synthesis sees (a multiple of 4).
SYNTHESIS_MARGIN = 8
#: Width in pixels of the linear cross-fade centred on each tile edge (even, at most 64).
BLEND = 32
#: The latent's downsampling.
SCALE = 16

def _ceil_to(v: int, m: int) -> int:
    return -(-int(v) // m) * m


@dataclass(frozen=True)
class TileGrid:
    r"""The tiles of an ``height x width`` image, in padded pixel coordinates.

    Args:
        height, width (int): image size.
        tile_height, tile_width (int): tile size, multiples of 64; 0 for a tile
            that spans that side.
    """

    height: int
    width: int
    tile_height: int = 0
    tile_width: int = 0

    def __post_init__(self):
        for side, v in (("tile height", self.tile_height), ("tile width", self.tile_width)):
            if v < 0 or v % TILE_MULTIPLE:
                raise ValueError(f"{side} must be 0 or a positive multiple of "
                                 f"{TILE_MULTIPLE}, got {v}")

    @classmethod
    def for_image(cls, height: int, width: int, tile: int = TILE) -> "TileGrid":
        r"""The grid the encoder uses: one tile (recorded as ``0 x 0``) when the
        image fits in ``tile x tile``, else square tiles of side ``tile``."""
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < TILE_MULTIPLE \
                or tile % TILE_MULTIPLE or tile > 65535:
            raise ValueError(f"tile must be a multiple of {TILE_MULTIPLE} in "
                             f"{TILE_MULTIPLE}..65472 pixels, got {tile!r}")
        if height <= tile and width <= tile:
            return cls(height, width)
        return cls(height, width, tile, tile)

    @property
    def padded(self) -> Tuple[int, int]:
        return _ceil_to(self.height, TILE_MULTIPLE), _ceil_to(self.width, TILE_MULTIPLE)

    def _cuts(self, padded: int, tile: int) -> List[Tuple[int, int]]:
        tile = tile or padded
        return [(a, min(a + tile, padded)) for a in range(0, padded, tile)]

    @property
    def rows(self) -> List[Tuple[int, int]]:
        return self._cuts(self.padded[0], self.tile_height)

    @property
    def cols(self) -> List[Tuple[int, int]]:
        return self._cuts(self.padded[1], self.tile_width)

    def __len__(self) -> int:
        return self.count(self.height, self.width, self.tile_height, self.tile_width)

    @staticmethod
    def count(height: int, width: int, tile_height: int, tile_width: int) -> int:
        r"""Number of tiles, computed without building the grid (for header checks)."""
        Hp, Wp = _ceil_to(height, TILE_MULTIPLE), _ceil_to(width, TILE_MULTIPLE)
        return (-(-Hp // (tile_height or Hp))) * (-(-Wp // (tile_width or Wp)))

    def tiles(self) -> List[Tuple[int, int, int, int]]:
        r"""``(y0, y1, x0, x1)`` of every tile, row-major (the file's order)."""
        return [(y0, y1, x0, x1) for y0, y1 in self.rows for x0, x1 in self.cols]


def window(lo: int, hi: int, margin: int, end: int) -> Tuple[int, int]:
    r"""``[lo - margin, hi + margin)`` clipped to ``[0, end)``."""
    return max(0, lo - margin), min(end, hi + margin)


def image_window(x: Tensor, y0: int, y1: int, x0: int, x1: int) -> Tensor:
    r"""``x`` replicate-padded to a multiple of 64, cut to ``[y0, y1) x [x0, x1)``:
    the same pixels as cutting the padded image, without padding it whole."""
    H, W = x.shape[-2:]
    part = x[..., y0:min(y1, H), x0:min(x1, W)]
    ph, pw = y1 - y0 - part.size(-2), x1 - x0 - part.size(-1)
    if ph or pw:
        part = torch.nn.functional.pad(part, (0, pw, 0, ph), mode="replicate")
    return part


def blend_weights(lo: int, hi: int, end: int, n: int = BLEND) -> Tuple[int, int, Tensor]:
    r"""The span ``[a, b)`` of pixels a tile ``[lo, hi)`` contributes to along one
    side of length ``end``, and its weights there: 1 inside, a linear ramp over
    the ``n`` pixels centred on each edge shared with a neighbour (a tile's ramp
    and its neighbour's sum to 1), nothing at the image's own edges."""
    h = n // 2
    a = lo - h if lo > 0 else 0
    b = hi + h if hi < end else end
    w = torch.ones(b - a)
    ramp = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    if lo > 0:
        w[:n] = ramp
    if hi < end:
        w[-n:] = ramp.flip(0)
    return a, b, w


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    r"""Run torch with ``n`` intra-op threads inside, restoring the count after
    (process-wide, as ``torch.set_num_threads`` is)."""
    saved = torch.get_num_threads()
    if saved != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != saved:
            torch.set_num_threads(saved)
