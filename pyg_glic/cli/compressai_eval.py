r"""``pyg-glic compressai-eval``: CompressAI's own evaluator, with GLIC registered.

``python -m compressai.utils.eval_model`` looks models up in CompressAI's zoo
tables, which know GLIC only once :mod:`pyg_glic.zoo` is imported; this command
imports it and hands every argument to CompressAI's evaluator unchanged::

    pyg-glic compressai-eval checkpoint KODAK_DIR -a glic -p pyg_glic/zoo/weights/glic-lite.pt

A variable-rate model is evaluated at one quality per run: ``PYG_GLIC_QUALITY``
(a float in ``[1, levels]``, default 3) selects it
(:class:`pyg_glic.zoo.CompressAIArchitecture`).
"""
from __future__ import annotations

import argparse

from . import COMMANDS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compressai-eval", help=COMMANDS["compressai-eval"][1],
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("args", nargs=argparse.REMAINDER,
                   help="compressai.utils.eval_model's arguments (its --help lists them)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..zoo import run_compressai_eval

    run_compressai_eval(list(args.args) or ["--help"])
    return 0
