r"""Message-passing layers PyG lacks: ViG's max-relative convolution, GLIC's
cosine graph attention and an edge-weighted convolution for learned graphs.

For EdgeConv, GraphSAGE and GIN use PyG's :class:`~torch_geometric.nn.conv.EdgeConv`,
:class:`~torch_geometric.nn.conv.SAGEConv` and :class:`~torch_geometric.nn.conv.GINConv`
(:class:`~pyg_glic.nn.blocks.Grapher` builds them for ``conv="edge" | "sage" | "gin"``).
"""
from ..._deprecated import deprecated_names
from .glic_attention import GLICAttention
from .mr_conv import MRConv
from .weighted_conv import WeightedConv

__all__ = ["MRConv", "GLICAttention", "WeightedConv"]

__getattr__ = deprecated_names(__name__, GraphAttention=("GLICAttention", GLICAttention))
