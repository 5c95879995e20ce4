r"""``pyg-glic compress`` and ``pyg-glic decompress``.

``compress`` codes at a quality (``-q 2.5``: a float in ``[1, levels]`` for a
variable-rate configuration such as ``glic-lite``, an integer 1..6 for a
fixed-rate one) or to a size (``--bpp 0.3`` or ``--max-bytes 40000``: the
highest quality whose file is not larger, see :func:`pyg_glic.codec.compress_to_size`).
Errors are one line on stderr and exit status 2; nothing is written then.
``-`` as the input reads standard input, as the output writes standard output
(the summary line then goes to standard error).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from . import COMMANDS

DEFAULT_QUALITY = 3


def add_parser(sub) -> None:
    p = sub.add_parser("compress", help=COMMANDS["compress"][1])
    p.add_argument("input", help="image file (PNG, JPEG, ...); '-' reads standard input")
    p.add_argument("output", help="the .glic file to write; '-' writes standard output")
    p.add_argument("-q", "--quality", type=float, default=None,
                   help=f"quality (default {DEFAULT_QUALITY}): a number in [1, levels] for a "
                        f"variable-rate configuration (glic-lite: 1..6, e.g. 2.5), an integer "
                        f"1..6 for a fixed-rate one")
    p.add_argument("--bpp", type=float, default=None,
                   help="code at the highest quality whose file is at most this many bits "
                        "per pixel (instead of -q)")
    p.add_argument("--max-bytes", type=int, default=None,
                   help="code at the highest quality whose file is at most this many bytes "
                        "(instead of -q)")
    p.add_argument("-c", "--config", default="glic-lite", metavar="CONFIG",
                   help="model configuration (default glic-lite; glic, glic-tiny and the "
                        "ablation variants such as glic-lite/no-wavelet: see docs/TRAINING.md)")
    p.add_argument("--tile", type=int, default=None, metavar="PIXELS",
                   help="code images larger than PIXELS x PIXELS in tiles of that size, a "
                        "multiple of 64 (default 2048, pyg_glic.codec.TILE: memory stays "
                        "bounded whatever the image size; Kodak and 1080p images are one tile)")
    p.add_argument("--verify", action="store_true",
                   help="decode the file written and check it gives exactly the encoder's "
                        "reconstruction (about doubles the time); on a mismatch the file is "
                        "removed and the exit status is 1")
    _common(p)
    p.set_defaults(run=run_compress)

    p = sub.add_parser("decompress", help=COMMANDS["decompress"][1])
    p.add_argument("input", help="the .glic file; '-' reads standard input")
    p.add_argument("output", help="image file to write (.png, .bmp, .tif or .ppm); '-' "
                                  "writes a PNG to standard output")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse files claiming more than N pixels (default 89,478,485, "
                        "Pillow's MAX_IMAGE_PIXELS; checked before decoding allocates "
                        "anything)")
    _common(p)
    p.set_defaults(run=run_decompress)


def _common(p) -> None:
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="threads for the transforms (default 1; the entropy coding always "
                        "uses one). With 1 the output is the same on any machine setting; "
                        "more is faster and may change a pixel value by one")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--quiet", action="store_true",
                   help="print nothing but errors (no summary, warnings or progress)")
    p.add_argument("-v", "--verbose", action="store_true", help="print timings")


def format_quality(q) -> str:
    r"""``2.5`` -> ``"2.5"``, ``3.0`` -> ``"3"``, ``2.375`` -> ``"2.375"``."""
    return f"{float(q):.3f}".rstrip("0").rstrip(".")


def _fail(msg: str, status: int = 2) -> int:
    print(f"error: {' '.join(str(msg).split())}", file=sys.stderr)
    return status


def _check_paths(src: str, dst: str, force: bool):
    if src != "-":
        s = Path(src)
        if s.is_dir():
            return f"the input {s} is a directory, not a file"
        if not s.is_file():
            return f"no such input file: {s}"
    if dst == "-":
        return None
    d = Path(dst)
    if src != "-" and d.exists() and d.resolve() == Path(src).resolve():
        return f"the output {d} is the input; choose another name"
    if d.is_dir():
        return f"the output {d} is a directory"
    if not d.parent.resolve().is_dir():
        return f"the output folder {d.parent} does not exist"
    if d.exists() and not force:
        return f"{d} exists; use --force to overwrite it"
    return None


def _check_threads(args):
    if args.threads < 1:
        return f"--threads must be at least 1, got {args.threads}"
    return None


def _read_input(src: str) -> bytes:
    return sys.stdin.buffer.read() if src == "-" else Path(src).read_bytes()


def _write_output(dst: str, data: bytes, force: bool) -> None:
    if dst == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        from ..utils.image import atomic_write

        atomic_write(dst, data, force=force)


def _say(args, line: str) -> None:
    r"""A summary line: on standard output, or standard error when standard output
    carries the data; nothing with --quiet."""
    if not args.quiet:
        print(line, file=sys.stderr if args.output == "-" else sys.stdout)


def _check_rate_args(args):
    given = [flag for flag, v in (("-q/--quality", args.quality), ("--bpp", args.bpp),
                                  ("--max-bytes", args.max_bytes)) if v is not None]
    if len(given) > 1:
        return f"{' and '.join(given)} are mutually exclusive: give a quality or one target"
    if args.bpp is not None and not args.bpp > 0:
        return f"--bpp must be a positive number of bits per pixel, got {args.bpp}"
    if args.max_bytes is not None and args.max_bytes < 1:
        return f"--max-bytes must be a positive number of bytes, got {args.max_bytes}"
    if args.tile is not None and (args.tile < 64 or args.tile % 64 or args.tile > 65472):
        return f"--tile must be a multiple of 64 in 64..65472 pixels, got {args.tile}"
    if args.verify and (args.bpp is not None or args.max_bytes is not None):
        return "--verify works with -q/--quality, not with a size target"
    return None


def _check_config(config: str):
    from ..models.glic import CONFIGS

    if config not in CONFIGS:
        return f"unknown configuration {config!r}; expected one of {', '.join(sorted(CONFIGS))}"
    return None


def run_compress(args) -> int:
    err = (_check_paths(args.input, args.output, args.force) or _check_rate_args(args)
           or _check_threads(args) or _check_config(args.config))
    if err:
        return _fail(err)
    import torch

    from .. import codec
    from ..utils.image import load_image_noting
    from ..zoo import (UNTRAINED, check_quality, codec_name, is_variable_rate, load_codec,
                       shipped_qualities)

    variable = is_variable_rate(args.config)
    target = args.bpp is not None or args.max_bytes is not None
    quality = None
    if not target:
        try:
            quality = check_quality(args.config, DEFAULT_QUALITY if args.quality is None
                                    else args.quality)
        except ValueError as e:
            return _fail(str(e))
    try:
        x, notes = load_image_noting(_read_input(args.input) if args.input == "-"
                                     else args.input)
    except (FileNotFoundError, ValueError, OSError) as e:
        return _fail(str(e))
    if not args.quiet:
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
    H, W = x.shape[-2:]
    if variable or not target:
        name = codec_name(args.config, None if variable else quality)
        untrained = name.endswith(UNTRAINED)
    else:  # a fixed-rate target: rate control loads the model of each quality
        name, untrained = None, not shipped_qualities(args.config)
    progress = not args.quiet and sys.stderr.isatty()
    tile = args.tile or codec.TILE
    t0 = time.perf_counter()
    model = load_codec(name, quality) if name is not None else None
    t1 = time.perf_counter()
    rec = None
    try:
        if target:
            data, quality = codec.compress_to_size(
                x, args.config, max_bytes=args.max_bytes, bpp=args.bpp, model=model,
                tile=tile, threads=args.threads)
        elif args.verify:
            data, rec = codec.compress_and_reconstruct(x, args.config, quality, model=model,
                                                       tile=tile, threads=args.threads,
                                                       progress=progress)
        else:
            data = codec.compress(x, args.config, quality, model=model, tile=tile,
                                  threads=args.threads, progress=progress)
    except ValueError as e:  # RateControlError included: nothing written
        return _fail(str(e))
    t2 = time.perf_counter()
    try:
        _write_output(args.output, data, args.force)
    except (FileExistsError, OSError) as e:
        return _fail(str(e))
    t3 = time.perf_counter()
    verified = None
    if rec is not None:
        try:
            written = data if args.output == "-" else Path(args.output).read_bytes()
            x_hat, _ = codec.decompress(written, model=model, max_pixels=None,
                                        threads=args.threads, progress=progress)
            verified = torch.equal(x_hat, rec)
            why = ("the decoded file differs from the encoder's reconstruction (up to "
                   f"{int((x_hat - rec).abs().mul(255).round().max())} levels)")
        except (OSError, codec.BitstreamError) as e:
            verified, why = False, f"the written file does not decode ({e})"
        if not verified:
            if args.output != "-":
                Path(args.output).unlink(missing_ok=True)
            return _fail(f"verification failed: {why}"
                         + (f"; {args.output} was removed" if args.output != "-" else ""),
                         status=1)
    t4 = time.perf_counter()
    name = codec_name(args.config, None if variable else quality)
    if untrained and not args.quiet:  # after success: a failure prints exactly one line
        what = args.config if variable or target else f"{args.config} quality {quality}"
        print(f"warning: no trained weights ship for {what}; coded with untrained weights",
              file=sys.stderr)
    grid = codec.TileGrid.for_image(H, W, tile)
    where = "standard output" if args.output == "-" else args.output
    line = (f"{where}: {len(data)} bytes, {8 * len(data) / (H * W):.4f} bpp "
            f"({W}x{H}, {name} quality {format_quality(quality)}"
            f"{f', {len(grid)} tiles' if len(grid) > 1 else ''})")
    if target:
        limit = codec.target_bytes(H, W, max_bytes=args.max_bytes, bpp=args.bpp)
        line += f", target at most {limit} bytes"
    if verified:
        line += ", verified"
    _say(args, line)
    if args.verbose:
        what = "rate control" if target else "encode"
        _say(args, f"load model {t1 - t0:.3f} s, {what} {t2 - t1:.3f} s"
                   + (f", verify {t4 - t3:.3f} s" if verified else ""))
    return 0


def run_decompress(args) -> int:
    err = _check_paths(args.input, args.output, args.force) or _check_threads(args)
    if err:
        return _fail(err)
    if args.max_pixels is not None and args.max_pixels < 1:
        return _fail(f"--max-pixels must be a positive number of pixels, got {args.max_pixels}")
    from .. import bitstream

    suffix = ".png" if args.output == "-" else Path(args.output).suffix.lower()
    if suffix not in (".png", ".bmp", ".tif", ".tiff", ".ppm"):  # utils.image.LOSSLESS_FORMATS
        return _fail(f"{args.output}: the decoded image must be written losslessly; use a "
                     f".png, .bmp, .tif or .ppm name")
    where = "standard input" if args.input == "-" else args.input
    try:
        data = _read_input(args.input)
    except OSError as e:
        return _fail(f"{where}: {e}")
    max_pixels = args.max_pixels or bitstream.MAX_PIXELS
    t0 = time.perf_counter()
    try:  # the container and the size limit first: no torch, no model (a bomb is refused at once)
        bitstream.check_size(bitstream.decode(data), max_pixels)
    except bitstream.BitstreamError as e:
        return _fail(f"{where}: {e}")
    from .. import codec
    from ..utils.image import encode_image

    try:
        x_hat, bs = codec.decompress(data, max_pixels=max_pixels, threads=args.threads,
                                     progress=not args.quiet and sys.stderr.isatty())
    except bitstream.BitstreamError as e:
        return _fail(f"{where}: {e}")
    t1 = time.perf_counter()
    try:
        _write_output(args.output, encode_image(x_hat, suffix), args.force)
    except (FileExistsError, OSError, ValueError) as e:
        return _fail(str(e))
    out = "standard output" if args.output == "-" else args.output
    _say(args, f"{out}: {bs.width}x{bs.height} from {len(data)} bytes "
               f"({8 * len(data) / (bs.width * bs.height):.4f} bpp, {bs.config} quality "
               f"{format_quality(bs.quality)})")
    if args.verbose:
        _say(args, f"decode {t1 - t0:.3f} s (model loading included)")
    return 0
