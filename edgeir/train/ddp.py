"""Data parallelism under ``torchrun``: the standard engine (DistributedDataParallel), nothing hand-rolled.

Every process runs the same program. Each draws the same global batch from the same seed and trains on its
own slice of it; DDP averages the gradients, so N processes take exactly the steps one process would take with
the whole batch. Only the main process writes files and prints; the others wait for it at barriers.
Without torchrun (no ``WORLD_SIZE`` in the environment) every function here is a no-op for one process.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")


def init(device: str | None = None) -> str:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA), once per process, and return
    this process's device: ``device`` if given, else CUDA when available (one GPU per process)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device == "cuda" and active():
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return device


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def wrap(module: nn.Module) -> nn.Module:
    """``module`` itself for one process, else a DDP wrapper that averages gradients across processes."""
    if not active():
        return module
    device = next(module.parameters()).device
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda"
                                               else None)


def shard(x: T) -> T:
    """This process's slice of a global batch (a tensor or list), by stride so slices interleave."""
    return x[rank()::world_size()]  # type: ignore[index]


def gather(x: torch.Tensor) -> torch.Tensor:
    """Undo ``shard`` (every slice must have the same length): each process gets the whole batch back, in its
    original order."""
    if not active():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.stack(parts, 1).flatten(0, 1)


def broadcast(obj: Any) -> Any:
    """The main process's ``obj`` on every process (a picklable value, e.g. a gate verdict)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
