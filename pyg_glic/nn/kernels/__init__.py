r"""Sparse attention kernels: fused CSR attention in Triton for CUDA (imported
lazily, so this package imports without triton; see
:mod:`pyg_glic.nn.kernels.triton_attention`) and sampled/sparse matrix products
for the CPU (:mod:`pyg_glic.nn.kernels.csr_attention`)."""
from .csr_attention import csr_attention_available, csr_sparse_attention
from .triton_attention import (DEFAULT_BLOCK_E, csr_transpose, fused_attention_available,
                               fused_sparse_attention, sparse_attention_csr)

__all__ = ["csr_sparse_attention", "csr_attention_available", "fused_sparse_attention", "fused_attention_available", "csr_transpose",
           "sparse_attention_csr", "DEFAULT_BLOCK_E"]
