r"""Graph attention: softmax over each node's incoming neighbours, in one place.

========================  =============================================================
module                    what it holds
========================  =============================================================
:mod:`.contract`          the rule every executor computes (shapes, softmax per target,
                          edge weights, empty targets); CSR layout helpers
:mod:`.gather`            executor: chunked per-edge gathers (any device, dtype,
                          :func:`torch.compile`); the same rule as PyG messages
:mod:`.csr`               executor: CPU sampled/sparse matrix products over the CSR graph
:mod:`.triton_fused`      executor: one fused Triton kernel over the CSR graph (CUDA)
:mod:`.blocked`           executor: blocked-dense over the graph's candidate blocks
:mod:`.dispatch`          the dispatcher: which executor runs a call
:mod:`.backend`           every execution switch and fitted threshold
========================  =============================================================

To add an executor: a file here that computes the contract, a switch in
:mod:`.backend` if it needs one, and a branch in :mod:`.dispatch`.
"""
from . import backend, blocked, contract, csr, dispatch, gather, triton_fused
from .blocked import block_edge_slots, blocked_attention
from .contract import csr_transpose, uniform_degree
from .csr import csr_attention_available, csr_sparse_attention
from .dispatch import (attend, block_density, choose_attention_execution, select_execution,
                       sparse_attention)
from .gather import attention_message, edge_dot, edge_spmm, gather_attention
from .triton_fused import fused_attention_available, fused_sparse_attention

__all__ = ["backend", "contract", "dispatch", "gather", "csr", "triton_fused", "blocked",
           "sparse_attention", "attend", "select_execution", "choose_attention_execution",
           "block_density", "gather_attention", "attention_message", "edge_dot", "edge_spmm",
           "csr_sparse_attention", "csr_attention_available", "fused_sparse_attention",
           "fused_attention_available", "blocked_attention", "block_edge_slots",
           "uniform_degree", "csr_transpose"]
