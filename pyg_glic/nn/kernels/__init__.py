r"""Fused attention kernels (Triton; imported lazily, so this package imports
without triton). See :mod:`pyg_glic.nn.kernels.triton_attention`."""
from .triton_attention import (DEFAULT_BLOCK_E, csr_transpose, fused_attention_available,
                               fused_sparse_attention, sparse_attention_csr)

__all__ = ["fused_sparse_attention", "fused_attention_available", "csr_transpose",
           "sparse_attention_csr", "DEFAULT_BLOCK_E"]
