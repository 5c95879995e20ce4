r"""What every attention executor computes: the contract, stated once.

Multi-head attention restricted to the edges of a graph, softmax over each
target's incoming edges:

.. math::
    \alpha_{ji,h} = \operatorname{softmax}_{j \in \mathcal{N}(i)}
        \left(\langle \mathbf{q}_{i,h}, \mathbf{k}_{j,h} \rangle + b_{ji,h}\right),
    \qquad
    \mathbf{o}_{i,h} = \sum_{j \in \mathcal{N}(i)} w_{ji}\, \alpha_{ji,h}\,
        \mathbf{v}_{j,h}

Shapes:

- ``q`` ``(N_dst, H, D)`` queries, one row per target; ``k`` ``(N_src, H, D)``
  keys and ``v`` ``(N_src, H, D_v)`` values, one row per source (``D_v`` may
  differ from ``D``);
- ``bias`` ``(E, H)`` optional additive logit term per edge and head (any
  strides: :class:`~pyg_glic.nn.conv.GLICAttention` passes an ``(E, H)`` view
  of head-major storage);
- the graph as ``edge_index`` ``(2, E)`` (row 0 source ``j``, row 1 target
  ``i``) and, when the edges are sorted by target, its CSR pointer ``ptr``
  ``(N_dst + 1,)`` (the edges into target ``i`` are ``ptr[i]:ptr[i+1]``; the
  sources in that order are ``edge_index[0]``, called ``src`` or ``col``);
- the result ``(N_dst, H, D_v)``, in ``v``'s dtype.

Rules:

- *Scaling is the caller's*: no temperature inside; GLIC's cosine logits times
  a per-head scale are made by normalising and scaling ``q`` and ``k`` before
  the call.
- *Softmax per target*: over the incoming edges of each target, per head,
  shifted by the target's maximum (finite at GLIC's logit range, several
  hundred in float32); a repeated edge is two edges (the blocked-dense
  executor refuses such graphs, and the dispatcher then runs a sparse one).
- *Edge weights* ``edge_weight`` ``(E,)`` (learned graphs) multiply the
  attention weights *after* the softmax: they do not renormalise.
- *Empty targets*: a target without incoming edges gets
  :math:`\mathbf{o}_i = 0` (not NaN, not a uniform average); ``E = 0`` gives
  all zeros; ``N_dst = 0`` gives an empty result.
- Executors agree to rounding, not bitwise (summation orders differ);
  gradients with respect to ``q, k, v, bias, edge_weight`` follow the same
  formula; double backward is not supported.

The executors (one file each): :mod:`~pyg_glic.nn.attention.gather` (per-edge
gathers in bounded chunks; any device, dtype, :func:`torch.compile`),
:mod:`~pyg_glic.nn.attention.csr` (CPU, sampled and sparse matrix products),
:mod:`~pyg_glic.nn.attention.triton_fused` (CUDA, one fused Triton kernel) and
:mod:`~pyg_glic.nn.attention.blocked` (blocked-dense over a graph's candidate
blocks). :mod:`~pyg_glic.nn.attention.dispatch` picks one per call, with the
switches and thresholds of :mod:`~pyg_glic.nn.attention.backend`. Not executors
but references written independently of them, for tests and benchmarks:
:func:`pyg_glic.nn.dense.dense_attention_blocks` (the published masked-block form,
optionally with its additive ``-100`` mask) and the float64 references under
``tests/nn``.

This module also holds the two views of the CSR layout that several executors
derive from ``ptr`` and the sources: :func:`uniform_degree` and
:func:`csr_transpose`.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

__all__ = ["uniform_degree", "csr_transpose", "plain_index"]


def plain_index(t: Tensor) -> Tensor:
    r"""``t`` as a plain tensor: the data of PyG's index subclasses
    (:class:`torch_geometric.EdgeIndex`, :class:`torch_geometric.Index`, what
    ``edge_index[0]`` of an EdgeIndex is), which kernels that read raw data
    pointers (Triton, the sparse CSR constructors) cannot take."""
    if type(t) is not Tensor and hasattr(t, "as_tensor"):
        return t.as_tensor()
    return t


def uniform_degree(ptr: Tensor) -> int:
    r"""The degree every target of a CSR graph has, or 0 when degrees differ (or
    there are no targets or no edges)."""
    n = ptr.numel() - 1
    if n == 0 or int(ptr[-1]) == 0:
        return 0
    d = int(ptr[1] - ptr[0])
    return d if int(ptr[-1] - ptr[0]) == d * n and bool(((ptr[1:] - ptr[:-1]) == d).all()) else 0


def csr_transpose(ptr: Tensor, col: Tensor, num_src: int) -> Tuple[Tensor, Tensor, Tensor]:
    r"""The CSC (by source) view of a target-sorted CSR graph.

    Returns ``(cptr, perm, rows)``: ``cptr`` ``(num_src + 1,)``, the edges out of
    source ``j`` are ``perm[cptr[j]:cptr[j+1]]`` (edge ids, ascending), and
    ``rows[t]`` is the target of edge ``perm[t]``. All int64. Depends only on the
    graph: compute once and pass as ``csc=`` to reuse across layers.
    """
    ptr = ptr.to(torch.long)
    col = col.to(torch.long)
    num_dst = ptr.numel() - 1
    deg = ptr[1:] - ptr[:-1]
    dst = torch.repeat_interleave(torch.arange(num_dst, device=col.device), deg,
                                  output_size=col.numel())
    perm = torch.argsort(col, stable=True)
    rows = dst.index_select(0, perm)
    cptr = torch.zeros(num_src + 1, dtype=torch.long, device=col.device)
    if col.numel() > 0:
        cptr[1:] = torch.cumsum(torch.bincount(col, minlength=num_src), 0)
    return cptr, perm, rows
