r"""Models built from pyg_glic's graph layers: the GLIC codec and ViG backbones."""
from .glic import CONFIGS as GLIC_CONFIGS
from .glic import GLIC, glic_model
from .vig import PyramidViG, ViG, create_model, list_models

__all__ = ["GLIC", "GLIC_CONFIGS", "glic_model", "ViG", "PyramidViG", "create_model",
           "list_models"]
