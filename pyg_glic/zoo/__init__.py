r"""Model factories and shipped weights, in CompressAI's zoo style.

``glic(config, quality, pretrained=True)`` loads weights shipped inside the
package (``pyg_glic/zoo/weights/{config}-q{quality}.pt``), offline. A codec is
named in ``.glic`` files by :func:`codec_name`: ``"glic-lite"`` for shipped
weights, ``"glic-lite+untrained"`` for the deterministic random initialisation
used when no weights ship for a configuration and quality.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import torch

from ..models.glic import CONFIGS, GLIC, glic_model

#: Rate-distortion trade-off per quality level (loss = lambda * 255^2 * MSE + bpp).
QUALITY_LAMBDAS: Dict[int, float] = {1: 0.0017, 2: 0.0035, 3: 0.0067, 4: 0.013, 5: 0.025,
                                     6: 0.05}
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
UNTRAINED = "+untrained"
UNTRAINED_SEED = 20260


def _check(config: str, quality: int) -> None:
    if config not in CONFIGS:
        raise ValueError(f"unknown GLIC configuration {config!r}; expected one of {sorted(CONFIGS)}")
    if quality not in QUALITY_LAMBDAS:
        raise ValueError(f"quality must be one of {sorted(QUALITY_LAMBDAS)}, got {quality}")


def weights_path(config: str, quality: int) -> Path:
    return WEIGHTS_DIR / f"{config}-q{quality}.pt"


def shipped_weights() -> List[Tuple[str, int]]:
    r"""The ``(config, quality)`` pairs with weights in the package."""
    out = []
    for p in sorted(WEIGHTS_DIR.glob("*-q*.pt")):
        config, _, q = p.stem.rpartition("-q")
        if config in CONFIGS and q.isdigit():
            out.append((config, int(q)))
    return out


def glic(config: str = "glic-lite", quality: int = 3, pretrained: bool = False,
         **kwargs) -> GLIC:
    r"""A GLIC codec.

    Args:
        config (str): ``"glic-lite"``, ``"glic"`` (published sizes) or ``"glic-tiny"``.
        quality (int): 1 (lowest rate) .. 6 (highest), see :data:`QUALITY_LAMBDAS`.
        pretrained (bool): load the shipped weights (offline); raises
            ``FileNotFoundError`` naming what ships if there are none.

    Returns:
        the model; in eval mode with its entropy tables updated when pretrained.
    """
    _check(config, quality)
    if not pretrained:
        return glic_model(config, **kwargs)
    path = weights_path(config, quality)
    if not path.is_file():
        have = ", ".join(f"{c} q{q}" for c, q in shipped_weights()) or "none"
        raise FileNotFoundError(f"no trained weights ship for {config} quality {quality} "
                                f"(shipped: {have})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
             for k, v in state.items()}
    net = GLIC.from_state_dict(state, config=config, **kwargs)
    net.eval()
    net.update(force=True)
    return net


def codec_name(config: str, quality: int) -> str:
    r"""The name a ``.glic`` file records: shipped weights if any, else the untrained model."""
    _check(config, quality)
    return config if weights_path(config, quality).is_file() else config + UNTRAINED


def known_codec_names() -> List[str]:
    return sorted([c for c in CONFIGS] + [c + UNTRAINED for c in CONFIGS])


def load_codec(name: str, quality: int) -> GLIC:
    r"""The codec a ``.glic`` file names, ready to code (eval mode, tables updated).

    ``"<config>+untrained"`` is the random initialisation seeded with
    :data:`UNTRAINED_SEED`, identical wherever the same torch version runs.
    """
    if name.endswith(UNTRAINED):
        config = name[: -len(UNTRAINED)]
        _check(config, quality)
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(UNTRAINED_SEED + quality)
            net = glic_model(config)
        finally:
            torch.random.set_rng_state(state)
        net.eval()
        net.update(force=True)
        return net
    return glic(name, quality, pretrained=True)
