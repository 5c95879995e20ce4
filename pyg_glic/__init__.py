r"""pyg_glic: sparse graph layers for learned image compression and vision GNNs, on PyG.

Subpackages: :mod:`~pyg_glic.convert` (feature maps <-> graphs),
:mod:`~pyg_glic.graph` (graph construction), :mod:`~pyg_glic.nn` (layers and
blocks), :mod:`~pyg_glic.ops` (k-NN and scatter backends); imported on demand:
:mod:`~pyg_glic.models` (GLIC codec, ViG backbones; imports CompressAI),
:mod:`~pyg_glic.zoo`, :mod:`~pyg_glic.codec`, :mod:`~pyg_glic.cli`.
"""
__version__ = "0.1.0"

from . import convert, graph, nn, ops, typing  # noqa: E402

__all__ = ["__version__", "convert", "graph", "nn", "ops", "typing"]
