r"""Training images: folders of photographs -> random crops, deterministically.

:class:`ImageFolder` reads every ``.jpg``/``.jpeg``/``.png`` under one or more
folders (recursively, hidden files skipped) and returns random ``crop x crop``
patches with random horizontal and vertical flips. :class:`EpochSampler` decides
which image each sample comes from *and* the seed of its crop and flips, from
``(seed, epoch, position)`` only, so a run is the same whatever the number of
data-loader workers, and a resumed run continues the exact sample stream.

Images smaller than the crop (either side) are handled by ``small``:

- ``"upscale"`` (default): resized (bicubic) so the shorter side equals the crop,
  aspect ratio kept; natural-image statistics stay roughly intact.
- ``"pad"``: edge-replicated to the crop size; flat borders are cheap to code and
  bias the rate estimate down a little.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

PathLike = Union[str, os.PathLike]

#: File suffixes (case-insensitive) read as training images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SMALL_MODES = ("upscale", "pad")


class InputError(ValueError):
    r"""A bad input (missing folder, no images, unreadable file, bad option).

    The command line turns it into ``error: <message>`` and exit code 2.
    """


def find_images(roots: Union[PathLike, Sequence[PathLike]],
                suffixes: Sequence[str] = IMAGE_SUFFIXES) -> List[Path]:
    r"""Every image file under ``roots`` (a folder or a list of folders), sorted.

    Searched recursively; files and folders whose names start with ``"."`` are
    skipped (editor and macOS droppings).

    Raises:
        InputError: a root does not exist, is not a folder, or holds no image.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    roots = list(roots)
    if not roots:
        raise InputError("no image folder given")
    suffixes = tuple(s.lower() for s in suffixes)
    files: List[Path] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise InputError(f"no such folder: {root}")
        if not root.is_dir():
            raise InputError(f"{root} is not a folder")
        found = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if not name.startswith(".") and name.lower().endswith(suffixes):
                    found.append(Path(dirpath) / name)
        if not found:
            raise InputError(f"{root} holds no images ({', '.join(suffixes)}; searched "
                             f"recursively)")
        files += sorted(found)
    return files


def image_size(path: PathLike) -> Tuple[int, int]:
    r"""``(width, height)`` of an image file, reading its header only.

    Raises:
        InputError: Pillow cannot read the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"{path} is not an image file that Pillow can read ({e})") from None
    if w < 1 or h < 1:
        raise InputError(f"{path} has no pixels ({w}x{h})")
    return w, h


def read_rgb(path: PathLike):
    r"""The image at ``path`` as an RGB ``PIL.Image`` (fully decoded).

    Raises:
        InputError: Pillow cannot read or decode the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"{path} is not an image file that Pillow can read ({e})") from None


class ImageFolder(Dataset):
    r"""Random crops of the images under one or more folders.

    Args:
        roots (str or list): a folder or a list of folders (searched recursively
            for ``.jpg``, ``.jpeg`` and ``.png``).
        crop_size (int): side of the square crops (default 256).
        small (str): ``"upscale"`` (default) or ``"pad"``: what happens to an
            image smaller than the crop (see the module docstring).
        flips (bool): random horizontal and vertical flips (default ``True``).
        check (bool): read every file's header now, so an unreadable file fails
            at start-up with its name rather than mid-run (default ``True``).
        cache (bool): keep every decoded image in memory (per data-loader worker)
            after its first use: decoding dominates the loading cost of small
            training sets; leave off for sets that do not fit in memory.

    An item is ``dataset[i]`` (random draws from torch's global generator) or
    ``dataset[(i, seed)]`` (draws from a generator seeded with ``seed``; what
    :class:`EpochSampler` yields). Returns a float tensor ``(3, crop, crop)`` in
    ``[0, 1]``.
    """

    def __init__(self, roots, crop_size: int = 256, small: str = "upscale",
                 flips: bool = True, check: bool = True, cache: bool = False):
        if crop_size < 16:
            raise InputError(f"crop size must be at least 16, got {crop_size}")
        if small not in SMALL_MODES:
            raise InputError(f"small must be one of {SMALL_MODES}, got {small!r}")
        self.files = find_images(roots)
        self.crop_size = int(crop_size)
        self.small = small
        self.flips = flips
        self.cache = cache
        self._cache: dict = {}
        if check:
            for f in self.files:
                image_size(f)

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({len(self)} images, crop={self.crop_size}, "
                f"small={self.small!r})")

    def __getitem__(self, item) -> Tensor:
        if isinstance(item, (tuple, list)):
            index, seed = int(item[0]), int(item[1])
            gen = torch.Generator().manual_seed(seed)
        else:
            index, gen = int(item), None
        im = self._cache.get(index) if self.cache else None
        if im is None:
            im = read_rgb(self.files[index])
            if self.cache:
                self._cache[index] = im
        return self.crop(im, gen)

    def crop(self, im, generator: Optional[torch.Generator] = None) -> Tensor:
        r"""A random crop (and flips) of a PIL image -> ``(3, crop, crop)`` in ``[0, 1]``."""
        from PIL import Image

        c = self.crop_size
        w, h = im.size
        if (w < c or h < c) and self.small == "upscale":
            s = c / min(w, h)
            w, h = max(c, round(w * s)), max(c, round(h * s))
            im = im.resize((w, h), Image.BICUBIC)

        def randint(hi: int) -> int:  # uniform in [0, hi]
            return int(torch.randint(hi + 1, (1,), generator=generator))

        left, top = randint(max(w - c, 0)), randint(max(h - c, 0))
        flip_h = self.flips and randint(1) == 1
        flip_v = self.flips and randint(1) == 1
        im = im.crop((left, top, left + min(c, w), top + min(c, h)))
        x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)
        if x.shape[1] < c or x.shape[2] < c:  # small == "pad"
            x = torch.nn.functional.pad(x[None].float(), (0, c - x.shape[2], 0, c - x.shape[1]),
                                        mode="replicate")[0]
        x = x.float().div_(255)
        if flip_h:
            x = x.flip(-1)
        if flip_v:
            x = x.flip(-2)
        return x.contiguous()


def _mix(*values: int) -> int:
    r"""A 63-bit seed from integers (splitmix64-style), the same on every platform."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class EpochSampler(Sampler):
    r"""The samples of one rank for one epoch: ``(image index, crop seed)`` pairs.

    An epoch is ``steps_per_epoch = max(1, n // (batch_size * world_size))``
    global steps. Its order is a permutation of the images seeded by
    ``(seed, epoch)`` (tiled with further permutations when there are fewer
    images than one global batch); global step ``k`` uses positions
    ``[k*B*W, (k+1)*B*W)`` and rank ``r`` takes every ``W``-th of them from
    ``r``, as :class:`torch.utils.data.DistributedSampler` does. Each position
    also carries the seed of its crop and flips. Call :meth:`set_epoch` with the
    step to start from to resume mid-epoch.

    Args:
        n (int): number of images.
        batch_size (int): samples per step on this rank.
        seed (int): base seed of the run.
        rank (int), world_size (int): this process and the number of processes.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        if n < 1:
            raise InputError("no training images")
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = max(1, n // (batch_size * world_size))
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        r"""Select the epoch, and the step inside it (0-based) to start from."""
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start step {start_step} outside 0..{self.steps_per_epoch}")
        self.epoch, self.start_step = int(epoch), int(start_step)

    def global_order(self, epoch: int) -> Tuple[Tensor, Tensor]:
        r"""Image indices and crop seeds of every position of an epoch (all ranks)."""
        need = self.steps_per_epoch * self.batch_size * self.world_size
        g = torch.Generator().manual_seed(_mix(self.seed, epoch))
        perms = [torch.randperm(self.n, generator=g) for _ in range(-(-need // self.n))]
        order = torch.cat(perms)[:need]
        seeds = torch.randint(0, 2 ** 62, (need,), generator=g)
        return order, seeds

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        order, seeds = self.global_order(self.epoch)
        B, W, r = self.batch_size, self.world_size, self.rank
        for j in range(self.start_step * B, self.steps_per_epoch * B):
            pos = r + j * W
            yield int(order[pos]), int(seeds[pos])

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.batch_size
