r"""Compress and decompress images to and from ``.glic`` bytes, and rate control.

.. code-block:: python

    from pyg_glic import codec

    data = codec.compress(x, "glic-lite", quality=2.5)          # (1, 3, H, W) in [0, 1]
    x_hat, header = codec.decompress(data)
    data, q = codec.compress_to_size(x, "glic-lite", bpp=0.3)   # never above the target

A variable-rate configuration (``glic-lite``) takes any float quality in
``[1, levels]``; the file stores it to 0.001 and both sides code with that
stored value. A fixed-rate one (``glic``) takes the integer qualities 1..6.
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, Optional, Tuple, Union

import torch
from torch import Tensor

from . import bitstream
from . import zoo
from ._tiles import (ANALYSIS_MARGIN, SCALE, SYNTHESIS_MARGIN, TILE, TileGrid, blend_weights,
                     image_window, intra_op_threads, window)
from .bitstream import MAX_PIXELS, BitstreamError, ImageTooLargeError, check_size  # noqa: F401

Quality = Union[int, float]

class RateControlError(ValueError):
    r"""No quality gives a file within the target size.

    Attributes:
        target_bytes (int): the largest size allowed.
        smallest_bytes (int): the smallest file the codec made (at its lowest quality).
        smallest_quality: the quality of that file.
    """

    def __init__(self, message: str, target_bytes: int, smallest_bytes: int,
                 smallest_quality: Quality):
        super().__init__(message)
        self.target_bytes = target_bytes
        self.smallest_bytes = smallest_bytes
        self.smallest_quality = smallest_quality


def _check_image(x: Tensor) -> None:
    if not torch.is_tensor(x) or x.dim() != 4 or x.size(0) != 1 or x.size(1) != 3:
        raise ValueError(f"expected one RGB image of shape (1, 3, H, W), got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")


def _check_model(net, config: str) -> None:
    have = getattr(net, "config", None)
    if have is not None and have != config:
        raise ValueError(f"the model given is a {have} model, not {config}")


def _coding_quality(config: str, quality, net=None) -> Quality:
    r"""The quality to code with: checked for the model, and rounded to what the
    file stores (0.001) for a variable-rate one."""
    levels = net.levels if net is not None else zoo.levels_of(config)
    q = zoo.check_quality_for_levels(levels, quality, config)
    return bitstream.stored_quality(q) if levels else q


def _progress(items: Iterable, total: int, show: bool, what: str) -> Iterable:
    if not show or total <= 1:
        return items
    from tqdm import tqdm
    return tqdm(items, total=total, desc=what, unit="tile", leave=False)


def _strings_per_tile(net) -> int:
    return 2 * len(net.groups) + 1


def _encode(net, x: Tensor, name: str, q: Quality, *, tile: int = TILE, threads: int = 1,
            progress: bool = False, reconstruct: bool = False
            ) -> Tuple[bytes, Optional[Tensor]]:
    r"""Code ``x`` in tiles (:mod:`pyg_glic._tiles`): the file's bytes and, with
    ``reconstruct``, the image its decoder will output (synthesised here from the
    encoder's own ``y_hat``)."""
    H, W = (int(v) for v in x.shape[-2:])
    grid = TileGrid.for_image(H, W, tile)
    Hp, Wp = grid.padded
    quality = q if net.levels else None

    def code(t):
        y0, y1, x0, x1 = t
        r0, r1 = window(y0, y1, ANALYSIS_MARGIN, Hp)
        c0, c1 = window(x0, x1, ANALYSIS_MARGIN, Wp)
        with intra_op_threads(threads):
            y = net.g_a(image_window(x, r0, r1, c0, c1))
        y = y[..., (y0 - r0) // SCALE:(y1 - r0) // SCALE,
              (x0 - c0) // SCALE:(x1 - c0) // SCALE].contiguous()
        with intra_op_threads(1):  # the entropy parameters: never thread-dependent
            out = net.compress_latent(y, quality)
        return [s[0] for s in out["strings"]], out["y_hat"] if reconstruct else None

    tiles = grid.tiles()
    results = [code(t) for t in _progress(tiles, len(tiles), progress, "encode")]
    data = bitstream.encode(bitstream.Bitstream(
        name, q, H, W, [s for strings, _ in results for s in strings],
        zoo.weights_fingerprint(net), grid.tile_height, grid.tile_width))
    x_hat = None
    if reconstruct:
        x_hat = _synthesize(net, _assemble(grid, [y for _, y in results]), grid, threads,
                            progress)
    return data, x_hat


def _assemble(grid: TileGrid, parts: Iterable[Tensor]) -> Tensor:
    r"""The whole latent from the tiles' latents (row-major)."""
    Hp, Wp = grid.padded
    y_hat = None
    for (y0, y1, x0, x1), part in zip(grid.tiles(), parts):
        if y_hat is None:
            y_hat = part.new_empty(1, part.size(1), Hp // SCALE, Wp // SCALE)
        y_hat[..., y0 // SCALE:y1 // SCALE, x0 // SCALE:x1 // SCALE] = part
    return y_hat


def _synthesize(net, y_hat: Tensor, grid: TileGrid, threads: int, progress: bool) -> Tensor:
    r"""The decoded image from the whole decoded latent: ``g_s`` tile by tile on
    the tile's latent with :data:`~pyg_glic._tiles.SYNTHESIS_MARGIN` around it,
    cross-faded across tile edges; combined in tile order (deterministic)."""
    H, W = grid.height, grid.width
    Hp, Wp = grid.padded
    m = SYNTHESIS_MARGIN

    def synth(t):
        y0, y1, x0, x1 = t
        a, b, wy = blend_weights(y0, y1, Hp)
        c, d, wx = blend_weights(x0, x1, Wp)
        r0, r1 = window(y0 // SCALE, y1 // SCALE, m, Hp // SCALE)
        c0, c1 = window(x0 // SCALE, x1 // SCALE, m, Wp // SCALE)
        with intra_op_threads(threads):
            px = net.g_s(y_hat[..., r0:r1, c0:c1].contiguous())
        b, d = min(b, H), min(d, W)  # the padding is not output
        part = px[..., a - r0 * SCALE:b - r0 * SCALE, c - c0 * SCALE:d - c0 * SCALE]
        return a, b, c, d, part * (wy[:b - a, None] * wx[None, :d - c]).to(part.dtype)

    tiles = grid.tiles()
    out = y_hat.new_zeros(1, 3, H, W)
    for t in _progress(tiles, len(tiles), progress, "synthesis"):
        a, b, c, d, part = synth(t)
        out[..., a:b, c:d] += part
    return out.clamp_(0, 1)


def _check_threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return threads


def _prepare(x: Tensor, config: str, quality, model):
    _check_image(x)
    if model is not None:
        _check_model(model, config)
    q = _coding_quality(config, quality, model)
    name = zoo.codec_name(config, q if not zoo.is_variable_rate(config) else None)
    net = model if model is not None else zoo.load_codec(name, q)
    return net, name, q


@torch.no_grad()
def compress(x: Tensor, config: str = "glic-lite", quality: Quality = 3,
             model: Optional[torch.nn.Module] = None, *, tile: int = TILE, threads: int = 1,
             progress: bool = False) -> bytes:
    r"""One image ``(1, 3, H, W)`` in ``[0, 1]`` -> the bytes of a ``.glic`` file.

    Images larger than ``tile x tile`` pixels are coded in tiles, so memory is
    set by the tile, not the image (:mod:`pyg_glic._tiles` says how tiles meet).
    With ``threads=1`` (the default) the same image, settings and weights give
    the same bytes whatever the process's own thread count.

    Args:
        x (Tensor): the image.
        config (str): model configuration.
        quality (float or int): a float in ``[1, levels]`` for a variable-rate
            configuration (coded as rounded to 0.001, what the file stores), an
            integer 1..6 for a fixed-rate one.
        model (GLIC, optional): an already loaded codec for ``config`` (see
            :func:`pyg_glic.zoo.load_codec`; for a fixed-rate configuration, the
            one of ``quality``), to skip loading. Its weights' fingerprint is
            recorded: a decoder with other weights refuses the file.
        tile (int): tile side in pixels, a multiple of 64 (default 2048: Kodak
            and 1080p images are one tile).
        threads (int): intra-op threads of the transforms (the entropy coding
            always uses one). With the default, 1, the same image gives the same
            bytes whatever the process's thread count; more is faster and may
            change a few latent values (the file still decodes exactly).
        progress (bool): a progress bar over tiles (tqdm) when there are several.

    Raises:
        ValueError: a bad image, configuration, quality, tile or thread count.
    """
    _check_threads(threads)
    net, name, q = _prepare(x, config, quality, model)
    return _encode(net, x, name, q, tile=tile, threads=threads, progress=progress)[0]


@torch.no_grad()
def compress_and_reconstruct(x: Tensor, config: str = "glic-lite", quality: Quality = 3,
                             model: Optional[torch.nn.Module] = None, *, tile: int = TILE,
                             threads: int = 1, progress: bool = False
                             ) -> Tuple[bytes, Tensor]:
    r""":func:`compress`, and the image :func:`decompress` will output for those
    bytes, computed by the encoder from its own quantised latent (so comparing
    the two checks the entropy coding end to end: ``pyg-glic compress --verify``).
    The synthesis doubles the cost."""
    _check_threads(threads)
    net, name, q = _prepare(x, config, quality, model)
    return _encode(net, x, name, q, tile=tile, threads=threads, progress=progress,
                   reconstruct=True)


def _load_for(bs: bitstream.Bitstream):
    config, untrained = zoo.split_codec_name(bs.config)
    if not untrained:
        q = None if zoo.is_variable_rate(config) else bs.quality
        if not zoo.weights_path(config, q).is_file():
            have = ", ".join(c if s is None else f"{c} q{s}" for c, s in zoo.shipped_weights())
            raise BitstreamError(f"the file was coded with trained {bs.config} weights"
                                 f"{'' if q is None else f' (quality {q})'}, which this "
                                 f"installation does not ship (shipped: {have or 'none'})")
    try:
        return zoo.load_codec(bs.config, bs.quality)
    except (OSError, ValueError, RuntimeError) as e:
        raise BitstreamError(f"cannot load the {bs.config} codec: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                             ) from None


@torch.no_grad()
def decompress(data: bytes, model: Optional[torch.nn.Module] = None,
               max_pixels: Optional[int] = MAX_PIXELS, *, threads: int = 1,
               progress: bool = False) -> Tuple[Tensor, bitstream.Bitstream]:
    r"""The bytes of a ``.glic`` file (version 1 or 2) -> ``(image (1, 3, H, W) in
    [0, 1], header)``.

    Everything is checked before the model decodes: the container
    (:func:`pyg_glic.bitstream.decode`), the quality against the named model
    (a float in ``[1, levels]``, or an integer 1..6 for a fixed-rate one), that
    the named weights ship, the weights' fingerprint (version 2; a version-1 file
    has none) and the number of strings for the tile grid. A tiled file decodes
    tile by tile (memory set by the tile). With ``threads=1`` (default) the
    pixels are the same whatever the process's thread count.

    Args:
        model (GLIC, optional): the codec to decode with instead of the one the
            file names (its fingerprint must match a version-2 file's).
        max_pixels (int, optional): refuse files claiming more pixels
            (:class:`ImageTooLargeError`), checked before anything is allocated;
            ``None`` for no limit. (default: :data:`MAX_PIXELS`)
        threads (int): intra-op threads of the synthesis transform (the entropy
            decoding always uses one); more is faster and may change a pixel by
            one level against a one-thread decode.
        progress (bool): a progress bar over tiles (tqdm) when there are several.

    Raises:
        pyg_glic.bitstream.BitstreamError: any of the above; never another error
            for a bad file.
        ValueError: a bad ``threads``.
    """
    _check_threads(threads)
    bs = bitstream.decode(data, known_configs=zoo.known_codec_names())
    check_size(bs, max_pixels)
    config, _ = zoo.split_codec_name(bs.config)
    levels = model.levels if model is not None else zoo.levels_of(config)
    try:
        q = zoo.check_quality_for_levels(levels, bs.quality, bs.config)
    except ValueError as e:
        raise BitstreamError(f"quality {bs.quality} is out of range: {e}") from None
    net = model if model is not None else _load_for(bs)
    if bs.fingerprint is not None:
        have = zoo.weights_fingerprint(net)
        if have != bs.fingerprint:
            raise BitstreamError(f"weights mismatch: the file was coded with {bs.config} "
                                 f"weights of fingerprint {bs.fingerprint.hex()}, the decoder's "
                                 f"weights have fingerprint {have.hex()}")
    per = _strings_per_tile(net)
    n_tiles = TileGrid.count(bs.height, bs.width, bs.tile_height, bs.tile_width)
    if len(bs.strings) != n_tiles * per:
        grid_note = f" ({n_tiles} tiles of {per})" if n_tiles > 1 else ""
        raise BitstreamError(f"{bs.config} files hold {n_tiles * per} strings{grid_note}, "
                             f"this one holds {len(bs.strings)}")
    grid = TileGrid(bs.height, bs.width, bs.tile_height, bs.tile_width)
    tiles = grid.tiles()
    quality = q if levels else None

    def decode_tile(i: int) -> Tensor:
        y0, y1, x0, x1 = tiles[i]
        strings = [[s] for s in bs.strings[i * per:(i + 1) * per]]
        with intra_op_threads(1):  # as the encoder computed the entropy parameters
            return net.decompress_latent(strings, ((y1 - y0) // SCALE, (x1 - x0) // SCALE),
                                         quality)

    try:
        y_hat = _assemble(grid, map(decode_tile, _progress(range(len(tiles)), len(tiles),
                                                           progress, "entropy decoding")))
        x_hat = _synthesize(net, y_hat, grid, threads, progress)
    except (ValueError, IndexError) as e:
        raise BitstreamError(f"the entropy-coded strings do not decode: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                             ) from None
    return x_hat, bs


# ---------------------------------------------------------------------- rate control


def target_bytes(height: int, width: int, *, max_bytes: Optional[int] = None,
                 bpp: Optional[float] = None) -> int:
    r"""The largest file size allowed by one target: ``max_bytes``, or
    ``floor(bpp * height * width / 8)``."""
    if (max_bytes is None) == (bpp is None):
        raise ValueError("give exactly one of max_bytes and bpp")
    H, W = int(height), int(width)
    if bpp is not None:
        if isinstance(bpp, bool) or not isinstance(bpp, (int, float)) \
                or not math.isfinite(bpp) or bpp <= 0:
            raise ValueError(f"bpp must be a positive number, got {bpp!r}")
        return int(math.floor(bpp * H * W / 8))
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    return max_bytes


def _too_big(target: int, x: Tensor, size: int, q: Quality, config: str) -> RateControlError:
    H, W = x.shape[-2:]
    return RateControlError(
        f"{config} cannot code this {W}x{H} image in {target} bytes "
        f"({8 * target / (H * W):.4f} bpp): its smallest file, at quality {q}, is "
        f"{size} bytes ({8 * size / (H * W):.4f} bpp)", target, size, q)


@torch.no_grad()
def compress_to_size(x: Tensor, config: str = "glic-lite", *, max_bytes: Optional[int] = None,
                     bpp: Optional[float] = None, model: Optional[torch.nn.Module] = None,
                     tolerance: float = 0.01, steps: int = 12, tile: int = TILE,
                     threads: int = 1) -> Tuple[bytes, Quality]:
    r"""The highest-quality ``.glic`` file of ``x`` that is **not larger** than a target.

    A variable-rate configuration: bisection over the continuous quality in
    ``[1, levels]`` on the 0.001 grid the file stores, every step coding for
    real. After coding the two ends, at most ``steps`` bisection steps (12 take
    the interval to about 0.001 for 6 levels); it stops early once a file is
    within ``tolerance`` (relative) under the target. The file returned is the
    largest-quality one found that fits. A fixed-rate configuration: the integer
    qualities whose weights ship (the untrained models 1..6 while none ship),
    from the highest down, the first that fits.

    Args:
        x (Tensor): one image ``(1, 3, H, W)`` in ``[0, 1]``.
        config (str): model configuration.
        max_bytes (int): the largest file size allowed; or
        bpp (float): the largest rate allowed, ``bpp * H * W / 8`` bytes (rounded down).
        model (GLIC, optional): a loaded variable-rate codec for ``config``
            (a fixed-rate search loads one model per quality: not accepted).
        tolerance (float): stop once a file is at least ``(1 - tolerance)`` of the
            target; 0 bisects down to the 0.001 grid (or ``steps``).
        steps (int): most bisection steps.
        tile, threads: as for :func:`compress`.

    Returns:
        ``(data, quality)``: the file's bytes (``len(data) <= target``) and its
        quality (a float rounded to 0.001, or the integer quality).

    Raises:
        RateControlError: even the lowest quality gives a larger file (the
            message names its size).
        ValueError: bad arguments.
    """
    _check_image(x)
    _check_threads(threads)
    target = target_bytes(*x.shape[-2:], max_bytes=max_bytes, bpp=bpp)
    levels = zoo.levels_of(config)
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    if levels is None:
        if model is not None:
            raise ValueError(f"{config} is fixed-rate (one model per quality): rate control "
                             f"loads the model of each quality itself; pass model=None")
        return _fixed_rate_search(x, config, target, tile=tile, threads=threads)
    if model is not None:
        _check_model(model, config)
        if not model.levels:
            raise ValueError("the model given is fixed-rate; rate control needs a "
                             "variable-rate model")
        levels = model.levels
    name = zoo.codec_name(config)
    net = model if model is not None else zoo.load_codec(name)
    sizes: Dict[int, int] = {}

    def code(c: int) -> bytes:
        data = _encode(net, x, name, c / bitstream.QUALITY_SCALE, tile=tile, threads=threads)[0]
        sizes[c] = len(data)
        return data

    lo, hi = bitstream.MIN_QUALITY_CODE, levels * bitstream.QUALITY_SCALE
    best = code(lo)
    if len(best) > target:
        raise _too_big(target, x, len(best), 1.0, name)
    top = code(hi)
    if len(top) <= target:
        return top, hi / bitstream.QUALITY_SCALE
    best_c = lo
    for _ in range(steps):
        if hi - lo <= 1 or (tolerance > 0 and len(best) >= (1 - tolerance) * target):
            break
        mid = (lo + hi) // 2
        data = code(mid)
        if len(data) <= target:
            lo, best, best_c = mid, data, mid
        else:
            hi = mid
    return best, best_c / bitstream.QUALITY_SCALE


def _fixed_rate_search(x: Tensor, config: str, target: int, **options) -> Tuple[bytes, int]:
    qualities = zoo.shipped_qualities(config) or sorted(zoo.QUALITY_LAMBDAS)
    smallest = None
    for q in sorted(qualities, reverse=True):
        data = compress(x, config, q, **options)
        if len(data) <= target:
            return data, q
        if smallest is None or len(data) < smallest[0]:
            smallest = (len(data), q)
    raise _too_big(target, x, smallest[0], smallest[1], zoo.codec_name(config, smallest[1]))
