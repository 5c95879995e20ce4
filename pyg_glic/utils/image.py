r"""Image files <-> tensors, and atomic file writes."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import List, Tuple, Union

import numpy as np
import torch
from torch import Tensor

PathLike = Union[str, os.PathLike]


class InputImageWarning(UserWarning):
    r"""An input image was converted for coding and something was lost (alpha,
    bit depth, frames, a colour profile); the message says what."""


def _prepare_rgb(im, name: str) -> np.ndarray:
    r"""What :func:`load_image` codes of a Pillow image, as ``(H, W, 3)`` uint8, with an
    :class:`InputImageWarning` for each loss (the table is ``docs/IMAGES.md``)."""
    import warnings

    from PIL import ImageOps

    def warn(msg: str) -> None:
        warnings.warn(InputImageWarning(f"{name}: {msg}"), stacklevel=3)

    if getattr(im, "n_frames", 1) > 1:
        warn(f"an animated image of {im.n_frames} frames: only the first frame is coded")
        im.seek(0)
    im = ImageOps.exif_transpose(im)  # camera orientation applied (no warning: nothing lost)
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im)
        if mode == "F" or a.dtype.kind == "f":
            warn("a floating-point image: values clipped to [0, 1] and quantised to 8 bits")
            a8 = np.clip(np.round(np.nan_to_num(a.astype(np.float64)) * 255), 0, 255)
        else:
            top = 65535 if mode.startswith("I;16") or int(a.max(initial=0)) <= 65535 else \
                int(a.max())
            warn(f"a {'16' if top == 65535 else '32'}-bit grayscale image: reduced to 8 bits "
                 f"per channel (the codec is 8-bit RGB)")
            a8 = np.round(a.astype(np.float64) * (255.0 / top))
        g = a8.astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        if int(alpha.min(initial=255)) < 255:
            warn("the alpha channel is not coded (the codec is RGB): transparent pixels are "
                 "coded with the colour they store, and the decoded image is opaque")
        return np.asarray(rgba.convert("RGB"), dtype=np.uint8)
    if mode == "CMYK":
        warn("a CMYK image: converted to RGB without a colour profile (Pillow's conversion), "
             "so colours may shift")
    elif im.info.get("icc_profile") and mode == "RGB":
        warn("the embedded colour profile is not applied or kept: the stored RGB values "
             "are coded")
    # L (grayscale: coded as R = G = B), 1 (bilevel), P (palette), YCbCr, LAB, HSV, RGB
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def load_image(path: Union[PathLike, bytes]) -> Tensor:
    r"""An image file (a path, or the file's bytes, e.g. read from standard
    input) -> float tensor ``(1, 3, H, W)`` in ``[0, 1]`` (RGB).

    What is coded of each kind of input (``docs/IMAGES.md``): the camera's EXIF
    orientation is applied; grayscale, bilevel, palette and other colour modes are
    converted to RGB; an alpha channel, 16-bit depth, CMYK without a profile, an
    ICC profile and the frames after the first of an animation are not coded, each
    with an :class:`InputImageWarning` that says what was lost. Any size from 1x1 up
    works (the codec pads internally).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an image Pillow can read.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    if isinstance(path, (bytes, bytearray)):
        p, source = "standard input", io.BytesIO(path)
    else:
        p = source = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no such image file: {p}")
    try:
        with Image.open(source) as im:
            im.load()
            rgb = _prepare_rgb(im, getattr(p, "name", p))
    except (UnidentifiedImageError, OSError, SyntaxError,
            Image.DecompressionBombError) as e:
        raise ValueError(f"{p} is not an image file that Pillow can read "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                         ) from None
    return torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1).unsqueeze(0) \
        .float().div_(255)


def load_image_noting(path: Union[PathLike, bytes]) -> Tuple[Tensor, List[str]]:
    r""":func:`load_image`, with its :class:`InputImageWarning` messages returned
    (for a command line to print as one line each) instead of emitted."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputImageWarning)
        x = load_image(path)
    notes = []
    for w in caught:
        if issubclass(w.category, InputImageWarning):
            notes.append(str(w.message))
        else:  # pragma: no cover - other warnings pass through
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return x, notes


def to_uint8(x: Tensor) -> np.ndarray:
    r"""``(1, 3, H, W)`` or ``(3, H, W)`` in ``[0, 1]`` -> ``(H, W, 3)`` uint8 (rounded)."""
    if x.dim() == 4:
        if x.size(0) != 1:
            raise ValueError(f"expected one image (1, 3, H, W), got {tuple(x.shape)}")
        x = x[0]
    return x.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def current_umask() -> int:
    r"""The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, data: bytes, *, force: bool = False) -> None:
    r"""Write ``data`` to ``path`` through a temporary file and a rename.

    Nothing is left at ``path`` if writing fails, and an existing file is only
    replaced with ``force=True``. The file gets the mode a plain ``open()``
    would give a new file (``0o666`` less the umask), not the temporary
    file's private ``0o600``.

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
            os.fchmod(f.fileno(), 0o666 & ~current_umask())  # as open() would create it
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


LOSSLESS_FORMATS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                    ".ppm": "PPM"}


def encode_image(x: Tensor, suffix: str = ".png") -> bytes:
    r"""``(1, 3, H, W)`` in ``[0, 1]`` -> the bytes of a lossless image file of the
    format ``suffix`` names (``.png``, ``.bmp``, ``.tif``/``.tiff``, ``.ppm``).

    Raises:
        ValueError: another suffix.
    """
    import io

    from PIL import Image

    fmt = LOSSLESS_FORMATS.get(suffix.lower())
    if fmt is None:
        raise ValueError(f"the decoded image must be written losslessly; use a .png, .bmp, "
                         f".tif or .ppm name, not {suffix or 'no suffix'}")
    buf = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buf, format=fmt)
    return buf.getvalue()


def save_image(path: PathLike, x: Tensor, *, force: bool = False) -> None:
    r"""Save ``(1, 3, H, W)`` in ``[0, 1]`` as an image file (format from the suffix), atomically."""
    try:
        data = encode_image(x, Path(path).suffix)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    atomic_write(path, data, force=force)
