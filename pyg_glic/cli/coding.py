r"""``pyg-glic compress`` and ``pyg-glic decompress``."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..models.glic import CONFIGS
from ..zoo import QUALITY_LAMBDAS


def add_parser(sub) -> None:
    p = sub.add_parser("compress", help="compress an image to a .glic file")
    p.add_argument("input", help="image file (PNG, JPEG, ...)")
    p.add_argument("output", help="the .glic file to write")
    p.add_argument("-q", "--quality", type=int, default=3, choices=sorted(QUALITY_LAMBDAS),
                   help="quality level (default 3)")
    p.add_argument("-c", "--config", default="glic-lite", choices=sorted(CONFIGS),
                   help="model configuration (default glic-lite)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-v", "--verbose", action="store_true", help="print timings")
    p.set_defaults(run=run_compress)

    p = sub.add_parser("decompress", help="decompress a .glic file to an image")
    p.add_argument("input", help="the .glic file")
    p.add_argument("output", help="image file to write (.png, .bmp, .tif or .ppm)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-v", "--verbose", action="store_true", help="print timings")
    p.set_defaults(run=run_decompress)


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
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


def run_compress(args) -> int:
    err = _check_paths(args.input, args.output, args.force)
    if err:
        return _fail(err)
    from .. import codec
    from ..utils.image import atomic_write, load_image
    from ..zoo import UNTRAINED, codec_name, load_codec

    try:
        x = load_image(args.input)
    except (FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    name = codec_name(args.config, args.quality)
    if name.endswith(UNTRAINED):
        print(f"warning: no trained weights ship for {args.config} quality {args.quality}; "
              f"using untrained weights", file=sys.stderr)
    t0 = time.perf_counter()
    model = load_codec(name, args.quality)
    t1 = time.perf_counter()
    data = codec.compress(x, args.config, args.quality, model=model)
    t2 = time.perf_counter()
    try:
        atomic_write(args.output, data, force=args.force)
    except (FileExistsError, OSError) as e:
        return _fail(str(e))
    H, W = x.shape[-2:]
    print(f"{args.output}: {len(data)} bytes, {8 * len(data) / (H * W):.4f} bpp ({W}x{H}, {name} q{args.quality})")
    if args.verbose:
        print(f"load model {t1 - t0:.3f} s, encode {t2 - t1:.3f} s")
    return 0


def run_decompress(args) -> int:
    err = _check_paths(args.input, args.output, args.force)
    if err:
        return _fail(err)
    from .. import codec
    from ..bitstream import BitstreamError
    from ..utils.image import save_image

    if Path(args.output).suffix.lower() not in (".png", ".bmp", ".tif", ".tiff", ".ppm"):
        return _fail(f"{args.output}: the decoded image must be written losslessly; use a "
                     f".png, .bmp, .tif or .ppm name")
    data = Path(args.input).read_bytes()
    t0 = time.perf_counter()
    try:
        x_hat, bs = codec.decompress(data)
    except BitstreamError as e:
        return _fail(f"{args.input}: {e}")
    t1 = time.perf_counter()
    try:
        save_image(args.output, x_hat, force=args.force)
    except (FileExistsError, OSError, ValueError) as e:
        return _fail(str(e))
    print(f"{args.output}: {bs.width}x{bs.height} from {len(data)} bytes "
          f"({8 * len(data) / (bs.width * bs.height):.4f} bpp, {bs.config} q{bs.quality})")
    if args.verbose:
        print(f"decode {t1 - t0:.3f} s (model loading included)")
    return 0
