r"""The training loop behind ``pyg-glic train``.

CompressAI's usual recipe: random crops, ``loss = lambda * 255^2 * MSE + bpp``
(:class:`~pyg_glic.training.loss.RDLoss`) with Adam on every parameter but the
entropy bottlenecks' quantiles, which a second Adam trains on the auxiliary
loss; gradient clipping; the learning rate multiplied by ``lr_gamma`` at each
milestone. On CUDA the transforms run under autocast (bf16 by default, or fp16
with a gradient scaler) while the entropy models stay in fp32. Under ``torchrun``
the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` and
each rank draws its own share of every epoch (:class:`EpochSampler`); only rank
0 logs, evaluates, checkpoints and exports.

Settings resolve in this order: given explicitly > recorded in the checkpoint
being resumed > :data:`DEFAULTS`.
"""
from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..zoo import QUALITY_LAMBDAS
from . import distributed as D
from .checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from .data import EpochSampler, ImageFolder, InputError, _mix, find_images, image_size, read_rgb
from .loss import RDLoss, keep_entropy_models_fp32, psnr_from_mse
from .models import (aux_parameter_names, build_model, export_weights, load_weights_into,
                     model_names, split_parameters)

#: Settings that fall back to the checkpoint (on resume), then to these values.
DEFAULTS: Dict[str, object] = dict(
    config="glic-lite", quality=3, lmbda=None, crop_size=256, small="upscale", flips=True,
    batch_size=8, lr=1e-4, aux_lr=1e-3, lr_milestones=[0.8, 0.95], lr_gamma=0.1,
    clip_max_norm=1.0, amp="auto", workers=4, seed=0, val_every=5000, val_max_images=None,
    checkpoint_every=1000, log_every=50, find_unused_parameters=False, cache_images=False,
)
#: Settings a resumed run may not change (use ``--init-from`` to start a new run).
MUST_MATCH = ("config", "quality", "lmbda")
AMP_MODES = ("auto", "none", "bf16", "fp16")
MAX_BAD_STEPS = 100


@dataclass
class TrainConfig:
    r"""Everything ``pyg-glic train`` takes. ``None`` means "unset" (see :data:`DEFAULTS`)."""

    train_dirs: Sequence[str] = ()
    out: Optional[str] = None
    steps: Optional[int] = None
    epochs: Optional[int] = None
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
    lr_milestones: Optional[List[float]] = None
    lr_gamma: Optional[float] = None
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
    if s["crop_size"] < 64 or s["crop_size"] % 64:
        bad(f"crop size must be a positive multiple of 64, got {s['crop_size']}")
    for key in ("batch_size", "val_every", "checkpoint_every", "log_every"):
        if s[key] < 1:
            bad(f"{key.replace('_', '-')} must be at least 1, got {s[key]}")
    if s["workers"] < 0:
        bad(f"workers must be 0 or more, got {s['workers']}")
    if s["val_max_images"] is not None and s["val_max_images"] < 1:
        bad(f"val-max-images must be at least 1, got {s['val_max_images']}")
    for key in ("lr", "aux_lr", "lr_gamma"):
        if not (math.isfinite(s[key]) and s[key] > 0):
            bad(f"{key.replace('_', '-')} must be a positive number, got {s[key]}")
    if not (math.isfinite(s["clip_max_norm"]) and s["clip_max_norm"] >= 0):
        bad(f"clip-max-norm must be 0 (off) or positive, got {s['clip_max_norm']}")
    for m in s["lr_milestones"]:
        if not (m > 0 and (m < 1 or float(m).is_integer())):
            bad(f"learning-rate milestones are fractions in (0, 1) of the run or whole "
                f"step numbers, got {m}")
    if s["amp"] not in AMP_MODES:
        bad(f"amp must be one of {AMP_MODES}, got {s['amp']!r}")
    if s["small"] not in ("upscale", "pad"):
        bad(f"small must be 'upscale' or 'pad', got {s['small']!r}")
    if not s["train_dirs"]:
        bad("no training folder given")


def milestone_steps(milestones: Sequence[float], total_steps: int) -> List[int]:
    r"""Milestones as step numbers: a value in ``(0, 1)`` is a fraction of the run."""
    out = []
    for m in milestones:
        out.append(max(1, int(round(m * total_steps))) if m < 1 else int(m))
    return sorted(out)


def lr_at(step: int, base_lr: float, milestones: Sequence[int], gamma: float) -> float:
    return base_lr * gamma ** bisect.bisect_right(sorted(milestones), step)


def resolve_amp(amp: str, device: torch.device) -> str:
    r"""``"auto"`` is bf16 on CUDA devices that support it, else no autocast."""
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "none"
    return amp


def _export_path(export: Optional[str], config: str, quality: int) -> Optional[Path]:
    if export is None:
        return None
    p = Path(export)
    if p.is_dir():
        p = p / f"{config}-q{quality}.pt"
    return p


# --------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate_estimate(model, files: Sequence, device: torch.device, lmbda: float,
                      multiple: int = 64) -> Dict:
    r"""Likelihood-estimate rate and PSNR on full images (no bitstreams).

    Each image is padded (edge-replicated) to a multiple of ``multiple`` for the
    forward pass, the reconstruction cropped back and rounded to 8 bits; bpp is
    the estimated bits over the original pixels. Returns the means over images.
    """
    net = getattr(model, "module", model)
    was_training = net.training
    net.eval()
    bpps, psnrs, losses = [], [], []
    try:
        for f in files:
            im = read_rgb(f)
            x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
            x = x[None].float().div(255).to(device)
            H, W = x.shape[-2:]
            ph, pw = (-H) % multiple, (-W) % multiple
            xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
            out = net(xp)
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

    out = Path(cfg.out) if cfg.out else (Path(ckpt["path"]).parent if ckpt
                                         else Path("runs") / f"{s['config']}-q{s['quality']}")
    _prepare_out(out, resuming=ckpt is not None)
    export = _export_path(cfg.export, s["config"], s["quality"])
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
        return _train(cfg, s, ckpt, steps, epochs, out, export, ctx)
    finally:
        D.teardown(ctx)


def _train(cfg, s, ckpt, steps, epochs, out: Path, export, ctx: D.DistContext) -> Dict:
    device = ctx.device
    amp = resolve_amp(s["amp"], device)
    dataset = ImageFolder(s["train_dirs"], crop_size=s["crop_size"], small=s["small"],
                          flips=s["flips"], cache=bool(s["cache_images"]))
    val_files = find_images(s["val_dirs"]) if s["val_dirs"] else []
    for f in val_files:
        image_size(f)
    if s["val_max_images"]:
        val_files = val_files[: s["val_max_images"]]
    sampler = EpochSampler(len(dataset), s["batch_size"], s["seed"], ctx.rank, ctx.world_size)
    spe = sampler.steps_per_epoch
    total = steps if steps is not None else epochs * spe
    milestones = milestone_steps(s["lr_milestones"], total)

    # Model: the same initialisation on every rank (DDP also broadcasts rank 0's).
    torch.manual_seed(s["seed"])
    model = build_model(s["config"], s["quality"])
    init_info = None
    if cfg.init_from:
        init_info = load_weights_into(model, cfg.init_from, s["config"])
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    model.to(device)
    if amp != "none":
        keep_entropy_models_fp32(model, device.type)
    main_params, aux_params = split_parameters(model)
    optimizer = torch.optim.Adam(main_params, lr=s["lr"])
    aux_optimizer = torch.optim.Adam(aux_params, lr=s["aux_lr"])
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, s["lr_gamma"])
    scaler = torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))
    step = 0
    if ckpt is not None:
        step = int(ckpt["step"])
        optimizer.load_state_dict(ckpt["optimizer"])
        aux_optimizer.load_state_dict(ckpt["aux_optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
    # The schedule follows this run's length and rate (they may differ on resume).
    scheduler.milestones = Counter(milestones)
    scheduler.base_lrs = [s["lr"]]
    scheduler.gamma = s["lr_gamma"]
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, s["lr"], milestones, s["lr_gamma"])
        group["initial_lr"] = s["lr"]
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]

    # Random state: exact continuation for one process; per-rank seeds otherwise.
    if ckpt is not None and ctx.world_size == 1 and ckpt.get("rng"):
        set_rng_state(ckpt["rng"])
    else:
        torch.manual_seed(_mix(s["seed"], ctx.rank, step, 1))
        random.seed(_mix(s["seed"], ctx.rank, step, 2))

    net = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP
        import torch.distributed as dist

        ignore = aux_parameter_names(model)
        DDP._set_params_and_buffers_to_ignore_for_model(model, ignore)
        for p in aux_params:  # DDP does not sync what it ignores
            dist.broadcast(p.data, 0)
        import inspect

        sync = ("forward_sync_buffers" if "forward_sync_buffers"
                in inspect.signature(DDP.__init__).parameters else "broadcast_buffers")
        # Buffers are the entropy models' tables: not updated while training.
        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                  find_unused_parameters=bool(s["find_unused_parameters"]), **{sync: False})

    criterion = RDLoss(s["lmbda"])
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=s["batch_size"], sampler=sampler, num_workers=s["workers"],
        pin_memory=device.type == "cuda", drop_last=False,
        persistent_workers=s["workers"] > 0)

    settings = dict(s, steps=total, epochs=epochs, steps_per_epoch=spe,
                    milestone_steps=milestones, amp_resolved=amp,
                    world_size=ctx.world_size, out=os.fspath(out),
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

    _log(f"training {s['config']} q{s['quality']} (lambda {s['lmbda']}) on {len(dataset)} "
         f"images, {ctx.world_size} process(es) x batch {s['batch_size']}, crop "
         f"{s['crop_size']}, {total} steps ({spe} per epoch), device {device}, amp {amp}"
         + (f", resumed at step {step}" if ckpt is not None else "")
         + (f", initialised from {cfg.init_from}" if init_info else ""), ctx)

    if amp == "none":
        autocast = contextlib.nullcontext
    else:
        amp_dtype = torch.bfloat16 if amp == "bf16" else torch.float16

        def autocast():
            return torch.autocast(device.type, dtype=amp_dtype)

    bar = None
    if ctx.is_main and cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True,
                   desc=f"{s['config']} q{s['quality']}")
    clip = s["clip_max_norm"] if s["clip_max_norm"] > 0 else float("inf")
    acc = torch.zeros(4, device=device)  # loss, bpp, mse, aux
    acc_n, bad_run, bad_total = 0, 0, 0
    last_val, last_train = None, {}
    t_start = time.time()

    def run_val() -> Optional[Dict]:
        if not val_files:
            return None
        r = None
        if ctx.is_main:
            r = evaluate_estimate(model, val_files, device, s["lmbda"])
            r["step"] = step
            write_metrics({"step": step, "val": r})
            msg = (f"step {step}: validation on {r['images']} images: bpp {r['bpp']:.4f}, "
                   f"PSNR {r['psnr']:.2f} dB, loss {r['loss']:.4f}")
            (bar.write(msg, file=sys.stderr) if bar else _log(msg, ctx))
        D.barrier(ctx)
        return r

    def checkpoint() -> None:
        if ctx.is_main:
            save_checkpoint(ckpt_path, model=model, optimizer=optimizer,
                            aux_optimizer=aux_optimizer, scheduler=scheduler, scaler=scaler,
                            step=step, args=settings,
                            metrics={"train": last_train, "val": last_val})

    net.train()
    while step < total:
        epoch, offset = divmod(step, spe)
        sampler.set_epoch(epoch, offset)
        for x in loader:
            x = x.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                output = net(x)
            losses = criterion(output, x)
            scaler.scale(losses["loss"]).backward()
            scaler.unscale_(optimizer)
            norm = torch.nn.utils.clip_grad_norm_(main_params, clip)
            finite = bool(torch.isfinite(norm))
            if scaler.is_enabled():
                scaler.step(optimizer)  # skips the step itself on inf/nan
                scaler.update()
            elif finite:
                optimizer.step()
            if not finite:
                bad_run, bad_total = bad_run + 1, bad_total + 1
                if bad_run >= MAX_BAD_STEPS:
                    raise RuntimeError(f"{bad_run} steps in a row had non-finite gradients "
                                       f"(step {step}); the run diverged")
            else:
                bad_run = 0

            aux_optimizer.zero_grad(set_to_none=True)
            aux_loss = model.aux_loss()
            aux_loss.backward()
            D.average_gradients(aux_params, ctx)
            aux_optimizer.step()
            scheduler.step()
            step += 1

            acc += torch.stack([losses["loss"].detach(), losses["bpp_loss"].detach(),
                                losses["mse_loss"].detach(), aux_loss.detach()]).float()
            acc_n += 1
            if step % s["log_every"] == 0 or step == total:
                if ctx.distributed:  # the mean over all ranks' batches
                    import torch.distributed as dist

                    dist.all_reduce(acc)
                    acc /= ctx.world_size
                v = (acc / acc_n).tolist()
                last_train = {"loss": v[0], "bpp": v[1], "mse": v[2],
                              "psnr": psnr_from_mse(v[2]), "aux": v[3],
                              "lr": optimizer.param_groups[0]["lr"]}
                write_metrics({"step": step, "epoch": epoch, "time": time.time() - t_start,
                               "skipped": bad_total, **last_train})
                if bar is not None:
                    bar.set_postfix(loss=f"{v[0]:.4f}", bpp=f"{v[1]:.4f}",
                                    psnr=f"{last_train['psnr']:.2f}", lr=f"{last_train['lr']:.1e}")
                acc.zero_()
                acc_n = 0
            if bar is not None:
                bar.update(1)
            if step % s["val_every"] == 0 and step < total:
                last_val = run_val() or last_val
            if step % s["checkpoint_every"] == 0 and step < total:
                checkpoint()
            if step >= total:
                break

    if bar is not None:
        bar.close()
    D.check_in_sync(model, ctx)
    if val_files and (last_val is None or last_val.get("step") != step):
        last_val = run_val() or last_val
    checkpoint()
    if ctx.is_main and export is not None:
        export_weights(model, export, s["config"], s["quality"])
        _log(f"exported fp16 weights to {export}", ctx)
    D.barrier(ctx)
    _log(f"done: step {step}, checkpoint {ckpt_path}", ctx)
    return {"step": step, "out": out, "checkpoint": ckpt_path, "export": export,
            "train": last_train, "val": last_val, "skipped_steps": bad_total,
            "settings": settings, "rank": ctx.rank}
