"""Can a context head follow the paths when its input already says what every cell is?

    .venv/bin/python benchmarks/paths_heads.py [--turns 0 2] [--heads fcn aspp ppm pdn pdn-L4]
        [--iters 1000] [--batch 8] [--channels 32] [--reach 0] [--skip] [--input cells]
        [--seeds 0]
        [--train-scenes 2000] [--test-scenes 200]

The paths benchmark trains a backbone and a head together, from scratch, and every head so far
stays near the bound (BENCHMARKS.md, "Paths"). This separates the two: each scene of the packaged
layout (32 x 32 cells, 4 pairs; one cell per site of the stride-8 map the head sees) becomes the
map an ideal backbone would give (:func:`pdn.data.paths.cell_map`), ``(7, 32, 32)``: whether the
cell is on a path, on an object, on a cue, and the cue's colour one-hot (4 channels, zero off the
cues), and its labels the objects' classes per cell (background 0). A 1x1 conv-BN-ReLU to
``--channels`` stands in for the backbone, so nothing beyond a cell reaches the head except through
the head itself (``--reach R`` adds R 3x3 conv-BN-ReLUs, so that each site sees R cells around it,
as a backbone's features do; ``--skip`` puts the head's input beside the stand-in's output, as
the image skip does); the head is the registry's (``pdn.models.build.ARCHITECTURES``, the
same class and defaults ``pdn train`` builds, ASPP with its rates at output stride 8; no image
skip, as the map already holds the colours). ``--input image`` gives the head the painted scene
instead, normalised and averaged over each cell (what the image skip, ``model.image_skip``, hands
the head beside the backbone's features): the same information, but grey paths on a textured
background. Each head is trained with AdamW (lr 2e-3, weight decay 1e-4, linear decay), the class
weights of ``configs/paths.yaml`` and random horizontal flips, and scored by mIoU on the test
split's cells, and by the share of objects most of whose cells get the right class: of all, of
those whose colour is not the most frequent of their scene's cues (where guessing that colour,
which PPM's pooling can do, is always wrong), and of those whose path two sweep layers can carry or
not. Beside each head's score: the ceiling of a sweep that follows exactly the paths its depth can
carry (:func:`pdn.data.paths.sweep_follower_miou`), a blind guess (31.4) and the scene's most
frequent cue colour (49.0).

Heads: ``fcn``, ``aspp``, ``ppm``, ``pdn`` (the default: L=2, chrono init) and ``pdn-LN`` for
``N`` layers. One thread, beside two training runs on dev-cpu: fcn 23 s, aspp 111 s, pdn 202 s,
pdn-L4 362 s at the defaults, plus about two minutes of drawing per ``turns`` setting.
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pdn import build_dataset
from pdn.data import paths
from pdn.engine.config import load_config
from pdn.engine.trainer import labelled_weight, training_loss
from pdn.errors import ConfigError
from pdn.metrics import SegmentationMetric
from pdn.models.backbones.base import IMAGENET_NORMALIZATION
from pdn.models.build import ARCHITECTURES
from pdn.models.heads import conv_bn_relu
from pdn.models.network import ImageSkip

LAYERS_SPLIT = 2  # objects are scored apart by whether this many sweep layers carry their cue


@dataclass
class Split:
    """Scenes as cell maps: ``maps`` ``(N, 7, g, g)``, ``masks`` ``(N, g, g)``; the scenes
    themselves (layout and cue colours, what scoring reads the objects from) and per object
    (scene by scene, ``N * pairs``): whether its colour is one of the most frequent of its
    scene's cues, and the sweep layers its path needs
    (:func:`pdn.data.paths.sweep_layers_needed`)."""

    maps: torch.Tensor
    masks: torch.Tensor
    scenes: list[tuple[paths.PathsLayout, tuple[int, ...]]]
    of_a_mode: np.ndarray
    needed: np.ndarray
    source: str


def pooled_image(layout: paths.PathsLayout, colours: tuple[int, ...]) -> np.ndarray:
    """The painted scene, normalised as the tiny backbone normalises its input and averaged over
    each cell: float32 ``(3, g, g)``, what the image skip (``model.image_skip``) hands the head."""
    image, _ = paths.paint(layout, colours)
    normalised = IMAGENET_NORMALIZATION(torch.from_numpy(image).float() / 255)[None]
    grid = image.shape[1] // layout.cell
    return ImageSkip(layout.cell)(torch.empty(1, 0, grid, grid), normalised)[0].numpy()


def scene_map(layout: paths.PathsLayout, colours: tuple[int, ...], source: str) -> np.ndarray:
    """The head's input for one scene: its :func:`~pdn.data.paths.cell_map` features
    (``source="cells"``) or its :func:`pooled_image`."""
    return (
        paths.cell_map(layout, colours)[0] if source == "cells" else pooled_image(layout, colours)
    )


def draw_split(
    split: str, count: int, turns: int, source: str = "cells", per_object: bool = True
) -> Split:
    """``count`` scenes of the packaged layout with ``turns`` waypoints per path, as their
    :func:`~pdn.data.paths.cell_map` (``source="cells"``) or their :func:`pooled_image`; the
    per-object fields (what scoring needs) stay empty unless ``per_object``."""
    options = dict(load_config("paths").data.options, turns=turns)
    dataset = build_dataset("paths", split=split, num_samples=count, **options)
    maps, masks, scenes, of_a_mode, needed = [], [], [], [], []
    for index in range(count):
        layout, colours = dataset.layout(index), dataset.colours(index)
        maps.append(scene_map(layout, colours, source))
        masks.append(paths.cell_map(layout, colours)[1])
        if per_object:
            scenes.append((layout, colours))
            of_a_mode.extend(paths.of_the_mode(colours))
            needed.extend(paths.sweep_layers_needed(layout, k) for k in range(len(colours)))
    return Split(
        torch.from_numpy(np.stack(maps)),
        torch.from_numpy(np.stack(masks)),
        scenes,
        np.asarray(of_a_mode),
        np.asarray(needed),
        source,
    )


class InputSkip(nn.Module):
    """The stand-in backbone's output with its own input beside it, ``(B, C, g, g)`` and
    ``(B, C_in, g, g)`` -> ``(B, C + C_in, g, g)``, as the image skip puts the pooled image beside
    the backbone's features."""

    def __init__(self, stem: nn.Module):
        super().__init__()
        self.stem = stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stem(x), x], dim=1)


def build_head(
    name: str, channels: int, reach: int = 0, in_ch: int = 7, skip: bool = False
) -> nn.Module:
    """The stand-in backbone (a 1x1 conv-BN-ReLU, then ``reach`` 3x3 ones: each site sees
    ``reach`` cells around it) and the registry's head ``name`` (``pdn-LN``: N layers)."""
    match = re.fullmatch(r"pdn-L(\d+)", name)
    arch, options = ("pdn", {"num_layers": int(match.group(1))}) if match else (name, {})
    head = ARCHITECTURES.get(arch).build(
        channels + in_ch * skip,
        len(paths.PATHS_CLASSES),
        output_stride=8,
        channels=channels,
        **options,
    )
    stem = [conv_bn_relu(in_ch, channels, 1)]
    stem += [conv_bn_relu(channels, channels, 3) for _ in range(reach)]
    stem = nn.Sequential(*stem)
    return nn.Sequential(InputSkip(stem) if skip else stem, head)


def train(model: nn.Module, split: Split, iters: int, batch: int, seed: int) -> None:
    """AdamW on random batches of ``split`` with random horizontal flips, the packaged
    config's class weights."""
    generator = torch.Generator().manual_seed(seed)
    weights = torch.tensor(load_config("paths").train.class_weights, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - i / iters)
    model.train()
    for _ in range(iters):
        pick = torch.randint(len(split.maps), (batch,), generator=generator)
        x, y = split.maps[pick], split.masks[pick]
        flip = torch.rand(batch, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        y = torch.where(flip[:, None, None], y.flip(-1), y)
        total, _, _ = training_loss(model(x), None, y, 0.0, weights)
        optimizer.zero_grad(set_to_none=True)
        (total / labelled_weight(y, weights)).backward()
        optimizer.step()
        schedule.step()


@torch.no_grad()
def score(model: nn.Module, split: Split) -> tuple[float, np.ndarray, np.ndarray]:
    """mIoU over ``split``'s cells; per object whether most of its 4 cells get its class, and
    whether it passes the own-cue test (:func:`pdn.data.paths.own_cue_read`)."""
    model.eval()
    predictions = torch.cat([model(maps).argmax(1) for maps in split.maps.split(50)])
    metric = SegmentationMetric(len(paths.PATHS_CLASSES))
    metric.update(predictions, split.masks)
    right, passed = [], []
    for (layout, colours), prediction in zip(split.scenes, predictions, strict=True):
        right.extend(paths.objects_right(layout, colours, prediction.numpy()))
        trials = paths.own_cue_trials(colours)
        maps = np.stack([scene_map(layout, trial, split.source) for _, trial in trials])
        recoloured = model(torch.from_numpy(maps)).argmax(1).numpy()
        passed.extend(paths.own_cue_read(layout, trials, list(recoloured)))
    return metric.compute().mIoU, np.asarray(right), np.asarray(passed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--heads", nargs="+", default=["fcn", "aspp", "ppm", "pdn", "pdn-L4"])
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--reach", type=int, default=0, help="3x3 convs in the stand-in backbone")
    parser.add_argument(
        "--skip", action="store_true", help="the head's input beside the stand-in's output"
    )
    parser.add_argument(
        "--input",
        choices=["cells", "image"],
        default="cells",
        help="the head's input: each cell's kind and cue colour, or the pooled painted scene",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--train-scenes", type=int, default=2000)
    parser.add_argument("--test-scenes", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.heads:  # a wrong name fails here, before minutes of drawing
        try:
            build_head(name, args.channels)
        except ConfigError as error:
            parser.error(f"--heads {name}: {error}")

    print(
        "| turns | head | parameters | mIoU % per seed | objects right % (all / colour not the "
        f"scene's mode / path <= {LAYERS_SPLIT} layers / > {LAYERS_SPLIT}) per seed | own-cue "
        "test passed % per seed | follower ceiling % | s per run |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for turns in args.turns:
        train_split = draw_split("train", args.train_scenes, turns, args.input, per_object=False)
        test_split = draw_split("test", args.test_scenes, turns, args.input)
        short = test_split.needed <= LAYERS_SPLIT
        for name in args.heads:
            scores, objects, passes, seconds = [], [], [], 0.0
            groups = (np.ones_like(short), ~test_split.of_a_mode, short, ~short)
            for seed in args.seeds:
                torch.manual_seed(seed)
                model = build_head(
                    name, args.channels, args.reach, len(train_split.maps[0]), args.skip
                )
                start = time.perf_counter()
                train(model, train_split, args.iters, args.batch, seed)
                seconds += time.perf_counter() - start
                miou, right, passed = score(model, test_split)
                scores.append(f"{100 * miou:.1f}")
                objects.append(" / ".join(f"{100 * right[group].mean():.0f}" for group in groups))
                passes.append(f"{100 * passed.mean():.0f}")
            layers = getattr(model[-1], "diffusion", None)
            ceiling = (
                f"{100 * paths.sweep_follower_miou(test_split.needed, len(layers.layers)):.1f}"
                if layers is not None
                else "-"
            )
            params = sum(p.numel() for p in model.parameters()) / 1e6
            print(
                f"| {turns} | {name} | {params:.2f} M | {' / '.join(scores)} | "
                f"{'; '.join(objects)} | {' / '.join(passes)} | {ceiling} | "
                f"{seconds / len(args.seeds):.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
