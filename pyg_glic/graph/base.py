r"""The container every graph builder returns."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import torch
from torch import Tensor
from torch_geometric import EdgeIndex


@dataclass
class CandidateBlocks:
    r"""The candidate structure a graph was selected from, for blocked-dense execution.

    Queries are grouped into ``nb`` blocks of ``Q`` nodes that share ``K``
    candidates (GLIC: an 8x8 window and its 16x16 halo patch, ``Q=64, K=256``).
    The published dense code computes all ``Q x K`` scores per block and masks
    the pairs that are not edges; ``mask`` says which pairs are edges.

    Attributes:
        query_index (LongTensor): ``(nb, Q)`` target node ids, ``-1`` for padding.
        cand_index (LongTensor): ``(nb, K)`` source node ids, ``-1`` for padding.
        mask (BoolTensor): ``(nb, Q, K)``, ``True`` where the pair is an edge.
        edge_slots (tuple, optional): a cache, not an input: where each edge of the
            graph sits in the blocks, ``(edge_index, num_dst, slots)`` as
            :func:`pyg_glic.nn.attention.blocked.block_edge_slots` last computed it
            (EdgeIndex caches the CSR pointer and transpose, not block slots).
    """

    query_index: Tensor
    cand_index: Tensor
    mask: Tensor
    edge_slots: Optional[tuple] = field(default=None, init=False, repr=False, compare=False)

    def to(self, device) -> "CandidateBlocks":
        return CandidateBlocks(self.query_index.to(device), self.cand_index.to(device),
                               self.mask.to(device))


@dataclass
class ImageGraph:
    r"""A sparse graph over image nodes, in pyg_glic's conventions.

    Node ids follow :func:`pyg_glic.convert.map_to_nodes` (image-major,
    row-major). For a bipartite graph (the global graph: pooled nodes send to
    full-resolution nodes) sources and targets are numbered separately.

    Attributes:
        edge_index (EdgeIndex): ``(2, E)``; row 0 source (neighbour), row 1
            target (query); sorted by target, stable. A
            :class:`torch_geometric.EdgeIndex` with ``sort_order="col"`` and
            ``sparse_size=(num_src, num_dst)`` whose cached pointer is ``ptr``
            (a plain tensor given here is wrapped so): the layers read the CSR
            pointer and transpose from it, so ``layer(x, graph.edge_index, ...)``
            takes the fast CSR path.
        ptr (LongTensor): ``(num_dst + 1,)`` CSR row pointer over targets:
            the edges into target ``i`` are ``ptr[i]:ptr[i+1]``; the same tensor
            as ``edge_index.get_indptr()``.
        edge_attr (Tensor): ``(E, 2)`` float relative offset ``(dy, dx)`` =
            position of the source minus position of the target, in pixels of
            the (full-resolution) feature map; for the strided global graph
            (``global_graph(..., candidates="strided")``) in lattice steps, i.e.
            divided by the lattice strides ``(ceil(H/grid), ceil(W/grid))``, so
            that it keeps its meaning whatever the image size.
        num_src (int): number of source nodes.
        num_dst (int): number of target nodes.
        edge_weight (Tensor, optional): ``(E,)`` differentiable weights
            (learnable graphs).
        blocks (CandidateBlocks, optional): the candidate structure, when the
            builder has one.
        pos_src, pos_dst (Tensor, optional): ``(num_src, 2)`` / ``(num_dst, 2)``
            float positions ``(row, col)`` in full-resolution pixels, so that
            ``edge_attr == pos_src[src] - pos_dst[dst]`` (divided by the lattice
            strides for the strided global graph); a pooled node sits at
            the centre of the cell it averages.
    """

    edge_index: Tensor
    ptr: Tensor
    edge_attr: Tensor
    num_src: int
    num_dst: int
    edge_weight: Optional[Tensor] = None
    blocks: Optional[CandidateBlocks] = field(default=None, repr=False)
    pos_src: Optional[Tensor] = field(default=None, repr=False)
    pos_dst: Optional[Tensor] = field(default=None, repr=False)

    def __post_init__(self):
        self.edge_index = _as_target_sorted(self.edge_index, self.ptr, self.num_src,
                                            self.num_dst)

    @property
    def num_edges(self) -> int:
        return self.edge_index.size(1)

    @property
    def degree(self) -> Tensor:
        r"""In-degree of every target, ``(num_dst,)``."""
        return self.ptr[1:] - self.ptr[:-1]

    def to(self, device) -> "ImageGraph":
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v.to(device) if isinstance(v, (Tensor, CandidateBlocks)) else v
        return ImageGraph(**kw)

    def validate(self) -> "ImageGraph":
        r"""Check the invariants above; raise ``ValueError`` naming the first broken one."""
        ei = self.edge_index
        if ei.dim() != 2 or ei.size(0) != 2:
            raise ValueError(f"edge_index must have shape (2, E), got {tuple(ei.shape)}")
        E = ei.size(1)
        if self.ptr.shape != (self.num_dst + 1,):
            raise ValueError(f"ptr must have shape ({self.num_dst + 1},), got {tuple(self.ptr.shape)}")
        if int(self.ptr[-1]) != E:
            raise ValueError(f"ptr[-1] must equal the number of edges {E}")
        if self.edge_attr.shape != (E, 2):
            raise ValueError(f"edge_attr must have shape ({E}, 2), got {tuple(self.edge_attr.shape)}")
        if E:
            if int(ei[0].min()) < 0 or int(ei[0].max()) >= self.num_src:
                raise ValueError("edge_index sources out of range")
            if int(ei[1].min()) < 0 or int(ei[1].max()) >= self.num_dst:
                raise ValueError("edge_index targets out of range")
            expect = torch.arange(self.num_dst, device=ei.device).repeat_interleave(self.degree)
            if not torch.equal(expect, ei[1]):
                raise ValueError("edge_index is not sorted by target consistently with ptr")
        if not (isinstance(ei, EdgeIndex) and ei.is_sorted_by_col
                and ei.sparse_size() == (self.num_src, self.num_dst)):
            raise ValueError("edge_index must be an EdgeIndex sorted by target "
                             "(sort_order='col') with sparse_size (num_src, num_dst)")
        if not torch.equal(ei.get_indptr(), self.ptr):
            raise ValueError("edge_index's cached pointer differs from ptr")
        if self.edge_weight is not None and self.edge_weight.shape != (E,):
            raise ValueError(f"edge_weight must have shape ({E},)")
        return self


def is_edge_list(edge_index) -> bool:
    r"""Whether ``edge_index`` is a strided ``(2, E)`` integer tensor (an
    :class:`~torch_geometric.EdgeIndex` or a plain tensor; not a sparse matrix)."""
    return (isinstance(edge_index, Tensor) and edge_index.layout == torch.strided
            and edge_index.dim() == 2 and edge_index.size(0) == 2
            and edge_index.dtype in (torch.int32, torch.int64))


def _as_target_sorted(edge_index, ptr, num_src: int, num_dst: int):
    # The builders' edges are sorted by target and come with their pointer: wrap
    # them as PyG's EdgeIndex (no copy, no sort) and hand it the pointer, so that
    # edge_index.get_indptr() is ptr. Anything that is not a (2, E) integer tensor
    # is left as it is (validate() names what is wrong).
    if not is_edge_list(edge_index):
        return edge_index
    size = (num_src, num_dst)
    if isinstance(edge_index, EdgeIndex):
        if not (edge_index.is_sorted_by_col and edge_index.sparse_size() == size):
            edge_index = EdgeIndex(edge_index.as_tensor(), sparse_size=size, sort_order="col")
    else:
        edge_index = EdgeIndex(edge_index.contiguous(), sparse_size=size, sort_order="col")
    if (edge_index._indptr is None and isinstance(ptr, Tensor)
            and ptr.shape == (num_dst + 1,) and ptr.device == edge_index.device):
        edge_index._indptr = ptr  # PyG's pointer cache (what get_indptr() returns)
    return edge_index
