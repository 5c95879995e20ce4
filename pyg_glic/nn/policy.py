r"""Deprecated module, kept for one release: re-exports only.

The execution switches and thresholds (:data:`EXECUTIONS`, :func:`execution`,
:func:`forced_execution`, :data:`DENSE_MIN_DENSITY`, :data:`DENSE_MIN_QUERIES`,
:data:`FITTED_FROM`) moved to :mod:`pyg_glic.nn.attention.backend` (the tables
are the same objects: changing an entry here changes it there), the choice
(:func:`choose_attention_execution`, :func:`block_density`) to
:mod:`pyg_glic.nn.attention.dispatch`.
"""
from .attention.backend import (DENSE_MIN_DENSITY, DENSE_MIN_QUERIES, EXECUTIONS,
                                FITTED_FROM, execution, forced_execution)
from .attention.dispatch import block_density, choose_attention_execution

__all__ = ["EXECUTIONS", "DENSE_MIN_DENSITY", "DENSE_MIN_QUERIES", "execution",
           "forced_execution", "choose_attention_execution", "block_density", "FITTED_FROM"]
