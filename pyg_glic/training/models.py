r"""The models the trainer builds, and the weight files it reads and writes.

Two families train with the same script: GLIC configurations
(:data:`pyg_glic.models.glic.CONFIGS`) and CompressAI convolutional peers
(:data:`PEERS`, e.g. ``"mbt2018-mean"``), so that a peer can be trained with the
same data, steps and schedule.

File formats:

- **training checkpoint** (:func:`pyg_glic.training.checkpoint.save_checkpoint`):
  ``{"format": "pyg_glic-checkpoint", "model": fp32 state dict, "args": {...},
  "step", optimizers, scheduler, ...}``.
- **exported weights** (:func:`export_weights`): the model's state dict in fp16
  with an ``"_hparams"`` entry: for GLIC exactly
  :meth:`GLIC.state_dict_with_config` (what ``pyg_glic.zoo`` loads from
  ``zoo/weights/{config}.pt`` for a variable-rate model, ``{config}-q{quality}.pt``
  for a fixed-rate one); for a peer
  ``{"config": "mbt2018-mean", "quality": q}``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import nn

from ..models.glic import CONFIGS, GLIC, glic_model
from ..zoo import DERIVED_BUFFERS
from .data import InputError

CHECKPOINT_FORMAT = "pyg_glic-checkpoint"


def _mbt2018_mean(quality: int) -> nn.Module:
    from compressai.zoo import mbt2018_mean

    return mbt2018_mean(quality=quality, pretrained=False)


def _mbt2018_mean_n128(quality: int) -> nn.Module:
    from compressai.models import MeanScaleHyperprior

    del quality  # one size at every quality
    return MeanScaleHyperprior(N=128, M=192)


#: CompressAI peers: name -> factory(quality) of an untrained model.
#: ``mbt2018-mean`` follows CompressAI's zoo sizes (q1-4: N=128, M=192; q5-6:
#: N=192, M=320); ``mbt2018-mean-n128`` keeps N=128, M=192 at every quality,
#: so that, like ``glic-lite``, every quality can fine-tune from one run
#: (``--init-from`` a ``mbt2018-mean`` q1-4 run works: same architecture).
PEERS: Dict[str, Callable[[int], nn.Module]] = {"mbt2018-mean": _mbt2018_mean,
                                                "mbt2018-mean-n128": _mbt2018_mean_n128}


def model_names():
    r"""Every name :func:`build_model` accepts."""
    return sorted(CONFIGS) + sorted(PEERS)


def is_glic(config: str) -> bool:
    return config in CONFIGS


def build_model(config: str, quality: int) -> nn.Module:
    r"""An untrained model: a GLIC configuration or a CompressAI peer.

    The quality only changes the architecture for peers (CompressAI's zoo sizes);
    GLIC's architecture is the same at every quality.
    """
    if config in CONFIGS:
        return glic_model(config)
    if config in PEERS:
        net = PEERS[config](quality)
        net._pyg_glic_config = config
        return net
    raise InputError(f"unknown model {config!r}; expected one of {model_names()}")


def model_config(model: nn.Module) -> Optional[str]:
    r"""The configuration name of a model built by :func:`build_model`, if known."""
    model = getattr(model, "module", model)
    if isinstance(model, GLIC):
        return model.config
    return getattr(model, "_pyg_glic_config", None)


def split_parameters(model: nn.Module):
    r"""``(main, aux)`` parameter lists, CompressAI's usual split.

    ``aux`` are the entropy bottlenecks' ``quantiles`` (trained by the auxiliary
    loss only); ``main`` is every other trainable parameter.
    """
    main, aux = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (aux if name.endswith(".quantiles") else main).append(p)
    return main, aux


def aux_parameter_names(model: nn.Module):
    return [n for n, p in model.named_parameters() if n.endswith(".quantiles")]


def _to_fp32(state: Dict) -> Dict:
    return {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
            for k, v in state.items()}


def export_state(model: nn.Module, config: str, quality: int) -> Dict:
    r"""The exported form: fp16 floating tensors on the CPU plus ``"_hparams"``.

    The entropy coder's tables that CompressAI's ``update()`` derives from the
    weights (:data:`pyg_glic.zoo.DERIVED_BUFFERS`: 4 MB of int32 CDFs for
    glic-lite, a third of its file) are stored empty, as an untrained model has
    them; every loader rebuilds them with ``update(force=True)`` before coding
    (the zoo does so on load), and the weights fingerprint never included them.
    """
    model = getattr(model, "module", model)
    if isinstance(model, GLIC):
        sd = model.state_dict_with_config()
    else:
        sd = dict(model.state_dict())
        sd["_hparams"] = {"config": config, "quality": int(quality)}
    out = {}
    for k, v in sd.items():
        if torch.is_tensor(v):
            v = v.detach().cpu()
            if v.is_floating_point():
                v = v.to(torch.float16)
            if k.rsplit(".", 1)[-1] in DERIVED_BUFFERS:
                v = v.new_empty(0)
        out[k] = v
    return out


def export_weights(model: nn.Module, path, config: str, quality: int) -> Path:
    r"""Write the model's weights as an fp16 state dict with ``"_hparams"``, atomically.

    For GLIC the file drops into ``pyg_glic/zoo/weights/{config}.pt`` (variable rate)
    or ``{config}-q{quality}.pt`` (fixed rate).
    """
    from .checkpoint import atomic_save

    path = Path(path)
    atomic_save(export_state(model, config, quality), path)
    return path


@dataclass
class LoadedModel:
    r"""A model read from a file by :func:`load_model_file`."""

    model: nn.Module
    config: str
    quality: Optional[int]
    kind: str  # "checkpoint", "checkpoint-ema" (the weight average) or "weights"
    path: Path
    step: Optional[int] = None


_Q_IN_NAME = re.compile(r"-q(\d+)(?:\.[^.]*)?$")


def _load_state(config: str, quality: Optional[int], state: Dict, path) -> nn.Module:
    state = _to_fp32(state)
    state.pop("_hparams", None)
    if config in CONFIGS:
        net = glic_model(config)
    elif config in PEERS:
        if quality is None:
            raise InputError(f"{path}: a {config} file must record its quality")
        net = PEERS[config](quality)
    else:
        raise InputError(f"{path}: unknown model {config!r}; expected one of {model_names()}")
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()
        raise InputError(f"{path}: the weights do not fit a {config} model "
                         f"({' '.join(first[:3])[:400]})") from None
    if not isinstance(net, GLIC):
        net._pyg_glic_config = config
    return net


def read_model_file(path, ema: bool = True) -> Tuple[str, Optional[int], Dict, str,
                                                    Optional[int]]:
    r"""``(config, quality, state dict, kind, step)`` of a checkpoint or weights file.

    For a checkpoint with a weight average (``--ema-decay``) the state dict holds
    the averaged weights unless ``ema=False``; ``kind`` is then ``"checkpoint-ema"``.

    Raises:
        InputError: the file is missing or is neither format.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such weights file: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"{p} is not a PyTorch weights file ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{p} does not hold a state dict")
    if obj.get("format") == CHECKPOINT_FORMAT:
        args = obj.get("args") or {}
        config, quality = args.get("config"), args.get("quality")
        state, kind = dict(obj["model"]), "checkpoint"
        if ema and isinstance(obj.get("ema"), dict):
            state.update(obj["ema"])
            kind = "checkpoint-ema"
        return config, quality, state, kind, obj.get("step")
    hp = obj.get("_hparams")
    if not isinstance(hp, dict) or not hp.get("config"):
        raise InputError(f"{p} is neither a pyg_glic training checkpoint nor an exported "
                         f"weights file (no '_hparams' with a 'config')")
    quality = hp.get("quality")
    if quality is None:
        m = _Q_IN_NAME.search(p.name)
        quality = int(m.group(1)) if m else None
    return hp["config"], quality, dict(obj), "weights", None


def load_model_file(path, ema: bool = True) -> LoadedModel:
    r"""A model from a training checkpoint or an exported weights file (CPU, fp32).

    The quality is read from the checkpoint's arguments, from ``"_hparams"`` (peers)
    or from a ``-q{N}`` suffix of the file name; ``None`` if none says.
    """
    config, quality, state, kind, step = read_model_file(path, ema=ema)
    net = _load_state(config, quality, state, path)
    return LoadedModel(net, config, quality, kind, Path(path), step)


def load_weights_into(model: nn.Module, path, config: str) -> Dict:
    r"""Load the weights of a checkpoint or weights file into ``model`` (for ``--init-from``).

    Returns:
        ``{"config", "quality", "kind", "step"}`` of the file.
    """
    file_config, quality, state, kind, step = read_model_file(path)
    if file_config != config and not (file_config in PEERS and config in PEERS):
        # Peers differ only in size: one of the same size loads (checked below).
        raise InputError(f"{path} holds a {file_config} model, not {config}")
    state = _to_fp32(state)
    state.pop("_hparams", None)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"{path}: the weights do not fit this {config} model "
                         f"({str(e).splitlines()[0][:300]})") from None
    return {"config": file_config, "quality": quality, "kind": kind, "step": step,
            "path": os.fspath(path)}
