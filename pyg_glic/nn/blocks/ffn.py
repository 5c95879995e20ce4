r"""Feed-forward blocks on ``(B, C, H, W)`` maps: ViG's FFN and GLIC's gated depthwise-conv FFN."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ._utils import DropPath


class FFN(torch.nn.Module):
    r"""ViG's feed-forward block, from `"Vision GNN: An Image is Worth Graph of
    Nodes" <https://arxiv.org/abs/2206.00272>`_: two 1x1 convolutions (each
    followed by BatchNorm) with GELU between them, drop-path and residual.

    .. math::
        \mathbf{X}^{\prime} = \mathbf{X} + \mathrm{DropPath}\Big(
            \mathrm{BN}\big(\mathbf{W}_2\, \mathrm{GELU}(\mathrm{BN}(\mathbf{W}_1 \mathbf{X}))\big)
        \Big)

    Args:
        channels (int): input and output channels ``C``.
        hidden_channels (int, optional): hidden width; default ``4 * C``.
        drop_path (float, optional): drop-path probability. (default: :obj:`0.0`)

    Shapes:
        - **input:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """
    def __init__(self, channels: int, hidden_channels: Optional[int] = None,
                 drop_path: float = 0.0):
        super().__init__()
        hidden = hidden_channels or 4 * channels
        self.channels = channels
        self.hidden_channels = hidden
        self.fc1 = torch.nn.Sequential(torch.nn.Conv2d(channels, hidden, 1),
                                       torch.nn.BatchNorm2d(hidden))
        self.act = torch.nn.GELU()
        self.fc2 = torch.nn.Sequential(torch.nn.Conv2d(hidden, channels, 1),
                                       torch.nn.BatchNorm2d(channels))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.fc2(self.act(self.fc1(x))))

    def extra_repr(self) -> str:
        return f"{self.channels}, hidden={self.hidden_channels}"


class GatedFFN(torch.nn.Module):
    r"""Gated depthwise-convolution feed-forward network (GLIC's graph stages;
    Restormer's GDFN): a 1x1 expansion to two branches, a depthwise convolution,
    a GELU gate and a 1x1 projection back. No residual here (the caller adds it).

    .. math::
        [\mathbf{A}, \mathbf{G}] = \mathrm{DWConv}(\mathbf{W}_1 \mathbf{X}),
        \qquad
        \mathbf{X}^{\prime} = \mathbf{W}_2 \big(\mathrm{GELU}(\mathbf{G}) \odot \mathbf{A}\big)

    Args:
        channels (int): input and output channels ``C``.
        expansion (float, optional): hidden width ``expansion * C`` per branch.
            (default: :obj:`4.0`)
        kernel_size (int, optional): depthwise kernel size. (default: :obj:`3`)
        bias (bool, optional): biases in the convolutions. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """
    def __init__(self, channels: int, expansion: float = 4.0, kernel_size: int = 3,
                 bias: bool = True):
        super().__init__()
        hidden = int(round(channels * expansion))
        self.channels = channels
        self.hidden_channels = hidden
        self.project_in = torch.nn.Conv2d(channels, 2 * hidden, 1, bias=bias)
        self.dwconv = torch.nn.Conv2d(2 * hidden, 2 * hidden, kernel_size,
                                      padding=kernel_size // 2, groups=2 * hidden, bias=bias)
        self.project_out = torch.nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        a, g = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(g) * a)

    def extra_repr(self) -> str:
        return f"{self.channels}, hidden={self.hidden_channels}"
