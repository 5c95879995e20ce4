r"""Graph construction: where and how much to connect.

Every builder returns an :class:`ImageGraph` (edges sorted by target, CSR
``ptr``, ``(dy, dx)`` offsets, and, for the window / halo / global builders,
the :class:`CandidateBlocks` the edges were selected from).

=========================  ====================  ==========================  ============
builder                    candidates            k-NN backends               ``blocks``
=========================  ====================  ==========================  ============
:func:`window_graph`       own window            torch, torch_cluster        yes
:func:`halo_graph`         halo patch            torch, torch_cluster [1]_   yes
:func:`global_graph`       pooled view or        torch, torch_cluster [3]_   yes
                           strided lattice [4]_
:func:`knn_graph`          whole image           torch, torch_cluster        no
:class:`LearnableGraph`    any of the above      torch (threshold, no k-NN)  yes [2]_
=========================  ====================  ==========================  ============

The window, halo and global builders only lay out their candidates (query
blocks and the candidates each block shares); one routine picks the edges among
them, configured by :class:`SelectionOptions` (the keywords ``k``, ``adaptive``,
``similarity``, ``backend``, ``pos_weight``, ... they share). Each builder has a
Module form (:class:`WindowGraph`, :class:`HaloGraph`, :class:`GlobalGraph`,
:class:`DilatedKNNGraph`); ``KNNGraph`` is a deprecated alias of
:class:`DilatedKNNGraph` (it shadowed :class:`torch_geometric.transforms.KNNGraph`).

.. [1] via one batch id per window over per-window copies of the patch.
.. [2] except ``candidates="all"``.
.. [3] strided: via one batch id per query set over per-set copies of its lattice.
.. [4] ``candidates="strided"`` (GLIC's published layout): real nodes of a
   ``grid x grid`` lattice, ``edge_attr`` in lattice steps.
"""
from .._deprecated import deprecated_names as _deprecated_names
from .base import CandidateBlocks, ImageGraph
from .similarity import SIMILARITIES, pairwise_similarity
from .options import SelectionOptions
from .adaptive import allocate_degrees, complexity_map
from .downsample import pool_map, pooled_pos, pooled_size
from .window import WindowGraph, window_graph
from .halo import HaloGraph, halo_graph
from .global_ import GlobalGraph, global_graph
from .knn_graph import DilatedKNNGraph, knn_graph
from .lrgc import LearnableGraph
from .transform import ImageGraphTransform

__all__ = [
    "ImageGraph", "CandidateBlocks",
    "SIMILARITIES", "pairwise_similarity",
    "SelectionOptions",
    "complexity_map", "allocate_degrees",
    "pool_map", "pooled_pos", "pooled_size",
    "window_graph", "WindowGraph",
    "halo_graph", "HaloGraph",
    "global_graph", "GlobalGraph",
    "knn_graph", "DilatedKNNGraph",
    "LearnableGraph",
    "ImageGraphTransform",
]

# KNNGraph shadowed torch_geometric.transforms.KNNGraph: kept for one release
__getattr__ = _deprecated_names(__name__, KNNGraph=("pyg_glic.graph.DilatedKNNGraph (the old "
                                                   "name shadowed torch_geometric.transforms."
                                                   "KNNGraph)", DilatedKNNGraph))
