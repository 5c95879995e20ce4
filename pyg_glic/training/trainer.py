r"""The training loop behind ``pyg-glic train``.

CompressAI's usual recipe: random crops, ``loss = lambda * 255^2 * MSE + bpp``
(:class:`~pyg_glic.training.loss.RDLoss`) with Adam on every parameter but the
entropy bottlenecks' quantiles, which a second Adam trains on the auxiliary
loss; gradient clipping. On top of it, each piece switchable:

- **variable rate**: a model with ``levels`` (``glic-lite``) draws one level per
  batch and trains it with that level's lambda (:data:`pyg_glic.zoo.QUALITY_LAMBDAS`);
- **learning rate**: a linear warm-up, then ``"step"`` (multiplied by ``lr_gamma``
  at each milestone), ``"drop"`` (one drop to ``lr_min`` at ``lr_drop_at``, the
  published GLIC recipe) or ``"cosine"`` (cosine decay to ``lr_min`` at the end);
- **late large crops**: from ``late_from`` on, crops of ``late_crop_size`` in
  batches of ``late_batch_size`` (published: 512x512 at batch 2 for the last 15%);
- **EMA**: an exponential moving average of the weights, evaluated and exported
  instead of the raw weights;
- **orthogonality**: the wavelet branch's penalty with weight ``ortho_weight``.

On CUDA the transforms run under autocast (bf16 by default, or fp16 with a
gradient scaler) while the entropy models stay in fp32. Under ``torchrun`` the
model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` and
each rank draws its own share of every epoch (:class:`EpochSampler`); only rank
0 logs, evaluates, checkpoints and exports. SIGTERM and SIGINT end a run cleanly
after the current step with a whole checkpoint (``--stop-at`` does the same at a
given step), so a long run can be continued with ``--resume``.

The file reads top-down like CompressAI's ``examples/train.py``: settings, the
schedule, optimisers, one stretch of steps, validation, the run.

Settings resolve in this order: given explicitly > recorded in the checkpoint
being resumed > :data:`DEFAULTS`.
"""
from __future__ import annotations

import bisect
import contextlib
import copy
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..zoo import QUALITY_LAMBDAS, is_variable_rate
from . import distributed as D
from .checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from .data import EpochSampler, ImageFolder, InputError, _mix, find_images, image_size, read_rgb
from .loss import RDLoss, keep_entropy_models_fp32, psnr_from_mse
from .models import (aux_parameter_names, build_model, export_weights, is_glic,
                     load_weights_into, model_names, split_parameters)

#: Settings that fall back to the checkpoint (on resume), then to these values.
DEFAULTS: Dict[str, object] = dict(
    config="glic-lite", quality=3, lmbda=None, crop_size=256, small="upscale", flips=True,
    batch_size=8, lr=1e-4, aux_lr=1e-3, lr_schedule="step", lr_milestones=[0.8, 0.95],
    lr_gamma=0.1, lr_min=1e-5, lr_drop_at=0.83, warmup=0, late_crop_size=None,
    late_batch_size=None, late_from=None, ema_decay=0.0, ortho_weight=0.1,
    clip_max_norm=1.0, amp="auto", workers=4, seed=0, val_every=5000, val_max_images=None,
    checkpoint_every=1000, log_every=50, find_unused_parameters=False, cache_images=False,
)
#: Settings a resumed run may not change (use ``--init-from`` to start a new run).
MUST_MATCH = ("config", "quality", "lmbda")
AMP_MODES = ("auto", "none", "bf16", "fp16")
LR_SCHEDULES = ("step", "drop", "cosine")
MAX_BAD_STEPS = 100


@dataclass
class TrainConfig:
    r"""Everything ``pyg-glic train`` takes. ``None`` means "unset" (see :data:`DEFAULTS`)."""

    train_dirs: Sequence[str] = ()
    out: Optional[str] = None
    steps: Optional[int] = None
    epochs: Optional[int] = None
    stop_at: Optional[int] = None
    val_dirs: Sequence[str] = ()
    resume: Optional[str] = None
    init_from: Optional[str] = None
    export: Optional[str] = None
    force: bool = False
    device: Optional[str] = None
    progress: bool = True
    config: Optional[str] = None
    quality: Optional[int] = None
    lmbda: Optional[float] = None
    crop_size: Optional[int] = None
    small: Optional[str] = None
    flips: Optional[bool] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    aux_lr: Optional[float] = None
    lr_schedule: Optional[str] = None
    lr_milestones: Optional[List[float]] = None
    lr_gamma: Optional[float] = None
    lr_min: Optional[float] = None
    lr_drop_at: Optional[float] = None
    warmup: Optional[int] = None
    late_crop_size: Optional[int] = None
    late_batch_size: Optional[int] = None
    late_from: Optional[float] = None
    ema_decay: Optional[float] = None
    ortho_weight: Optional[float] = None
    clip_max_norm: Optional[float] = None
    amp: Optional[str] = None
    workers: Optional[int] = None
    seed: Optional[int] = None
    val_every: Optional[int] = None
    val_max_images: Optional[int] = None
    checkpoint_every: Optional[int] = None
    log_every: Optional[int] = None
    find_unused_parameters: Optional[bool] = None
    cache_images: Optional[bool] = None


# --------------------------------------------------------------------------- settings

def resolve_settings(cfg: TrainConfig, saved: Optional[Dict] = None) -> Dict:
    r"""Concrete settings: explicit > ``saved`` (a resumed checkpoint's args) > defaults."""
    saved = saved or {}
    s: Dict = {}
    for key, default in DEFAULTS.items():
        given = getattr(cfg, key)
        if given is not None:
            if key in MUST_MATCH and key in saved and saved[key] is not None \
                    and given != saved[key]:
                raise InputError(f"--{key.replace('_', '-')} {given} differs from the "
                                 f"checkpoint's {saved[key]}; a resumed run keeps its model "
                                 f"and lambda (use --init-from to start a new run from it)")
            s[key] = given
        elif key in saved:
            s[key] = saved[key]
        else:
            s[key] = default
    if s["lmbda"] is None:
        if s["quality"] not in QUALITY_LAMBDAS:
            raise InputError(f"quality must be one of {sorted(QUALITY_LAMBDAS)}, "
                             f"got {s['quality']}")
        s["lmbda"] = QUALITY_LAMBDAS[s["quality"]]
    s["train_dirs"] = [os.fspath(d) for d in (cfg.train_dirs or saved.get("train_dirs") or [])]
    s["val_dirs"] = [os.fspath(d) for d in (cfg.val_dirs or saved.get("val_dirs") or [])]
    _check_settings(s)
    return s


def _is_fraction_or_step(m) -> bool:
    return isinstance(m, (int, float)) and m > 0 and (m < 1 or float(m).is_integer())


def _check_settings(s: Dict) -> None:
    def bad(msg):
        raise InputError(msg)

    if s["config"] not in model_names():
        bad(f"unknown model {s['config']!r}; expected one of {model_names()}")
    if s["quality"] not in QUALITY_LAMBDAS:
        bad(f"quality must be one of {sorted(QUALITY_LAMBDAS)}, got {s['quality']}")
    if not (isinstance(s["lmbda"], (int, float)) and math.isfinite(s["lmbda"])
            and s["lmbda"] > 0):
        bad(f"lambda must be a positive number, got {s['lmbda']}")
    for key in ("crop_size", "late_crop_size"):
        v = s[key]
        if v is not None and (v < 64 or v % 64):
            bad(f"{key.replace('_', '-')} must be a positive multiple of 64, got {v}")
    for key in ("batch_size", "val_every", "checkpoint_every", "log_every"):
        if s[key] < 1:
            bad(f"{key.replace('_', '-')} must be at least 1, got {s[key]}")
    if s["late_batch_size"] is not None and s["late_batch_size"] < 1:
        bad(f"late-batch-size must be at least 1, got {s['late_batch_size']}")
    if s["late_from"] is not None and not _is_fraction_or_step(s["late_from"]):
        bad(f"late-from is a fraction in (0, 1) of the run or a whole step number, "
            f"got {s['late_from']}")
    if (s["late_crop_size"] is not None or s["late_batch_size"] is not None) \
            and s["late_from"] is None:
        bad("--late-crop-size/--late-batch-size need --late-from (when the phase starts)")
    if s["workers"] < 0:
        bad(f"workers must be 0 or more, got {s['workers']}")
    if s["warmup"] < 0:
        bad(f"warmup must be 0 or more steps, got {s['warmup']}")
    if s["val_max_images"] is not None and s["val_max_images"] < 1:
        bad(f"val-max-images must be at least 1, got {s['val_max_images']}")
    for key in ("lr", "aux_lr", "lr_gamma", "lr_min"):
        if not (math.isfinite(s[key]) and s[key] > 0):
            bad(f"{key.replace('_', '-')} must be a positive number, got {s[key]}")
    if s["lr_schedule"] not in LR_SCHEDULES:
        bad(f"lr-schedule must be one of {LR_SCHEDULES}, got {s['lr_schedule']!r}")
    if not _is_fraction_or_step(s["lr_drop_at"]):
        bad(f"lr-drop-at is a fraction in (0, 1) of the run or a whole step number, "
            f"got {s['lr_drop_at']}")
    if not (0.0 <= s["ema_decay"] < 1.0):
        bad(f"ema-decay must lie in [0, 1) (0 = off), got {s['ema_decay']}")
    if not (math.isfinite(s["ortho_weight"]) and s["ortho_weight"] >= 0):
        bad(f"ortho-weight must be 0 (off) or positive, got {s['ortho_weight']}")
    if not (math.isfinite(s["clip_max_norm"]) and s["clip_max_norm"] >= 0):
        bad(f"clip-max-norm must be 0 (off) or positive, got {s['clip_max_norm']}")
    for m in s["lr_milestones"]:
        if not _is_fraction_or_step(m):
            bad(f"learning-rate milestones are fractions in (0, 1) of the run or whole "
                f"step numbers, got {m}")
    if s["amp"] not in AMP_MODES:
        bad(f"amp must be one of {AMP_MODES}, got {s['amp']!r}")
    if s["small"] not in ("upscale", "pad"):
        bad(f"small must be 'upscale' or 'pad', got {s['small']!r}")
    if not s["train_dirs"]:
        bad("no training folder given")


# --------------------------------------------------------------------------- schedule

def _as_step(m: float, total_steps: int) -> int:
    return max(1, int(round(m * total_steps))) if m < 1 else int(m)


def milestone_steps(milestones: Sequence[float], total_steps: int) -> List[int]:
    r"""Milestones as step numbers: a value in ``(0, 1)`` is a fraction of the run."""
    return sorted(_as_step(m, total_steps) for m in milestones)


def lr_at(step: int, base_lr: float, milestones: Sequence[int], gamma: float) -> float:
    r"""The ``"step"`` schedule: ``base_lr * gamma ** (milestones passed)``."""
    return base_lr * gamma ** bisect.bisect_right(sorted(milestones), step)


def learning_rate(step: int, s: Dict, total: int) -> float:
    r"""The learning rate of optimizer step ``step`` (0-based) of a ``total``-step run.

    A linear warm-up over the first ``s["warmup"]`` steps (from ``lr / warmup``),
    then the schedule ``s["lr_schedule"]``: ``"step"`` (:func:`lr_at` at the
    milestones), ``"drop"`` (``lr`` until ``lr_drop_at``, then ``lr_min``) or
    ``"cosine"`` (from ``lr`` after the warm-up to ``lr_min`` at the last step).
    """
    lr, warm = s["lr"], int(s["warmup"])
    if step < warm:
        return lr * (step + 1) / warm
    kind = s["lr_schedule"]
    if kind == "step":
        return lr_at(step, lr, milestone_steps(s["lr_milestones"], total), s["lr_gamma"])
    if kind == "drop":
        return lr if step < _as_step(s["lr_drop_at"], total) else s["lr_min"]
    span = max(1, total - 1 - warm)
    t = min(1.0, (step - warm) / span)
    return s["lr_min"] + 0.5 * (lr - s["lr_min"]) * (1 + math.cos(math.pi * t))


@dataclass(frozen=True)
class Phase:
    r"""A stretch of a run with one crop size and batch size: steps ``[start, end)``."""

    start: int
    end: int
    crop_size: int
    batch_size: int


def phases(s: Dict, total: int) -> List[Phase]:
    r"""The run's phases: the main one, and the late large-crop one if configured."""
    if s["late_from"] is None:
        return [Phase(0, total, s["crop_size"], s["batch_size"])]
    start = min(total, _as_step(s["late_from"], total))
    late = Phase(start, total, s["late_crop_size"] or s["crop_size"],
                 s["late_batch_size"] or s["batch_size"])
    return [p for p in (Phase(0, start, s["crop_size"], s["batch_size"]), late)
            if p.end > p.start]


def level_of_step(step: int, seed: int, levels: int) -> int:
    r"""The rate level (1..levels) a variable-rate run trains at ``step``: drawn
    uniformly, from ``(seed, step)`` alone, so a resumed run draws the same."""
    return random.Random(_mix(seed, step, 3)).randint(1, levels)


# --------------------------------------------------------------------------- optimisers

class WeightEMA:
    r"""An exponential moving average of a model's floating-point state.

    After each optimizer step, ``ema <- d * ema + (1 - d) * w`` with
    ``d = min(decay, (1 + n) / (10 + n))`` (``n`` updates so far: timm's warm-up,
    so early averages are not dominated by the initialisation). Integer buffers
    (the entropy coder's tables) are taken from the model when the average is read.
    """

    def __init__(self, model: torch.nn.Module, decay: float, state: Optional[Dict] = None,
                 updates: int = 0):
        self.decay = float(decay)
        self.updates = int(updates)
        live = model.state_dict()
        self.keys = [k for k, v in live.items() if v.is_floating_point()]
        if state is not None:
            self.shadow = {k: state[k].detach().to(live[k].device, torch.float32).clone()
                           for k in self.keys}
        else:
            self.shadow = {k: live[k].detach().float().clone() for k in self.keys}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        live = model.state_dict()
        torch._foreach_lerp_([self.shadow[k] for k in self.keys],
                             [live[k].detach().float() for k in self.keys], 1.0 - d)
        self.updates += 1

    def state_dict_for(self, model: torch.nn.Module) -> Dict:
        r"""The model's state dict with the averaged floating-point entries."""
        live = model.state_dict()
        return {k: (self.shadow[k].to(v.dtype) if k in self.shadow else v)
                for k, v in live.items()}

    def averaged_copy(self, model: torch.nn.Module) -> torch.nn.Module:
        net = copy.deepcopy(model)
        net.load_state_dict(self.state_dict_for(model))
        return net


def configure_optimizers(model: torch.nn.Module, s: Dict):
    r"""``(main_params, aux_params, optimizer, aux_optimizer)``: Adam on every
    parameter but the entropy bottlenecks' quantiles, a second Adam on those.

    (Adam's ``fused`` and ``foreach`` kernels were measured on this project's CPU
    and gave nothing, so the default implementation is kept.)"""
    main_params, aux_params = split_parameters(model)
    optimizer = torch.optim.Adam(main_params, lr=s["lr"])
    aux_optimizer = torch.optim.Adam(aux_params, lr=s["aux_lr"])
    return main_params, aux_params, optimizer, aux_optimizer


def resolve_amp(amp: str, device: torch.device) -> str:
    r"""``"auto"`` is bf16 on CUDA devices that support it, else no autocast."""
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "none"
    return amp


def _export_path(export: Optional[str], config: str, quality: Optional[int]) -> Optional[Path]:
    if export is None:
        return None
    p = Path(export)
    if p.is_dir():
        name = config.replace("/", "+")
        p = p / (f"{name}.pt" if quality is None else f"{name}-q{quality}.pt")
    return p


# --------------------------------------------------------------------------- validation

@torch.no_grad()
def evaluate_estimate(model, files: Sequence, device: torch.device, lmbda: float,
                      multiple: int = 64, quality: Optional[float] = None) -> Dict:
    r"""Likelihood-estimate rate and PSNR on full images (no bitstreams).

    Each image is padded (edge-replicated) to a multiple of ``multiple`` for the
    forward pass, the reconstruction cropped back and rounded to 8 bits; bpp is
    the estimated bits over the original pixels. ``quality`` is passed to a
    variable-rate model. Returns the means over images.
    """
    net = getattr(model, "module", model)
    was_training = net.training
    net.eval()
    kw = {} if quality is None else {"quality": quality}
    bpps, psnrs, losses = [], [], []
    try:
        for f in files:
            im = read_rgb(f)
            x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
            x = x[None].float().div(255).to(device)
            H, W = x.shape[-2:]
            ph, pw = (-H) % multiple, (-W) % multiple
            xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
            out = net(xp, **kw)
            bits = sum(float((-torch.log2(v.float())).sum()) for v in out["likelihoods"].values())
            x_hat = out["x_hat"][..., :H, :W].float().clamp(0, 1).mul(255).round().div(255)
            mse = float((x_hat - x).pow(2).mean())
            bpp = bits / (H * W)
            bpps.append(bpp)
            psnrs.append(psnr_from_mse(mse))
            losses.append(lmbda * 255 ** 2 * mse + bpp)
    finally:
        net.train(was_training)
    n = len(bpps)
    return {"images": n, "bpp": sum(bpps) / n, "psnr": sum(psnrs) / n, "loss": sum(losses) / n}


def validate(model, files: Sequence, device: torch.device, s: Dict,
             levels: Optional[int]) -> Dict:
    r"""The held-out evaluation of a run: one quality for a fixed-rate model; for a
    variable-rate one each level, with the mean loss over levels as ``loss``."""
    if not levels:
        return evaluate_estimate(model, files, device, s["lmbda"])
    per = {}
    for q in range(1, levels + 1):
        per[q] = evaluate_estimate(model, files, device, QUALITY_LAMBDAS[q], quality=q)
    n = len(per)
    return {"images": per[1]["images"], "levels": {str(q): r for q, r in per.items()},
            "bpp": sum(r["bpp"] for r in per.values()) / n,
            "psnr": sum(r["psnr"] for r in per.values()) / n,
            "loss": sum(r["loss"] for r in per.values()) / n}


# --------------------------------------------------------------------------- training

def _log(msg: str, ctx: D.DistContext) -> None:
    if ctx.is_main:
        print(msg, file=sys.stderr, flush=True)


def _prepare_out(out: Path, resuming: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if not resuming and (out / "checkpoint.pt").exists():
        raise InputError(f"{out} already holds a run (checkpoint.pt); resume it with "
                         f"--resume {out / 'checkpoint.pt'} or choose another --out")
    if not out.parent.resolve().is_dir():
        raise InputError(f"the folder {out.parent} does not exist")


class _StopSignals:
    r"""SIGTERM/SIGINT set a flag (the run stops after the current step) instead of
    killing the process; the previous handlers come back on exit. Main thread only."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._old: Dict[int, object] = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def train(cfg: TrainConfig) -> Dict:
    r"""Run (or resume) a training run; returns a summary dict.

    Raises:
        InputError: a bad input (checked before anything is written).
    """
    if cfg.resume and cfg.init_from:
        raise InputError("--resume and --init-from exclude each other")
    if cfg.steps is not None and cfg.epochs is not None:
        raise InputError("give --steps or --epochs, not both")
    ckpt = load_checkpoint(cfg.resume) if cfg.resume else None
    saved = ckpt["args"] if ckpt else None
    s = resolve_settings(cfg, saved)
    if cfg.steps is None and cfg.epochs is None:
        if saved is None:
            raise InputError("give the length of the run with --steps or --epochs")
        steps, epochs = saved.get("steps"), None
    else:
        steps, epochs = cfg.steps, cfg.epochs
    if steps is not None and steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    if epochs is not None and epochs < 1:
        raise InputError(f"epochs must be at least 1, got {epochs}")
    if cfg.stop_at is not None and cfg.stop_at < 1:
        raise InputError(f"stop-at must be a step number of at least 1, got {cfg.stop_at}")

    variable = is_glic(s["config"]) and is_variable_rate(s["config"])
    qname = None if variable else s["quality"]
    out = Path(cfg.out) if cfg.out else (
        Path(ckpt["path"]).parent if ckpt else
        Path("runs") / (s["config"].replace("/", "+") + ("" if variable else f"-q{s['quality']}")))
    _prepare_out(out, resuming=ckpt is not None)
    export = _export_path(cfg.export, s["config"], qname)
    if export is not None:
        if not export.parent.resolve().is_dir() and export.parent.resolve() != out.resolve():
            raise InputError(f"the export folder {export.parent} does not exist")
        if export.exists() and not cfg.force:
            raise InputError(f"{export} exists; use --force to overwrite it")

    try:
        ctx = D.setup(cfg.device)
    except (ValueError, RuntimeError) as e:
        raise InputError(f"device: {e}") from None
    try:
        with _StopSignals() as stop:
            return _train(cfg, s, ckpt, steps, epochs, out, export, ctx, stop)
    finally:
        D.teardown(ctx)


@dataclass
class _RunState:
    r"""What one stretch of steps reads and updates."""

    step: int
    total: int
    stop: int
    acc: torch.Tensor
    acc_n: int = 0
    bad_run: int = 0
    bad_total: int = 0
    last_train: Dict = field(default_factory=dict)
    last_val: Optional[Dict] = None
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0


def _train(cfg, s, ckpt, steps, epochs, out: Path, export, ctx: D.DistContext,
           stop_signals: _StopSignals) -> Dict:
    device = ctx.device
    amp = resolve_amp(s["amp"], device)
    val_files = find_images(s["val_dirs"]) if s["val_dirs"] else []
    for f in val_files:
        image_size(f)
    if s["val_max_images"]:
        val_files = val_files[: s["val_max_images"]]
    # Every image is opened here, before anything is written (a bad one stops the run).
    first = ImageFolder(s["train_dirs"], crop_size=s["crop_size"], small=s["small"],
                        flips=s["flips"], cache=bool(s["cache_images"]))
    spe = EpochSampler(len(first), s["batch_size"], s["seed"], ctx.rank,
                       ctx.world_size).steps_per_epoch
    total = steps if steps is not None else epochs * spe
    stop_at = min(total, cfg.stop_at) if cfg.stop_at is not None else total

    # Model: the same initialisation on every rank (DDP also broadcasts rank 0's).
    torch.manual_seed(s["seed"])
    model = build_model(s["config"], s["quality"])
    levels = getattr(model, "levels", None)
    init_info = None
    if cfg.init_from:
        init_info = load_weights_into(model, cfg.init_from, s["config"])
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    model.to(device)
    if device.type == "cpu":
        # oneDNN's convolutions run faster on channels-last maps (and the graph
        # stages' node views of them are free): 0.79x the step (benchmarks/training).
        model.to(memory_format=torch.channels_last)
    if amp != "none":
        keep_entropy_models_fp32(model, device.type)
    main_params, aux_params, optimizer, aux_optimizer = configure_optimizers(model, s)
    scaler = torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))
    ema = None
    st = _RunState(step=0, total=total, stop=stop_at, acc=torch.zeros(5, device=device))
    if ckpt is not None:
        st.step = int(ckpt["step"])
        optimizer.load_state_dict(ckpt["optimizer"])
        aux_optimizer.load_state_dict(ckpt["aux_optimizer"])
        if ckpt.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        st.cpu_seconds = float(ckpt.get("cpu_seconds") or 0.0)
        st.wall_seconds = float(ckpt.get("wall_seconds") or 0.0)
        st.last_val = (ckpt.get("metrics") or {}).get("val")
    if s["ema_decay"] > 0:
        saved_ema = ckpt.get("ema") if ckpt is not None else None
        ema = WeightEMA(model, s["ema_decay"], state=saved_ema,
                        updates=int(ckpt.get("ema_updates") or 0) if saved_ema else 0)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(st.step, s, total)
        group["initial_lr"] = s["lr"]

    # Random state: exact continuation for one process; per-rank seeds otherwise.
    if ckpt is not None and ctx.world_size == 1 and ckpt.get("rng"):
        set_rng_state(ckpt["rng"])
    else:
        torch.manual_seed(_mix(s["seed"], ctx.rank, st.step, 1))
        random.seed(_mix(s["seed"], ctx.rank, st.step, 2))

    net = _wrap_ddp(model, aux_params, s, device, ctx)
    plan = phases(s, total)
    settings = dict(s, steps=total, epochs=epochs, steps_per_epoch=spe,
                    milestone_steps=milestone_steps(s["lr_milestones"], total),
                    phases=[vars(p) for p in plan], variable_rate=levels is not None,
                    levels=levels, amp_resolved=amp, world_size=ctx.world_size,
                    out=os.fspath(out),
                    init_from=os.fspath(cfg.init_from) if cfg.init_from else None)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "args.json").write_text(json.dumps(settings, indent=2) + "\n")
    metrics_file = out / "metrics.jsonl"
    ckpt_path = out / "checkpoint.pt"

    def write_metrics(record: Dict) -> None:
        if ctx.is_main:
            with open(metrics_file, "a") as f:
                f.write(json.dumps(record) + "\n")

    rate = (f"variable rate ({levels} levels, lambda {QUALITY_LAMBDAS[1]}..{QUALITY_LAMBDAS[6]})"
            if levels else f"q{s['quality']} (lambda {s['lmbda']})")
    _log(f"training {s['config']} {rate} on {s['train_dirs']}, {ctx.world_size} process(es), "
         f"{' then '.join(f'{p.end - p.start} steps of {p.batch_size}x{p.crop_size}' for p in plan)}"
         f" ({total} steps in all, {spe} per epoch), lr {s['lr']} {s['lr_schedule']} (warm-up {s['warmup']}), "
         f"ema {s['ema_decay'] or 'off'}, device {device}, amp {amp}"
         + (f", resumed at step {st.step}" if ckpt is not None else "")
         + (f", stopping at step {stop_at}" if stop_at < total else "")
         + (f", initialised from {cfg.init_from}" if init_info else ""), ctx)

    bar = None
    if ctx.is_main and cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=st.step, unit="step", dynamic_ncols=True,
                   desc=s["config"])

    def eval_model():
        return ema.averaged_copy(model) if ema is not None else model

    def run_val() -> Optional[Dict]:
        if not val_files:
            return None
        r = None
        if ctx.is_main:
            r = validate(eval_model(), val_files, device, s, levels)
            r["step"] = st.step
            r["weights"] = "ema" if ema is not None else "raw"
            write_metrics({"step": st.step, "val": r})
            msg = (f"step {st.step}: validation on {r['images']} images: bpp {r['bpp']:.4f}, "
                   f"PSNR {r['psnr']:.2f} dB, loss {r['loss']:.4f}")
            (bar.write(msg, file=sys.stderr) if bar else _log(msg, ctx))
        D.barrier(ctx)
        return r

    def checkpoint() -> None:
        if ctx.is_main:
            save_checkpoint(ckpt_path, model=model, optimizer=optimizer,
                            aux_optimizer=aux_optimizer,
                            scheduler={"kind": s["lr_schedule"],
                                       "lr": optimizer.param_groups[0]["lr"]},
                            scaler=scaler, step=st.step, args=settings,
                            metrics={"train": st.last_train, "val": st.last_val},
                            extra={"ema": ema.shadow if ema is not None else None,
                                   "ema_updates": ema.updates if ema is not None else 0,
                                   "cpu_seconds": st.cpu_seconds,
                                   "wall_seconds": st.wall_seconds})

    if amp == "none":
        autocast = contextlib.nullcontext
    else:
        amp_dtype = torch.bfloat16 if amp == "bf16" else torch.float16

        def autocast():
            return torch.autocast(device.type, dtype=amp_dtype)

    hooks = dict(write_metrics=write_metrics, run_val=run_val, checkpoint=checkpoint,
                 bar=bar, autocast=autocast, stop_signals=stop_signals)
    net.train()
    for i, phase in enumerate(plan):
        if st.step >= min(phase.end, st.stop) or stop_signals.signum is not None:
            continue
        dataset = first if phase.crop_size == s["crop_size"] else ImageFolder(
            s["train_dirs"], crop_size=phase.crop_size, small=s["small"], flips=s["flips"],
            cache=bool(s["cache_images"]))
        sampler = EpochSampler(len(dataset), phase.batch_size, _mix(s["seed"], i, 0, 4)
                               if i else s["seed"], ctx.rank, ctx.world_size)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=phase.batch_size, sampler=sampler, num_workers=s["workers"],
            pin_memory=device.type == "cuda", drop_last=False,
            persistent_workers=s["workers"] > 0)
        train_stretch(net, model, loader, sampler, phase, st, s, levels, ema,
                      (main_params, aux_params, optimizer, aux_optimizer, scaler), ctx, hooks)

    if bar is not None:
        bar.close()
    D.check_in_sync(model, ctx)
    interrupted = stop_signals.signum
    finished = st.step >= total
    if finished and val_files and (st.last_val is None or st.last_val.get("step") != st.step):
        st.last_val = run_val() or st.last_val
    checkpoint()
    if ctx.is_main and export is not None and finished:
        export_weights(eval_model(), export, s["config"], None if levels else s["quality"])
        _log(f"exported fp16 {'EMA ' if ema is not None else ''}weights to {export}", ctx)
    D.barrier(ctx)
    how = ("done" if finished else
           f"stopped by signal {interrupted}" if interrupted else f"paused at step {st.step}")
    _log(f"{how}: step {st.step}, checkpoint {ckpt_path}", ctx)
    return {"step": st.step, "out": out, "checkpoint": ckpt_path,
            "export": export if finished else None, "train": st.last_train,
            "val": st.last_val, "skipped_steps": st.bad_total, "settings": settings,
            "rank": ctx.rank, "interrupted": interrupted, "finished": finished,
            "cpu_seconds": st.cpu_seconds}


def _wrap_ddp(model, aux_params, s, device, ctx):
    if not ctx.distributed:
        return model
    import inspect

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    ignore = aux_parameter_names(model)
    DDP._set_params_and_buffers_to_ignore_for_model(model, ignore)
    for p in aux_params:  # DDP does not sync what it ignores
        dist.broadcast(p.data, 0)
    sync = ("forward_sync_buffers" if "forward_sync_buffers"
            in inspect.signature(DDP.__init__).parameters else "broadcast_buffers")
    # Buffers are the entropy models' tables: not updated while training.
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
               find_unused_parameters=bool(s["find_unused_parameters"]), **{sync: False})


def train_stretch(net, model, loader, sampler, phase: Phase, st: _RunState, s: Dict,
                  levels: Optional[int], ema: Optional[WeightEMA], optim, ctx, hooks) -> None:
    r"""Optimizer steps from ``st.step`` to the end of ``phase`` (or ``st.stop``, or a
    stop signal): forward, rate-distortion (+ orthogonality) loss, clipped step,
    auxiliary step, EMA update; logs, validates and checkpoints on schedule."""
    main_params, aux_params, optimizer, aux_optimizer, scaler = optim
    criterion = RDLoss(s["lmbda"])
    clip = s["clip_max_norm"] if s["clip_max_norm"] > 0 else float("inf")
    ortho_w = s["ortho_weight"] if hasattr(model, "ortho_loss") else 0.0
    bar, stop_signals = hooks["bar"], hooks["stop_signals"]
    end = min(phase.end, st.stop)
    spe = sampler.steps_per_epoch
    while st.step < end and stop_signals.signum is None:
        epoch, offset = divmod(st.step - phase.start, spe)
        sampler.set_epoch(epoch, offset)
        t0, c0 = time.time(), time.process_time()
        for x in loader:
            x = x.to(device=ctx.device, non_blocking=True)
            if ctx.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            lr = learning_rate(st.step, s, st.total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            kw, lmbda = {}, s["lmbda"]
            if levels:
                q = level_of_step(st.step, s["seed"], levels)
                kw, lmbda = {"quality": q}, QUALITY_LAMBDAS[q]
            optimizer.zero_grad(set_to_none=True)
            with hooks["autocast"]():
                output = net(x, **kw)
            losses = criterion(output, x, lmbda=lmbda)
            loss = losses["loss"]
            ortho = model.ortho_loss() if ortho_w > 0 else loss.new_zeros(())
            if ortho_w > 0:
                loss = loss + ortho_w * ortho
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            norm = torch.nn.utils.clip_grad_norm_(main_params, clip)
            finite = bool(torch.isfinite(norm))
            if scaler.is_enabled():
                scaler.step(optimizer)  # skips the step itself on inf/nan
                scaler.update()
            elif finite:
                optimizer.step()
            if not finite:
                st.bad_run, st.bad_total = st.bad_run + 1, st.bad_total + 1
                if st.bad_run >= MAX_BAD_STEPS:
                    raise RuntimeError(f"{st.bad_run} steps in a row had non-finite gradients "
                                       f"(step {st.step}); the run diverged")
            else:
                st.bad_run = 0

            aux_optimizer.zero_grad(set_to_none=True)
            aux_loss = model.aux_loss()
            aux_loss.backward()
            D.average_gradients(aux_params, ctx)
            aux_optimizer.step()
            if ema is not None and finite:
                ema.update(model)
            st.step += 1
            t1, c1 = time.time(), time.process_time()
            st.wall_seconds += t1 - t0
            st.cpu_seconds += c1 - c0
            t0, c0 = t1, c1

            st.acc += torch.stack([losses["loss"].detach(), losses["bpp_loss"].detach(),
                                   losses["mse_loss"].detach(), aux_loss.detach(),
                                   ortho.detach()]).float()
            st.acc_n += 1
            if st.step % s["log_every"] == 0 or st.step == end:
                _log_train(st, optimizer, epoch, ctx, hooks)
            if bar is not None:
                bar.update(1)
            if st.step % s["val_every"] == 0 and st.step < st.total:
                st.last_val = hooks["run_val"]() or st.last_val
            if st.step % s["checkpoint_every"] == 0 and st.step < end:
                hooks["checkpoint"]()
            if st.step >= end or stop_signals.signum is not None:
                break


def _log_train(st: _RunState, optimizer, epoch: int, ctx, hooks) -> None:
    if ctx.distributed:  # the mean over all ranks' batches
        import torch.distributed as dist

        dist.all_reduce(st.acc)
        st.acc /= ctx.world_size
    v = (st.acc / max(st.acc_n, 1)).tolist()
    st.last_train = {"loss": v[0], "bpp": v[1], "mse": v[2], "psnr": psnr_from_mse(v[2]),
                     "aux": v[3], "ortho": v[4], "lr": optimizer.param_groups[0]["lr"]}
    hooks["write_metrics"]({"step": st.step, "epoch": epoch, "time": st.wall_seconds,
                            "cpu_seconds": st.cpu_seconds, "skipped": st.bad_total,
                            **st.last_train})
    bar = hooks["bar"]
    if bar is not None:
        bar.set_postfix(loss=f"{v[0]:.4f}", bpp=f"{v[1]:.4f}",
                        psnr=f"{st.last_train['psnr']:.2f}", lr=f"{st.last_train['lr']:.1e}")
    st.acc.zero_()
    st.acc_n = 0
