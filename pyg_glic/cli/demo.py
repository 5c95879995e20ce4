r"""``pyg-glic demo``: the main job on the bundled image (or one you name).

Until a trained codec ships, the demo shows the graph side of the library on a
real photograph: the image becomes an H/4 feature map (4x4 pixel-unshuffle,
48 channels), and GLIC's two graphs are built from it with adaptive degrees.
"""
from __future__ import annotations

import time
from pathlib import Path

ASSET = Path(__file__).resolve().parent.parent / "assets" / "kodim23.png"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled image")
    p.add_argument("image", nargs="?", default=str(ASSET),
                   help="an image file (default: the bundled Kodak image kodim23)")
    p.add_argument("--mean-degree", type=int, default=64,
                   help="mean neighbours per node, of 256 candidates (default 64)")
    p.set_defaults(run=run)


def load_image(path: str):
    r"""An image file -> float tensor ``(1, 3, H, W)`` in ``[0, 1]``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an image Pillow can read.
    """
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such image file: {p}")
    try:
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{p} is not an image file that Pillow can read ({e})") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255)


def run(args) -> int:
    import sys

    import torch

    from ..graph import global_graph, halo_graph

    try:
        x = load_image(args.image)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _, _, H, W = x.shape
    feat = torch.nn.functional.pixel_unshuffle(x, 4)  # (1, 48, H/4, W/4)
    print(f"image {args.image}: {W}x{H} -> H/4 feature map {tuple(feat.shape)}")
    print("note: no trained codec ships yet; this demo builds GLIC's graphs on the image.")
    for name, build in (("local (halo) graph", halo_graph), ("global graph", global_graph)):
        t0 = time.perf_counter()
        g = build(feat, args.mean_degree, adaptive=True)
        dt = time.perf_counter() - t0
        deg = g.degree.float()
        print(f"{name:20s}: {g.num_dst} nodes, {g.num_edges} edges, degree mean "
              f"{deg.mean():.1f} min {int(deg.min())} max {int(deg.max())}, built in {dt * 1e3:.0f} ms")
    return 0
