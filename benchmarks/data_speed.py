"""How fast the context benchmark generates samples (the target is >= 500 samples/s on 2 cores).

    .venv/bin/python benchmarks/data_speed.py [--samples 2000] [--size 128] [--workers 2]

Prints samples per second for one process generating ``ds[i]`` in a loop, and for a
``DataLoader`` with ``--workers`` worker processes (batches of 32), with and without the standard
training transforms.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from pdn import build_dataset
from pdn.data.transforms import train_transforms
from pdn.models.backbones.base import IMAGENET_NORMALIZATION


def rate_in_process(dataset, count: int) -> float:
    start = time.perf_counter()
    for index in range(count):
        dataset[index % len(dataset)]
    return count / (time.perf_counter() - start)


def rate_with_loader(dataset, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=32, num_workers=workers, persistent_workers=False)
    start = time.perf_counter()
    seen = sum(len(images) for images, _ in loader)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=int, default=2000, help="samples to generate per measurement"
    )
    parser.add_argument("--size", type=int, default=128, help="image side of the context benchmark")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    plain = build_dataset("context", size=args.size, num_samples=args.samples)
    transformed = build_dataset(
        "context",
        size=args.size,
        num_samples=args.samples,
        transforms=train_transforms(IMAGENET_NORMALIZATION, crop_size=args.size),
    )
    rate_in_process(plain, 50)  # warm-up: caches, allocator
    print(f"context {args.size}x{args.size}, {args.samples} samples, torch threads 1")
    print(
        f"  1 process, generation only:        {rate_in_process(plain, args.samples):8.0f} samples/s"
    )
    print(
        f"  1 process, with train transforms:  {rate_in_process(transformed, args.samples):8.0f} samples/s"
    )
    print(
        f"  DataLoader, {args.workers} workers, generation:  {rate_with_loader(plain, args.workers):8.0f} samples/s"
    )
    print(
        f"  DataLoader, {args.workers} workers, transforms:  {rate_with_loader(transformed, args.workers):8.0f} samples/s"
    )


if __name__ == "__main__":
    main()
