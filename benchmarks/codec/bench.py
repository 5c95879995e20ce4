r"""Codec benchmark: encode and decode time and peak memory of GLIC beside CompressAI codecs.

Models, all with **random weights** (no trained weights are used; the bitstreams are
real but their size says nothing about compression quality):

- ``glic-lite`` and ``glic``: :func:`pyg_glic.models.glic.glic_model`;
- ``mbt2018-mean``: ``compressai.zoo.mbt2018_mean(quality=3, pretrained=False)``;
- ``elic2022-official``: ``compressai.models.Elic2022Official()``.

Each model is put in eval mode, ``model.update(force=True)`` builds its entropy
tables, and ``compress`` / ``decompress`` run under ``torch.no_grad`` on

- ``kodak``: ``pyg_glic/assets/kodim23.png`` (768x512);
- ``1080p``: a synthetic 1920x1080 image, the Kodak image tiled 3x3 (2304x1536) with
  Pillow and centre-cropped to 1920x1080 (so its content is real photo content, but
  repeated).

Time: median of ``--repeats`` calls after ``--warmup`` (one call when a call takes more
than ``--max-seconds / 3``); a (model, image) pair whose predicted encode time exceeds
``--max-seconds`` (from the same model on a smaller image, scaled by pixels) is skipped and
listed. Peak memory of one call (CUDA: ``max_memory_allocated``; CPU: torch profiler
memory events, only for calls under ``--mem-max-seconds``). Writes
``codec_<device>.{json,md,png}``.

    python benchmarks/codec/bench.py                       # full run
    python benchmarks/codec/bench.py --quick --out /tmp/b  # seconds: glic-tiny, mbt, 64x96
    python benchmarks/codec/bench.py --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._common import machine_info, peak_memory, time_call  # noqa: E402

KODAK = os.path.join(ROOT, "pyg_glic", "assets", "kodim23.png")
PATHS = ("pyg_glic", "benchmarks/codec", "benchmarks/_common.py")
FULL_MODELS = ["mbt2018-mean", "elic2022-official", "glic-lite", "glic"]
QUICK_MODELS = ["mbt2018-mean", "glic-tiny"]


def load_images(quick: bool) -> Dict[str, Tuple[torch.Tensor, str]]:
    from PIL import Image
    import numpy as np

    img = Image.open(KODAK).convert("RGB")

    def tensor(im):
        a = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).float().div_(255.)
        return a.permute(2, 0, 1).unsqueeze(0).contiguous()

    if quick:
        return {"kodak-crop-96x72": (tensor(img.crop((0, 0, 96, 72))),
                                     "kodim23.png cropped to its top-left 96x72")}
    W, H = img.size
    tiled = Image.new("RGB", (3 * W, 3 * H))
    for i in range(3):
        for j in range(3):
            tiled.paste(img, (j * W, i * H))
    left, top = (3 * W - 1920) // 2, (3 * H - 1080) // 2
    big = tiled.crop((left, top, left + 1920, top + 1080))
    return {"kodak": (tensor(img), f"kodim23.png, {W}x{H}"),
            "1080p": (tensor(big), "synthetic 1920x1080: kodim23.png tiled 3x3 with Pillow, "
                      "centre crop")}


def build_model(name: str):
    if name.startswith("glic"):
        from pyg_glic.models.glic import glic_model
        return glic_model(name)
    if name == "mbt2018-mean":
        from compressai.zoo import mbt2018_mean
        return mbt2018_mean(quality=3, pretrained=False)
    if name == "elic2022-official":
        from compressai.models import Elic2022Official
        return Elic2022Official()
    raise ValueError(name)


def _num_bytes(strings) -> int:
    total = 0
    for s in strings:
        if isinstance(s, (bytes, bytearray)):
            total += len(s)
        else:
            total += _num_bytes(s)
    return total


def run(args, save: Optional[Callable[[Dict[str, object]], None]] = None
        ) -> Dict[str, object]:
    device = torch.device(args.device)
    models = args.models or (QUICK_MODELS if args.quick else FULL_MODELS)
    images = load_images(args.quick)
    if args.images:
        images = {k: v for k, v in images.items() if k in args.images}
    results: List[dict] = []
    skipped: List[str] = []
    t_start = time.perf_counter()

    def report():
        return {"benchmark": "codec",
                "meta": {**machine_info(device, PATHS), "quick": bool(args.quick),
                         "warmup": args.warmup, "repeats": args.repeats,
                         "max_seconds": args.max_seconds, "weights": "random (untrained)",
                         "total_seconds": round(time.perf_counter() - t_start, 1),
                         "images": {k: v[1] for k, v in images.items()}},
                "results": results, "skipped": skipped}
    for name in models:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        model = build_model(name).to(device).eval()
        with torch.no_grad():
            model.update(force=True)
        setup_s = time.perf_counter() - t0
        params = sum(p.numel() for p in model.parameters())
        last: Optional[Tuple[int, float]] = None  # (pixels, encode s) on a smaller image
        for iname, (img, desc) in sorted(images.items(), key=lambda kv: kv[1][0].numel()):
            x = img.to(device)
            pixels = x.shape[-2] * x.shape[-1]
            if last is not None and last[1] * pixels / last[0] > args.max_seconds:
                skipped.append(f"{name} on {iname}: predicted encode time "
                               f"{last[1] * pixels / last[0]:.0f} s (scaled from the smaller "
                               f"image) above --max-seconds {args.max_seconds}")
                continue
            state: Dict[str, object] = {}
            x_in = x
            if not name.startswith("glic"):  # CompressAI models need multiples of 64
                ph, pw = (-x.shape[-2]) % 64, (-x.shape[-1]) % 64
                if ph or pw:
                    x_in = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")

            def enc():
                with torch.no_grad():
                    state["c"] = model.compress(x_in)
                return state["c"]

            def dec():
                with torch.no_grad():
                    out = model.decompress(state["c"]["strings"], state["c"]["shape"])
                    out["x_hat"] = out["x_hat"][..., :x.shape[-2], :x.shape[-1]]
                    return out

            row = dict(model=name, image=iname, image_desc=desc, height=x.shape[-2],
                       width=x.shape[-1], parameters=params, setup_s=round(setup_s, 2))
            for step, fn in (("encode", enc), ("decode", dec)):
                t0 = time.perf_counter()
                out = fn()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                first = time.perf_counter() - t0
                slow = first > args.max_seconds / 3
                med, ts, out = time_call(fn, device, 0 if slow else args.warmup,
                                         1 if slow else args.repeats)
                if slow:  # the first call is a measurement too
                    ts = [first] + ts
                    med = sorted(ts)[len(ts) // 2] if len(ts) % 2 else sum(ts) / len(ts)
                mem, how = None, f"skipped (call over --mem-max-seconds {args.mem_max_seconds})"
                if device.type == "cuda" or med < args.mem_max_seconds:
                    mem, how = peak_memory(fn, device)
                row[f"{step}_s_median"] = round(med, 4)
                row[f"{step}_times_s"] = [round(t, 4) for t in ts]
                row[f"{step}_first_call_s"] = round(first, 4)
                row[f"{step}_peak_mib"] = None if mem is None else round(mem, 1)
                row[f"{step}_memory_method"] = how
                if step == "encode":
                    last = (pixels, med)
                else:
                    x_hat = out["x_hat"]
                    if tuple(x_hat.shape[-2:]) != tuple(x.shape[-2:]):
                        raise RuntimeError(f"{name}: decoded shape {tuple(x_hat.shape)} != "
                                           f"{tuple(x.shape)}")
            nbytes = _num_bytes(state["c"]["strings"])
            row["bytes"] = nbytes
            row["bpp_random_weights"] = round(8 * nbytes / pixels, 4)
            results.append(row)
            if save is not None:  # partial results survive a killed run
                save(report())
            print(f"{name:18s} {iname:16s} encode {row['encode_s_median']:8.3f} s "
                  f"decode {row['decode_s_median']:8.3f} s  peak enc/dec "
                  f"{row['encode_peak_mib']}/{row['decode_peak_mib']} MiB", flush=True)
        del model
    return report()


def to_markdown(report) -> str:
    meta = report["meta"]
    lines = [
        "# Codec: encode and decode time and peak memory (random weights)", "",
        f"- device: {meta['device']}" + (f" ({meta['gpu']})" if "gpu" in meta else ""),
        f"- machine: {meta['platform']}, {meta['cpu_count']} CPUs, torch threads "
        f"{meta['torch_threads']}, load average at start {meta.get('load_average_at_start')}",
        f"- torch {meta['torch']}; git commit: {meta['git_commit']}; date {meta['date']}; "
        f"median of {meta['repeats']} after {meta['warmup']} warm-up (a single call when a "
        f"call takes more than {meta['max_seconds'] / 3:.0f} s); total {meta['total_seconds']} s",
        "- all models have **random weights** (bytes/bpp say nothing about quality); "
        "`model.update(force=True)`, eval, `torch.no_grad`; the CompressAI models get the image padded (replicate) to a "
        "multiple of 64 and their output cropped back (GLIC pads internally)", "",
        "Images:", ""]
    lines += [f"- **{k}**: {v}" for k, v in meta["images"].items()]
    lines += ["", "| model | params (M) | image | encode s | decode s | encode peak MiB | "
              "decode peak MiB | bytes |", "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.1f} | {r['image']} "
                     f"({r['width']}x{r['height']}) | {r['encode_s_median']:.3f} | "
                     f"{r['decode_s_median']:.3f} | "
                     f"{'-' if r['encode_peak_mib'] is None else r['encode_peak_mib']} | "
                     f"{'-' if r['decode_peak_mib'] is None else r['decode_peak_mib']} | "
                     f"{r['bytes']} |")
    if report["skipped"]:
        lines += ["", "Skipped:", ""] + [f"- {s}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def plot(report, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    labels = [f"{r['model']}\n{r['image']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4.5))
    xs = range(len(rows))
    ax.bar([i - 0.2 for i in xs], [r["encode_s_median"] for r in rows], 0.4, label="encode")
    ax.bar([i + 0.2 for i in xs], [r["decode_s_median"] for r in rows], 0.4, label="decode")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (median)")
    ax.legend()
    ax.grid(True, axis="y", which="both", alpha=0.3)
    meta = report["meta"]
    ax.set_title(f"codec time, random weights, {meta['device']}, torch {meta['torch']}, "
                 f"{meta['torch_threads']} thread(s)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="glic-tiny and mbt on a 96x64 crop")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    from pyg_glic.models.glic import CONFIGS

    p.add_argument("--models", nargs="*", choices=sorted(set(FULL_MODELS) | set(CONFIGS)),
                   help="models (default: the full list); any GLIC configuration, ablation "
                        "variants ('glic-lite/fixed-degree', ...) included")
    p.add_argument("--images", nargs="*", help="subset: kodak 1080p")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=None, help="timed calls (default 3; quick 1)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="skip a (model, image) whose predicted encode time is longer")
    p.add_argument("--mem-max-seconds", type=float, default=30.0,
                   help="CPU: measure memory only for calls shorter than this")
    p.add_argument("--tag", default=None)
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    stem = "codec_" + torch.device(args.device).type + ("_quick" if args.quick else "")
    if args.tag:
        stem += "_" + args.tag
    base = os.path.join(args.out, stem)

    def save(rep):
        with open(base + ".json", "w") as f:
            json.dump(rep, f, indent=1)
        with open(base + ".md", "w") as f:
            f.write(to_markdown(rep))
        plot(rep, base + ".png")
    report = run(args, save)
    save(report)
    report["files"] = [base + ext for ext in (".json", ".md", ".png")]
    print("wrote", ", ".join(report["files"]))
    return report


if __name__ == "__main__":
    main()
