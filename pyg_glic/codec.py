r"""Compress and decompress images to and from ``.glic`` bytes."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import bitstream
from .zoo import codec_name, known_codec_names, load_codec


@torch.no_grad()
def compress(x: Tensor, config: str = "glic-lite", quality: int = 3,
             model: Optional[torch.nn.Module] = None) -> bytes:
    r"""One image ``(1, 3, H, W)`` in ``[0, 1]`` -> the bytes of a ``.glic`` file.

    Args:
        x (Tensor): the image.
        config (str): model configuration.
        quality (int): quality level.
        model (GLIC, optional): an already loaded codec for ``config`` and
            ``quality`` (see :func:`pyg_glic.zoo.load_codec`), to skip loading.
    """
    if x.dim() != 4 or x.size(0) != 1 or x.size(1) != 3:
        raise ValueError(f"expected one RGB image of shape (1, 3, H, W), got {tuple(x.shape)}")
    name = codec_name(config, quality)
    net = model if model is not None else load_codec(name, quality)
    out = net.compress(x)
    strings = [s[0] for s in out["strings"]]
    H, W = out["shape"]
    return bitstream.encode(bitstream.Bitstream(name, quality, int(H), int(W), strings))


@torch.no_grad()
def decompress(data: bytes, model: Optional[torch.nn.Module] = None
               ) -> Tuple[Tensor, bitstream.Bitstream]:
    r"""The bytes of a ``.glic`` file -> ``(image (1, 3, H, W) in [0, 1], header)``.

    Raises:
        pyg_glic.bitstream.BitstreamError: the file is malformed or names an
            unknown codec.
    """
    bs = bitstream.decode(data, known_configs=known_codec_names())
    net = model if model is not None else load_codec(bs.config, bs.quality)
    expect = 2 * len(net.groups) + 1
    if len(bs.strings) != expect:
        raise bitstream.BitstreamError(f"{bs.config} files hold {expect} strings, this one "
                                       f"holds {len(bs.strings)}")
    out = net.decompress([[s] for s in bs.strings], (bs.height, bs.width))
    return out["x_hat"].clamp(0, 1), bs
