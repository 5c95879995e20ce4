r"""Neural-network layers of pyg_glic.

- :mod:`pyg_glic.nn.conv`: message-passing layers (MRConv, GLICAttention, WeightedConv).
- :mod:`pyg_glic.nn.blocks`: blocks on ``(B, C, H, W)`` maps (Grapher, FFN, GLICStage).
- :mod:`pyg_glic.nn.dense`: dense reference implementations, for tests and benchmarks.
- :mod:`pyg_glic.nn.attention`: graph attention (the contract, its executors, the
  dispatcher and the execution switches of :mod:`pyg_glic.nn.attention.backend`).
- :mod:`pyg_glic.nn.offsets`, :mod:`pyg_glic.nn.segment`: relative offsets of the
  position bias; the CSR max-aggregation of MRConv.
- :mod:`pyg_glic.nn.edge_index`: graphs as PyG's ``EdgeIndex`` sorted by target (what
  the layers' fast paths read; how a plain ``edge_index`` is sorted for them).
- :mod:`pyg_glic.nn.functional`, :mod:`pyg_glic.nn.policy`, :mod:`pyg_glic.nn.kernels`:
  deprecated re-exports of the above, kept for one release.
- :mod:`pyg_glic.nn.wavelet`: the auxiliary wavelet transform (AuxT: Haar DWT, WLS/iWLS).
"""
from .._deprecated import deprecated_names
from . import attention, blocks, conv, dense, edge_index, functional, offsets, segment
from .blocks import FFN, GatedFFN, GLICStage, GraphAttentionBlock, Grapher
from .conv import GLICAttention, MRConv, WeightedConv
from .wavelet import (InverseWaveletScaling, OrthoLinear, WaveletAnalysis, WaveletScaling,
                      WaveletSynthesis, haar_dwt, haar_idwt, orthogonality_loss)

__all__ = ["attention", "conv", "blocks", "dense", "edge_index", "functional", "offsets",
           "segment",
           "MRConv", "GLICAttention", "WeightedConv",
           "Grapher", "FFN", "GatedFFN", "GraphAttentionBlock", "GLICStage"]
__all__ += ["wavelet", "haar_dwt", "haar_idwt", "OrthoLinear", "WaveletScaling",
            "InverseWaveletScaling", "WaveletAnalysis", "WaveletSynthesis", "orthogonality_loss"]

__getattr__ = deprecated_names(__name__, GraphStage=("GLICStage", GLICStage),
                               GraphAttention=("GLICAttention", GLICAttention))
