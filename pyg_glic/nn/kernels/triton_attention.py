r"""Deprecated module, kept for one release: re-exports
:mod:`pyg_glic.nn.attention.triton_fused` (the fused Triton executor), plus the
deprecated :func:`sparse_attention_csr`."""
import warnings
from typing import Optional, Union

import torch
from torch import Tensor

from ..attention.backend import DEFAULT_BLOCK_E
from ..attention.contract import csr_transpose
from ..attention.dispatch import sparse_attention
from ..attention.triton_fused import fused_attention_available, fused_sparse_attention

__all__ = ["fused_sparse_attention", "fused_attention_available", "csr_transpose",
           "sparse_attention_csr", "DEFAULT_BLOCK_E"]


def sparse_attention_csr(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                         ptr: Tensor, col: Tensor,
                         scale: Union[Tensor, float, None] = None,
                         edge_weight: Optional[Tensor] = None) -> Tensor:
    r"""Deprecated (warns; removed in the next release): the same as
    :func:`pyg_glic.nn.attention.sparse_attention` on a target-sorted CSR graph
    with ``q`` pre-scaled, which is what to call instead::

        sparse_attention(q * scale, k, v, bias, edge_index, ptr, num_dst, edge_weight)

    It runs the fused kernel where
    :func:`~pyg_glic.nn.attention.fused_attention_available` (also in Triton's
    CPU interpreter), else :func:`~pyg_glic.nn.attention.sparse_attention`.
    Not to be confused with :func:`~pyg_glic.nn.attention.csr_sparse_attention`,
    the CPU CSR executor itself (kept).
    """
    warnings.warn("sparse_attention_csr is deprecated and will be removed; call "
                  "pyg_glic.nn.attention.sparse_attention(q * scale, k, v, bias, edge_index, "
                  "ptr, num_dst, edge_weight)", DeprecationWarning, stacklevel=2)
    if fused_attention_available(q.device):
        return fused_sparse_attention(q, k, v, bias, ptr, col, scale, edge_weight)
    if scale is not None:
        if isinstance(scale, Tensor) and scale.numel() > 1:
            scale = scale.to(q.dtype).view(1, q.size(1), 1)
        q = q * scale
    num_dst = q.size(0)
    ptr = ptr.to(torch.long)
    col = col.to(torch.long)
    dst = torch.repeat_interleave(torch.arange(num_dst, device=col.device),
                                  ptr[1:] - ptr[:-1], output_size=col.numel())
    edge_index = torch.stack([col, dst])
    return sparse_attention(q, k, v, bias, edge_index, ptr, num_dst, edge_weight)
