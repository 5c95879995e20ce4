r"""Tiled coding: peak memory and time from 1 to 48 megapixels, and what tiling costs.

Two questions (README.md, "Tiles"):

1. **Bounded memory.** Each size (1, 4, 12, 24, 48 MP, 4:3) is encoded in one fresh
   process and decoded in another, each reporting its peak resident memory
   (``ru_maxrss``, everything the process held: Python, torch, the model, the
   image); a third process that only loads the model gives the baseline. The image
   is synthetic: the bundled photo (kodim23) tiled with Pillow and cropped, real
   content repeated.
2. **What tiling costs.** Kodak images coded whole and with forced small tiles
   (``--rd-tiles``, default 256 and 512), in the same run, with the same weights:
   rate and PSNR per configuration; and PSNR in a band of ``--band`` pixels either
   side of every tile edge against the rest of the image, for the tiled decode and,
   over the same pixels, for the whole-image decode (so content differences
   between the band and the rest cancel out).

Weights: ``--weights`` (a training checkpoint's EMA weights or an exported weights
file), else the configuration's shipped weights, else its untrained ones (then the
rates and PSNRs mean nothing; memory and time still do). ``--quick`` (seconds, run by
``tests/test_bench_codec_quick.py``) codes tiny sizes with glic-tiny. One intra-op thread (the codec's
default). Writes ``benchmarks/results/codec_tiles_<device>[_quick].{json,md}``.

    PYTHONPATH=. .venv/bin/python benchmarks/codec/tiles.py --weights runs/x/checkpoint.pt
    PYTHONPATH=. .venv/bin/python benchmarks/codec/tiles.py --quick --out /tmp/t
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._common import machine_info  # noqa: E402

SIZES_MP = (1, 4, 12, 24, 48)


def side_for(mp: float):
    r"""A 4:3 landscape size of about ``mp`` megapixels, sides multiples of 8."""
    w = int(round(math.sqrt(mp * 1e6 * 4 / 3) / 8)) * 8
    return int(round(w * 3 / 4 / 8)) * 8, w


def synthetic(height: int, width: int):
    from PIL import Image

    src = Image.open(ROOT / "pyg_glic" / "assets" / "kodim23.png").convert("RGB")
    canvas = Image.new("RGB", (width, height))
    for top in range(0, height, src.height):
        for left in range(0, width, src.width):
            canvas.paste(src, (left, top))
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1)[None].float() / 255


def load_net(weights, config):
    from pyg_glic import zoo
    from pyg_glic.training.models import load_model_file

    if weights:
        loaded = load_model_file(weights)
        if loaded.config != config:
            raise SystemExit(f"{weights} holds a {loaded.config} model, not {config}")
        net = loaded.model.eval()
        net.update(force=True)
        return net, os.fspath(weights)
    name = zoo.codec_name(config)
    return zoo.load_codec(name), name


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ------------------------------------------------------------------ child processes


def child(args) -> None:
    from pyg_glic import codec

    torch.set_num_threads(1)
    net, _ = load_net(args.weights, args.config)
    out = {}
    if args.child == "baseline":
        pass
    elif args.child == "encode":
        H, W = args.size
        x = synthetic(H, W)
        t = time.perf_counter()
        data = codec.compress(x, args.config, args.quality, model=net, tile=args.tile)
        out["seconds"] = time.perf_counter() - t
        Path(args.file).write_bytes(data)
        out["bytes"] = len(data)
    else:
        data = Path(args.file).read_bytes()
        t = time.perf_counter()
        x_hat, bs = codec.decompress(data, model=net, max_pixels=None)
        out["seconds"] = time.perf_counter() - t
        out["tiles"] = codec.TileGrid.count(bs.height, bs.width, bs.tile_height, bs.tile_width)
    out["peak_mib"] = peak_mib()
    print(json.dumps(out))


def run_child(args, kind, **extra):
    cmd = [sys.executable, __file__, "--child", kind, "--quality", str(args.quality),
           "--tile", str(args.tile), "--config", args.config]
    if args.weights:
        cmd += ["--weights", os.fspath(args.weights)]
    for k, v in extra.items():
        cmd += [f"--{k}"] + ([str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)])
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
               PYTHONPATH=str(ROOT))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(f"{kind} child failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def scaling(args, sizes):
    rows = []
    base = run_child(args, "baseline")["peak_mib"]
    with tempfile.TemporaryDirectory() as tmp:
        for mp in sizes:
            H, W = side_for(mp)
            f = os.path.join(tmp, f"{mp}.glic")
            enc = run_child(args, "encode", size=(H, W), file=f)
            dec = run_child(args, "decode", file=f)
            row = dict(megapixels=round(H * W / 1e6, 2), height=H, width=W, tiles=dec["tiles"],
                       bpp=8 * enc["bytes"] / (H * W), encode_s=enc["seconds"],
                       decode_s=dec["seconds"], encode_peak_mib=enc["peak_mib"],
                       decode_peak_mib=dec["peak_mib"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    return base, rows


# -------------------------------------------------------------- the cost of tiling


def edge_mask(H, W, tile, band):
    m = np.zeros((H, W), bool)
    for e in range(tile, H, tile):
        m[max(0, e - band):e + band] = True
    for e in range(tile, W, tile):
        m[:, max(0, e - band):e + band] = True
    return m


def psnr_masked(a, b, mask):
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = d[mask].mean()
    return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def rd_cost(args, images):
    from pyg_glic import codec
    from pyg_glic.utils.image import load_image, to_uint8

    net, _ = load_net(args.weights, args.config)
    torch.set_num_threads(1)
    per = []
    for path in images:
        x = load_image(path)
        H, W = x.shape[-2:]
        ref = to_uint8(x)
        whole_data = codec.compress(x, args.config, args.quality, model=net)
        whole = to_uint8(codec.decompress(whole_data, model=net)[0])
        entry = dict(image=Path(path).name, whole_bpp=8 * len(whole_data) / (H * W),
                     whole_psnr=psnr_masked(ref, whole, np.ones((H, W), bool)))
        for tile in args.rd_tiles:
            data = codec.compress(x, args.config, args.quality, model=net, tile=tile)
            dec = to_uint8(codec.decompress(data, model=net)[0])
            edges = edge_mask(H, W, tile, args.band)
            entry[f"t{tile}_bpp"] = 8 * len(data) / (H * W)
            entry[f"t{tile}_psnr"] = psnr_masked(ref, dec, np.ones((H, W), bool))
            entry[f"t{tile}_edge_psnr"] = psnr_masked(ref, dec, edges)
            entry[f"t{tile}_rest_psnr"] = psnr_masked(ref, dec, ~edges)
            entry[f"t{tile}_whole_edge_psnr"] = psnr_masked(ref, whole, edges)
            entry[f"t{tile}_whole_rest_psnr"] = psnr_masked(ref, whole, ~edges)
        per.append(entry)
        print(json.dumps(entry), flush=True)
    mean = {k: float(np.mean([e[k] for e in per])) for k in per[0] if k != "image"}
    return per, mean


# ---------------------------------------------------------------------- reporting


def write(args, result):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"codec_tiles_cpu{'_quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    m = result["machine"]
    lines = [f"# Tiled coding: {args.config}, tile {args.tile}, quality {args.quality}", "",
             f"Machine: {m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']}, device "
             f"cpu, 1 intra-op thread (the codec's default), {m['date']}, load average at "
             f"start {m.get('load_average_at_start')}, commit {m['git_commit']}. Weights: "
             f"{result['weights']}. Total {result['seconds']:.0f} s.", ""]
    if result.get("scaling"):
        lines += [f"## Peak memory and time (fresh process each; baseline, model loaded: "
                  f"{result['baseline_mib']:.0f} MiB)", "",
                  "| megapixels | size | tiles | bpp | encode s | decode s | encode peak MiB | "
                  "decode peak MiB |", "|---|---|---|---|---|---|---|---|"]
        for r in result["scaling"]:
            lines.append(f"| {r['megapixels']} | {r['width']}x{r['height']} | {r['tiles']} | "
                         f"{r['bpp']:.3f} | {r['encode_s']:.1f} | {r['decode_s']:.1f} | "
                         f"{r['encode_peak_mib']:.0f} | {r['decode_peak_mib']:.0f} |")
        lines.append("")
    if result.get("rd"):
        mean = result["rd"]["mean"]
        n = len(result["rd"]["images"])
        lines += [f"## What tiling costs ({n} Kodak images, mean; edge band +-{args.band} px)",
                  "", "| tiles | bpp | PSNR dB | rate vs whole | PSNR near tile edges | "
                  "PSNR elsewhere | whole image, same edge pixels | whole image, elsewhere |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| whole | {mean['whole_bpp']:.4f} | {mean['whole_psnr']:.2f} | - | - | - | "
                  f"- | - |"]
        for t in args.rd_tiles:
            lines.append(
                f"| {t}x{t} | {mean[f't{t}_bpp']:.4f} | {mean[f't{t}_psnr']:.2f} | "
                f"{100 * (mean[f't{t}_bpp'] / mean['whole_bpp'] - 1):+.1f}% | "
                f"{mean[f't{t}_edge_psnr']:.2f} | {mean[f't{t}_rest_psnr']:.2f} | "
                f"{mean[f't{t}_whole_edge_psnr']:.2f} | {mean[f't{t}_whole_rest_psnr']:.2f} |")
        lines.append("")
    stem.with_suffix(".md").write_text("\n".join(lines))
    print(stem.with_suffix(".md").read_text())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None,
                   help="codec configuration (default glic-lite; --quick: glic-tiny)")
    p.add_argument("--weights", type=Path, default=None,
                   help="a training checkpoint (its EMA weights) or weights file of --config")
    p.add_argument("--quality", type=float, default=3.0)
    p.add_argument("--tile", type=int, default=2048, help="tile side for the scaling runs")
    p.add_argument("--sizes", type=float, nargs="+", default=list(SIZES_MP),
                   help="megapixels of the scaling runs")
    p.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "datasets" / "kodak")
    p.add_argument("--rd-images", type=int, default=24, help="first N Kodak images")
    p.add_argument("--rd-tiles", type=int, nargs="+", default=[256, 512])
    p.add_argument("--band", type=int, default=8)
    p.add_argument("--skip-scaling", action="store_true")
    p.add_argument("--skip-rd", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="seconds: glic-tiny, 0.05 and 0.3 MP with tile 256; 2 crops of the "
                        "bundled image with tile 128")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    # internal: one measurement in a fresh process
    p.add_argument("--child", choices=["baseline", "encode", "decode"], help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.config is None:
        args.config = "glic-tiny" if args.quick else "glic-lite"
    if args.child:
        return child(args)
    t0 = time.time()
    result = dict(machine=machine_info(torch.device("cpu")), config=args.config,
                  weights=os.fspath(args.weights) if args.weights
                  else f"{args.config} as shipped (or untrained)", tile=args.tile,
                  quality=args.quality)
    if args.quick:
        args.sizes, args.tile, args.rd_tiles = [0.05, 0.3], 256, [128]
    if not args.skip_scaling:
        result["baseline_mib"], result["scaling"] = scaling(args, args.sizes)
    if not args.skip_rd:
        if args.quick:
            from PIL import Image

            tmp = Path(tempfile.mkdtemp())
            src = Image.open(ROOT / "pyg_glic" / "assets" / "kodim23.png")
            images = []
            for i, box in enumerate([(0, 0, 320, 192), (300, 200, 556, 392)]):
                src.crop(box).save(tmp / f"crop{i}.png")
                images.append(tmp / f"crop{i}.png")
        else:
            images = sorted(args.kodak.glob("kodim*.png"))[:args.rd_images]
            if not images:
                p.error(f"no kodim*.png under {args.kodak}")
        per, mean = rd_cost(args, images)
        result["rd"] = dict(images=per, mean=mean, tiles=args.rd_tiles, band=args.band)
    result["seconds"] = time.time() - t0
    write(args, result)


if __name__ == "__main__":
    main()
