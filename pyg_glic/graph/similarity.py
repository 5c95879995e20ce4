r"""Node similarities used to choose neighbours, and their k-NN (distance) form.

Every builder ranks a query's candidates by a *score* (larger is closer):

.. math::
    s_{ij} = \mathrm{sim}(\hat{x}_i, \hat{x}_j)
             - \lambda \, \lVert (p_i - p_j) / \sigma \rVert^2,
    \qquad \hat{x} = x / \max(\lVert x \rVert_2, 10^{-12})

with

- ``"cosine"`` (GLIC's default): :math:`\mathrm{sim} = \langle \hat{x}_i, \hat{x}_j\rangle`;
- ``"euclidean"`` (ViG's): :math:`\mathrm{sim} = -\lVert \hat{x}_i - \hat{x}_j \rVert^2`,
  the Euclidean distance of the L2-normalised features.

Since :math:`\lVert \hat{x}_i - \hat{x}_j \rVert^2 = 2 - 2\langle \hat{x}_i, \hat{x}_j\rangle`
for non-zero features, the two rank neighbours identically without the position
term (all-zero feature vectors, whose cosine is undefined, are the exception:
they normalise to zero). With it, ``"euclidean"`` weighs the position term twice
as strongly relative to the feature term as ``"cosine"`` does, for one
``pos_weight``.

The optional relative-position term (ViG's "relative position" in the k-NN
distance) penalises far candidates: ``pos_weight`` :math:`\lambda \ge 0`,
positions :math:`p` in pixels of the full-resolution map, ``pos_scale``
:math:`\sigma` (builders default to :math:`\max(H, W)`).

For the k-NN backends the same ranking is obtained as a Euclidean distance on
augmented features :math:`f_i = [\hat{x}_i, a \, p_i / \sigma]` with
:math:`a = \sqrt{\lambda}` (euclidean) or :math:`\sqrt{2\lambda}` (cosine), see
:func:`knn_features`.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

#: Supported similarity names.
SIMILARITIES = ("cosine", "euclidean")


def normalize(x: Tensor) -> Tensor:
    r"""L2-normalise the last dimension (zero vectors stay zero)."""
    return F.normalize(x, p=2.0, dim=-1, eps=1e-12)


def pairwise_similarity(xq: Tensor, xc: Tensor, similarity: str = "cosine", *,
                        pos_q: Optional[Tensor] = None, pos_c: Optional[Tensor] = None,
                        pos_weight: float = 0.0, pos_scale: float = 1.0) -> Tensor:
    r"""Scores :math:`s_{ij}` (module docstring) between queries and candidates.

    A dense reference: builders compute the same values block by block.

    Args:
        xq (Tensor): query features ``(..., Q, C)`` (not normalised).
        xc (Tensor): candidate features ``(..., K, C)``.
        similarity (str): ``"cosine"`` or ``"euclidean"``.
        pos_q, pos_c (Tensor, optional): positions ``(..., Q, 2)``, ``(..., K, 2)``
            in pixels; needed when ``pos_weight > 0``.
        pos_weight (float): :math:`\lambda`.
        pos_scale (float): :math:`\sigma`.

    Returns:
        Tensor ``(..., Q, K)``, larger is closer.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    if xq.dim() < 2 or xc.dim() < 2 or xq.size(-1) != xc.size(-1):
        raise ValueError(f"xq and xc must have shapes (..., Q, C) and (..., K, C) with the "
                         f"same C, got {tuple(xq.shape)} and {tuple(xc.shape)}")
    qn, cn = normalize(xq), normalize(xc)
    if pos_weight:
        if pos_q is None or pos_c is None:
            raise ValueError("pos_weight > 0 needs pos_q and pos_c")
        pos_q, pos_c = pos_q / pos_scale, pos_c / pos_scale
    return block_scores(qn, cn, similarity, pos_q, pos_c, pos_weight)


def block_scores(qn: Tensor, cn: Tensor, similarity: str, pq: Optional[Tensor] = None,
                 pc: Optional[Tensor] = None, pos_weight: float = 0.0) -> Tensor:
    r"""Scores from already normalised features and already scaled positions.

    ``qn (..., Q, C)``, ``cn (..., K, C)`` (``cn`` may broadcast),
    ``pq (..., Q, 2)``, ``pc (..., K, 2)``. Returns ``(..., Q, K)``.
    """
    s = torch.matmul(qn, cn.transpose(-1, -2))
    if similarity == "euclidean":
        s.mul_(2).sub_(qn.pow(2).sum(-1).unsqueeze(-1)).sub_(cn.pow(2).sum(-1).unsqueeze(-2))
    if pos_weight:
        dy = pq[..., :, None, 0] - pc[..., None, :, 0]
        dx = pq[..., :, None, 1] - pc[..., None, :, 1]
        s.sub_((dy.square_() + dx.square_()).mul_(pos_weight))
    return s


def knn_features(x: Tensor, similarity: str, pos: Optional[Tensor] = None,
                 pos_weight: float = 0.0, pos_scale: float = 1.0) -> Tensor:
    r"""Features whose Euclidean distance ranks neighbours like the score.

    Args:
        x (Tensor): node features ``(N, C)``.
        similarity (str): ``"cosine"`` or ``"euclidean"``.
        pos (Tensor, optional): ``(N, 2)`` positions in pixels.
        pos_weight, pos_scale (float): the position term.

    Returns:
        Tensor ``(N, C)`` or ``(N, C + 2)`` with the scaled positions appended.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    xn = normalize(x)
    if not pos_weight:
        return xn
    a = math.sqrt((2.0 if similarity == "cosine" else 1.0) * pos_weight) / pos_scale
    return torch.cat([xn, pos.to(xn.dtype) * a], dim=-1)
