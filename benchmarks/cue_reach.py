"""Where a context-benchmark model's decision comes from, by layer and sweep direction.

    .venv/bin/python benchmarks/cue_reach.py CHECKPOINT [CHECKPOINT ...] [--scenes 8] [--split test]

For each checkpoint (e.g. the ``iter_N.pt`` a run keeps with ``train.keep_checkpoints=true``)
it rebuilds ``--scenes`` scenes of the split from the checkpoint's data options and prints:

- ``model``: the cue share of the whole model (engine/explain.py :func:`cue_share`): the share of
  an object pixel's decision gradient that lies on cue pixels;
- for each diffusion layer, at the feature site of each explained object pixel, the share of the
  layer's Jacobian mass on its input (:func:`layer_influence`) that lies on cue sites (feature
  sites with a cue pixel), for the layer's output and for each direction's hidden state, grouped
  by the side the scene's cue lies on. A direction can carry a cue only from the side it starts
  on (``down`` from the top, ``right`` from the left, ``up`` from the bottom, ``left`` from the
  right); its share for the other sides measures how much it hears of cue sites it cannot
  propagate along its sweep;
- ``colour``: how much each stage's activations change when the whole cue is repainted in each of
  the 4 colours (the rest of the scene unchanged): the mean over colour pairs of
  ``|f_a - f_b| / |f|`` per site, at cue sites for each backbone stage's map (``stage0`` ..
  ``stage3``; the last is what the head reads) and the head's ``reduce`` output (does the cue's colour survive into the features the head diffuses?), and at
  object sites for the diffusion stack's output and the logits (does it arrive?).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from context_sides import load_context_run  # the script beside this one

from pdn.data.context import SIDES, cue_mask, paint
from pdn.engine.checkpoint import load_checkpoint
from pdn.engine.explain import cue_share, layer_influence, object_pixels
from pdn.engine.segmenter import Segmenter
from pdn.errors import PdnError


def reach(
    checkpoint: str, scenes: int, split: str, pixels: int, layers: bool = True
) -> dict[str, float]:
    dataset, segmenter = load_context_run(checkpoint, split)
    ckpt = load_checkpoint(checkpoint)
    model = segmenter.model
    images, masks, cues, sides = [], [], [], []
    for index in range(scenes):
        image, mask = dataset[index]
        images.append(segmenter.prepare(image))
        masks.append(mask)
        layout = dataset.layout(index)
        cues.append(torch.from_numpy(cue_mask(layout)))
        sides.append(SIDES[layout.side])
    images_t, masks_t, cues_t = torch.stack(images), torch.stack(masks), torch.stack(cues)
    row = {"iteration": float(ckpt.get("iteration") or 0)}
    row["model"] = cue_share(model, images_t, masks_t, cues_t, pixels_per_image=pixels)
    shares: dict[str, list[float]] = defaultdict(list)
    for index in range(scenes if layers else 0):
        for pixel in object_pixels(masks_t[index], 1):
            for layer in layer_influence(model, images_t[index], pixel):
                h, w = layer.values.shape
                cue_sites = F.adaptive_max_pool2d(cues_t[index][None, None].float(), (h, w))[0, 0]
                side = sides[index]
                short = layer.name.rsplit(".", 1)[-1]
                for part, values in [("out", layer.values), *layer.directions.items()]:
                    share = float((values * cue_sites).sum() / values.sum().clamp_min(1e-30))
                    shares[f"L{short}.{part}@{side}"].append(share)
    row.update({key: float(np.mean(v)) for key, v in sorted(shares.items())})
    row.update(colour_separation(segmenter, dataset, scenes))
    return row


def colour_separation(segmenter: Segmenter, dataset, scenes: int) -> dict[str, float]:
    """``colour.STAGE``: the relative change of each stage's activations between repaintings of
    the whole cue in two colours, mean over the 6 pairs of the 4 colours and over ``scenes``."""
    model = segmenter.model
    head = model.decode_head
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        model.backbone.register_forward_hook(
            lambda m, i, o: captured.update({f"stage{k}": v for k, v in enumerate(o)})
        )
    ]
    if hasattr(head, "reduce"):
        hooks.append(head.reduce.register_forward_hook(lambda m, i, o: captured.update(reduce=o)))
    if hasattr(head, "diffusion"):
        hooks.append(
            head.diffusion.register_forward_hook(lambda m, i, o: captured.update(diffused=o))
        )
    found: dict[str, list[float]] = defaultdict(list)
    try:
        for index in range(scenes):
            layout = dataset.layout(index)
            stages = []
            for colour in range(4):
                image, mask = paint(layout, [colour] * dataset.cue_segments)
                with torch.no_grad():
                    logits = model(segmenter.prepare(torch.from_numpy(image))[None])
                stages.append({**captured, "logits": logits})
            objects = torch.from_numpy(mask > 0)
            cue = torch.from_numpy(cue_mask(layout))
            for stage in stages[0]:
                h, w = stages[0][stage].shape[-2:]
                where = cue if stage.startswith("stage") or stage == "reduce" else objects
                sites = F.adaptive_max_pool2d(where[None, None].float(), (h, w))[0, 0] > 0
                values = [s[stage][0][:, sites] for s in stages]  # (C, sites)
                scale = torch.stack([v.norm(dim=0) for v in values]).mean(0).clamp_min(1e-12)
                pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
                change = [((values[a] - values[b]).norm(dim=0) / scale).mean() for a, b in pairs]
                found[f"colour.{stage}"].append(float(torch.stack(change).mean()))
    finally:
        for hook in hooks:
            hook.remove()
    return {key: float(np.mean(v)) for key, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--pixels", type=int, default=4, help="object pixels per scene (model)")
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--no-layers", action="store_true", help="only the model's cue share and the colours"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    for checkpoint in args.checkpoints:
        try:
            row = reach(checkpoint, args.scenes, args.split, args.pixels, not args.no_layers)
        except PdnError as error:
            raise SystemExit(f"{checkpoint}: {error}") from None
        print(
            f"{checkpoint}: iteration {row.pop('iteration'):.0f}, model cue share "
            f"{row.pop('model'):.4f}"
        )
        colours = {k: row.pop(k) for k in [k for k in row if k.startswith("colour.")]}
        print("  colour separation: " + "  ".join(f"{k[7:]} {v:.4f}" for k, v in colours.items()))
        layers = sorted({key.split(".")[0] for key in row})
        for layer in layers:
            parts = sorted(
                {key.split(".")[1].split("@")[0] for key in row if key.startswith(layer)}
            )
            for part in parts:
                cells = [
                    f"{side} {row[f'{layer}.{part}@{side}']:.3f}"
                    for side in SIDES
                    if f"{layer}.{part}@{side}" in row
                ]
                print(f"  layer {layer[1:]} {part:>5}: " + "  ".join(cells))


if __name__ == "__main__":
    main()
