r"""Classical codecs through Pillow: JPEG, WebP, AVIF, JPEG 2000.

Each codec encodes the 8-bit RGB image to an in-memory file, whose byte size
gives the rate (container headers included, as a file on disk would have), and
decodes it back to 8-bit RGB. The default sweeps cover about 0.1-1.5 bpp on Kodak
(wider on hard images). Encoder settings, chosen as a careful user would:

- JPEG: ``quality`` sweep, ``optimize=True`` (optimised Huffman tables), Pillow's
  default 4:2:0 chroma subsampling, baseline.
- WebP: ``quality`` sweep, ``method=6`` (slowest, smallest), lossy (4:2:0).
- AVIF: ``quality`` sweep, Pillow's defaults otherwise (``speed=6``, 4:2:0).
- JPEG 2000: rate control to a target bpp (``quality_mode="rates"``,
  ``quality_layers=[24 / bpp]``), 9/7 wavelet (``irreversible=True``) and the
  colour transform (``mct=1``; without it JPEG 2000 loses ~3 dB on RGB).
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Sequence, Tuple

import numpy as np

from . import metrics


@dataclass(frozen=True)
class ClassicalCodec:
    r"""A Pillow codec and its sweep.

    Args:
        name (str): key (``"jpeg"``).
        label (str): name in tables and plots (``"JPEG"``).
        pil_format (str): Pillow format name.
        feature (str): ``PIL.features`` name of the encoder.
        setting (str): what the sweep values are (``"quality"``, ``"bpp"``).
        sweep (tuple): default setting values, low rate to high rate.
        options (callable): setting -> keyword arguments of ``Image.save``.
    """

    name: str
    label: str
    pil_format: str
    feature: str
    setting: str
    sweep: Tuple
    options: Callable[[float], Dict] = field(compare=False)

    def available(self) -> bool:
        from PIL import features

        try:
            return bool(features.check(self.feature))
        except ValueError:
            return False

    def check_setting(self, value) -> None:
        if self.setting == "quality" and not 0 <= value <= 100:
            raise ValueError(f"{self.label} quality must be in 0..100, got {value}")
        if self.setting == "bpp" and not 0 < value <= 24:
            raise ValueError(f"{self.label} target bpp must be in (0, 24], got {value}")

    def encode(self, rgb: np.ndarray, value) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buf, format=self.pil_format, **self.options(value))
        return buf.getvalue()

    @staticmethod
    def decode(data: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


CODECS: Dict[str, ClassicalCodec] = {c.name: c for c in (
    ClassicalCodec("jpeg", "JPEG", "JPEG", "jpg", "quality",
                   (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90),
                   lambda q: dict(quality=int(q), optimize=True)),
    ClassicalCodec("webp", "WebP", "WEBP", "webp", "quality",
                   (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90),
                   lambda q: dict(quality=int(q), method=6, lossless=False)),
    ClassicalCodec("avif", "AVIF", "AVIF", "avif", "quality",
                   (10, 20, 30, 40, 50, 55, 60, 65, 70, 75, 80),
                   lambda q: dict(quality=int(q))),
    ClassicalCodec("jpeg2000", "JPEG 2000", "JPEG2000", "jpg_2000", "bpp",
                   (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5),
                   lambda b: dict(quality_mode="rates", quality_layers=[24.0 / float(b)],
                                  irreversible=True, mct=1)),
)}


def measure(rgb: np.ndarray, codec: ClassicalCodec, value, ms_ssim: bool = True,
            device=None) -> Dict:
    r"""Encode and decode one image at one setting.

    ``ms_ssim=False`` skips MS-SSIM (``nan``); ``device`` is where it is computed.

    Returns:
        ``{"bytes", "bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}``.
    """
    t0 = time.perf_counter()
    data = codec.encode(rgb, value)
    t1 = time.perf_counter()
    rec = codec.decode(data)
    t2 = time.perf_counter()
    if rec.shape != rgb.shape:
        raise RuntimeError(f"{codec.label} decoded {rec.shape}, expected {rgb.shape}")
    H, W = rgb.shape[:2]
    return {"bytes": len(data), "bpp": metrics.bpp(len(data), H, W),
            "psnr-rgb": metrics.psnr_rgb(rgb, rec),
            "ms-ssim-rgb": metrics.ms_ssim_rgb(rgb, rec, device) if ms_ssim else float("nan"),
            "encoding_time": t1 - t0, "decoding_time": t2 - t1}


def resolve(names: Sequence[str]) -> Dict[str, ClassicalCodec]:
    r"""The codecs named, checked against Pillow's build (``ValueError`` if unknown/missing)."""
    out = {}
    for n in names:
        key = n.lower().replace("-", "").replace("_", "").replace(" ", "")
        key = {"jpg": "jpeg", "j2k": "jpeg2000", "jp2": "jpeg2000"}.get(key, key)
        if key not in CODECS:
            raise ValueError(f"unknown classical codec {n!r}; expected one of {sorted(CODECS)}")
        if not CODECS[key].available():
            raise ValueError(f"this Pillow build has no {CODECS[key].label} encoder")
        out[key] = CODECS[key]
    return out
