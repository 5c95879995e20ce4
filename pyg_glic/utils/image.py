r"""Image files <-> tensors, and atomic file writes."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import Tensor

PathLike = Union[str, os.PathLike]


def load_image(path: PathLike) -> Tensor:
    r"""An image file -> float tensor ``(1, 3, H, W)`` in ``[0, 1]`` (RGB).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an image Pillow can read.
    """
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


def to_uint8(x: Tensor) -> np.ndarray:
    r"""``(1, 3, H, W)`` or ``(3, H, W)`` in ``[0, 1]`` -> ``(H, W, 3)`` uint8 (rounded)."""
    if x.dim() == 4:
        if x.size(0) != 1:
            raise ValueError(f"expected one image (1, 3, H, W), got {tuple(x.shape)}")
        x = x[0]
    return x.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def atomic_write(path: PathLike, data: bytes, *, force: bool = False) -> None:
    r"""Write ``data`` to ``path`` through a temporary file and a rename.

    Nothing is left at ``path`` if writing fails, and an existing file is only
    replaced with ``force=True``.

    Raises:
        FileExistsError: ``path`` exists and ``force`` is false.
    """
    p = Path(path)
    if p.exists() and not force:
        raise FileExistsError(f"{p} exists; use --force to overwrite it")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_image(path: PathLike, x: Tensor, *, force: bool = False) -> None:
    r"""Save ``(1, 3, H, W)`` in ``[0, 1]`` as an image file (format from the suffix), atomically."""
    import io

    from PIL import Image

    fmt = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
           ".ppm": "PPM"}.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: the decoded image must be written losslessly; use a .png, "
                         f".bmp, .tif or .ppm name")
    buf = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buf, format=fmt)
    atomic_write(path, buf.getvalue(), force=force)
