r"""Neural-network layers of pyg_glic.

- :mod:`pyg_glic.nn.conv`: message-passing layers (MRConv, GLICAttention, WeightedConv).
- :mod:`pyg_glic.nn.blocks`: blocks on ``(B, C, H, W)`` maps (Grapher, FFN, GraphStage).
- :mod:`pyg_glic.nn.dense`: dense reference implementations, for tests and benchmarks.
- :mod:`pyg_glic.nn.functional`: the sparse attention core and per-edge products.
- :mod:`pyg_glic.nn.wavelet`: the auxiliary wavelet transform (AuxT: Haar DWT, WLS/iWLS).
"""
from . import blocks, conv, dense, functional
from .blocks import FFN, GatedFFN, GLICStage, GraphAttentionBlock, Grapher, GraphStage
from .conv import GLICAttention, GraphAttention, MRConv, WeightedConv
from .wavelet import (InverseWaveletScaling, OrthoLinear, WaveletAnalysis, WaveletScaling,
                      WaveletSynthesis, haar_dwt, haar_idwt, orthogonality_loss)

__all__ = ["conv", "blocks", "dense", "functional",
           "MRConv", "GLICAttention", "GraphAttention", "WeightedConv",
           "Grapher", "FFN", "GatedFFN", "GraphAttentionBlock", "GraphStage", "GLICStage"]
__all__ += ["wavelet", "haar_dwt", "haar_idwt", "OrthoLinear", "WaveletScaling",
            "InverseWaveletScaling", "WaveletAnalysis", "WaveletSynthesis", "orthogonality_loss"]
