r"""``pyg-glic demo``: the main job.

Compresses the bundled Kodak image (or one you name) to real bitstreams with a
GLIC codec, decompresses it, and prints bits per pixel, PSNR, MS-SSIM and the
encode/decode times, and the PSNR Pillow's JPEG reaches at the same rate on the
same image (:func:`jpeg_psnr_at_bpp`), so one sees where the codec stands.
Nothing is written unless ``--output`` is given.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, Optional

from ..models.glic import CONFIGS
from ..zoo import QUALITY_LAMBDAS
from . import COMMANDS

ASSET = Path(__file__).resolve().parent.parent / "assets" / "kodim23.png"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help=COMMANDS["demo"][1])
    p.add_argument("image", nargs="?", default=str(ASSET),
                   help="an image file (default: the bundled Kodak image kodim23)")
    p.add_argument("-q", "--quality", type=float, default=3,
                   help="quality (default 3): a number in [1, levels] for a variable-rate "
                        "configuration (glic-lite: 1..6), an integer 1..6 for a fixed-rate one")
    p.add_argument("-c", "--config", default="glic-lite", choices=sorted(CONFIGS))
    p.add_argument("-o", "--output", help="also write the reconstruction here (PNG)")
    p.add_argument("-f", "--force", action="store_true",
                   help="overwrite an existing --output")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="threads for the transforms (default 1; see pyg-glic compress --help)")
    p.set_defaults(run=run)


def jpeg_psnr_at_bpp(rgb, bpp: float) -> Dict:
    r"""Pillow JPEG's PSNR at ``bpp`` on an ``(H, W, 3)`` uint8 image.

    Finds the two neighbouring integer JPEG qualities whose files bracket the rate
    (bisection over 1..100, each coded for real with the settings of
    :data:`pyg_glic.evaluation.classical.CODECS` ``["jpeg"]``: optimised Huffman
    tables, 4:2:0) and interpolates PSNR linearly in bpp between them.

    Returns:
        ``{"psnr", "lo", "hi", "reached"}``: ``lo``/``hi`` are ``(quality, bpp, psnr)``
        of the bracketing files; ``reached`` is ``"below"`` when even JPEG quality 1
        is larger (``psnr`` is then ``None``), ``"above"`` when quality 100 is still
        smaller (``psnr`` is quality 100's), else ``"bracketed"``.
    """
    from ..evaluation import metrics
    from ..evaluation.classical import CODECS

    jpeg = CODECS["jpeg"]
    H, W = rgb.shape[:2]
    cache: Dict[int, tuple] = {}

    def at(q: int):
        if q not in cache:
            data = jpeg.encode(rgb, q)
            cache[q] = (q, metrics.bpp(len(data), H, W),
                        metrics.psnr_rgb(rgb, jpeg.decode(data)))
        return cache[q]

    lo, hi = at(1), at(100)
    if lo[1] > bpp:
        return {"psnr": None, "lo": lo, "hi": None, "reached": "below"}
    if hi[1] <= bpp:
        return {"psnr": hi[2], "lo": hi, "hi": None, "reached": "above"}
    while hi[0] - lo[0] > 1:  # invariant: bpp(lo) <= target < bpp(hi)
        mid = at((lo[0] + hi[0]) // 2)
        lo, hi = (mid, hi) if mid[1] <= bpp else (lo, mid)
    t = (bpp - lo[1]) / (hi[1] - lo[1])
    return {"psnr": lo[2] + t * (hi[2] - lo[2]), "lo": lo, "hi": hi, "reached": "bracketed"}


def _jpeg_line(res: Dict, bpp: float) -> str:
    lo, hi = res["lo"], res["hi"]
    if res["reached"] == "below":
        return (f"JPEG     cannot reach {bpp:.4f} bpp on this image: its smallest file "
                f"(quality 1) is {lo[1]:.4f} bpp ({lo[2]:.2f} dB)")
    if res["reached"] == "above":
        return (f"JPEG     {res['psnr']:.2f} dB at quality 100 ({lo[1]:.4f} bpp, below the "
                f"codec's {bpp:.4f} bpp: JPEG's best on this image)")
    return (f"JPEG     {res['psnr']:.2f} dB at the same {bpp:.4f} bpp (Pillow, interpolated "
            f"between quality {lo[0]}: {lo[1]:.4f} bpp {lo[2]:.2f} dB and quality {hi[0]}: "
            f"{hi[1]:.4f} bpp {hi[2]:.2f} dB)")


def _lambda_text(q, levels: Optional[int]) -> str:
    import math

    if not levels:
        return f"lambda {QUALITY_LAMBDAS[int(q)]}"
    if q == int(q):
        return (f"variable rate, trained level {int(q)} of {levels}: lambda "
                f"{QUALITY_LAMBDAS[int(q)]}")
    a = min(int(math.floor(q)), levels - 1)
    return (f"variable rate, between trained levels {a} and {a + 1} (lambda "
            f"{QUALITY_LAMBDAS[a]}..{QUALITY_LAMBDAS[a + 1]})")


def psnr(x, y) -> float:
    import math

    mse = float((x - y).pow(2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def run(args) -> int:
    from pytorch_msssim import ms_ssim

    from .. import codec
    from ..evaluation import metrics
    from ..utils.image import load_image_noting, save_image, to_uint8
    from ..zoo import UNTRAINED, check_quality, codec_name, levels_of, load_codec

    def fail(msg: str) -> int:
        print(f"error: {msg}", file=sys.stderr)
        return 2

    try:
        q = check_quality(args.config, args.quality)
    except ValueError as e:
        return fail(str(e))
    if args.threads < 1:
        return fail(f"--threads must be at least 1, got {args.threads}")
    if args.output:  # before any work: nothing is coded for an output that cannot be written
        out = Path(args.output)
        if out.suffix.lower() != ".png":
            return fail(f"{out}: the reconstruction is written as PNG; use a .png name")
        if out.is_dir() or not out.parent.resolve().is_dir():
            return fail(f"{out}: not a file in an existing folder")
        if out.exists() and not args.force:
            return fail(f"{out} exists; use --force to overwrite it")
    try:
        x, notes = load_image_noting(args.image)
    except (FileNotFoundError, ValueError) as e:
        return fail(str(e))
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    H, W = x.shape[-2:]
    levels = levels_of(args.config)
    name = codec_name(args.config, None if levels else q)
    qtext = f"{q:.3f}".rstrip("0").rstrip(".")
    print(f"image: {args.image} ({W}x{H})")
    print(f"codec: {name}, quality {qtext} ({_lambda_text(q, levels)})")
    untrained = name.endswith(UNTRAINED)
    if untrained:
        print("WARNING: no trained weights ship for this configuration and quality; the "
              "weights are untrained, so the picture quality below is meaningless. The "
              "bitstreams and timings are real.")
    t0 = time.perf_counter()
    model = load_codec(name, q)
    t1 = time.perf_counter()
    data = codec.compress(x, args.config, q, model=model, threads=args.threads)
    t2 = time.perf_counter()
    x_hat, _ = codec.decompress(data, model=model, threads=args.threads)
    t3 = time.perf_counter()
    x_hat8 = x_hat.mul(255).round().div(255)
    bpp = metrics.bpp(len(data), H, W)
    msssim = float(ms_ssim(x, x_hat8, data_range=1.0)) if min(H, W) > 160 else float("nan")
    rgb = to_uint8(x)
    print(f"bpp      {bpp:.4f}  ({len(data)} bytes)")
    print(f"PSNR     {metrics.psnr_rgb(rgb, to_uint8(x_hat)):.2f} dB")
    print(f"MS-SSIM  {msssim:.4f}")
    print(_jpeg_line(jpeg_psnr_at_bpp(rgb, bpp), bpp)
          + ("  [the codec's weights are untrained: no verdict on GLIC]" if untrained else ""))
    print(f"time     model load {t1 - t0:.2f} s, encode {t2 - t1:.2f} s, decode {t3 - t2:.2f} s "
          f"({args.threads} thread{'s' if args.threads > 1 else ''}, cpu)")
    if args.output:
        try:
            save_image(args.output, x_hat, force=args.force)
        except (FileExistsError, OSError, ValueError) as e:
            return fail(str(e))
        print(f"wrote {args.output}")
    return 0
