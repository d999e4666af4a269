"""The paths benchmark: each object takes the colour of the cue at the other end of its own path.

The context benchmark puts every cue in line with its objects, where a head with fixed taps
along rows and columns (ASPP) hears it. Here the answer travels along a route that no fixed set of
offsets covers (the field's Pathfinder problem, Linsley et al. 2018): a scene holds ``pairs``
grey objects and as many coloured cues, each object joined to one cue by a thin grey path of its
own that winds through ``turns`` random waypoints; paths never cross or touch, and an object's
class is ``1 +`` the colour of the cue at the other end of its path.

**A sample** (``build_dataset("paths")``): a ``size x size`` RGB image (default 128) and its mask,
5 classes (background; an object whose path ends at a red, green, blue or yellow cue). The scene
is laid out on a grid of ``cell`` px cells (default 4): cues and objects are 2 x 2 cells, a path
is a line ``cell / 2`` px wide through the centres of its cells, and every path keeps at least
one free cell from every other path, cue and object. The routes depend only on the grid
(``size / cell`` cells a side), so 256 px scenes with 8 px cells are the 128 px scenes with 4 px
cells drawn twice as large; with ``cell`` equal to a model's output stride, each cell is one site
of the map its head sees, and two paths never share a site. The background is textured as in the
context benchmark.
Objects, paths and background look the same in every scene whatever the colours; only the cues
are coloured. Layouts are drawn so that an object's own cue is neither the cue nearest to it nor
the one closest to its column or row, so guessing from those is as good as guessing blind.

**Generation.** Sample ``i`` draws its routes from one random stream seeded by ``(seed, split,
i, 0)``, its cue colours from another, ``(seed, split, i, 1)``, and its background texture from a
third, ``(seed, split, i, 2)``: each cue's colour is uniform over the 4 and independent of
everything else. The same layout painted with two colourings
differs only on the cues, while its objects' labels differ.

**Bounds.** A model whose prediction at an object pixel depends on no pixel of that object's
own cue (a *local* model, or one that reads another cue) predicts independently of the class,
which is uniform over 4: as in the context benchmark its expected mIoU is at most
``(1 + 4/7) / 5 = 11/35`` (:data:`LOCAL_MIOU_CEILING`). Reading the nearest cue or the cue
closest in line gives the same (that cue's colour is independent of the object's class).
Reading the scene's most frequent cue colour does better, because the object's own cue is one
of the cues counted: :func:`mode_guess_miou` gives its exact expected mIoU. Guesses that read
other cues chosen by their place do better still, because the layouts never make the own cue the
nearest or the one in line, which leaves it more often at some other places: the mode of the
cues other than those two, or the cue farthest from in line, score 51-53 over cells on the
packaged layout (measured, not derived: ``benchmarks/paths_guesses.py``). None of them passes
the own-cue test (:func:`own_cue_read`: the object labelled with its own cue's colour whichever
colour that cue is painted) for more objects than its place picks the own cue, at most 40 %;
a model that follows the paths passes for every object.

**Depth.** A sweep layer carries a colour along straight or diagonal runs of one direction; it
turns only between layers. :func:`sweep_layers_needed` counts the layers a path needs, and
:func:`sweep_follower_miou` the ceiling of a model that follows only the paths its depth can carry
(``benchmarks/paths_layers.py`` tabulates both per ``turns``: this is the difficulty knob's
meaning for PDN). With the packaged layout (4 pairs on 32 x 32 cells), ``turns`` above 2 finds no
layout for some scenes (at 3, train scene 54 is the first); the dataset raises when it draws one,
so ``pdn data check`` finds it before a training run does.

**Cost.** The routes are searched in Python: a 128 px scene with 4 pairs and 2 turns takes
about 45 ms on dev-cpu with both cores busy (the context benchmark: about a millisecond). A
dataset keeps the routes it has drawn (a few hundred bytes a scene), so from the second epoch on
a sample costs only its painting and background.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..registry import close_matches_hint
from .base import JointTransform, Sample, SegmentationDataset
from .context import (
    CONTEXT_CLASSES,
    CONTEXT_PALETTE,
    CUE_COLORS,
    DEFAULT_NUM_SAMPLES,
    OBJECT_GREY,
    SPLIT_STREAMS,
    textured_background,
)
from .registry import check_int_options, check_split, register_dataset

DEFAULT_CELL = 4  # px per grid cell
BLOCK = 2  # cells per side of a cue or an object
PATH_GREY = 150
WAYPOINT_MARGIN = 4  # cells (plus 1 per turn) a path's waypoints may lie beyond its ends' box
LOCAL_MIOU_CEILING = 11 / 35
PATHS_CLASSES = tuple(name.replace("-cue", "-cue path") for name in CONTEXT_CLASSES)
PARTS_CLASSES = ("background", "path", "object", "cue")
PARTS_PALETTE = [(0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 255)]
TARGETS = ("colour", "parts")


def guess_miou(accuracy: float) -> float:
    """Expected mIoU of a guess that labels every object pixel, right with probability
    ``accuracy`` and otherwise (by colour symmetry) spread evenly over the 3 wrong classes, with
    a perfect background: ``IoU_j = p / (2 - p)`` for each object class."""
    return (1 + 4 * accuracy / (2 - accuracy)) / 5


def mode_guess_miou(cues: int) -> float:
    """Expected mIoU of labelling every object with its scene's most frequent cue colour (ties
    broken uniformly at random), for ``cues`` cues of independent uniform colours."""
    right = 0.0
    for colours in itertools.product(range(4), repeat=cues):
        counts = np.bincount(colours, minlength=4)
        modes = np.flatnonzero(counts == counts.max())
        own = colours[0]  # by symmetry, the object of the first cue
        right += (own in modes) / len(modes)
    return guess_miou(right / 4**cues)


@dataclass(frozen=True)
class PathsLayout:
    """A scene without its colours: ``background`` uint8 ``(size, size, 3)``; ``cues`` and
    ``objects`` the top-left cells ``(row, col)`` of each 2 x 2-cell square; ``paths[k]`` the
    cells of the path from cue ``k`` to object ``k``; ``cell`` the px per cell."""

    background: np.ndarray
    cues: list[tuple[int, int]]
    objects: list[tuple[int, int]]
    paths: list[list[tuple[int, int]]]
    cell: int = DEFAULT_CELL


def block_cells(corner: tuple[int, int]) -> list[tuple[int, int]]:
    """The cells of the 2 x 2-cell square (a cue or an object) whose top-left cell is ``corner``."""
    return [(corner[0] + dr, corner[1] + dc) for dr in range(BLOCK) for dc in range(BLOCK)]


def _dilate(cells: set[tuple[int, int]], grid: int) -> set[tuple[int, int]]:
    return {
        (r + dr, c + dc)
        for r, c in cells
        for dr in (-1, 0, 1)
        for dc in (-1, 0, 1)
        if 0 <= r + dr < grid and 0 <= c + dc < grid
    }


def _route(
    start: tuple[int, int],
    goal: set[tuple[int, int]],
    blocked: set[tuple[int, int]],
    grid: int,
    rng: np.random.Generator,
) -> list[tuple[int, int]] | None:
    """A shortest 4-connected route from ``start`` to any cell of ``goal`` avoiding ``blocked``
    (neighbours explored in a random order, so ties between routes are broken at random)."""
    previous = {start: start}
    queue = deque([start])
    orders = rng.integers(len(_STEP_ORDERS), size=grid * grid).tolist()  # one draw per route
    while queue:
        cell = queue.popleft()
        if cell in goal:
            route = [cell]
            while route[-1] != start:
                route.append(previous[route[-1]])
            return route[::-1]
        for dr, dc in _STEP_ORDERS[orders[cell[0] * grid + cell[1]]]:
            nxt = (cell[0] + dr, cell[1] + dc)
            if (
                0 <= nxt[0] < grid
                and 0 <= nxt[1] < grid
                and nxt not in blocked
                and nxt not in previous
            ):
                previous[nxt] = cell
                queue.append(nxt)
    return None


# The 24 orders of the 4 steps; a route draws one per cell, so that ties break at random.
_STEP_ORDERS = list(itertools.permutations([(1, 0), (-1, 0), (0, 1), (0, -1)]))


def _ring(corner: tuple[int, int], grid: int) -> set[tuple[int, int]]:
    """The cells that share an edge with the 2 x 2 block at ``corner``."""
    r, c = corner
    ring = {(r - 1, c + k) for k in range(BLOCK)} | {(r + BLOCK, c + k) for k in range(BLOCK)}
    ring |= {(r + k, c - 1) for k in range(BLOCK)} | {(r + k, c + BLOCK) for k in range(BLOCK)}
    return {(a, b) for a, b in ring if 0 <= a < grid and 0 <= b < grid}


def _centre(corner: tuple[int, int]) -> np.ndarray:
    return np.asarray(corner, dtype=float) + BLOCK / 2


def cue_places(
    cues: Sequence[tuple[int, int]], obj: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """float ``(cues,)`` twice, in cells between the 2 x 2 squares' centres: each cue's distance
    from the object, and its offset from the object's row or column, whichever is smaller (the
    nearest cue has the least of the first, the cue closest in line the least of the second)."""
    offset = np.abs(np.stack([_centre(cue) for cue in cues]) - _centre(obj))
    return np.hypot(*offset.T), offset.min(1)


def _assignment(
    cues: list[tuple[int, int]], objects: list[tuple[int, int]], rng: np.random.Generator
) -> list[int] | None:
    """A cue for each object that is neither its nearest cue nor the one closest in line
    (smallest row or column offset), nor tied with one, or None when 64 random tries find none."""
    banned = []
    for obj in objects:
        distance, in_line = cue_places(cues, obj)
        ties = np.flatnonzero(distance == distance.min()).tolist()  # every cue tied for nearest
        ties += np.flatnonzero(in_line == in_line.min()).tolist()
        banned.append(set(ties))
    for _ in range(64):
        order = [int(k) for k in rng.permutation(len(cues))]
        if all(order[k] not in banned[k] for k in range(len(objects))):
            return order
    return None


def _route_pair(
    cue: tuple[int, int],
    obj: tuple[int, int],
    blocked: set[tuple[int, int]],
    grid: int,
    turns: int,
    rng: np.random.Generator,
) -> list[tuple[int, int]] | None:
    """Cells from the cue's border through ``turns`` random waypoints to the object's border.

    The waypoints lie in the box around the cue and the object widened by
    :data:`WAYPOINT_MARGIN` + ``turns`` cells, so a path winds sideways and back without sealing off the
    rest of the scene (waypoints anywhere made 21 layouts fail for each one drawn).
    """
    starts = sorted(_ring(cue, grid) - blocked)
    goal = _ring(obj, grid) - blocked
    if not starts or not goal:
        return None
    margin = WAYPOINT_MARGIN + turns
    rows = range(
        max(0, min(cue[0], obj[0]) - margin), min(grid, max(cue[0], obj[0]) + BLOCK + margin)
    )
    cols = range(
        max(0, min(cue[1], obj[1]) - margin), min(grid, max(cue[1], obj[1]) + BLOCK + margin)
    )
    free = [(r, c) for r in rows for c in cols if (r, c) not in blocked]
    if len(free) < turns:
        return None
    for _ in range(8):  # new waypoints when a route runs into a dead end
        waypoints = [free[int(k)] for k in rng.choice(len(free), size=turns, replace=False)]
        route = [starts[int(rng.integers(len(starts)))]]
        for target in [*({w} for w in waypoints), goal]:
            own = _dilate(set(route[:-2]), grid) | set(route)
            leg = _route(route[-1], target, blocked | own - {route[-1]}, grid, rng)
            if leg is None:
                break
            route += leg[1:]
        else:
            return route
    return None


Routes = tuple[list[tuple[int, int]], list[tuple[int, int]], list[list[tuple[int, int]]]]


def draw_routes(rng: np.random.Generator, grid: int, pairs: int, turns: int) -> Routes:
    """Draw a scene's cues, objects and paths on a ``grid x grid`` board of cells from ``rng``
    (retrying until every pair has its path): the ``cues``, ``objects`` and ``paths`` of a
    :class:`PathsLayout`."""
    for _ in range(200):
        corners: list[tuple[int, int]] = []
        taken: set[tuple[int, int]] = set()
        for _ in range(400):
            if len(corners) == 2 * pairs:
                break
            corner = (int(rng.integers(grid - BLOCK + 1)), int(rng.integers(grid - BLOCK + 1)))
            cells = set(block_cells(corner))
            if not cells & taken:
                corners.append(corner)
                taken |= _dilate(_dilate(cells, grid), grid)  # two free cells between squares
        if len(corners) < 2 * pairs:
            continue
        cues, objects = corners[:pairs], corners[pairs:]
        order = _assignment(cues, objects, rng)
        if order is None:
            continue
        squares = {k: set(block_cells(c)) for k, c in enumerate(corners)}
        paths: list[list[tuple[int, int]]] = [[] for _ in range(pairs)]
        used: set[tuple[int, int]] = set()
        for k in rng.permutation(pairs).tolist():
            cue = order[k]
            others = set().union(*(s for j, s in squares.items() if j not in (cue, pairs + k)))
            blocked = _dilate(others, grid) | _dilate(used, grid)
            blocked |= squares[cue] | squares[pairs + k]
            route = _route_pair(cues[cue], objects[k], blocked, grid, turns, rng)
            if route is None:
                break
            paths[k] = route
            used |= set(route)
        else:
            return [cues[order[k]] for k in range(pairs)], objects, paths
    raise ConfigError(
        f"paths: no layout of {pairs} pairs with {turns} turns fits a grid of {grid} x {grid} "
        "cells (200 tries); use fewer pairs or turns, or a larger size / cell"
    )


def _join(image: np.ndarray, a: tuple[int, int], b: tuple[int, int], value: int, cell: int) -> None:
    """A bar ``cell / 2`` px wide from the centre of cell ``a`` to that of the edge-adjacent
    (or the same) cell ``b``."""
    (r0, c0), (r1, c1) = sorted([a, b])
    lo, hi = cell // 4, cell - cell // 4
    image[r0 * cell + lo : r1 * cell + hi, c0 * cell + lo : c1 * cell + hi] = value


def paint(
    layout: PathsLayout, colours: Sequence[int], target: str = "colour"
) -> tuple[np.ndarray, np.ndarray]:
    """Paint ``layout``: cue ``k`` (the cue of object ``k``) in ``CUE_COLORS[colours[k]]``.
    Returns ``image`` uint8 ``(3, size, size)`` and ``mask`` uint8 ``(size, size)``. With
    ``target="colour"`` (the benchmark) object ``k``'s pixels are ``1 + colours[k]`` and
    everything else 0; with ``target="parts"`` every pixel is its index in
    :data:`PARTS_CLASSES` (background, path, object, cue), which says nothing of which cue an
    object's path ends at."""
    image = layout.background.copy()
    mask = np.zeros(image.shape[:2], dtype=np.uint8)
    parts = target == "parts"
    cell = layout.cell
    for k, (cue, obj, route) in enumerate(
        zip(layout.cues, layout.objects, layout.paths, strict=True)
    ):
        bars = list(zip(route, route[1:], strict=False)) + [(route[0], route[0])]
        for end, square in ((route[0], cue), (route[-1], obj)):
            inside = min(block_cells(square), key=lambda q: abs(q[0] - end[0]) + abs(q[1] - end[1]))
            bars.append((end, inside))
        for a, b in bars:
            _join(image, a, b, PATH_GREY, cell)
            if parts:
                _join(mask, a, b, PARTS_CLASSES.index("path"), cell)
        rows, cols = _square(obj, cell)
        image[rows, cols] = OBJECT_GREY
        mask[rows, cols] = PARTS_CLASSES.index("object") if parts else 1 + int(colours[k])
        rows, cols = _square(cue, cell)
        image[rows, cols] = CUE_COLORS[int(colours[k])]
        if parts:
            mask[rows, cols] = PARTS_CLASSES.index("cue")
    return np.ascontiguousarray(image.transpose(2, 0, 1)), mask


def _square(corner: tuple[int, int], cell: int) -> tuple[slice, slice]:
    """The pixels of the 2 x 2-cell square whose top-left cell is ``corner``."""
    side = BLOCK * cell
    return (
        slice(corner[0] * cell, corner[0] * cell + side),
        slice(corner[1] * cell, corner[1] * cell + side),
    )


def cue_mask(layout: PathsLayout, index: int) -> np.ndarray:
    """bool ``(size, size)``: the pixels of the cue of object ``index``."""
    mask = np.zeros(layout.background.shape[:2], dtype=bool)
    mask[_square(layout.cues[index], layout.cell)] = True
    return mask


CELL_FEATURES = ("path", "object", "cue", "red cue", "green cue", "blue cue", "yellow cue")


def cell_map(layout: PathsLayout, colours: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The scene on its grid of cells, as an ideal backbone with one site per cell would see it:
    float32 ``(7, g, g)``, channel ``j`` 1 where the cell is a :data:`CELL_FEATURES` ``[j]`` (a
    cell of a path, of an object, of a cue, of a cue of that colour), else 0; and the labels
    int64 ``(g, g)``, an object's cells ``1 + colours[k]``, every other cell 0 (``g = size /
    cell``). ``benchmarks/paths_heads.py`` trains heads on it."""
    grid = layout.background.shape[0] // layout.cell
    features = np.zeros((len(CELL_FEATURES), grid, grid), np.float32)
    labels = np.zeros((grid, grid), np.int64)
    for route, obj, cue, colour in zip(
        layout.paths, layout.objects, layout.cues, colours, strict=True
    ):
        for r, c in route:
            features[0, r, c] = 1
        for r, c in block_cells(obj):
            features[1, r, c] = 1
            labels[r, c] = 1 + int(colour)
        for r, c in block_cells(cue):
            features[2, r, c] = 1
            features[3 + int(colour), r, c] = 1
    return features, labels


def objects_right(
    layout: PathsLayout, colours: Sequence[int], prediction: np.ndarray
) -> np.ndarray:
    """bool ``(pairs,)``: whether more than half of object ``k``'s pixels get its class ``1 +
    colours[k]`` in ``prediction``, labels ``(size, size)`` or, one per cell, ``(g, g)``."""
    scale = layout.cell if prediction.shape[0] == layout.background.shape[0] else 1
    right = []
    for obj, colour in zip(layout.objects, colours, strict=True):
        square = prediction[_square(obj, scale)]
        right.append(2 * int((square == 1 + int(colour)).sum()) > square.size)
    return np.asarray(right)


def of_the_mode(colours: Sequence[int]) -> np.ndarray:
    """bool ``(pairs,)``: whether object ``k``'s colour is one of its scene's most frequent cue
    colours, where guessing the mode (as pooling can) is right; off the mode it is always
    wrong, so a model's accuracy there (chance: 1/4) tells path following from that guess."""
    counts = np.bincount(np.asarray(colours, dtype=np.int64), minlength=4)
    return counts[np.asarray(colours)] == counts.max()


def own_cue_trials(colours: Sequence[int]) -> list[tuple[int, tuple[int, ...]]]:
    """The own-cue test of a scene: for every object ``k`` and every colour ``c``, ``(k, the
    scene's colours with cue k's set to c)`` (``4 * pairs`` trials, the other cues unchanged)."""
    return [
        (k, tuple(c if j == k else int(old) for j, old in enumerate(colours)))
        for k in range(len(colours))
        for c in range(len(CUE_COLORS))
    ]


def own_cue_read(
    layout: PathsLayout,
    trials: Sequence[tuple[int, Sequence[int]]],
    predictions: Sequence[np.ndarray],
) -> np.ndarray:
    """bool ``(pairs,)``: whether each object gets its own cue's colour in every one of its
    :func:`own_cue_trials` (``predictions[i]`` labels the scene painted with ``trials[i]``'s
    colours, per pixel or per cell). Neither the mode guess nor any guess that ignores the own
    cue passes (it would have to give 4 answers for one set of other cues); a guess that picks
    one cue by its place passes only for the objects whose own cue sits at that place."""
    passed = np.ones(len(layout.objects), dtype=bool)
    for (k, colours), prediction in zip(trials, predictions, strict=True):
        passed[k] &= objects_right(layout, colours, prediction)[k]
    return passed


def sweep_layers_needed(layout: PathsLayout, index: int, lateral: int = 1, limit: int = 64) -> int:
    """The fewest sweep layers that carry the colour of cue ``index`` along its own path to its
    object, on the grid of cells (one cell per site of the map the head sees, as in the
    packaged config); ``limit + 1`` when ``limit`` layers do not.

    The idealised sweep: in one layer each of the four one-way sweeps (down, up, right, left)
    carries a site's state one slice on per step, at most ``lateral`` sites sideways (the
    reach of its recurrent taps), and the layer's output at a site is what any one direction
    brought there; the directions run side by side on the same input, so the colour turns from
    one direction to another only between layers. It moves only through the cells of the path
    and of its two squares, as a sweep that follows the path (and does not spread everywhere)
    must: with ``lateral=1`` a step never reaches another path, which keeps a free cell from it.
    The backbone's own reach (a few cells) is ignored."""
    cells = set(layout.paths[index])
    cells |= set(block_cells(layout.cues[index])) | set(block_cells(layout.objects[index]))
    goal = set(block_cells(layout.objects[index]))
    reached = set(block_cells(layout.cues[index]))
    sideways = range(-lateral, lateral + 1)
    for layers in range(1, limit + 1):
        carried = set(reached)
        for axis, sign in ((0, 1), (0, -1), (1, 1), (1, -1)):
            front, seen = reached, set(reached)
            while front:
                front = {
                    (r + sign, c + side) if axis == 0 else (r + side, c + sign)
                    for r, c in front
                    for side in sideways
                } & cells - seen
                seen |= front
            carried |= seen
        reached = carried
        if reached & goal:
            return layers
    return limit + 1


def sweep_follower_miou(layers_needed: Sequence[int], layers: int) -> float:
    """Expected mIoU of a model that follows every path that ``layers`` sweep layers can carry
    (:func:`sweep_layers_needed` of each object, ``layers_needed``) and guesses blind on the
    others: the ceiling of path following alone for a stack of that depth."""
    followed = float(np.mean(np.asarray(layers_needed) <= layers))
    return guess_miou(followed + (1 - followed) / 4)


@register_dataset("paths")
class PathsDataset(SegmentationDataset):
    """The generated paths benchmark (see the module docstring).

    Options: ``size`` (>= 64,
    default 128), ``cell`` (px per grid cell, a multiple of 4 that divides ``size``, default 4),
    ``pairs`` (objects and cues, 2-6, default 4), ``turns`` (waypoints per path, default 2: the
    difficulty knob), ``num_samples`` (2000 train, 200 val and test), ``seed``, ``target``
    (``"colour"``, the benchmark; ``"parts"``: the same scenes labelled background / path /
    object / cue, a local task, for pretraining a backbone to find the paths; see
    ``docs/diagnostics.md``). ``ds[i]`` is ``(uint8 (3, size, size), int64 (size, size))``, the
    same for the same ``(seed, split, i)``. ``root`` must be ``None``."""

    def __init__(
        self,
        *,
        root: str | Path | None = None,
        split: str = "train",
        transforms: JointTransform | None = None,
        size: int = 128,
        cell: int = DEFAULT_CELL,
        pairs: int = 4,
        turns: int = 2,
        num_samples: int | None = None,
        seed: int = 0,
        target: str = "colour",
    ):
        super().__init__(transforms=transforms)
        self.split = check_split("paths", split, tuple(SPLIT_STREAMS))
        if target not in TARGETS:
            raise ConfigError(
                f"paths option target must be one of {', '.join(TARGETS)}, got {target!r}"
                + close_matches_hint(target, TARGETS)
            )
        if root is not None:
            raise ConfigError("dataset 'paths' is generated; it takes no root")
        check_int_options(
            "paths",
            (
                ("size", size, 64, 1024),
                ("cell", cell, 4, 64),
                ("pairs", pairs, 2, 6),
                ("turns", turns, 0, 8),
                ("seed", seed, 0, None),
                ("num_samples", num_samples, 1, None),
            ),
        )
        if cell % 4 or size % cell:
            raise ConfigError(
                f"dataset 'paths': cell must be a multiple of 4 that divides size {size}, "
                f"got {cell}"
            )
        self.size, self.cell, self.pairs, self.turns, self.seed = size, cell, pairs, turns, seed
        self.num_samples = DEFAULT_NUM_SAMPLES[split] if num_samples is None else num_samples
        self.target = target
        self.classes = PARTS_CLASSES if target == "parts" else PATHS_CLASSES
        self.palette = list(PARTS_PALETTE if target == "parts" else CONTEXT_PALETTE)
        self._routes: dict[int, Routes] = {}

    def __len__(self) -> int:
        return self.num_samples

    def _stream(self, index: int, part: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], index, part])

    def layout(self, index: int) -> PathsLayout:
        """Sample ``index``'s layout (its routes drawn once per dataset object, then kept)."""
        if index not in self._routes:
            grid = self.size // self.cell
            self._routes[index] = draw_routes(self._stream(index, 0), grid, self.pairs, self.turns)
        background = textured_background(self._stream(index, 2), self.size)
        return PathsLayout(background, *self._routes[index], cell=self.cell)

    def colours(self, index: int) -> tuple[int, ...]:
        """The colour (0..3) of the cue of each object of sample ``index``."""
        return tuple(int(c) for c in self._stream(index, 1).integers(4, size=self.pairs))

    def load(self, index: int) -> Sample:
        image, mask = paint(self.layout(index), self.colours(index), self.target)
        return torch.from_numpy(image), torch.from_numpy(mask).to(torch.int64)
