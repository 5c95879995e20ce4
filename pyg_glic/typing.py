r"""Optional compiled backends, detected once (PyG's ``torch_geometric.typing`` pattern).

``torch-cluster`` (k-NN) and ``torch-scatter`` (scatter reductions) are compiled
extensions. They build from source on the CPU machines this project targets, but
often do not exist where the code runs (for example on a GPU machine without
CUDA builds of them). Every operation that can use them also has a pure-torch
path that gives the same result; :func:`resolve_backend` chooses between them.

Flags:
    WITH_TORCH_CLUSTER: ``torch_cluster`` imports.
    WITH_TORCH_SCATTER: ``torch_scatter`` imports.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

try:  # pragma: no cover - depends on the environment
    import torch_cluster  # noqa: F401

    WITH_TORCH_CLUSTER = True
except Exception as e:  # ImportError or a broken binary (OSError)
    if not isinstance(e, ImportError):
        warnings.warn(f"An issue occurred while importing 'torch_cluster': {e}")
    torch_cluster = None
    WITH_TORCH_CLUSTER = False

try:  # pragma: no cover - depends on the environment
    import torch_scatter  # noqa: F401

    WITH_TORCH_SCATTER = True
except Exception as e:
    if not isinstance(e, ImportError):
        warnings.warn(f"An issue occurred while importing 'torch_scatter': {e}")
    torch_scatter = None
    WITH_TORCH_SCATTER = False

# Set PYG_GLIC_DISABLE_EXTENSIONS=1 to behave as if neither extension were installed.
if os.environ.get("PYG_GLIC_DISABLE_EXTENSIONS", "0") not in ("", "0"):
    WITH_TORCH_CLUSTER = False
    WITH_TORCH_SCATTER = False

Device = Union[str, torch.device]
OptTensor = Optional[Tensor]
PairTensor = Tuple[Tensor, Tensor]

#: Backend names per operation; the first is the compiled extension.
BACKENDS = {
    "knn": ("torch_cluster", "torch"),
    "scatter": ("torch_scatter", "torch"),
}

_AVAILABLE = {"torch_cluster": lambda: WITH_TORCH_CLUSTER,
              "torch_scatter": lambda: WITH_TORCH_SCATTER,
              "torch": lambda: True}


def available_backends(op: str) -> Tuple[str, ...]:
    """The backends of ``op`` (``"knn"`` or ``"scatter"``) usable here."""
    if op not in BACKENDS:
        raise ValueError(f"unknown operation {op!r}; expected one of {sorted(BACKENDS)}")
    return tuple(b for b in BACKENDS[op] if _AVAILABLE[b]())


def resolve_backend(op: str, backend: Optional[str] = None,
                    device: Optional[Device] = None) -> str:
    r"""Pick the backend of an operation.

    Args:
        op (str): ``"knn"`` or ``"scatter"``.
        backend (str, optional): ``None`` or ``"auto"`` chooses automatically;
            otherwise one of ``BACKENDS[op]``, which must be installed.
        device (torch.device, optional): where the inputs live.

    The automatic choice for k-NN is the pure-torch path (matrix product and
    top-k in bounded chunks): on a CPU it is 4-18 times faster than
    torch-cluster's k-d tree in the 192-dimensional feature spaces used here
    (``benchmarks/construction``), and on a GPU it needs no CUDA build of the
    extension. For scatter the automatic choice is torch-scatter when installed,
    else ``torch.Tensor.scatter_reduce``; both give the same values.
    """
    choices = BACKENDS.get(op)
    if choices is None:
        raise ValueError(f"unknown operation {op!r}; expected one of {sorted(BACKENDS)}")
    if backend is None or backend == "auto":
        if op == "knn":
            return "torch"
        return choices[0] if _AVAILABLE[choices[0]]() else "torch"
    if backend not in choices:
        raise ValueError(f"unknown {op} backend {backend!r}; expected 'auto' or one of {choices}")
    if not _AVAILABLE[backend]():
        raise ImportError(
            f"the {op} backend {backend!r} needs the package '{backend.replace('_', '-')}', "
            f"which is not installed here; use backend='torch' or 'auto'")
    return backend
