r"""Old names kept for one release: a module ``__getattr__`` that returns the new
object under its old name with a :class:`DeprecationWarning` naming the new one.

Usage, at the end of a module::

    __getattr__ = deprecated_names(__name__, GraphStage=("GLICStage", GLICStage))
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Tuple

__all__ = ["deprecated_names"]


def deprecated_names(module: str, **renamed: Tuple[str, Any]) -> Callable[[str], Any]:
    r"""A module-level ``__getattr__`` serving each ``old=(new_name, new_object)``.

    Only called for names the module does not define (PEP 562), so the new names
    cost nothing; ``from module import old`` and ``module.old`` both warn."""

    def __getattr__(name: str) -> Any:
        if name in renamed:
            new_name, obj = renamed[name]
            warnings.warn(f"{module}.{name} is deprecated and will be removed in the next "
                          f"release: use {new_name}", DeprecationWarning, stacklevel=2)
            return obj
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
