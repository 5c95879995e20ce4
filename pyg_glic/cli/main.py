r"""Entry point of the ``pyg-glic`` command line.

Each subcommand lives in its own module of :mod:`pyg_glic.cli` and exposes
``add_parser(subparsers)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .. import __version__
from . import coding, compressai_eval, demo, eval as evaluate, info, train

COMMANDS = (coding, demo, info, train, evaluate, compressai_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyg-glic",
        description="Graph-based learned image compression and vision GNN layers on PyG.")
    parser.add_argument("--version", action="version", version=f"pyg_glic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted", file=sys.stderr)
        return 130
