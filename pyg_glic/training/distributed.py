r"""Data-parallel set-up under ``torchrun`` (``torch.distributed``).

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; without them the
run is a single process. Backend: NCCL on CUDA, gloo on the CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable, Optional

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: Optional[str], local_rank: int = 0) -> torch.device:
    r"""``None``/``"auto"``: ``cuda:<local rank>`` if CUDA is available, else the CPU.

    ``"cuda"`` without an index under ``torchrun`` becomes ``cuda:<local rank>``.
    """
    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("CUDA was requested but is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


def setup(device: Optional[str] = None, timeout_min: float = 60.0) -> DistContext:
    r"""Initialise the process group if ``torchrun`` started this process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world <= 1:
        return DistContext(0, 0, 1, dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    here = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = dict(backend=backend, timeout=timedelta(minutes=timeout_min))
        if dev.type == "cuda":
            kwargs["device_id"] = dev
        dist.init_process_group(**kwargs)
        here = True
    return DistContext(rank, local, world, dev, here)


def teardown(ctx: DistContext) -> None:
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def average_gradients(params: Iterable[torch.nn.Parameter], ctx: DistContext) -> None:
    r"""All-reduce (mean) the gradients of parameters DDP does not manage."""
    if not ctx.distributed:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(ctx.world_size)


def broadcast_flag(flag: bool, ctx: DistContext) -> bool:
    r"""Rank 0's boolean, on every rank."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.broadcast(t, 0)
    return bool(t.item())


def check_in_sync(model: torch.nn.Module, ctx: DistContext) -> None:
    r"""Raise if the parameters differ between ranks (a broken data-parallel set-up)."""
    if not ctx.distributed:
        return
    with torch.no_grad():
        total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
        for i, p in enumerate(model.parameters()):
            total[0] += p.double().sum()
            total[1] += (p.double().abs().sum()) * ((i % 7) + 1)
        gathered = [torch.zeros_like(total) for _ in range(ctx.world_size)]
        dist.all_gather(gathered, total)
    ref = gathered[0]
    for r, t in enumerate(gathered[1:], 1):
        if not torch.allclose(t, ref, rtol=1e-9, atol=0):
            raise RuntimeError(f"the parameters of rank {r} differ from rank 0's "
                               f"({t.tolist()} vs {ref.tolist()})")
