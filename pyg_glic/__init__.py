r"""pyg_glic: sparse graph layers for learned image compression and vision GNNs, on PyG.

Subpackages: :mod:`~pyg_glic.convert` (feature maps <-> graphs),
:mod:`~pyg_glic.graph` (graph construction), :mod:`~pyg_glic.nn` (layers and
blocks), :mod:`~pyg_glic.ops` (k-NN and scatter backends); imported on demand:
:mod:`~pyg_glic.models` (GLIC codec, ViG backbones; imports CompressAI),
:mod:`~pyg_glic.zoo`, :mod:`~pyg_glic.codec`, :mod:`~pyg_glic.cli`.

The GLIC architecture is registered with CompressAI's zoo and evaluator
(``compressai.zoo.image_models``, ``compressai.zoo.image.model_architectures``)
when :mod:`pyg_glic.zoo` is imported, and already on ``import pyg_glic`` if
CompressAI's zoo was imported before (so importing pyg_glic alone stays free of
CompressAI); see :func:`pyg_glic.zoo.register_compressai`.
"""
import sys as _sys

__version__ = "0.1.0"

from . import convert, graph, nn, ops, typing  # noqa: E402

if "compressai.zoo" in _sys.modules:
    from . import zoo as _zoo  # noqa: E402,F401  (registers GLIC with CompressAI)

__all__ = ["__version__", "convert", "graph", "nn", "ops", "typing"]
