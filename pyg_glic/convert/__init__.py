r"""Conversion between dense image feature maps and sparse graphs."""
from .adjacency import dense_to_edge_index, edge_index_to_dense
from .csr import (csr_to_edge_index, csr_to_neighbors, degree_to_ptr, edge_index_to_csr,
                  neighbors_to_csr)
from .feature_map import batch_to_map, grid_pos, map_to_batch, map_to_nodes, nodes_to_map
from .neighbors import edge_index_to_knn_index, knn_index_to_edge_index

__all__ = [
    "map_to_nodes", "nodes_to_map", "map_to_batch", "batch_to_map", "grid_pos",
    "knn_index_to_edge_index", "edge_index_to_knn_index",
    "dense_to_edge_index", "edge_index_to_dense",
    "neighbors_to_csr", "csr_to_neighbors", "edge_index_to_csr", "csr_to_edge_index",
    "degree_to_ptr",
]
