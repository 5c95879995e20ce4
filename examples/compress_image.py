"""Compress and decompress an image from Python with pyg_glic.

    python examples/compress_image.py [IMAGE] [--quality Q] [--config C]

``glic-lite`` is one variable-rate model: any quality in [1, 6] (2.5 included) codes
with the same weights. ``pyg_glic.codec.compress_to_size`` finds the quality for a
target size instead.
"""
import argparse
import math
from pathlib import Path

import pyg_glic
from pyg_glic import codec
from pyg_glic.utils.image import load_image

default = Path(pyg_glic.__file__).parent / "assets" / "kodim23.png"
parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("image", nargs="?", default=str(default))
parser.add_argument("--quality", type=float, default=3.0)
parser.add_argument("--config", default="glic-lite")
args = parser.parse_args()

x = load_image(args.image)                                   # (1, 3, H, W) in [0, 1]
data = codec.compress(x, args.config, args.quality)          # the bytes of a .glic file
x_hat, header = codec.decompress(data)                       # decoder needs only the bytes
mse = float((x - x_hat.mul(255).round().div(255)).pow(2).mean())
print(f"{header.config} q{header.quality:g}: {8 * len(data) / x[0, 0].numel():.4f} bpp, "
      f"PSNR {10 * math.log10(1 / mse):.2f} dB")
