r"""The Module form every graph builder function shares (private)."""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from .base import ImageGraph


class GraphBuilder(torch.nn.Module):
    r"""Base of the Module forms of the graph builders: no parameters, no state.

    A subclass names its builder function (``builder``, a ``staticmethod``) and
    the attributes its ``__init__`` stores and passes on as keywords
    (``arg_names``, in the order ``repr`` shows them); every other keyword
    argument of ``__init__`` is kept in ``kwargs`` and passed on as given.
    ``forward(x, score)`` calls ``builder(x, **args, **kwargs, score=score)``.

    Example:
        >>> m = HaloGraph(16, window=4, halo=2, similarity="euclidean")
        >>> m
        HaloGraph(k=16, window=4, halo=2, similarity='euclidean')
        >>> g = m(x)  # == halo_graph(x, 16, window=4, halo=2, similarity="euclidean")
    """

    builder: Callable[..., ImageGraph]
    arg_names: Tuple[str, ...] = ("k",)

    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def build(self, x: Tensor, **kwargs) -> ImageGraph:
        r"""The builder on ``x`` with this module's arguments, ``kwargs`` added."""
        args = {name: getattr(self, name) for name in self.arg_names}
        return self.builder(x, **args, **{**self.kwargs, **kwargs})

    def forward(self, x: Tensor, score: Optional[Tensor] = None) -> ImageGraph:
        return self.build(x) if score is None else self.build(x, score=score)

    def repr_args(self) -> List[str]:
        r"""``name=value`` of the ``arg_names``, for :meth:`extra_repr`."""
        return [f"{name}={getattr(self, name)!r}" for name in self.arg_names]

    def extra_repr(self) -> str:
        return ", ".join(self.repr_args() + [f"{k}={v!r}" for k, v in self.kwargs.items()])
