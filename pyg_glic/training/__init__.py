r"""Training GLIC codecs (and CompressAI peers) with CompressAI's recipe.

- :mod:`~pyg_glic.training.data`: image folders -> deterministic random crops.
- :mod:`~pyg_glic.training.trainer`: the loop (``pyg-glic train``), single process
  or data-parallel under ``torchrun``.
- :mod:`~pyg_glic.training.models`: what can be trained, exported weights.
- :mod:`~pyg_glic.training.checkpoint`: atomic checkpoints for ``--resume``.

See ``docs/TRAINING.md``.
"""
from .checkpoint import atomic_save, load_checkpoint, save_checkpoint
from .data import IMAGE_SUFFIXES, EpochSampler, ImageFolder, InputError, find_images
from .loss import RDLoss, keep_entropy_models_fp32
from .models import (PEERS, LoadedModel, build_model, export_state, export_weights,
                     load_model_file, model_names, split_parameters)
from .trainer import DEFAULTS, TrainConfig, evaluate_estimate, train

__all__ = [
    "IMAGE_SUFFIXES", "EpochSampler", "ImageFolder", "InputError", "find_images",
    "RDLoss", "keep_entropy_models_fp32",
    "PEERS", "LoadedModel", "build_model", "export_state", "export_weights", "load_model_file",
    "model_names", "split_parameters",
    "atomic_save", "load_checkpoint", "save_checkpoint",
    "DEFAULTS", "TrainConfig", "evaluate_estimate", "train",
]
