r"""``pyg-glic eval``: real bitstreams for a folder of images, classical codecs, BD-rates, plot.

Writes to ``--out``: one JSON per codec in CompressAI's result schema (plus
per-image records), ``results.json`` (everything), ``bd_rates.md`` /
``bd_rates.json`` and ``rd.png``.
"""
from __future__ import annotations

import argparse
import sys

from . import COMMANDS


def _quality(text: str):
    # an integer stays one (a fixed-rate quality, a trained level); the range is checked
    # against the configuration's levels once it is known
    try:
        q = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a quality must be a number, got {text!r}") from None
    return int(q) if q.is_integer() else q


def _sweep(text: str):
    name, sep, values = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected CODEC=V1,V2,..., got {text!r}")
    try:
        vals = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"settings must be numbers, got {values!r}") from None
    return name, vals


def add_parser(sub) -> None:
    from ..evaluation.bdrate import METHODS
    from ..evaluation.classical import CODECS
    from ..evaluation.runner import DEFAULT_CLASSICAL
    from ..models.glic import CONFIGS

    p = sub.add_parser(
        "eval", help=COMMANDS["eval"][1],
        description="Code every image of DIR for real (bitstreams, not estimates) with GLIC "
                    "zoo qualities and/or weight files, and with JPEG/WebP/AVIF/JPEG 2000 "
                    "through Pillow; write CompressAI-schema JSON, a BD-rate table and a "
                    "rate-distortion plot.")
    p.add_argument("image_dir", metavar="DIR", help="folder of images (searched recursively)")
    p.add_argument("-o", "--out", default="eval-results",
                   help="output folder (default eval-results)")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace result files in an existing, non-empty --out")
    p.add_argument("-c", "--config", default="glic-lite", choices=sorted(CONFIGS),
                   help="GLIC configuration for --qualities (default glic-lite)")
    p.add_argument("-q", "--qualities", type=_quality, nargs="+", metavar="Q",
                   help="GLIC zoo qualities: numbers in [1, levels] for a variable-rate "
                        "configuration (glic-lite: 1.5 and 2.5 too), integers 1-6 for a "
                        "fixed-rate one (default: the trained levels or the qualities that "
                        "ship, else all; none when only --weights)")
    p.add_argument("--no-zoo", dest="zoo", action="store_false", default=None,
                   help="do not evaluate GLIC zoo qualities (e.g. classical codecs only)")
    p.add_argument("-w", "--weights", nargs="+", action="extend", default=[],
                   metavar="[LABEL=]FILE",
                   help="training checkpoints or exported weights (GLIC or a CompressAI peer "
                        "such as mbt2018-mean); files with the same LABEL (default: their "
                        "model name) form one curve; repeatable")
    p.add_argument("--classical", nargs="*", default=list(DEFAULT_CLASSICAL),
                   metavar="CODEC", help=f"Pillow codecs to measure: {', '.join(CODECS)} "
                                         f"(default all; give none for no classical codec)")
    p.add_argument("--sweep", type=_sweep, action="append", default=[], metavar="CODEC=V,...",
                   help="settings replacing a classical codec's default sweep (qualities; "
                        "target bpp for jpeg2000); repeatable")
    p.add_argument("-r", "--reference", action="append", default=[], metavar="JSON",
                   help="published curve in CompressAI's schema (e.g. "
                        "../shared/reference/kodak/vtm.json), dashed in the plot and a "
                        "BD-rate anchor; repeatable")
    p.add_argument("--bd-method", default="cubic", choices=METHODS,
                   help="BD interpolation (default cubic, Bjontegaard's)")
    p.add_argument("--device", help="device of the learned codecs: cpu, cuda, cuda:N "
                                    "(default cuda if available)")
    p.add_argument("--no-ms-ssim", dest="ms_ssim", action="store_false",
                   help="skip MS-SSIM (written as null): the slowest metric on a CPU")
    p.add_argument("--max-images", type=int, help="only the first N images (sorted by path)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (there is none either when standard error is not "
                        "a terminal)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..evaluation.runner import EvalConfig, evaluate
    from ..training.data import InputError

    sweeps = {}
    for name, vals in args.sweep:
        sweeps[name] = vals
    classical = [c for c in args.classical if c.lower() != "none"]
    cfg = EvalConfig(image_dir=args.image_dir, out=args.out, force=args.force,
                     config=args.config, qualities=args.qualities, weights=args.weights,
                     classical=classical, sweeps=sweeps, references=args.reference,
                     device=args.device, bd_method=args.bd_method, max_images=args.max_images,
                     progress=args.progress and sys.stderr.isatty(), zoo=args.zoo,
                     ms_ssim=args.ms_ssim)
    try:
        summary = evaluate(cfg)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary["markdown"])
    print(f"wrote {', '.join(summary['files'])} to {summary['out']}")
    return 0
