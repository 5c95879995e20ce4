r"""``pyg-glic demo``: the main job.

Compresses the bundled Kodak image (or one you name) to real bitstreams with a
GLIC codec, decompresses it, and prints bits per pixel, PSNR, MS-SSIM and the
encode/decode times. Nothing is written unless ``--output`` is given.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..models.glic import CONFIGS
from ..zoo import QUALITY_LAMBDAS

ASSET = Path(__file__).resolve().parent.parent / "assets" / "kodim23.png"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="compress and decompress the bundled image, print quality")
    p.add_argument("image", nargs="?", default=str(ASSET),
                   help="an image file (default: the bundled Kodak image kodim23)")
    p.add_argument("-q", "--quality", type=int, default=3, choices=sorted(QUALITY_LAMBDAS))
    p.add_argument("-c", "--config", default="glic-lite", choices=sorted(CONFIGS))
    p.add_argument("-o", "--output", help="also write the reconstruction here (PNG)")
    p.set_defaults(run=run)


def psnr(x, y) -> float:
    import math

    mse = float((x - y).pow(2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def run(args) -> int:
    import torch
    from pytorch_msssim import ms_ssim

    from .. import codec
    from ..utils.image import load_image, save_image
    from ..zoo import UNTRAINED, codec_name, load_codec

    try:
        x = load_image(args.image)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    H, W = x.shape[-2:]
    name = codec_name(args.config, args.quality)
    print(f"image: {args.image} ({W}x{H})")
    print(f"codec: {name}, quality {args.quality} (lambda {QUALITY_LAMBDAS[args.quality]})")
    if name.endswith(UNTRAINED):
        print("WARNING: no trained weights ship for this configuration and quality; the "
              "weights are untrained, so the picture quality below is meaningless. The "
              "bitstreams and timings are real.")
    t0 = time.perf_counter()
    model = load_codec(name, args.quality)
    t1 = time.perf_counter()
    data = codec.compress(x, args.config, args.quality, model=model)
    t2 = time.perf_counter()
    x_hat, _ = codec.decompress(data, model=model)
    t3 = time.perf_counter()
    x_hat8 = x_hat.mul(255).round().div(255)
    bpp = 8 * len(data) / (H * W)
    msssim = float(ms_ssim(x, x_hat8, data_range=1.0)) if min(H, W) > 160 else float("nan")
    print(f"bpp      {bpp:.4f}  ({len(data)} bytes)")
    print(f"PSNR     {psnr(x, x_hat8):.2f} dB")
    print(f"MS-SSIM  {msssim:.4f}")
    print(f"time     model load {t1 - t0:.2f} s, encode {t2 - t1:.2f} s, decode {t3 - t2:.2f} s "
          f"({torch.get_num_threads()} threads, cpu)")
    if args.output:
        try:
            save_image(args.output, x_hat, force=False)
        except (FileExistsError, OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {args.output}")
    return 0
