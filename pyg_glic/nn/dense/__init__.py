r"""Dense reference implementations, written the way the published code runs.

Each function takes the sparse layer it mirrors and reuses its parameters, so a
test or a benchmark can hold the two side by side:

- ViG: neighbours gathered into ``(B, C, N, k)`` through a dense ``(B, N, k)``
  index (:func:`pyg_glic.convert.edge_index_to_knn_index`), reduced with max.
- GLIC: attention over all ``K`` candidates of each block of ``Q`` queries
  (:class:`pyg_glic.graph.base.CandidateBlocks`), non-edges masked.
"""
from .glic import dense_attention_blocks, dense_glic_attention
from .vig import dense_mr_conv, dense_weighted_conv, gather_neighbors

__all__ = ["dense_mr_conv", "dense_weighted_conv", "gather_neighbors",
           "dense_glic_attention", "dense_attention_blocks"]
