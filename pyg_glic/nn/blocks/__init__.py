r"""Blocks on ``(B, C, H, W)`` maps: ViG's Grapher and FFN, GLIC's graph stage."""
from ._utils import DropPath, LayerNorm2d
from .ffn import FFN, GatedFFN
from .glic_stage import GLICStage, GraphAttentionBlock, GraphStage
from .grapher import CONVS, Grapher, make_conv

__all__ = ["Grapher", "FFN", "GatedFFN", "GraphAttentionBlock", "GraphStage", "GLICStage",
           "DropPath", "LayerNorm2d", "make_conv", "CONVS"]
