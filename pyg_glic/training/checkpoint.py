r"""Training checkpoints, written atomically, and the random-number state they carry.

A checkpoint holds everything a run needs to continue where it stopped: the
model (fp32), both optimizers, the learning-rate scheduler, the fp16 gradient
scaler, the step, the random-number generators and the run's arguments.
"""
from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from ..utils.image import atomic_write
from .data import InputError
from .models import CHECKPOINT_FORMAT

CHECKPOINT_VERSION = 1


def atomic_save(obj: Any, path) -> None:
    r"""``torch.save(obj, path)`` through a temporary file in the same folder and a rename.

    A crash mid-write leaves the previous file (if any) intact and no partial file.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue(), force=True)


def rng_state() -> Dict[str, Any]:
    r"""The state of Python's, torch's CPU and (if used) CUDA generators."""
    state = {"python": random.getstate(), "torch": torch.random.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.random.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path, *, model, optimizer, aux_optimizer, scheduler, scaler, step: int,
                    args: Dict, metrics: Optional[Dict] = None,
                    extra: Optional[Dict] = None) -> None:
    r"""Write a training checkpoint atomically (``model`` unwrapped from DDP).

    ``scheduler`` is a learning-rate scheduler or a plain dict describing the
    schedule; ``extra`` entries (the weight average ``"ema"``, ``"cpu_seconds"``,
    ...) are stored at the top level.
    """
    model = getattr(model, "module", model)
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": int(step),
        "args": dict(args),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "aux_optimizer": aux_optimizer.state_dict(),
        "scheduler": scheduler if isinstance(scheduler, dict) else scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng_state(),
        "metrics": metrics or {},
        "torch_version": str(torch.__version__),
    }
    for k, v in (extra or {}).items():
        if k in state:
            raise ValueError(f"extra checkpoint entry {k!r} would overwrite a standard one")
        state[k] = ({n: t.detach().cpu() for n, t in v.items()} if isinstance(v, dict) else v)
    atomic_save(state, path)


def load_checkpoint(path) -> Dict:
    r"""A checkpoint written by :func:`save_checkpoint` (tensors on the CPU).

    Raises:
        InputError: the file is missing or not a pyg_glic training checkpoint.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.is_file():
        raise InputError(f"no such checkpoint: {p}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"{p} is not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{p} is not a pyg_glic training checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"{p}: checkpoint version {ckpt.get('version')} is not supported "
                         f"(expected {CHECKPOINT_VERSION})")
    ckpt["path"] = str(p)
    return ckpt
