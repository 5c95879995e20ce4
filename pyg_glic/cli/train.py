r"""``pyg-glic train``: train a GLIC codec (or a CompressAI peer) on image folders.

Single process: ``pyg-glic train DIR... --steps N``. Data-parallel:
``torchrun --nproc_per_node=8 -m pyg_glic train DIR... --steps N``. See
``docs/TRAINING.md``.
"""
from __future__ import annotations

import sys

from ..zoo import QUALITY_LAMBDAS
from . import COMMANDS


def add_parser(sub) -> None:
    from ..training.models import model_names
    from ..training.trainer import AMP_MODES, DEFAULTS, LR_SCHEDULES

    d = DEFAULTS
    p = sub.add_parser(
        "train", help=COMMANDS["train"][1],
        description="Train a GLIC codec, or a CompressAI peer with the same recipe, on "
                    "random crops of the images under the given folders. Settings not "
                    "given come from the checkpoint being resumed, else the defaults shown.")
    p.add_argument("train_dirs", nargs="*", metavar="DIR",
                   help="folders of training images (.jpg/.jpeg/.png, searched recursively); "
                        "optional with --resume")
    p.add_argument("-o", "--out", metavar="RUNDIR",
                   help="run folder for checkpoint.pt, metrics.jsonl and args.json "
                        "(default runs/{config}-q{quality}; with --resume the checkpoint's folder)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="length of the run in optimizer steps")
    g.add_argument("--epochs", type=int, help="length of the run in epochs (an epoch is "
                   "images // (batch size x processes) steps)")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="stop at this step with a whole checkpoint (the schedule stays that of "
                        "the whole run); continue later with --resume")
    p.add_argument("-c", "--config", choices=model_names(),
                   help=f"model (default {d['config']}); 'mbt2018-mean' is CompressAI's "
                        f"conv peer at the zoo size for the quality")
    p.add_argument("-q", "--quality", type=int, choices=sorted(QUALITY_LAMBDAS),
                   help=f"quality level; sets lambda from pyg_glic.zoo.QUALITY_LAMBDAS "
                        f"(default {d['quality']}); a variable-rate model (glic-lite) "
                        f"trains every level, one drawn per batch")
    p.add_argument("--lmbda", type=float, help="override lambda (loss = lambda*255^2*MSE + bpp)")
    p.add_argument("--batch-size", type=int,
                   help=f"crops per step per process (default {d['batch_size']})")
    p.add_argument("--crop-size", type=int,
                   help=f"side of the random crops, a multiple of 64 (default {d['crop_size']})")
    p.add_argument("--small", choices=("upscale", "pad"),
                   help="images smaller than the crop are upscaled (bicubic, default) or "
                        "edge-padded")
    p.add_argument("--no-flips", dest="flips", action="store_const", const=False,
                   help="no random horizontal/vertical flips")
    p.add_argument("--cache-images", action="store_const", const=True,
                   help="keep decoded training images in memory (per loader worker); for "
                        "small sets, where decoding limits the step rate")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default {d['lr']})")
    p.add_argument("--aux-lr", type=float,
                   help=f"learning rate of the auxiliary (quantiles) Adam (default {d['aux_lr']})")
    p.add_argument("--lr-milestones", type=float, nargs="+", metavar="M",
                   help="steps where the rate is multiplied by --lr-gamma: fractions in (0, 1) "
                        "of the run or whole step numbers (default 0.8 0.95)")
    p.add_argument("--lr-gamma", type=float, help=f"rate factor per milestone (default {d['lr_gamma']})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                   help="step: x lr-gamma at each milestone (default); drop: one drop to "
                        "--lr-min at --lr-drop-at (the published GLIC recipe); cosine: "
                        "cosine decay to --lr-min at the last step")
    p.add_argument("--lr-min", type=float,
                   help=f"final rate of the drop and cosine schedules (default {d['lr_min']})")
    p.add_argument("--lr-drop-at", type=float, metavar="F",
                   help=f"where the drop schedule drops: a fraction of the run or a step "
                        f"(default {d['lr_drop_at']}, as 500 of the published 600 epochs)")
    p.add_argument("--warmup", type=int, metavar="STEPS",
                   help="linear learning-rate warm-up over the first STEPS steps (default 0)")
    p.add_argument("--late-crop-size", type=int,
                   help="crop size of the late phase (published: 512 from epoch 510 of 600)")
    p.add_argument("--late-batch-size", type=int, help="batch size of the late phase")
    p.add_argument("--late-from", type=float, metavar="F",
                   help="start of the late phase: a fraction of the run or a step")
    p.add_argument("--ema-decay", type=float,
                   help="keep an exponential moving average of the weights with this decay "
                        "(e.g. 0.999; 0 = off, default); it is what validation and "
                        "--export use")
    p.add_argument("--ortho-weight", type=float,
                   help=f"weight of the wavelet branch's orthogonality penalty in the loss "
                        f"(default {d['ortho_weight']}, published)")
    p.add_argument("--clip-max-norm", type=float,
                   help=f"gradient clipping norm, 0 for none (default {d['clip_max_norm']})")
    p.add_argument("--amp", choices=AMP_MODES,
                   help="autocast precision: auto = bf16 on CUDA, none on the CPU (default); "
                        "fp16 uses a gradient scaler; entropy models always run in fp32")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda if available; under "
                                    "torchrun cuda:LOCAL_RANK)")
    p.add_argument("--workers", type=int, help=f"data-loader processes (default {d['workers']})")
    p.add_argument("--seed", type=int, help=f"seed of the data order, crops and init (default {d['seed']})")
    p.add_argument("--val", dest="val_dirs", action="append", metavar="DIR",
                   help="held-out folder evaluated on full images (likelihood bpp, PSNR); "
                        "repeatable")
    p.add_argument("--val-every", type=int, help=f"steps between evaluations (default {d['val_every']})")
    p.add_argument("--val-max-images", type=int, help="evaluate on the first N held-out images")
    p.add_argument("--checkpoint-every", type=int,
                   help=f"steps between checkpoints (default {d['checkpoint_every']})")
    p.add_argument("--log-every", type=int,
                   help=f"steps between progress/metrics updates (default {d['log_every']})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue a run from its checkpoint.pt (or run folder)")
    g.add_argument("--init-from", metavar="FILE",
                   help="start from these weights (checkpoint or exported file of the same "
                        "model), with a fresh optimizer and this run's lambda")
    p.add_argument("--export", metavar="PATH",
                   help="write the final weights as an fp16 state dict with '_hparams' (the "
                        "zoo format; a folder gets {config}-q{quality}.pt)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing --export file")
    p.add_argument("--find-unused-parameters", action="store_const", const=True,
                   help="DistributedDataParallel(find_unused_parameters=True), for models with "
                        "parameters outside the loss")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (metrics.jsonl is still written; there is no bar "
                        "either when standard error is not a terminal)")
    p.set_defaults(run=run)


def config_from_args(args):
    from ..training.trainer import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    kw = {k: v for k, v in vars(args).items() if k in fields}
    kw["progress"] = bool(args.progress and sys.stderr.isatty())
    kw["train_dirs"] = list(args.train_dirs or [])
    kw["val_dirs"] = list(args.val_dirs or [])
    return TrainConfig(**kw)


def run(args) -> int:
    from ..training.data import InputError
    from ..training.trainer import train

    try:
        summary = train(config_from_args(args))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if summary.get("rank", 0) != 0:
        return 128 + summary["interrupted"] if summary.get("interrupted") else 0
    t = summary.get("train") or {}
    line = f"step {summary['step']}: checkpoint {summary['checkpoint']}"
    if t:
        line += f" (loss {t['loss']:.4f}, bpp {t['bpp']:.4f}, PSNR {t['psnr']:.2f} dB)"
    print(line)
    if summary.get("export"):
        print(f"weights: {summary['export']}")
    if summary.get("interrupted"):
        return 128 + int(summary["interrupted"])
    return 0
