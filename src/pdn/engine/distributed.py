"""Process-group set-up for ``torchrun``: gloo on the CPU, NCCL on GPUs, nothing for one process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class Context:
    """Where this process runs: its rank among ``world_size`` and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the files and prints."""
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when a GPU is present, else ``cpu``; ``cuda`` likewise."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device={name}, but no CUDA device is available (use cpu or auto)"
            )
        return torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device(name)
    if name != "cpu":
        raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return torch.device("cpu")


def launched_world_size() -> int:
    """The number of processes ``torchrun`` started (``WORLD_SIZE``; 1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str = "auto") -> Context:
    """Join the process group that ``torchrun`` describes in the environment (or run alone).

    With ``WORLD_SIZE`` > 1 this initialises ``torch.distributed`` with NCCL when the device is a
    GPU and gloo otherwise; each process takes the GPU of its ``LOCAL_RANK``.
    """
    world_size = launched_world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
    elif resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    return Context(rank=rank, world_size=world_size, local_rank=local_rank, device=resolved)


def teardown() -> None:
    """Leave the process group (no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def prepare_model(model: nn.Module, context: Context) -> nn.Module:
    """Move to the device; under DDP on GPUs convert BatchNorm to SyncBatchNorm, then wrap in DDP.

    On the CPU BatchNorm stays plain (SyncBatchNorm refuses CPU tensors): each process normalises
    with its own batch statistics.
    """
    model = model.to(context.device)
    if not context.distributed:
        return model
    if context.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[context.device.index])
    return nn.parallel.DistributedDataParallel(model)


def all_reduce_sum(values: list[float], context: Context) -> list[float]:
    """Element-wise sum over ranks (``values`` itself when alone)."""
    if not context.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device(context))
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_gather_objects(obj: Any, context: Context) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` when alone)."""
    if not context.distributed:
        return [obj]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(context: Context) -> None:
    if context.distributed:
        dist.barrier()


def _comm_device(context: Context) -> torch.device:
    return context.device if dist.get_backend() == "nccl" else torch.device("cpu")
