"""Reproducible randomness: derived seeds, the data order by iteration, and saved RNG states.

Training data are drawn from an endless stream of epochs. Epoch ``e`` visits the dataset in a
permutation seeded from ``(seed, e)``; sample ``i`` of epoch ``e`` is augmented with a generator
seeded from ``(seed, e, i)``. Iteration ``t`` takes the stream positions
``[t * G, (t + 1) * G)`` with ``G = batch_size * world_size``, and rank ``r`` takes every
``world_size``-th of them starting at ``r`` (a DistributedSampler-style rank-strided slice).
So a batch depends only on ``(seed, t, rank, world_size)``: a resumed run that starts at iteration
``k`` sees exactly the batches an uninterrupted run sees, and ``N`` processes together see the same
samples, identically augmented, as one process with an ``N`` times larger batch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

# Distinct stream tags so that seeds derived for different purposes never coincide.
_PERMUTATION, _SAMPLE, _PROCESS = 1, 2, 3


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (``numpy.random.SeedSequence``)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(
        2, dtype=np.uint32
    )
    return int((int(state[0]) << 31) ^ int(state[1]))


def generator(*parts: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``derive_seed(*parts)``."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The visiting order of epoch ``epoch``: int64 ``(num_samples,)``."""
    return torch.randperm(num_samples, generator=generator(_PERMUTATION, seed, epoch))


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The augmentation generator of dataset sample ``index`` in epoch ``epoch``."""
    return generator(_SAMPLE, seed, epoch, index)


def seed_process(seed: int, rank: int) -> None:
    """Seed the global torch / numpy / Python RNGs of one process (dropout etc.) from (seed, rank)."""
    value = derive_seed(_PROCESS, seed, rank)
    torch.manual_seed(value)
    np.random.seed(value % 2**32)
    random.seed(value)


class IterationBatches:
    """Batch sampler for a ``DataLoader``: yields, per iteration, this rank's ``(epoch, index)`` pairs.

    Args:
        num_samples: dataset length ``N``.
        batch_size: samples per rank per iteration.
        seed: the run seed.
        start: the first iteration to yield (``k`` when resuming after ``k`` steps).
        stop: one past the last iteration.
        rank, world_size: this process's share (rank-strided slice of the global batch).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        *,
        start: int,
        stop: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        if num_samples < 1:
            raise ValueError("cannot draw batches from an empty dataset")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.start, self.stop, self.rank, self.world_size = start, stop, rank, world_size
        self._permutations: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def _index(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.num_samples)
        if epoch not in self._permutations:
            self._permutations = {epoch: epoch_permutation(self.num_samples, self.seed, epoch)}
        return epoch, int(self._permutations[epoch][offset])

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        """This rank's ``(epoch, index)`` pairs for ``iteration``."""
        global_batch = self.batch_size * self.world_size
        first = iteration * global_batch + self.rank
        return [self._index(first + j * self.world_size) for j in range(self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for iteration in range(self.start, self.stop):
            yield self.batch(iteration)


def rng_state() -> dict[str, Any]:
    """The global RNG states of this process as plain data (tensors, lists, ints)."""
    version, mt_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(mt_state), gauss],
        "numpy": [
            np_name,
            torch.from_numpy(np_keys.astype(np.int64)),
            np_pos,
            np_has_gauss,
            np_gauss,
        ],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda_states: Sequence[torch.Tensor] = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state(
        (np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss)
    )
