r"""Deprecated module, kept for one release: re-exports
:mod:`pyg_glic.nn.attention.csr` (the CPU CSR executor), which see."""
from ..attention.csr import (_CACHE_SIZE, _cache, _pattern, _Pattern,  # noqa: F401
                             cached_pattern_bytes, clear_cache, csr_attention_available,
                             csr_sparse_attention)

__all__ = ["csr_sparse_attention", "csr_attention_available", "cached_pattern_bytes",
           "clear_cache"]
