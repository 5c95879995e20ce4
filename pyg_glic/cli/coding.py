r"""``pyg-glic compress`` and ``pyg-glic decompress``.

``compress`` codes at a quality (``-q 2.5``: a float in ``[1, levels]`` for a
variable-rate configuration such as ``glic-lite``, an integer 1..6 for a
fixed-rate one) or to a size (``--bpp 0.3`` or ``--max-bytes 40000``: the
highest quality whose file is not larger, see :func:`pyg_glic.codec.compress_to_size`).
Errors are one line on stderr and exit status 2; nothing is written then.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..models.glic import CONFIGS

DEFAULT_QUALITY = 3


def add_parser(sub) -> None:
    p = sub.add_parser("compress", help="compress an image to a .glic file")
    p.add_argument("input", help="image file (PNG, JPEG, ...)")
    p.add_argument("output", help="the .glic file to write")
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
    p.add_argument("-c", "--config", default="glic-lite", choices=sorted(CONFIGS),
                   help="model configuration (default glic-lite)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-v", "--verbose", action="store_true", help="print timings")
    p.set_defaults(run=run_compress)

    p = sub.add_parser("decompress", help="decompress a .glic file to an image")
    p.add_argument("input", help="the .glic file")
    p.add_argument("output", help="image file to write (.png, .bmp, .tif or .ppm)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse files claiming more than N pixels (default 4096*4096 = "
                        "16,777,216; checked before decoding allocates anything)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-v", "--verbose", action="store_true", help="print timings")
    p.set_defaults(run=run_decompress)


def format_quality(q) -> str:
    r"""``2.5`` -> ``"2.5"``, ``3.0`` -> ``"3"``, ``2.375`` -> ``"2.375"``."""
    return f"{float(q):.3f}".rstrip("0").rstrip(".")


def _fail(msg: str) -> int:
    print(f"error: {' '.join(str(msg).split())}", file=sys.stderr)
    return 2


def _check_paths(src: str, dst: str, force: bool):
    s, d = Path(src), Path(dst)
    if not s.is_file():
        return f"no such input file: {s}"
    if d.exists() and d.resolve() == s.resolve():
        return f"the output {d} is the input; choose another name"
    if d.is_dir():
        return f"the output {d} is a directory"
    if not d.parent.resolve().is_dir():
        return f"the output folder {d.parent} does not exist"
    if d.exists() and not force:
        return f"{d} exists; use --force to overwrite it"
    return None


def _check_rate_args(args):
    given = [flag for flag, v in (("-q/--quality", args.quality), ("--bpp", args.bpp),
                                  ("--max-bytes", args.max_bytes)) if v is not None]
    if len(given) > 1:
        return f"{' and '.join(given)} are mutually exclusive: give a quality or one target"
    if args.bpp is not None and not args.bpp > 0:
        return f"--bpp must be a positive number of bits per pixel, got {args.bpp}"
    if args.max_bytes is not None and args.max_bytes < 1:
        return f"--max-bytes must be a positive number of bytes, got {args.max_bytes}"
    return None


def run_compress(args) -> int:
    err = _check_paths(args.input, args.output, args.force) or _check_rate_args(args)
    if err:
        return _fail(err)
    from .. import codec
    from ..utils.image import atomic_write, load_image_noting
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
        x, notes = load_image_noting(args.input)
    except (FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    H, W = x.shape[-2:]
    if variable or not target:
        name = codec_name(args.config, None if variable else quality)
        untrained = name.endswith(UNTRAINED)
    else:  # a fixed-rate target: rate control loads the model of each quality
        name, untrained = None, not shipped_qualities(args.config)
    t0 = time.perf_counter()
    model = load_codec(name, quality) if name is not None else None
    t1 = time.perf_counter()
    try:
        if target:
            data, quality = codec.compress_to_size(x, args.config, max_bytes=args.max_bytes,
                                                   bpp=args.bpp, model=model)
        else:
            data = codec.compress(x, args.config, quality, model=model)
    except ValueError as e:  # RateControlError included: nothing written
        return _fail(str(e))
    t2 = time.perf_counter()
    try:
        atomic_write(args.output, data, force=args.force)
    except (FileExistsError, OSError) as e:
        return _fail(str(e))
    name = codec_name(args.config, None if variable else quality)
    if untrained:  # after success, so that a failure prints exactly one line
        what = args.config if variable or target else f"{args.config} quality {quality}"
        print(f"warning: no trained weights ship for {what}; coded with untrained weights",
              file=sys.stderr)
    line = (f"{args.output}: {len(data)} bytes, {8 * len(data) / (H * W):.4f} bpp "
            f"({W}x{H}, {name} quality {format_quality(quality)})")
    if target:
        limit = codec.target_bytes(H, W, max_bytes=args.max_bytes, bpp=args.bpp)
        line += f", target at most {limit} bytes"
    print(line)
    if args.verbose:
        what = "rate control" if target else "encode"
        print(f"load model {t1 - t0:.3f} s, {what} {t2 - t1:.3f} s")
    return 0


def run_decompress(args) -> int:
    err = _check_paths(args.input, args.output, args.force)
    if err:
        return _fail(err)
    from .. import codec
    from ..bitstream import BitstreamError
    from ..utils.image import save_image

    if args.max_pixels is not None and args.max_pixels < 1:
        return _fail(f"--max-pixels must be a positive number of pixels, got {args.max_pixels}")
    if Path(args.output).suffix.lower() not in (".png", ".bmp", ".tif", ".tiff", ".ppm"):
        return _fail(f"{args.output}: the decoded image must be written losslessly; use a "
                     f".png, .bmp, .tif or .ppm name")
    try:
        data = Path(args.input).read_bytes()
    except OSError as e:
        return _fail(f"{args.input}: {e}")
    t0 = time.perf_counter()
    try:
        x_hat, bs = codec.decompress(
            data, max_pixels=args.max_pixels or codec.MAX_PIXELS)
    except BitstreamError as e:
        return _fail(f"{args.input}: {e}")
    t1 = time.perf_counter()
    try:
        save_image(args.output, x_hat, force=args.force)
    except (FileExistsError, OSError, ValueError) as e:
        return _fail(str(e))
    print(f"{args.output}: {bs.width}x{bs.height} from {len(data)} bytes "
          f"({8 * len(data) / (bs.width * bs.height):.4f} bpp, {bs.config} quality "
          f"{format_quality(bs.quality)})")
    if args.verbose:
        print(f"decode {t1 - t0:.3f} s (model loading included)")
    return 0
