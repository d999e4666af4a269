"""Timing and memory measurement shared by the benchmarks: warm-up, medians, CUDA synchronisation."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Timing:
    """Seconds per call of ``repeats`` timed calls (after untimed warm-up calls)."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.seconds) < 2:
            return self.median, self.median
        q1, _, q3 = statistics.quantiles(self.seconds, n=4)
        return q1, q3


def _synchronizer(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def time_calls(
    call: Callable[[], object], device: torch.device, *, warmup: int, repeats: int
) -> Timing:
    """Time ``call()``: ``warmup`` untimed calls, then ``repeats`` timed ones (CUDA synchronised)."""
    return time_interleaved({"call": call}, device, warmup=warmup, repeats=repeats)["call"]


def time_interleaved(
    calls: Mapping[str, Callable[[], object]], device: torch.device, *, warmup: int, repeats: int
) -> dict[str, Timing]:
    """Time several calls against each other: ``warmup`` untimed rounds, then ``repeats`` timed
    rounds, each calling every one once, starting one place further along each round (each call
    synchronised on CUDA).

    A slow stretch of the machine (another process, the clock) then falls on every call alike, not
    on whichever one happened to be timed during it, so the calls' medians compare fairly.
    """
    synchronize = _synchronizer(device)
    names = list(calls)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + repeats):
        shift = index % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            synchronize()
            start = time.perf_counter()
            calls[name]()
            synchronize()
            if index >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return {name: Timing(seconds[name]) for name in names}


def forward_call(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A call of ``module(x)`` under ``torch.inference_mode``."""

    def call() -> None:
        with torch.inference_mode():
            module(x)

    return call


def training_call(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A forward and backward of ``module(x).sum()``, gradients zeroed first."""

    def call() -> None:
        module.zero_grad(set_to_none=True)
        module(x).float().sum().backward()

    return call


def time_forward(model: nn.Module, x: torch.Tensor, *, warmup: int, repeats: int) -> Timing:
    """Time ``model(x)`` under ``torch.inference_mode``."""
    return time_calls(forward_call(model, x), x.device, warmup=warmup, repeats=repeats)


def training_memory(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of memory one forward and backward of ``model(x)`` needs beyond the weights.

    On CUDA: the allocator's peak during the step, less what was allocated before it. On the CPU,
    where PyTorch keeps no such counter: the bytes of the distinct tensors autograd saves for the
    backward pass, weights, buffers and the input aside (the activation memory that training holds
    at its peak), plus the output.
    """
    model.zero_grad(set_to_none=True)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        before = torch.cuda.memory_allocated(x.device)
        model(x).float().sum().backward()
        torch.cuda.synchronize(x.device)
        peak = torch.cuda.max_memory_allocated(x.device) - before
        model.zero_grad(set_to_none=True)
        return peak
    state = [*model.parameters(), *model.buffers()]
    parameters = {t.untyped_storage().data_ptr() for t in state}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters and tensor is not x:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(x)
    storages[out.untyped_storage().data_ptr()] = out.untyped_storage().nbytes()
    saved = sum(storages.values())
    out.float().sum().backward()
    model.zero_grad(set_to_none=True)
    return saved


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())
