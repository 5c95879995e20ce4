r"""Evaluating codecs on real bitstreams: classical codecs, metrics, BD-rate, reports.

- :mod:`~pyg_glic.evaluation.classical`: JPEG, WebP, AVIF, JPEG 2000 through Pillow.
- :mod:`~pyg_glic.evaluation.metrics`: PSNR-RGB, MS-SSIM-RGB, bpp on 8-bit images.
- :mod:`~pyg_glic.evaluation.bdrate`: Bjontegaard delta rate without extrapolation.
- :mod:`~pyg_glic.evaluation.report`: CompressAI's JSON schema, the table, the plot.
- :mod:`~pyg_glic.evaluation.runner`: ``pyg-glic eval``.
"""
from .bdrate import BDResult, bd_rate
from .classical import CODECS, ClassicalCodec, measure
from .metrics import bpp, ms_ssim_rgb, psnr_rgb
from .report import load_reference, make_curve, plot_rd
from .runner import EvalConfig, evaluate

__all__ = ["BDResult", "bd_rate", "CODECS", "ClassicalCodec", "measure", "bpp", "ms_ssim_rgb",
           "psnr_rgb", "load_reference", "make_curve", "plot_rd", "EvalConfig", "evaluate"]
