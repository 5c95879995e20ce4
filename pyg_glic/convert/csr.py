r"""Variable-degree neighbour lists <-> CSR, and ``edge_index`` <-> CSR.

CSR here is compressed by *target*: the neighbours (sources) of node ``i`` are
``col[ptr[i]:ptr[i + 1]]``. This is the layout the builders return and the
sparse kernels walk.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor


def degree_to_ptr(degree: Tensor) -> Tensor:
    r"""In-degrees ``(N,)`` -> row pointer ``(N + 1,)`` starting at 0."""
    ptr = torch.zeros(degree.numel() + 1, dtype=torch.long, device=degree.device)
    torch.cumsum(degree, 0, out=ptr[1:])
    return ptr


def neighbors_to_csr(neighbors: Sequence[Union[Sequence[int], Tensor]],
                     device=None) -> Tuple[Tensor, Tensor]:
    r"""Neighbour lists -> ``(ptr, col)``.

    Args:
        neighbors: ``neighbors[i]`` lists the sources of node ``i`` (any
            length, zero included), as ints or a 1-D tensor.

    Returns:
        ``ptr`` ``(N + 1,)`` and ``col`` ``(E,)`` (long).
    """
    lists = [torch.as_tensor(n, dtype=torch.long, device=device).reshape(-1) for n in neighbors]
    for i, n in enumerate(lists):
        if bool((n < 0).any()):
            raise ValueError(f"neighbors[{i}] holds a negative node id")
    degree = torch.tensor([n.numel() for n in lists], dtype=torch.long, device=device)
    col = torch.cat(lists) if lists else torch.empty(0, dtype=torch.long, device=device)
    return degree_to_ptr(degree), col


def csr_to_neighbors(ptr: Tensor, col: Tensor) -> List[Tensor]:
    r"""``(ptr, col)`` -> list of ``N`` neighbour tensors."""
    _check_ptr(ptr, col.numel())
    bounds = ptr.tolist()
    return [col[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]


def edge_index_to_csr(edge_index: Tensor, num_nodes: Optional[int] = None
                      ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""``edge_index`` -> CSR by target.

    Args:
        edge_index (LongTensor): ``(2, E)``, row 0 source, row 1 target.
        num_nodes (int, optional): number of targets; default ``max + 1``.

    Returns:
        ``(ptr, col, perm)``: ``ptr`` ``(num_nodes + 1,)``, sources ``col``
        ``(E,)`` and the stable permutation ``perm`` that sorts the edges by
        target (apply it to edge attributes).
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
    dst = edge_index[1]
    if num_nodes is None:
        num_nodes = int(dst.max()) + 1 if dst.numel() else 0
    elif dst.numel() and int(dst.max()) >= num_nodes:
        raise ValueError(f"edge_index targets must lie in [0, num_nodes) = [0, {num_nodes})")
    perm = torch.argsort(dst, stable=True)
    degree = torch.bincount(dst, minlength=num_nodes)
    return degree_to_ptr(degree), edge_index[0, perm], perm


def csr_to_edge_index(ptr: Tensor, col: Tensor) -> Tensor:
    r"""``(ptr, col)`` -> ``edge_index`` ``(2, E)``, sorted by target."""
    _check_ptr(ptr, col.numel())
    degree = ptr[1:] - ptr[:-1]
    dst = torch.arange(degree.numel(), device=ptr.device).repeat_interleave(degree)
    return torch.stack([col.long(), dst])


def _check_ptr(ptr: Tensor, num_edges: int) -> None:
    if ptr.dim() != 1 or ptr.numel() < 1:
        raise ValueError(f"ptr must have shape (N + 1,), got {tuple(ptr.shape)}")
    if int(ptr[0]) != 0 or int(ptr[-1]) != num_edges or bool((ptr[1:] < ptr[:-1]).any()):
        raise ValueError(f"ptr must rise from 0 to the number of edges ({num_edges})")
