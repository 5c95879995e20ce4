r"""The dispatcher: which executor runs one call of graph attention.

Every executor computes the contract of :mod:`pyg_glic.nn.attention.contract`;
they differ in speed, memory and where they run. Two entry points:

- :func:`sparse_attention` chooses among the sparse executors (work proportional
  to the number of edges ``E``), in this order:

  1. the fused Triton kernel (:mod:`~pyg_glic.nn.attention.triton_fused`) when
     ``ptr`` is given, the tensors are on a CUDA device where Triton runs and
     :data:`backend.FUSED_ATTENTION <pyg_glic.nn.attention.backend.FUSED_ATTENTION>`
     allows it;
  2. the CPU CSR executor (:mod:`~pyg_glic.nn.attention.csr`: SDDMM, segment
     softmax, SpMM; no ``E x C`` tensor) when ``ptr`` is given, the tensors are
     CPU float32/float64 outside :func:`torch.compile` and
     :data:`backend.CSR_ATTENTION <pyg_glic.nn.attention.backend.CSR_ATTENTION>`
     allows it;
  3. otherwise the gather executor (:mod:`~pyg_glic.nn.attention.gather`), which
     does not use ``ptr``.

- :func:`attend` (what :class:`~pyg_glic.nn.conv.GLICAttention` calls) first
  decides between blocked-dense (:mod:`~pyg_glic.nn.attention.blocked`, all
  ``Q x K`` pairs of every candidate block, which needs the graph's
  :class:`~pyg_glic.graph.base.CandidateBlocks`) and sparse
  (:func:`sparse_attention`), from the layer's ``execution`` argument, the
  :func:`backend.execution <pyg_glic.nn.attention.backend.execution>` context
  that overrides it, and for ``"auto"`` :func:`choose_attention_execution`:
  dense when the graph's *density* (edges per valid query-candidate pair of the
  blocks, i.e. mean degree / candidates per block) reaches the threshold fitted
  for the device and for whether a backward pass follows (autograd on), and the
  map is large enough for the dense form's fixed costs to amortise
  (:data:`~pyg_glic.nn.attention.backend.DENSE_MIN_DENSITY`,
  :data:`~pyg_glic.nn.attention.backend.DENSE_MIN_QUERIES`). Without blocks it
  is always sparse; when the edges do not fit the blocks, ``"auto"`` runs
  sparse and a forced ``"dense"`` raises.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple, Union

import torch
from torch import Tensor

from . import backend, csr, triton_fused
from .blocked import block_edge_slots, blocked_attention
from .gather import gather_attention

__all__ = ["sparse_attention", "attend", "select_execution", "choose_attention_execution",
           "block_density", "uses_pointer"]

#: The transpose of a target-sorted graph, ``(cptr, perm, rows)`` as
#: :func:`~pyg_glic.nn.attention.contract.csr_transpose` gives it, or a callable
#: returning it on demand (the layers pass
#: :func:`pyg_glic.nn.edge_index.target_transpose` of their EdgeIndex).
CSC = Union[Tuple[Tensor, Tensor, Tensor], Callable[[], Tuple[Tensor, Tensor, Tensor]]]


def _use_csr(q: Tensor) -> bool:
    mode = backend.CSR_ATTENTION
    if mode not in ("auto", "never"):
        raise ValueError(f"CSR_ATTENTION must be 'auto' or 'never', got {mode!r}")
    if mode == "never":
        return False
    return csr.csr_attention_available(q)


def _use_fused(q: Tensor) -> bool:
    mode = backend.FUSED_ATTENTION
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"FUSED_ATTENTION must be 'auto', 'always' or 'never', got {mode!r}")
    if mode == "never" or torch.compiler.is_compiling():
        return False
    if mode == "auto" and q.device.type != "cuda":
        return False
    return triton_fused.fused_attention_available(q.device)


def uses_pointer(q: Tensor) -> bool:
    r"""Whether :func:`sparse_attention`, given ``ptr``, would run an executor that
    uses it (fused Triton or CPU CSR) for tensors like ``q``; the layers sort a
    plain ``edge_index`` by target only then."""
    return _use_fused(q) or _use_csr(q)


def sparse_attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                     edge_index: Tensor, ptr: Optional[Tensor], num_dst: int,
                     edge_weight: Optional[Tensor] = None, *,
                     csc: Optional[CSC] = None) -> Tensor:
    r"""Multi-head attention restricted to the edges of a graph, by the fastest
    sparse executor that applies (see the module docs).

    .. math::
        \alpha_{ji,h} = \operatorname{softmax}_{j \in \mathcal{N}(i)}
            \left(\langle \mathbf{q}_{i,h}, \mathbf{k}_{j,h} \rangle + b_{ji,h}\right),
        \qquad
        \mathbf{o}_{i,h} = \sum_{j \in \mathcal{N}(i)} w_{ji}\, \alpha_{ji,h}\,
            \mathbf{v}_{j,h}

    The full contract (scaling is the caller's, edge weights after the softmax,
    0 for a target without edges) is :mod:`pyg_glic.nn.attention.contract`.

    Args:
        q (Tensor): queries ``(N_dst, H, D)``.
        k (Tensor): keys ``(N_src, H, D)``.
        v (Tensor): values ``(N_src, H, D_v)``.
        bias (Tensor, optional): additive logit bias ``(E, H)``.
        edge_index (LongTensor): ``(2, E)``, row 0 source, row 1 target.
        ptr (LongTensor, optional): ``(N_dst + 1,)`` CSR pointer of the
            targets when ``edge_index`` is sorted by target.
        num_dst (int): ``N_dst``.
        edge_weight (Tensor, optional): ``(E,)`` multiplies the attention
            weights after the softmax (learned graphs).
        csc (tuple or callable, optional): the graph's transpose
            ``(cptr, perm, rows)`` or a callable giving it, for the backward
            pass of the CSR and fused executors (the layers pass their
            EdgeIndex's cached transpose; else each executor computes it).

    Returns:
        Tensor ``(N_dst, H, D_v)``.
    """
    if ptr is not None and _use_fused(q):
        t = None
        if csc is not None and torch.is_grad_enabled() and (k.requires_grad
                                                            or v.requires_grad):
            t = csc() if callable(csc) else csc  # cached on the graph: once per graph
        return triton_fused.fused_sparse_attention(q, k, v, bias, ptr, edge_index[0], None,
                                                   edge_weight, csc=t)
    if ptr is not None and _use_csr(q):
        return csr.csr_sparse_attention(q, k, v, bias, ptr, edge_index[0], num_dst,
                                        edge_weight, csc=csc)
    return gather_attention(q, k, v, bias, edge_index, num_dst, edge_weight)


def block_density(num_edges: int, blocks) -> Tuple[float, int]:
    r"""``(density, queries)``: edges per valid (query, candidate) pair of the
    blocks, and the number of valid queries."""
    qv = (blocks.query_index >= 0).sum(dim=1)
    cv = (blocks.cand_index >= 0).sum(dim=1)
    pairs = int((qv * cv).sum())
    return (num_edges / pairs if pairs else 0.0), int(qv.sum())


@torch.compiler.disable
def choose_attention_execution(num_edges: int, blocks, device: torch.device,
                               backward: Optional[bool] = None) -> str:
    r"""``"dense"`` or ``"sparse"`` for one call of the attention core, from the
    thresholds of :mod:`pyg_glic.nn.attention.backend`.

    Args:
        num_edges (int): ``E``.
        blocks (CandidateBlocks, optional): ``None`` gives ``"sparse"``.
        device (torch.device): where the call runs (``"cuda"`` thresholds for
            any accelerator other than the CPU).
        backward (bool, optional): whether a backward pass follows; default
            ``torch.is_grad_enabled()``.
    """
    if blocks is None:
        return "sparse"
    if backward is None:
        backward = torch.is_grad_enabled()
    dev = "cpu" if torch.device(device).type == "cpu" else "cuda"
    density, queries = block_density(num_edges, blocks)
    key = (dev, bool(backward))
    if queries < backend.DENSE_MIN_QUERIES[key]:
        return "sparse"
    return "dense" if density >= backend.DENSE_MIN_DENSITY[key] else "sparse"


def select_execution(execution: str, edge_index: Tensor, blocks, device) -> str:
    r"""``"dense"`` or ``"sparse"`` for a call with these edges and blocks, given a
    layer's ``execution`` (``"auto"``, ``"sparse"`` or ``"dense"``) and the
    :func:`~pyg_glic.nn.attention.backend.execution` context, which overrides it."""
    mode = backend.forced_execution() or execution
    if blocks is None:
        return "sparse"
    if mode == "auto":
        return choose_attention_execution(edge_index.size(1), blocks, device)
    return mode


def attend(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor], edge_index: Tensor,
           ptr: Optional[Tensor], num_dst: int, edge_weight: Optional[Tensor] = None,
           blocks=None, execution: str = "auto",
           sparse: Optional[Callable[..., Tensor]] = None, *,
           csc: Optional[CSC] = None) -> Tensor:
    r"""Graph attention by blocked-dense or sparse execution (see the module docs).

    Args:
        q, k, v, bias, edge_index, ptr, num_dst, edge_weight: as in
            :func:`sparse_attention`.
        blocks (CandidateBlocks, optional): the graph's candidate structure
            (``ImageGraph.blocks``); enables blocked-dense execution.
        execution (str): ``"auto"``, ``"sparse"`` or ``"dense"`` (overridden by
            the :func:`~pyg_glic.nn.attention.backend.execution` context).
        sparse (callable, optional): what runs the sparse case, with
            :func:`sparse_attention`'s arguments (default: :func:`sparse_attention`;
            ``GLICAttention(impl="propagate")`` passes its PyG message passing).
        csc (tuple or callable, optional): as in :func:`sparse_attention`
            (passed to it only, not to ``sparse``).

    Returns:
        Tensor ``(N_dst, H, D_v)``.
    """
    if blocks is not None and select_execution(execution, edge_index, blocks,
                                               q.device) == "dense":
        slots = block_edge_slots(blocks, edge_index, num_dst)
        if slots is not None:
            return blocked_attention(q, k, v, bias, edge_index, blocks, num_dst,
                                     edge_weight, slots=slots)
        if (backend.forced_execution() or execution) == "dense":
            raise ValueError("execution='dense': the edges do not fit the candidate "
                             "blocks (an edge outside its block, or a repeated edge)")
    if sparse is None:
        return sparse_attention(q, k, v, bias, edge_index, ptr, num_dst, edge_weight,
                                csc=csc)
    return sparse(q, k, v, bias, edge_index, ptr, num_dst, edge_weight)
