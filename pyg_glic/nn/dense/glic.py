r"""Dense (blocked) reference for GLIC's graph attention, as the published code runs it.

GLIC's code groups the queries into blocks (an 8x8 window) that share their
candidates (the 16x16 halo patch around it, or the 16x16 pooled grid for the
global graph), computes all ``Q x K`` scores of a block with batched matrix
products and masks the pairs that are not edges. The published code masks by
*adding* ``-100`` to those logits, which leaves them a weight of about
``exp(-100)`` relative to the edges (not exactly zero) and gives a node with no
edge a uniform average over all candidates. Here the mask is exact
(``-inf``, and an all-masked row gives 0), so the result equals the sparse
layer's up to floating-point rounding; that equality is what the tests check.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor
from torch_geometric.typing import PairTensor

from ...graph.base import CandidateBlocks
from ..conv.glic_attention import GLICAttention

__all__ = ["dense_glic_attention", "dense_attention_blocks"]


def dense_attention_blocks(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, mask: Tensor,
                           additive_mask: Optional[float] = None) -> Tensor:
    r"""Masked attention over blocks.

    Args:
        q (Tensor): ``(nb, H, Q, D)`` queries (already normalised and scaled).
        k, v (Tensor): ``(nb, H, K, D)`` keys and values.
        bias (Tensor, optional): ``(nb, H, Q, K)`` additive logit bias.
        mask (BoolTensor): ``(nb, Q, K)``, ``True`` for an edge.
        additive_mask (float, optional): if given (the published code: ``-100``),
            add it to the non-edges instead of masking them exactly.

    Returns:
        Tensor ``(nb, H, Q, D)``; a row without edges is 0 with the exact mask.
    """
    score = q @ k.transpose(-1, -2)
    if bias is not None:
        score = score + bias
    m = mask.unsqueeze(1)
    if additive_mask is not None:
        score = score + (~m).to(score.dtype) * additive_mask
        return score.softmax(dim=-1) @ v
    empty = ~m.any(dim=-1, keepdim=True)  # (nb, 1, Q, 1)
    # -inf on non-edges; a row without any edge is set to 0 (finite) so that the
    # softmax and its gradient stay finite, and zeroed afterwards.
    score = score.masked_fill(~m, float("-inf")).masked_fill(empty, 0.)
    attn = score.softmax(dim=-1).masked_fill(~m, 0.)
    return attn @ v


def dense_glic_attention(layer: GLICAttention, x: Union[Tensor, PairTensor],
                         blocks: CandidateBlocks, pos_src: Tensor, pos_dst: Tensor,
                         additive_mask: Optional[float] = None) -> Tensor:
    r"""Dense :class:`~pyg_glic.nn.conv.GLICAttention` over candidate blocks,
    with ``layer``'s parameters.

    For every block of ``Q`` queries and its ``K`` candidates:

    .. math::
        \mathbf{S}_h = \tau_h\, \hat{\mathbf{Q}}_h \hat{\mathbf{K}}_h^{\top}
            + \mathbf{B}_h,
        \qquad
        \mathbf{O}_h = \operatorname{softmax}\big(\mathbf{S}_h
            \text{ masked to the edges}\big)\, \mathbf{V}_h

    with :math:`\mathbf{B}_h = \mathrm{MLP}_h\big(\mathrm{sign}(\boldsymbol{\Delta})
    \log(1 + |\boldsymbol{\Delta}|)\big)` (times a sigmoid and ``pos_bound``
    when the layer has one: :math:`\beta\,\sigma(\mathrm{MLP}_h(\cdot))`) and
    :math:`\boldsymbol{\Delta}_{qc} = \mathrm{pos\_src}[c] - \mathrm{pos\_dst}[q]`,
    then the output projection on :math:`\Vert_h \mathbf{O}_h`. A node that is
    the query of no block, or has no edge in its block, gets the projection's
    bias.

    The offsets must be in the unit of the graph's ``edge_attr``: pixels for
    the halo and pooled global graphs; for the strided global graph
    (``global_graph(..., candidates="strided")``, offsets in lattice steps)
    pass the positions divided by the lattice strides
    ``(ceil(H / grid), ceil(W / grid))``.

    Args:
        layer (GLICAttention): the sparse layer whose parameters are used.
        x (Tensor or (Tensor, Tensor)): node features ``(N, C)`` or
            ``(x_src, x_dst)``.
        blocks (CandidateBlocks): ``query_index (nb, Q)``, ``cand_index
            (nb, K)`` (``-1`` padding) and ``mask (nb, Q, K)``; a node may be
            the query of at most one block.
        pos_src, pos_dst (Tensor): ``(N_src, 2)`` / ``(N_dst, 2)`` positions
            (in the unit of the graph's offsets, see above).
        additive_mask (float, optional): ``-100`` reproduces the published
            masking (then the result is close to, not equal to, the sparse one).

    Returns:
        Tensor ``(N_dst, F_out)``.
    """
    if isinstance(x, Tensor):
        x = (x, x)
    q, k, v = layer.project(x)  # (N, H, D)
    N_dst = x[1].size(0)
    H, D = layer.heads, layer.head_dim
    qi, ci = blocks.query_index, blocks.cand_index
    valid_q, valid_c = qi >= 0, ci >= 0
    if valid_q.any():
        counts = torch.bincount(qi[valid_q], minlength=N_dst)
        if int(counts.max()) > 1:
            raise ValueError("a node is the query of more than one block")
    qs, cs = qi.clamp(min=0), ci.clamp(min=0)
    qb = q[qs].permute(0, 2, 1, 3)  # (nb, H, Q, D)
    kb = k[cs].permute(0, 2, 1, 3)  # (nb, H, K, D)
    vb = v[cs].permute(0, 2, 1, 3)
    bias = None
    if layer.pos_mlp is not None:
        # the bias written out from the layer's parameters (not layer.position_bias)
        rel = pos_src[cs].unsqueeze(1) - pos_dst[qs].unsqueeze(2)  # (nb, Q, K, 2)
        rel = rel.to(layer.pos_mlp[0].weight.dtype)
        bias = layer.pos_mlp(torch.sign(rel) * torch.log1p(rel.abs()))  # (nb, Q, K, H)
        if layer.pos_bound is not None:
            bias = layer.pos_bound * torch.sigmoid(bias)
        bias = bias.permute(0, 3, 1, 2)                            # (nb, H, Q, K)
    mask = blocks.mask & valid_q.unsqueeze(2) & valid_c.unsqueeze(1)
    ob = dense_attention_blocks(qb, kb, vb, bias, mask, additive_mask)  # (nb, H, Q, D)
    ob = ob.permute(0, 2, 1, 3)[valid_q]  # (n_valid, H, D)
    out = ob.new_zeros(N_dst, H, D).index_put((qi[valid_q],), ob)
    return layer.lin_out(out.reshape(N_dst, H * D))
