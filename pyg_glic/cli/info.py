r"""``pyg-glic info``: versions and which backends are available."""
from __future__ import annotations

import platform


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="print versions and the available backends")
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
    return 0
