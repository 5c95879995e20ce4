r"""``pyg-glic eval``: code a folder of images for real with every codec, compare, report.

Learned codecs write real bitstreams: GLIC through :func:`pyg_glic.codec.compress` /
:func:`~pyg_glic.codec.decompress` (the ``.glic`` container's bytes are the rate,
header and CRC included); CompressAI peers through ``model.compress`` /
``model.decompress`` on the image edge-padded to a multiple of 64 (the rate is
the entropy-coded strings only; the image size, which a container would add, is
not counted: a few bytes). Classical codecs run through Pillow
(:mod:`~pyg_glic.evaluation.classical`). Every decoded image is rounded to 8-bit
RGB before PSNR and MS-SSIM.

Everything is checked before any coding starts (images readable, qualities,
weight files, reference files, the output folder), and results are written to a
temporary folder that replaces ``out`` only at the end, so a failure leaves no
partial output.
"""
from __future__ import annotations

import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..training.data import InputError, find_images, read_rgb
from ..utils.image import current_umask
from . import classical as C
from . import metrics
from .bdrate import METHODS, bd_rate
from .report import (bd_markdown, dumps, load_reference, make_curve, plot_rd, schema_view,
                     slug)

#: Image files read by ``pyg-glic eval`` (recursively; lossless formats preferred).
EVAL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm")
DEFAULT_CLASSICAL = ("jpeg", "webp", "avif", "jpeg2000")


@dataclass
class EvalConfig:
    r"""Everything ``pyg-glic eval`` takes.

    Attributes:
        image_dir: folder of images (searched recursively).
        out: output folder (created; replaced atomically at the end).
        config: GLIC configuration for ``qualities``.
        qualities: GLIC zoo qualities (a variable-rate ``config``: any number in
            ``[1, levels]``; a fixed-rate one: integers 1..6); ``None``: those that
            ship for ``config``, else all; not evaluated when only ``weights`` are
            given.
        weights: ``[LABEL=]FILE`` training checkpoints or exported weights (GLIC or
            CompressAI peers); files with the same label (default: their
            configuration) form one curve.
        classical: Pillow codecs (``jpeg``, ``webp``, ``avif``, ``jpeg2000``).
        sweeps: per classical codec, settings replacing its default sweep.
        references: JSON files in CompressAI's schema, drawn dashed, used as anchors.
        zoo: ``False`` to skip the GLIC zoo (``None``: as ``qualities`` says).
        ms_ssim: compute MS-SSIM (on ``device``; the slowest metric on a CPU).
    """

    image_dir: str
    out: str = "eval-results"
    force: bool = False
    config: str = "glic-lite"
    qualities: Optional[Sequence[Union[int, float]]] = None
    weights: Sequence[str] = ()
    classical: Sequence[str] = DEFAULT_CLASSICAL
    sweeps: Dict[str, Sequence[float]] = field(default_factory=dict)
    references: Sequence[str] = ()
    device: Optional[str] = None
    bd_method: str = "cubic"
    max_images: Optional[int] = None
    progress: bool = True
    zoo: Optional[bool] = None
    ms_ssim: bool = True


@dataclass
class _Image:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8


@dataclass
class _LearnedCurve:
    name: str
    description: str
    points: List[Tuple[object, Callable]] = field(default_factory=list)  # (setting, coder)


Coder = Callable[[torch.Tensor], Tuple[int, np.ndarray, float, float]]


# --------------------------------------------------------------------------- coders

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def glic_coder(model, config: str, quality: int, device: torch.device) -> Coder:
    r"""Real ``.glic`` bytes through :mod:`pyg_glic.codec` with a loaded model."""
    from .. import codec
    from ..utils.image import to_uint8

    def code(x: torch.Tensor):
        x = x.to(device)
        _sync(device)
        t0 = time.perf_counter()
        data = codec.compress(x, config, quality, model=model)
        _sync(device)
        t1 = time.perf_counter()
        x_hat, _ = codec.decompress(data, model=model)
        _sync(device)
        t2 = time.perf_counter()
        return len(data), to_uint8(x_hat), t1 - t0, t2 - t1

    return code


def peer_coder(model, device: torch.device, multiple: int = 64) -> Coder:
    r"""Real bitstreams of a CompressAI model (padded to ``multiple``, cropped back)."""
    from ..utils.image import to_uint8

    @torch.no_grad()
    def code(x: torch.Tensor):
        x = x.to(device)
        H, W = x.shape[-2:]
        ph, pw = (-H) % multiple, (-W) % multiple
        _sync(device)
        t0 = time.perf_counter()
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
        enc = model.compress(xp)
        _sync(device)
        t1 = time.perf_counter()
        dec = model.decompress(enc["strings"], enc["shape"])
        x_hat = dec["x_hat"][..., :H, :W].clamp(0, 1)
        _sync(device)
        t2 = time.perf_counter()
        nbytes = sum(len(s) for group in enc["strings"] for s in group)
        return nbytes, to_uint8(x_hat), t1 - t0, t2 - t1

    return code


# ------------------------------------------------------------------------ checking

def _load_images(image_dir, max_images: Optional[int]) -> List[_Image]:
    root = Path(image_dir)
    files = find_images(root, EVAL_SUFFIXES)
    if max_images is not None:
        if max_images < 1:
            raise InputError(f"max-images must be at least 1, got {max_images}")
        files = files[:max_images]
    out = []
    for f in files:
        rgb = np.asarray(read_rgb(f), dtype=np.uint8).copy()
        out.append(_Image(f.relative_to(root).as_posix(), rgb))
    return out


def _parse_weight_spec(spec: str) -> Tuple[Optional[str], str]:
    label, sep, path = spec.partition("=")
    if sep and label and not Path(spec).exists():
        return label, path
    return None, spec


def _resolve_device(device: Optional[str]) -> torch.device:
    from ..training.distributed import resolve_device

    try:
        return resolve_device(device)
    except (ValueError, RuntimeError) as e:
        raise InputError(f"device: {e}") from None


def _check_out(out: Path, force: bool) -> None:
    if out.exists():
        if not out.is_dir():
            raise InputError(f"--out {out} exists and is not a folder")
        if any(out.iterdir()) and not force:
            raise InputError(f"{out} exists and is not empty; use --force to replace its "
                             f"result files")
    if not out.parent.resolve().is_dir():
        raise InputError(f"the folder {out.parent} does not exist")


def _unique_names(items: List[Dict], extra_key: str) -> None:
    seen: Dict[str, int] = {}
    for it in items:
        seen[it["name"]] = seen.get(it["name"], 0) + 1
    for it in items:
        if seen[it["name"]] > 1:
            it["name"] = f"{it['name']} [{it.get(extra_key, '?')}]"


# ------------------------------------------------------------------------- running

def evaluate(cfg: EvalConfig) -> Dict:
    r"""Run the evaluation and write the results; returns a summary.

    Raises:
        InputError: a bad input, found before anything is coded or written.
    """
    from ..models.glic import CONFIGS
    from ..zoo import (QUALITY_LAMBDAS, UNTRAINED, check_quality, codec_name, load_codec,
                       shipped_qualities)
    from ..training.models import load_model_file, is_glic

    # ---- check every input first -------------------------------------------------
    if cfg.bd_method not in METHODS:
        raise InputError(f"bd-method must be one of {METHODS}, got {cfg.bd_method!r}")
    out = Path(cfg.out)
    _check_out(out, cfg.force)
    if cfg.config not in CONFIGS:
        raise InputError(f"unknown GLIC configuration {cfg.config!r}; expected one of "
                         f"{sorted(CONFIGS)}")
    if cfg.zoo is False and cfg.qualities is not None:
        raise InputError("--qualities asks for the GLIC zoo that --no-zoo skips")
    run_zoo = cfg.zoo is not False and (cfg.qualities is not None or not cfg.weights)
    if not run_zoo and not cfg.weights and not cfg.classical:
        raise InputError("nothing to evaluate: no GLIC quality, weight file or classical codec")
    qualities: List[Union[int, float]] = []
    if run_zoo:
        if cfg.qualities is not None:
            try:
                qualities = list(dict.fromkeys(check_quality(cfg.config, q)
                                               for q in cfg.qualities))
            except ValueError as e:
                raise InputError(str(e)) from None
            if not qualities:
                raise InputError("no quality given")
        else:
            qualities = shipped_qualities(cfg.config) or sorted(QUALITY_LAMBDAS)
    try:
        codecs = C.resolve(cfg.classical)
    except ValueError as e:
        raise InputError(str(e)) from None
    sweeps: Dict[str, List[float]] = {}
    for name, values in (cfg.sweeps or {}).items():
        try:
            key = next(iter(C.resolve([name])))
        except ValueError as e:
            raise InputError(str(e)) from None
        if key not in codecs:
            raise InputError(f"--sweep {name}: {key} is not among the classical codecs run")
        if not values:
            raise InputError(f"--sweep {name}: no settings")
        for v in values:
            try:
                codecs[key].check_setting(v)
            except ValueError as e:
                raise InputError(str(e)) from None
        sweeps[key] = list(values)
    references = [load_reference(p) for p in cfg.references]
    device = _resolve_device(cfg.device)
    images = _load_images(cfg.image_dir, cfg.max_images)
    loaded = []
    for spec in cfg.weights:
        label, path = _parse_weight_spec(spec)
        loaded.append((label, load_model_file(path)))

    # ---- learned curves ------------------------------------------------------------
    where = f"{len(images)} images of {cfg.image_dir}"
    env = (f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
           f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    learned: Dict[str, _LearnedCurve] = {}
    for q in qualities:
        name = codec_name(cfg.config, q)
        if name.endswith(UNTRAINED):
            print(f"warning: no trained weights ship for {cfg.config} quality {q}; "
                  f"evaluating the untrained model as {name}", file=sys.stderr)
        curve = learned.setdefault(name, _LearnedCurve(
            name, f"{name} (pyg_glic zoo), real .glic bitstreams via pyg_glic.codec on "
                  f"{where}; {env}"))
        model = load_codec(name, q).to(device)
        curve.points.append((q, glic_coder(model, cfg.config, q, device)))
    for label, lm in loaded:
        name = label or f"{lm.config} (weights)"
        net = lm.model.eval().to(device)
        net.update(force=True)
        setting = lm.quality if lm.quality is not None else lm.path.name
        if is_glic(lm.config):
            coder = glic_coder(net, lm.config, lm.quality if lm.quality in QUALITY_LAMBDAS
                               else 1, device)
            how = "real .glic bitstreams via pyg_glic.codec"
        else:
            coder = peer_coder(net, device)
            how = "real CompressAI bitstreams (strings only), padded to a multiple of 64"
        curve = learned.setdefault(name, _LearnedCurve(
            name, f"{name}: {lm.config} from weight files, {how}, on {where}; {env}"))
        curve.points.append((setting, coder))
        curve.description += f"; {setting}: {lm.path}"

    # ---- measure -------------------------------------------------------------------
    n_points = sum(len(c.points) for c in learned.values()) + sum(
        len(sweeps.get(k, c.sweep)) for k, c in codecs.items())
    from tqdm import tqdm

    bar = tqdm(total=n_points * len(images), unit="img", dynamic_ncols=True,
               disable=not cfg.progress, file=sys.stderr)
    curves: List[Dict] = []
    try:
        tensors = [torch.from_numpy(im.rgb).permute(2, 0, 1)[None].float().div(255)
                   for im in images]
        for lc in learned.values():
            per_point = []
            for i, (setting, coder) in enumerate(lc.points):
                bar.set_description(f"{lc.name} {setting}")
                if i == 0 or device.type == "cuda":
                    coder(tensors[0])  # warm-up (lazy initialisation), not timed
                recs = []
                for im, x in zip(images, tensors):
                    nbytes, rec, te, td = coder(x)
                    H, W = im.rgb.shape[:2]
                    recs.append({"image": im.name, "bytes": nbytes,
                                 "bpp": metrics.bpp(nbytes, H, W),
                                 "psnr-rgb": metrics.psnr_rgb(im.rgb, rec),
                                 "ms-ssim-rgb": metrics.ms_ssim_rgb(im.rgb, rec, device)
                                 if cfg.ms_ssim else float("nan"),
                                 "encoding_time": te, "decoding_time": td})
                    bar.update(1)
                per_point.append(recs)
            curves.append(make_curve(lc.name, lc.description, "learned",
                                     [s for s, _ in lc.points], per_point))
        for key, codec in codecs.items():
            values = sweeps.get(key, list(codec.sweep))
            per_point = []
            for v in values:
                bar.set_description(f"{codec.label} {codec.setting} {v}")
                recs = []
                for im in images:
                    r = C.measure(im.rgb, codec, v, cfg.ms_ssim, device)
                    r["image"] = im.name
                    recs.append(r)
                    bar.update(1)
                per_point.append(recs)
            from PIL import __version__ as pil_version

            opts = codec.options(values[0])
            opts.pop("quality", None)
            opts.pop("quality_layers", None)
            curves.append(make_curve(
                codec.label, f"{codec.label} through Pillow {pil_version}, {codec.setting} "
                f"sweep {values}, options {opts}; bpp from the encoded file size, on {where}",
                "classical", values, per_point))
    finally:
        bar.close()

    # ---- BD-rates ------------------------------------------------------------------
    for r in references:
        r["name"] = f"{r['name']} (ref.)"
    _unique_names(references, "file")
    _unique_names(curves + references, "kind")
    rows, md, bd_json = bd_report(curves, references, cfg.bd_method, where)

    # ---- write (to a temporary folder, then into place) ---------------------------
    from .. import __version__

    meta = {"tool": f"pyg_glic {__version__} eval", "dataset": os.fspath(cfg.image_dir),
            "images": [im.name for im in images],
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": str(device), "torch": torch.__version__,
            "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
            "bd_method": cfg.bd_method}
    files: Dict[str, str] = {}
    used = set()
    for c in curves:
        base = slug(c["name"]).lower()
        name, i = base, 2
        while name in used or name in ("results", "bd_rates"):
            name, i = f"{base}-{i}", i + 1
        used.add(name)
        files[f"{name}.json"] = dumps(c)
    files["results.json"] = dumps({**meta, "curves": [schema_view(c) for c in curves],
                                   "references": references, "bd_rates": bd_json})
    files["bd_rates.json"] = dumps({"method": cfg.bd_method, "bd_rates": bd_json})
    files["bd_rates.md"] = md
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o777 & ~current_umask())  # a normal folder once renamed, not mkdtemp's 0o700
    try:
        for fname, text in files.items():
            (tmp / fname).write_text(text)
        learned_names = "; ".join(c["name"] for c in curves if c["kind"] == "learned")
        plot_rd(curves, references, tmp / "rd.png",
                title=where + (f" ({learned_names})" if learned_names else ""))
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": out, "curves": curves, "references": references, "bd": rows,
            "markdown": md, "files": sorted(list(files) + ["rd.png"])}


def bd_tables(curves: List[Dict], references: List[Dict], method: str):
    r"""BD-rate of every measured curve against every anchor.

    Anchors: the classical codecs and the references, and, when a run has two
    or more learned codecs (a model and its equal-budget peer), each learned
    codec too (the head-to-head comparison). Returns ``(rows, anchor_names)``
    for :func:`~pyg_glic.evaluation.report.bd_markdown`.
    """
    learned = [c for c in curves if c["kind"] == "learned"]
    anchors = ((learned if len(learned) > 1 else [])
               + [c for c in curves if c["kind"] == "classical"] + references)
    rows = []
    for t in curves:
        bd = {}
        for a in anchors:
            if a is t:
                continue
            bd[a["name"]] = bd_rate(a["results"]["bpp"], a["results"]["psnr-rgb"],
                                    t["results"]["bpp"], t["results"]["psnr-rgb"],
                                    method=method)
        rows.append({"name": t["name"], "kind": t["kind"], "bd": bd})
    return rows, [a["name"] for a in anchors]


def bd_report(curves: List[Dict], references: List[Dict], method: str, where: str,
              extra_notes: Sequence[str] = ()):
    r"""The BD tables of an evaluation: ``(rows, markdown, json rows)``.

    ``rows`` are :func:`bd_tables`' rows, ``markdown`` the table of
    :func:`~pyg_glic.evaluation.report.bd_markdown` with the standard notes
    (what was measured, ``where``; untrained curves) and ``extra_notes``, the
    json rows ``{"codec", "kind", "against": {anchor: BDResult dict}}``.
    """
    from ..zoo import UNTRAINED

    rows, anchor_names = bd_tables(curves, references, method)
    notes = [f"Measured on {where}; reference curves are the published numbers on their "
             f"own image sets (Kodak references: all 24 images)."]
    if any(c["name"].endswith(UNTRAINED) for c in curves):
        notes.append("`+untrained` curves are randomly initialised models: their numbers "
                     "only exercise the pipeline.")
    md = bd_markdown(rows, anchor_names, method, list(notes) + list(extra_notes))
    bd_json = [{"codec": r["name"], "kind": r["kind"], "against": {
        a: res.to_dict() for a, res in r["bd"].items()}} for r in rows]
    return rows, md, bd_json


def _commit(tmp: Path, out: Path) -> None:
    r"""Move the finished results into ``out`` (renaming the folder when it is new)."""
    if not out.exists():
        os.replace(tmp, out)
        return
    for f in sorted(tmp.iterdir()):
        os.replace(f, out / f.name)
    tmp.rmdir()
