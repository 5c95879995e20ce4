r"""Deprecated module, kept for one release: re-exports only.

Its contents moved:

- graph attention (:func:`sparse_attention`, :func:`blocked_attention`,
  :func:`block_edge_slots`, :func:`edge_dot`, :func:`edge_spmm`,
  :func:`uniform_degree`) to :mod:`pyg_glic.nn.attention`;
- the switches :data:`CHUNK_ELEMENTS`, :data:`FUSED_ATTENTION` and
  :data:`CSR_ATTENTION` to :mod:`pyg_glic.nn.attention.backend` (reading or
  setting them here reads or sets them there);
- :func:`log_spaced` and :func:`compress_offsets` to :mod:`pyg_glic.nn.offsets`;
- :func:`csr_max` to :mod:`pyg_glic.nn.segment`.

Import from those modules; this one will be removed in the next release.
"""
import sys
import types

from .attention import backend as _backend
from .attention.blocked import block_edge_slots, blocked_attention
from .attention.contract import uniform_degree
from .attention.dispatch import sparse_attention
from .attention.gather import edge_dot, edge_spmm
from .offsets import compress_offsets, log_spaced
from .segment import csr_max

__all__ = ["log_spaced", "compress_offsets", "edge_dot", "edge_spmm", "sparse_attention",
           "block_edge_slots", "blocked_attention", "CHUNK_ELEMENTS", "FUSED_ATTENTION",
           "CSR_ATTENTION", "csr_max", "uniform_degree"]

#: The switches that live in :mod:`pyg_glic.nn.attention.backend`.
_SWITCHES = ("CHUNK_ELEMENTS", "FUSED_ATTENTION", "CSR_ATTENTION")


class _Forwarding(types.ModuleType):
    # the old switches read and write the backend's, so old code that sets them works
    def __getattr__(self, name):
        if name in _SWITCHES:
            return getattr(_backend, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name in _SWITCHES:
            setattr(_backend, name, value)
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name):
        if name not in _SWITCHES:
            super().__delattr__(name)


sys.modules[__name__].__class__ = _Forwarding
