r"""Deprecated package, kept for one release: re-exports only.

The attention executors moved to :mod:`pyg_glic.nn.attention`: the CPU CSR
executor to :mod:`pyg_glic.nn.attention.csr`, the fused Triton kernel to
:mod:`pyg_glic.nn.attention.triton_fused`, :func:`csr_transpose` to
:mod:`pyg_glic.nn.attention.contract` and :data:`DEFAULT_BLOCK_E` to
:mod:`pyg_glic.nn.attention.backend`. :func:`sparse_attention_csr` is deprecated
(it warns): call :func:`pyg_glic.nn.attention.sparse_attention`.
"""
from ..attention.backend import DEFAULT_BLOCK_E
from ..attention.contract import csr_transpose
from ..attention.csr import csr_attention_available, csr_sparse_attention
from ..attention.triton_fused import fused_attention_available, fused_sparse_attention
from .triton_attention import sparse_attention_csr

__all__ = ["csr_sparse_attention", "csr_attention_available", "fused_sparse_attention",
           "fused_attention_available", "csr_transpose", "sparse_attention_csr",
           "DEFAULT_BLOCK_E"]
