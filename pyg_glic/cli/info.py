r"""``pyg-glic info``: versions, which backends are available, and the shipped weights."""
from __future__ import annotations

import platform

from . import COMMANDS


def add_parser(sub) -> None:
    p = sub.add_parser("info", help=COMMANDS["info"][1])
    p.set_defaults(run=run)


def run(args) -> int:
    import torch
    import torch_geometric

    from .. import __version__
    from ..typing import available_backends, resolve_backend

    print(f"pyg_glic {__version__}")
    print(f"python {platform.python_version()} | torch {torch.__version__} | "
          f"torch_geometric {torch_geometric.__version__}")
    print(f"cuda available: {torch.cuda.is_available()}")
    for op in ("knn", "scatter"):
        print(f"{op}: available {list(available_backends(op))}, default {resolve_backend(op)!r}")
    print_shipped_weights()
    return 0


def print_shipped_weights() -> None:
    r"""One line per shipped weight file: configuration, qualities, size, fingerprint."""
    import torch

    from ..zoo import WEIGHTS_DIR, levels_of, shipped_weights, weights_fingerprint, weights_path

    shipped = shipped_weights()
    if not shipped:
        print(f"shipped weights: none (in {WEIGHTS_DIR}); the codecs code with their "
              f"'+untrained' initialisation")
        return
    print(f"shipped weights ({WEIGHTS_DIR}):")
    for config, q in shipped:
        path = weights_path(config, q)
        what = (f"variable rate, any quality in [1, {levels_of(config)}]" if q is None
                else f"fixed rate, quality {q}")
        try:
            fp = weights_fingerprint(torch.load(path, map_location="cpu",
                                                weights_only=True)).hex()
        except Exception as e:  # noqa: BLE001 - report a bad file, list the others
            fp = f"unreadable ({type(e).__name__})"
        print(f"  {config}: {what}; {path.name}, {path.stat().st_size / 1e6:.1f} MB, "
              f"fingerprint {fp}")
