r"""Model factories and shipped weights, in CompressAI's zoo style.

Two kinds of configuration (:data:`pyg_glic.models.glic.CONFIGS`):

- **variable rate** (``levels`` set, e.g. ``glic-lite`` with 6 levels): one model
  codes at any float quality in ``[1, levels]`` (gains interpolated between the
  trained levels); one weight file ``weights/{config}.pt`` serves every quality.
- **fixed rate** (``levels=None``, e.g. ``glic``): one model per integer quality
  1..6 (:data:`QUALITY_LAMBDAS`), weight files ``weights/{config}-q{q}.pt``.

A ``/`` in a configuration name (ablation variants, ``"glic-lite/fixed-degree"``)
is ``+`` in file names. :func:`glic` loads shipped weights offline. A ``.glic``
file names its codec by :func:`codec_name`: ``"glic-lite"`` for the shipped
weights, ``"glic-lite+untrained"`` for the deterministic random initialisation
used while none ship, and records :func:`weights_fingerprint` so that a decoder
with other weights refuses the file instead of decoding garbage.

Importing this module registers the GLIC architecture with CompressAI's
evaluator (:func:`register_compressai`); see :func:`run_compressai_eval`.
"""
from __future__ import annotations

import hashlib
import math
import numbers
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..bitstream import FINGERPRINT_SIZE
from ..models.glic import CONFIGS, GLIC, glic_model

#: Rate-distortion trade-off per quality level (loss = lambda * 255^2 * MSE + bpp);
#: for a variable-rate model, the lambdas of its trained levels 1..6.
QUALITY_LAMBDAS: Dict[int, float] = {1: 0.0017, 2: 0.0035, 3: 0.0067, 4: 0.013, 5: 0.025,
                                     6: 0.05}
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
UNTRAINED = "+untrained"
#: Seed of the untrained models: a fixed-rate quality ``q`` uses ``UNTRAINED_SEED + q``,
#: a variable-rate model ``UNTRAINED_SEED`` for all its qualities (it is one model).
UNTRAINED_SEED = 20260
#: Environment variable: the quality a variable-rate model loaded by CompressAI's
#: evaluator in ``checkpoint`` mode codes at (see :func:`register_compressai`).
EVAL_QUALITY_ENV = "PYG_GLIC_QUALITY"

Quality = Union[int, float]

# ------------------------------------------------------------------- configurations


def _check_config(config: str) -> Dict:
    if config not in CONFIGS:
        raise ValueError(f"unknown GLIC configuration {config!r}; expected one of "
                         f"{sorted(CONFIGS)}")
    return CONFIGS[config]


def levels_of(config: str) -> Optional[int]:
    r"""The number of trained levels of a variable-rate configuration; ``None`` if fixed-rate."""
    levels = _check_config(config).get("levels")
    return int(levels) if levels else None


def is_variable_rate(config: str) -> bool:
    return levels_of(config) is not None


def _quality_range(levels: Optional[int]) -> str:
    return f"a number in [1, {levels}]" if levels else \
        f"an integer in {min(QUALITY_LAMBDAS)}..{max(QUALITY_LAMBDAS)}"


def check_quality_for_levels(levels: Optional[int], quality, what: str = "this model"
                             ) -> Quality:
    r"""``quality`` checked for a model with ``levels`` (``None``: fixed-rate).

    Returns:
        ``float(quality)`` for a variable-rate model, ``int(quality)`` for a
        fixed-rate one.

    Raises:
        ValueError: not a number, outside ``[1, levels]``, or (fixed-rate) not
            one of the integer qualities 1..6.
    """
    bad = ValueError(f"quality for {what} must be {_quality_range(levels)}, got {quality!r}")
    if isinstance(quality, bool) or not isinstance(quality, numbers.Real):
        raise bad
    q = float(quality)
    if not math.isfinite(q):
        raise bad
    if levels:
        if not 1.0 <= q <= levels:
            raise bad
        return q
    if q != int(q) or int(q) not in QUALITY_LAMBDAS:
        raise bad
    return int(q)


def check_quality(config: str, quality) -> Quality:
    r"""``quality`` checked for ``config``: a float in ``[1, levels]`` for a
    variable-rate configuration, an integer 1..6 for a fixed-rate one (see
    :func:`check_quality_for_levels`); ``ValueError`` otherwise."""
    return check_quality_for_levels(levels_of(config), quality, config)


def _file_stem(config: str) -> str:
    return config.replace("/", "+")


# ------------------------------------------------------------------------ weights


def weights_path(config: str, quality: Optional[Quality] = None) -> Path:
    r"""Where the shipped weights of ``config`` are (whether or not they exist).

    A variable-rate configuration has one file for every quality
    (``{config}.pt``; ``quality``, if given, is only checked); a fixed-rate one
    one file per quality (``{config}-q{quality}.pt``; ``quality`` required).
    """
    if is_variable_rate(config):
        if quality is not None:
            check_quality(config, quality)
        return WEIGHTS_DIR / f"{_file_stem(config)}.pt"
    if quality is None:
        raise ValueError(f"{config} is fixed-rate: its weights are per quality; give one")
    return WEIGHTS_DIR / f"{_file_stem(config)}-q{check_quality(config, quality)}.pt"


_FIXED_FILE = re.compile(r"^(?P<stem>.+)-q(?P<q>\d+)$")


def shipped_weights() -> List[Tuple[str, Optional[int]]]:
    r"""The weight files in the package, one ``(config, quality)`` per file.

    ``quality`` is ``None`` for a variable-rate file (it serves every quality in
    ``[1, levels]``) and the integer quality of a fixed-rate file. See
    :func:`shipped_qualities` for the qualities one configuration can code at.
    """
    out = []
    for p in sorted(WEIGHTS_DIR.glob("*.pt")):
        config = p.stem.replace("+", "/")
        if config in CONFIGS and is_variable_rate(config):
            out.append((config, None))
            continue
        m = _FIXED_FILE.match(p.stem)
        if m:
            config, q = m.group("stem").replace("+", "/"), int(m.group("q"))
            if config in CONFIGS and not is_variable_rate(config) and q in QUALITY_LAMBDAS:
                out.append((config, q))
    return sorted(out, key=lambda cq: (cq[0], cq[1] or 0))


def shipped_qualities(config: str) -> List[int]:
    r"""The integer qualities ``config`` can code at with shipped weights.

    A variable-rate configuration with its file shipped: its trained levels
    ``1..levels`` (and any float between them); a fixed-rate one: the qualities
    whose file ships. ``[]`` when none ship.
    """
    levels = levels_of(config)
    if levels:
        return list(range(1, levels + 1)) if weights_path(config).is_file() else []
    return sorted(q for c, q in shipped_weights() if c == config)


def glic(config: str = "glic-lite", quality: Quality = 3, pretrained: bool = False,
         **kwargs) -> GLIC:
    r"""A GLIC codec.

    Args:
        config (str): a configuration of :data:`pyg_glic.models.glic.CONFIGS`
            (``"glic-lite"``, ``"glic"``, ``"glic-tiny"``, ``"glic-lite/fixed-degree"``...).
        quality (float or int): a variable-rate configuration: a float in
            ``[1, levels]``, set as the model's default :attr:`GLIC.quality`; a
            fixed-rate one: the integer quality 1..6 whose weights to load.
        pretrained (bool): load the shipped weights (offline); raises
            ``FileNotFoundError`` naming what ships if there are none.

    Returns:
        the model; in eval mode with its entropy tables updated when pretrained.
    """
    q = check_quality(config, quality)
    if not pretrained:
        net = glic_model(config, **kwargs)
    else:
        path = weights_path(config, q)
        if not path.is_file():
            have = ", ".join(c if s is None else f"{c} q{s}" for c, s in shipped_weights())
            what = config if is_variable_rate(config) else f"{config} quality {q}"
            raise FileNotFoundError(f"no trained weights ship for {what} (expected {path}; "
                                    f"shipped: {have or 'none'})")
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = GLIC.from_state_dict(state, config=config, **kwargs)
        net.eval()
        net.update(force=True)
    if net.levels:
        net.quality = float(q)
    return net


def codec_name(config: str, quality: Optional[Quality] = None) -> str:
    r"""The name a ``.glic`` file records: ``config`` if its weights ship, else
    ``config + "+untrained"``. ``quality`` is needed for a fixed-rate configuration."""
    return config if weights_path(config, quality).is_file() else config + UNTRAINED


def split_codec_name(name: str) -> Tuple[str, bool]:
    r"""``"glic-lite+untrained"`` -> ``("glic-lite", True)``; ``"glic"`` -> ``("glic", False)``."""
    if name.endswith(UNTRAINED):
        return name[: -len(UNTRAINED)], True
    return name, False


def known_codec_names() -> List[str]:
    return sorted([c for c in CONFIGS] + [c + UNTRAINED for c in CONFIGS])


def untrained_model(config: str, quality: Optional[Quality] = None) -> GLIC:
    r"""The deterministic random initialisation of ``config`` (``"<config>+untrained"``).

    Seeded with :data:`UNTRAINED_SEED` (a variable-rate model: one model for all
    qualities) or ``UNTRAINED_SEED + quality`` (fixed-rate; ``quality`` required);
    identical wherever the same torch version runs. The global RNG is restored.
    """
    levels = levels_of(config)
    if levels is None:
        if quality is None:
            raise ValueError(f"{config} is fixed-rate: its untrained model is per quality; "
                             f"give one")
        seed = UNTRAINED_SEED + check_quality(config, quality)
    else:
        seed = UNTRAINED_SEED
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        net = glic_model(config)
    finally:
        torch.random.set_rng_state(state)
    return net


def load_codec(name: str, quality: Optional[Quality] = None) -> GLIC:
    r"""The codec a ``.glic`` file names, ready to code at ``quality`` (eval mode,
    entropy tables updated).

    For a variable-rate model ``quality`` becomes :attr:`GLIC.quality` (``None``:
    the model's default); a fixed-rate one needs it to pick the weights.
    ``"<config>+untrained"`` is :func:`untrained_model`.

    Raises:
        ValueError: unknown configuration or a quality out of range for it.
        FileNotFoundError: ``name`` asks for trained weights that do not ship.
    """
    config, untrained = split_codec_name(name)
    levels = levels_of(config)
    if quality is None:
        if levels is None:
            raise ValueError(f"{config} is fixed-rate: give the quality to load")
        quality = float(min(3, levels))  # GLIC's default quality
    q = check_quality(config, quality)
    if untrained:
        net = untrained_model(config, q)
        net.eval()
        net.update(force=True)
    else:
        net = glic(config, q, pretrained=True)
    if levels:
        net.quality = float(q)
    return net


# -------------------------------------------------------------------- fingerprints

#: Buffers CompressAI's ``update()`` derives from the weights (the coding tables):
#: not hashed, so a fingerprint does not depend on whether tables were updated.
DERIVED_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


def _fingerprint_items(state: Mapping) -> List[Tuple[str, Tensor]]:
    items = []
    for k in sorted(state):
        v = state[k]
        if not torch.is_tensor(v) or k.rsplit(".", 1)[-1] in DERIVED_BUFFERS:
            continue
        if k.endswith(".weight"):
            # CompressAI's masked convolutions multiply their weight by their mask
            # in place on first use: hash the weight as used, before or after.
            mask = state.get(k[: -len("weight")] + "mask")
            if torch.is_tensor(mask) and mask.shape == v.shape:
                v = v.detach() * mask.detach().to(v.dtype)
        items.append((k, v))
    return items


def _hash(items: Sequence[Tuple[str, Tensor]]) -> bytes:
    h = hashlib.sha256()
    for k, v in items:
        t = v.detach().cpu().contiguous()
        if t.is_floating_point():
            a, kind = t.to(torch.float16).numpy().astype("<f2", copy=False), "f16"
        else:
            a = t.numpy()
            a, kind = a.astype(a.dtype.newbyteorder("<"), copy=False), a.dtype.str[1:]
        h.update(k.encode("utf-8") + b"\0" + kind.encode("ascii") + b"\0"
                 + ",".join(str(s) for s in t.shape).encode("ascii") + b"\0")
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()[:FINGERPRINT_SIZE]


def weights_fingerprint(model_or_state: Union[nn.Module, Mapping]) -> bytes:
    r"""The 8-byte fingerprint of a model's weights, as ``.glic`` files record it.

    The first 8 bytes of the SHA-256 of, for every tensor of the state dict in
    sorted key order: the key (UTF-8), ``NUL``, the element kind (``f16`` for
    every floating tensor, else numpy's code such as ``i4``), ``NUL``, the shape
    as comma-separated decimals, ``NUL``, then the values as little-endian bytes,
    floating tensors converted to fp16 first. So an fp16 weight file and the fp32
    model loaded from it agree, and the device does not matter. A ``weight`` with
    a sibling ``mask`` of its shape (CompressAI's masked convolutions, which mask
    their weight in place on first use) is hashed times its mask, so a model's
    fingerprint does not change when it first codes. Non-tensor entries
    (``"_hparams"``) and the coding tables CompressAI's ``update()`` derives
    (:data:`DERIVED_BUFFERS`) are left out.

    A module's fingerprint is cached on it and recomputed when any tensor is
    replaced or modified in place (``Tensor._version``).

    Args:
        model_or_state: an ``nn.Module`` or a state dict (e.g. a weights file's).
    """
    if not isinstance(model_or_state, nn.Module):
        return _hash(_fingerprint_items(model_or_state))
    state = model_or_state.state_dict(keep_vars=True)
    key = tuple((k, v.data_ptr(), v._version, v.dtype, tuple(v.shape))
                for k, v in state.items() if torch.is_tensor(v))
    cached = model_or_state.__dict__.get("_pyg_glic_fingerprint")
    if cached is not None and cached[0] == key:
        return cached[1]
    fp = _hash(_fingerprint_items(state))
    model_or_state.__dict__["_pyg_glic_fingerprint"] = (key, fp)
    return fp


# ------------------------------------------------------- CompressAI's evaluator


def _eval_quality(net: GLIC) -> GLIC:
    value = os.environ.get(EVAL_QUALITY_ENV)
    if value is None or not net.levels:
        return net
    try:
        q = float(value)
    except ValueError:
        raise ValueError(f"{EVAL_QUALITY_ENV}={value!r} is not a number") from None
    net.quality = check_quality_for_levels(net.levels, q, f"{net.config or 'GLIC'}")
    return net


class CompressAIArchitecture:
    r"""The entry ``compressai.zoo.image.model_architectures["glic"]`` holds: what
    ``python -m compressai.utils.eval_model checkpoint DIR -a glic -p FILE`` calls.

    :meth:`from_state_dict` rebuilds any GLIC configuration from an exported
    weights file (:func:`pyg_glic.training.models.export_weights`; the
    configuration comes from its ``"_hparams"``). CompressAI's evaluator then
    calls ``update(force=True)``, ``compress(x)`` and ``decompress(strings, shape)``
    without a quality, so a **variable-rate model is evaluated at one quality per
    run**: its default :attr:`GLIC.quality` (3), or the value of the environment
    variable ``PYG_GLIC_QUALITY`` (a float in ``[1, levels]``). For a curve, run
    once per quality. (``pretrained`` mode takes CompressAI's integer ``-q``
    list and works for shipped weights at integer qualities.)
    """

    @staticmethod
    def from_state_dict(state_dict: Mapping, **kwargs) -> GLIC:
        return _eval_quality(GLIC.from_state_dict(state_dict, **kwargs))


def _pretrained_entry(config: str):
    def factory(quality, metric: str = "mse", pretrained: bool = False, progress: bool = True,
                **kwargs) -> GLIC:
        if metric != "mse":
            raise ValueError(f"{config} is trained for MSE only, not {metric!r}")
        return glic(config, quality, pretrained=pretrained, **kwargs)

    factory.__name__ = config.replace("-", "_").replace("/", "_")
    factory.__doc__ = (f"``pyg_glic.zoo.glic({config!r}, quality, pretrained)`` for "
                       f"CompressAI's zoo.")
    return factory


#: The names registered with CompressAI's zoo and evaluator.
COMPRESSAI_NAMES = ("glic", "glic-lite", "glic-tiny")


def register_compressai() -> None:
    r"""Make GLIC known to CompressAI's zoo and evaluator (idempotent; done on import).

    Adds, for each name of :data:`COMPRESSAI_NAMES`, an entry to
    ``compressai.zoo.image_models`` (and ``compressai.zoo.models``), a
    :func:`glic` factory with CompressAI's signature
    ``(quality, metric="mse", pretrained=False, progress=True)``, and to
    ``compressai.zoo.image.model_architectures``, :class:`CompressAIArchitecture`
    (any GLIC weights file loads under any of these names: the file names its
    configuration). Existing entries are not replaced.

    ``python -m compressai.utils.eval_model`` does not import pyg_glic itself;
    use :func:`run_compressai_eval`, or import :mod:`pyg_glic.zoo` first in the
    same process.
    """
    import compressai.zoo as czoo
    from compressai.zoo import image as cimage

    for name in COMPRESSAI_NAMES:
        if name not in CONFIGS:
            continue
        entry = _pretrained_entry(name)
        czoo.image_models.setdefault(name, entry)
        czoo.models.setdefault(name, czoo.image_models[name])
        cimage.model_architectures.setdefault(name, CompressAIArchitecture)


def run_compressai_eval(argv: Optional[Sequence[str]] = None) -> None:
    r"""CompressAI's evaluator with GLIC registered, e.g. from a shell::

        PYG_GLIC_QUALITY=2.5 python -c "import sys, pyg_glic.zoo as z; \
            z.run_compressai_eval(sys.argv[1:])" checkpoint KODAK_DIR -a glic -p glic-lite.pt

    ``argv`` are ``compressai.utils.eval_model``'s arguments (default ``sys.argv[1:]``).
    """
    register_compressai()
    from compressai.utils.eval_model.__main__ import main

    main(list(sys.argv[1:] if argv is None else argv))


register_compressai()
