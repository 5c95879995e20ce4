r"""pyg_glic: sparse graph layers for learned image compression and vision GNNs, on PyG.

Subpackages, each imported on first use: :mod:`~pyg_glic.convert` (feature maps
<-> graphs), :mod:`~pyg_glic.graph` (graph construction), :mod:`~pyg_glic.nn`
(layers and blocks), :mod:`~pyg_glic.ops` (k-NN and scatter backends),
:mod:`~pyg_glic.models` (GLIC codec, ViG backbones; imports CompressAI),
:mod:`~pyg_glic.zoo`, :mod:`~pyg_glic.codec`, :mod:`~pyg_glic.cli`.

The GLIC architecture is registered with CompressAI's zoo and evaluator
(``compressai.zoo.image_models``, ``compressai.zoo.image.model_architectures``)
when :mod:`pyg_glic.zoo` is imported, and already on ``import pyg_glic`` if
CompressAI's zoo was imported before (so importing pyg_glic alone stays free of
CompressAI); see :func:`pyg_glic.zoo.register_compressai`.
"""
import importlib as _importlib
import sys as _sys

__version__ = "0.1.0"

#: Subpackages and modules, imported on first use (``pyg_glic.graph``,
#: ``from pyg_glic import nn``): ``import pyg_glic`` itself loads neither torch nor
#: PyG, so the command line answers ``--help`` and ``--version`` at once.
_SUBMODULES = ("bitstream", "cli", "codec", "convert", "evaluation", "graph", "models", "nn",
               "ops", "training", "typing", "utils", "zoo")


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'pyg_glic' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))


if "compressai.zoo" in _sys.modules:
    from . import zoo as _zoo  # noqa: E402,F401  (registers GLIC with CompressAI)

__all__ = ["__version__", "convert", "graph", "nn", "ops", "typing"]
