r"""Blocks on ``(B, C, H, W)`` maps: ViG's Grapher and FFN, GLIC's graph stage."""
from ._utils import DropPath, LayerNorm2d
from .ffn import FFN, GatedFFN
from ..._deprecated import deprecated_names
from .glic_stage import GLICStage, GraphAttentionBlock
from .grapher import CONVS, Grapher, make_conv

__all__ = ["Grapher", "FFN", "GatedFFN", "GraphAttentionBlock", "GLICStage",
           "DropPath", "LayerNorm2d", "make_conv", "CONVS"]

__getattr__ = deprecated_names(__name__, GraphStage=("GLICStage", GLICStage))
