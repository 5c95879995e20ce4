r"""Small pieces shared by the blocks: drop-path, channel LayerNorm, graph unpacking."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


class DropPath(torch.nn.Module):
    r"""Stochastic depth per sample (timm's ``DropPath``): in training, zero the
    whole residual branch of a sample with probability ``p`` and scale the kept
    ones by :math:`1 / (1 - p)`; the identity in evaluation.

    Args:
        p (float, optional): drop probability. (default: :obj:`0.0`)
    """
    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must lie in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.size(0),) + (1,) * (x.dim() - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerNorm2d(torch.nn.LayerNorm):
    r"""LayerNorm over the channels of a ``(B, C, H, W)`` map."""
    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def map_nodes(x: Tensor) -> Tensor:
    r"""Node features ``(B*H*W, C)`` of a map ``(B, C, H, W)`` in pyg_glic's node
    order (:func:`pyg_glic.convert.map_to_nodes` without the batch and positions)."""
    B, C, H, W = x.shape
    return x.permute(0, 2, 3, 1).reshape(B * H * W, C)


def unpack_graph(graph) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
    r"""``(edge_index, edge_attr, edge_weight)`` of an
    :class:`~pyg_glic.graph.base.ImageGraph`, an ``edge_index`` tensor, or a pair
    ``(edge_index, edge_weight)``."""
    if isinstance(graph, Tensor):
        return graph, None, None
    if isinstance(graph, (tuple, list)) and len(graph) == 2 and isinstance(graph[0], Tensor):
        return graph[0], None, graph[1]
    if hasattr(graph, "edge_index"):
        return (graph.edge_index, getattr(graph, "edge_attr", None),
                getattr(graph, "edge_weight", None))
    raise TypeError(f"expected an ImageGraph, an edge_index tensor or (edge_index, "
                    f"edge_weight), got {type(graph).__name__}")
