r"""Graphs as PyG's :class:`~torch_geometric.EdgeIndex` sorted by target: what the
layers' fast paths read.

pyg_glic's builders return :class:`~pyg_glic.graph.base.ImageGraph` objects whose
``edge_index`` is an :class:`~torch_geometric.EdgeIndex` with
``sort_order="col"`` (row 0 source, row 1 target: sorted by target) and
``sparse_size=(num_src, num_dst)``, whose cached pointer is the graph's ``ptr``.
:class:`~pyg_glic.nn.conv.GLICAttention` and :class:`~pyg_glic.nn.conv.MRConv`
read the CSR pointer over targets from it (:meth:`EdgeIndex.get_indptr`), and the
transpose for the backward pass from its transpose cache
(:func:`target_transpose`), so the fast CSR executors run without any ``ptr=``
argument.

A plain ``(2, E)`` tensor is converted by :func:`target_sorted`: an ``O(E)``
check whether it is already sorted by target, and if not a stable sort by target
(``O(E log E)``) plus a gather of the sources; the caller gets the permutation
to reorder its per-edge inputs. Wrap a graph you reuse in an
:class:`~torch_geometric.EdgeIndex` yourself (``target_sorted(...)[0]``) to pay
this once.
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch_geometric import EdgeIndex

from ..graph.base import is_edge_list
from .attention.contract import csr_transpose

__all__ = ["target_sorted", "target_ptr", "target_transpose", "is_edge_list",
           "check_deprecated_ptr"]


def target_sorted(edge_index: Tensor, num_src: int, num_dst: int
                  ) -> Tuple[EdgeIndex, Optional[Tensor]]:
    r"""``edge_index`` as an :class:`~torch_geometric.EdgeIndex` sorted by target
    (``sort_order="col"``) with ``sparse_size=(num_src, num_dst)``, and the
    permutation applied to the edges (``None`` when they kept their order).

    An :class:`~torch_geometric.EdgeIndex` already sorted by target with that
    size is returned as is (its cached pointer and transpose are reused). Else
    the edges are checked for being sorted by target (``O(E)``) and, if they are
    not, stably sorted by target (``O(E log E)``): then ``out = edge_index[:, perm]``
    and a per-edge input ``a`` of the caller belongs to the new order as
    ``a[perm]``.

    Raises:
        ValueError: an :class:`~torch_geometric.EdgeIndex` whose sparse size
            contradicts ``(num_src, num_dst)``.
    """
    if isinstance(edge_index, EdgeIndex):
        size = edge_index.sparse_size()
        if size[0] not in (None, num_src) or size[1] not in (None, num_dst):
            raise ValueError(f"edge_index has sparse size {size} but the layer's input "
                             f"has {num_src} sources and {num_dst} targets")
        if edge_index.is_sorted_by_col:
            if size == (num_src, num_dst):
                return edge_index, None
            return EdgeIndex(edge_index, sparse_size=(num_src, num_dst)), None
        data = edge_index.as_tensor()
    else:
        data = edge_index
    perm = None
    dst = data[1]
    if dst.numel() > 1 and not bool((dst[1:] >= dst[:-1]).all()):
        dst, perm = torch.sort(dst, stable=True)
        data = torch.stack([data[0].index_select(0, perm), dst])
    return EdgeIndex(data.contiguous(), sparse_size=(num_src, num_dst), sort_order="col"), perm


def target_ptr(edge_index: EdgeIndex) -> Tensor:
    r"""The CSR pointer over targets ``(num_dst + 1,)`` of a target-sorted
    :class:`~torch_geometric.EdgeIndex` (PyG's cached one: computed once)."""
    return edge_index.get_indptr()


def _cached_transpose_is_stable(ei: EdgeIndex) -> bool:
    # PyG fills the cache with an unstable sort (torch.sort(stable=False) without
    # pyg-lib): the targets inside a source's row may then be out of order, which
    # PyTorch's CSR invariants forbid and which changes the summation order
    perm, (row, _), cptr = ei._T_perm, ei._T_index, ei._T_indptr
    if perm is None or row is None or ei._T_index[1] is None or cptr is None:
        return False
    if perm.numel() < 2:
        return True
    same = row[1:] == row[:-1]
    return bool(((perm[1:] > perm[:-1]) | ~same).all())


def target_transpose(edge_index: EdgeIndex) -> Tuple[Tensor, Tensor, Tensor]:
    r"""``(cptr, perm, rows)`` of a target-sorted :class:`~torch_geometric.EdgeIndex`,
    as :func:`~pyg_glic.nn.attention.contract.csr_transpose` gives them (the CSR of
    the transposed graph: source ``j``'s edges are ``perm[cptr[j]:cptr[j+1]]``, in
    ascending edge order, ``rows`` their targets), held in the EdgeIndex's own
    transpose cache (``get_csr()``), so it is computed once per graph and shared
    by every layer and backward pass on it.

    The cache is filled here with a *stable* sort by source (what the executors
    and PyTorch's sparse CSR invariants need), not by :meth:`EdgeIndex.get_csr`,
    which sorts unstably; a cache PyG filled that way is replaced. Concurrent
    callers may both compute it; they write equal tensors, the permutation last.
    """
    if not _cached_transpose_is_stable(edge_index):
        ptr = edge_index.get_indptr()
        src = edge_index.as_tensor()[0]
        cptr, perm, rows = csr_transpose(ptr, src, edge_index.get_sparse_size(0))
        edge_index._T_index = (src.index_select(0, perm), rows)
        edge_index._T_indptr = cptr
        edge_index._T_perm = perm
    (cptr, rows), perm = edge_index.get_csr()
    return cptr, perm, rows


def check_deprecated_ptr(layer: str, ptr: Tensor, graph_ptr: Tensor) -> None:
    r"""The deprecation path of the layers' ``ptr=`` argument: a
    :class:`DeprecationWarning`, then ``ptr`` is checked against the pointer the
    layer derived from the graph (``ValueError`` if it differs) and not used."""
    warnings.warn(f"{layer}(..., ptr=...) is deprecated and will be removed in the next "
                  f"release: the layer reads the CSR pointer from the graph (an "
                  f"EdgeIndex sorted by target, as the graph builders return it, or a "
                  f"plain edge_index, which it sorts); the given ptr is only checked "
                  f"against it", DeprecationWarning, stacklevel=5)
    n = graph_ptr.numel()
    if ptr.numel() != n:
        raise ValueError(f"ptr must have one entry per target plus one ({n}), "
                         f"got {ptr.numel()}")
    if not torch.equal(ptr.to(device=graph_ptr.device, dtype=graph_ptr.dtype), graph_ptr):
        raise ValueError("ptr does not match the graph's CSR pointer over targets "
                         "(edge_index sorted by target)")
