r"""Entry point of the ``pyg-glic`` command line.

Each subcommand lives in its own module of :mod:`pyg_glic.cli` and exposes
``add_parser(subparsers)`` and ``run(args) -> int``. Only the module of the
subcommand being run is imported (it imports torch and PyG): ``pyg-glic --help``
and ``--version`` import neither and answer at once.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import List, Optional

from .. import __version__
from . import COMMANDS

def _command_in(argv: List[str]) -> Optional[str]:
    for a in argv:
        if not a.startswith("-"):
            return a if a in COMMANDS else None
    return None


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    r"""The parser; ``command``'s own arguments are added (its module imported),
    the other subcommands are listed by name and help only. ``None``: all of them
    in full (for documentation tools)."""
    parser = argparse.ArgumentParser(
        prog="pyg-glic",
        description="Graph-based learned image compression and vision GNN layers on PyG.")
    parser.add_argument("--version", action="version", version=f"pyg_glic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = COMMANDS[command][0] if command in COMMANDS else None
    loaded = set()
    for name, (module, help_) in COMMANDS.items():
        if command is None or module == wanted:
            if module not in loaded:  # a module may define several subcommands
                importlib.import_module(f".{module}", __package__).add_parser(sub)
                loaded.add(module)
        else:
            sub.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # PyG's import calls torch.jit.script, which torch 2.15 deprecates: a warning
    # about PyG's internals that a command-line user can do nothing about.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated",
                            category=FutureWarning)
    command = _command_in(argv)
    parser = build_parser(command) if command else build_parser("")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted", file=sys.stderr)
        return 130
