"""Train a tiny isotropic ViG on scikit-learn's bundled digits (no download).

    python examples/train_vig.py [--graph knn|lrgc|halo|global|dual] [--epochs N] [--quick]

The 1797 8x8 grayscale digits are upscaled to 32x32 (one channel); the stem
(two stride-2 convolutions) turns them into an 8x8 grid of 64 graph nodes.
A stratified fifth of the images is held out; accuracy on it is printed after
every epoch, and with ``--graph lrgc`` the mean degree that each layer's
learned threshold gives (out of 64 candidates per node). ``--quick`` runs a
few steps only (seconds), for the tests.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from pyg_glic.models.vig import GRAPHS, count_parameters, create_model


def load_data(img_size: int, val_fraction: float, seed: int):
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
    x = (x - 0.5) / 0.5
    y = torch.tensor(digits.target, dtype=torch.long)
    tr, va = train_test_split(torch.arange(len(y)).numpy(), test_size=val_fraction,
                              random_state=seed, stratify=y.numpy())
    return x[tr], y[tr], x[va], y[va]


@torch.no_grad()
def evaluate(model, x, y, batch_size: int) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(-1) == y[i:i + batch_size]).sum())
    return correct / max(len(y), 1)


def degrees(model) -> List[float]:
    return [round(s["mean_degree"], 1) for s in model.graph_stats()]


def main(argv: Optional[List[str]] = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", default="knn", choices=GRAPHS)
    p.add_argument("--conv", default=None, help="mr (default), edge, sage, gin, weighted")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--k", type=int, default=9, help="k-NN: first layer k (grows to 2k)")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (the tiny model runs fastest on one)")
    p.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    p.add_argument("--json", default=None, help="write the summary to this file")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> Dict:
    start = time.perf_counter()
    xtr, ytr, xva, yva = load_data(args.img_size, args.val_fraction, args.seed)
    epochs, steps = args.epochs, None
    if args.quick:
        epochs, steps = 1, 3
        xva, yva = xva[:64], yva[:64]
    model = create_model("vig_test", graph=args.graph, conv=args.conv, in_channels=1,
                         num_classes=10, channels=args.channels, depth=args.depth,
                         img_size=args.img_size, head_channels=64, k=args.k)
    print(f"ViG {args.channels}x{args.depth}, graph={args.graph}, conv={model.conv}: "
          f"{count_parameters(model) / 1e3:.1f} k parameters; {len(ytr)} train / "
          f"{len(yva)} held-out images; {torch.get_num_threads()} thread(s)")
    # timm's rule: no weight decay on biases, norms and scalars (LRGC's thresholds among
    # them: decay would pull every t towards 0, i.e. the threshold towards 0.5)
    decay = [q for q in model.parameters() if q.ndim > 1]
    no_decay = [q for q in model.parameters() if q.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    per_epoch = steps or (len(ytr) + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=epochs * per_epoch,
                                                pct_start=0.15)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(ytr))
        bar = tqdm(range(per_epoch), desc=f"epoch {epoch}/{epochs}", leave=False,
                   disable=args.no_progress, file=sys.stderr)
        total = 0.0
        for step in bar:
            idx = perm[step * args.batch_size:(step + 1) * args.batch_size]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        train_deg = degrees(model)  # the last training batch's graphs
        acc = evaluate(model, xva, yva, 256)
        rec = {"epoch": epoch, "loss": total / per_epoch, "val_acc": acc,
               "time_s": time.perf_counter() - start}
        line = (f"epoch {epoch}: loss {rec['loss']:.3f}, held-out accuracy {100 * acc:.1f}%, "
                f"{rec['time_s']:.1f} s")
        if args.graph == "lrgc":
            rec["mean_degree"] = train_deg
            rec["threshold"] = [round(s["threshold"], 4) for s in model.graph_stats()]
            line += f"\n  learned mean degree per layer (of 64): {train_deg}"
            line += f"\n  threshold sigmoid(t) per layer:       {rec['threshold']}"
        print(line, flush=True)
        history.append(rec)
    summary = {"graph": args.graph, "conv": model.conv, "epochs": epochs,
               "params": count_parameters(model), "val_acc": history[-1]["val_acc"],
               "wall_s": round(time.perf_counter() - start, 1),
               "threads": torch.get_num_threads(),
               "mean_degree_eval": degrees(model), "history": history}
    print(f"done: held-out accuracy {100 * summary['val_acc']:.1f}% in {summary['wall_s']} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


if __name__ == "__main__":
    main()
