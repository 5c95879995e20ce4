r"""The selection keywords every candidate-block builder shares, as one frozen dataclass."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Real
from typing import Optional

from .. import typing as _t
from ._checks import check_int
from .similarity import SIMILARITIES


@dataclass(frozen=True)
class SelectionOptions:
    r"""How a builder picks each target's edges among its candidates.

    :func:`~pyg_glic.graph.window_graph`, :func:`~pyg_glic.graph.halo_graph` and
    :func:`~pyg_glic.graph.global_graph` take these fields as keywords (same
    names, same defaults, except ``k``, whose default is the builder's) and
    build one of these to validate them in one place; the routine that picks
    the edges (``pyg_glic.graph._select.graph_in_blocks``) reads them from it.
    Field names equal the builders' keywords, so
    ``halo_graph(x, **dataclasses.asdict(options))`` runs a builder with them.
    The complexity ``score`` is not a field: it is per-image input, like ``x``.

    Args:
        k (int): neighbours per target (the mean degree when ``adaptive``), ``>= 1``.
        adaptive (bool): GLIC's adaptive degree
            (:func:`~pyg_glic.graph.allocate_degrees`, the query block as the budget
            group).
        k_min (int): smallest degree when adaptive, ``>= 0``.
        k_max (int, optional): largest degree when adaptive, ``>= 1``; default: the
            number of candidates per target.
        similarity (str): ``"cosine"`` or ``"euclidean"``
            (:mod:`~pyg_glic.graph.similarity`).
        backend (str, optional): k-NN backend, ``"torch"``, ``"torch_cluster"`` or
            ``None``/``"auto"`` (whether it is installed is checked when the builder
            runs).
        pos_weight (float): weight :math:`\lambda \ge 0` of the relative-position term.
        pos_scale (float, optional): its scale :math:`\sigma > 0` (default: the
            builder's, ``max(H, W)``).
        redistribute (bool): see :func:`~pyg_glic.graph.allocate_degrees`.
        chunk_elements (int, optional): most elements of one chunk of the pure-torch
            selection (default per device: CPU ``2**21``, CUDA ``2**26``).
        check_finite (bool): raise on NaN/Inf features.
        return_blocks (bool): fill the graph's :class:`~pyg_glic.graph.CandidateBlocks`.

    ``k`` and ``k_max`` are bounded by the number of candidates, which only the
    builder knows: :meth:`for_candidates` checks them against it.

    Example:
        >>> opts = SelectionOptions(k=16, similarity="euclidean")
        >>> g = halo_graph(x, **dataclasses.asdict(opts))
    """

    k: int
    adaptive: bool = False
    k_min: int = 1
    k_max: Optional[int] = None
    similarity: str = "cosine"
    backend: Optional[str] = None
    pos_weight: float = 0.0
    pos_scale: Optional[float] = None
    redistribute: bool = True
    chunk_elements: Optional[int] = None
    check_finite: bool = True
    return_blocks: bool = True

    def __post_init__(self):
        check_int("k", self.k, 1)
        if self.adaptive:
            check_int("k_min", self.k_min, 0)
            if self.k_max is not None:
                check_int("k_max", self.k_max, 1)
                _check_mean(self.k_min, self.k, self.k_max)
            elif self.k_min > self.k:
                _check_mean(self.k_min, self.k, None)
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, "
                             f"got {self.similarity!r}")
        choices = _t.BACKENDS["knn"]
        if self.backend is not None and self.backend != "auto" and self.backend not in choices:
            raise ValueError(f"unknown knn backend {self.backend!r}; expected None, 'auto' or "
                             f"one of {choices}")
        if not _is_real(self.pos_weight) or not math.isfinite(self.pos_weight) \
                or self.pos_weight < 0:
            raise ValueError(f"pos_weight must be a finite number >= 0, got {self.pos_weight!r}")
        if self.pos_scale is not None and (not _is_real(self.pos_scale)
                                           or not math.isfinite(self.pos_scale)
                                           or self.pos_scale <= 0):
            raise ValueError(f"pos_scale must be None or a finite number > 0, "
                             f"got {self.pos_scale!r}")
        if self.chunk_elements is not None and (
                isinstance(self.chunk_elements, bool) or not isinstance(self.chunk_elements, int)
                or self.chunk_elements < 1):
            raise ValueError(f"chunk_elements must be a positive int, got "
                             f"{self.chunk_elements!r}")

    def for_candidates(self, num_candidates: int, what: str) -> "SelectionOptions":
        r"""These options checked against ``num_candidates`` candidates per target
        (``k <= num_candidates``; when adaptive ``k_max <= num_candidates``, with
        ``k_max`` defaulting to it). ``what`` names the layout in the error."""
        K = num_candidates
        if self.k > K:
            raise ValueError(f"k={self.k} is larger than the {K} candidates per node of the "
                             f"{what}; expected 1 <= k <= {K}")
        if not self.adaptive:
            return self
        k_max = K if self.k_max is None else self.k_max
        if k_max > K:
            raise ValueError(f"k_max={k_max} is larger than the {K} candidates per node; "
                             f"expected k_max <= {K}")
        _check_mean(self.k_min, self.k, k_max)
        return self if k_max == self.k_max else replace(self, k_max=k_max)


def _check_mean(k_min: int, k: int, k_max: Optional[int]) -> None:
    if not (k_min <= k and (k_max is None or k <= k_max)):
        raise ValueError(f"adaptive degrees need k_min <= k <= k_max (k is the mean degree), "
                         f"got k_min={k_min}, k={k}, k_max={k_max}")


def _is_real(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)
