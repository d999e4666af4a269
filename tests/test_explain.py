"""Influence maps and the cue share (``pdn explain``, engine/explain.py): zero exactly where the
model cannot see, for every head, and the picture written for pdn, aspp and fcn checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import pdn
from layouts import random_image
from pdn.cli.main import main
from pdn.data.context import ContextDataset
from pdn.data.transforms import eval_transforms
from pdn.engine import checkpoint as ck
from pdn.engine.explain import CueProbe, cue_share, influence_map, layer_influence
from pdn.models import DiffusionLayer

CLASSES = ["background", "a", "b"]
PALETTE = [(0, 0, 0), (220, 40, 40), (40, 220, 40)]


def test_fcn_map_is_zero_outside_its_107_px_window(tiny_model) -> None:
    model = tiny_model("fcn")
    values, target = influence_map(model, torch.randn(3, 320, 320), (160, 160))
    assert 0 <= target < 3
    rows, cols = torch.nonzero(values > 0, as_tuple=True)
    assert int((rows - 160).abs().max()) == 107 and int((cols - 160).abs().max()) <= 107
    assert float(values[160, 160]) > 0


def test_down_sweep_layer_hears_only_rows_above_its_site(tiny_model) -> None:
    """A one-direction ("down") sweep is causal: its output at row r depends on input rows <= r,
    and through the recurrence on rows far above."""
    model = tiny_model("pdn", num_layers=1, directions=["down"])
    (layer,) = layer_influence(model, torch.randn(3, 160, 160), (96, 80))
    site_row, site_col = layer.site
    assert (site_row, site_col) == (12, 10)
    assert not layer.values[site_row + 1 :].any()
    assert layer.values[: site_row + 1].gt(0).all(dim=1).any()
    assert float(layer.values[0].sum()) > 0  # the top row reaches the site 12 rows down


def test_aspp_map_reaches_farther_than_fcn_and_not_everywhere(tiny_model) -> None:
    image = torch.randn(3, 320, 320)
    fcn, _ = influence_map(tiny_model("fcn"), image, (160, 160))
    aspp, _ = influence_map(tiny_model("aspp"), image, (160, 160))
    assert float((aspp > 0).float().mean()) > float((fcn > 0).float().mean())
    assert layer_influence(tiny_model("aspp"), image, (160, 160)) == []


def test_layer_influence_equals_the_summed_jacobian() -> None:
    """``sum_{c, c'} |dY_c(site) / dX_c'|``, checked against the Jacobian from autograd."""
    torch.manual_seed(1)
    layer = DiffusionLayer(4, hidden=2, directions=("down", "left")).eval()
    x = torch.randn(4, 5, 6)
    jac = torch.autograd.functional.jacobian(lambda t: layer(t[None])[0, :, 2, 3], x)
    expected = jac.abs().sum(dim=(0, 1))

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            options = pdn.DiffusionOptions(hidden=2, directions=("down", "left"))
            self.stack = pdn.models.DiffusionStack(4, 1, options)
            self.stack.layers[0] = layer

        def forward(self, t):
            return self.stack(t)

    (found,) = layer_influence(Wrapper().eval(), x, (2, 3), chunk=3)
    assert found.site == (2, 3)
    torch.testing.assert_close(found.values, expected)
    assert set(found.directions) == {"down", "left"}
    assert not found.directions["down"][3:].any() and found.directions["down"][:3].any()
    assert not found.directions["left"][:, :3].any() and found.directions["left"][:, 3:].any()


def test_cue_share_is_zero_for_a_local_model_and_not_for_pdn(tiny_model) -> None:
    """On 256 px scenes the cue is >= 128 px from every object, beyond fcn's 107 px: its share is
    exactly 0; a PDN sweep carries gradient from the cue at initialisation."""
    dataset = ContextDataset(split="train", size=256, num_samples=2, cue_segments=8)
    fcn = tiny_model("fcn", 5)
    probe = CueProbe.from_dataset(dataset, eval_transforms(fcn.normalization), count=2)
    assert probe is not None and probe.cues.any() and probe.images.shape == (2, 3, 256, 256)
    assert cue_share(fcn, probe.images, probe.masks, probe.cues, pixels_per_image=2) == 0.0
    share = cue_share(
        tiny_model("pdn", 5), probe.images, probe.masks, probe.cues, pixels_per_image=2
    )
    assert 0.0 < share < 1.0
    assert all(p.grad is None for p in fcn.parameters())  # the trainer's gradients are untouched
    assert CueProbe.from_dataset([(probe.images[0], probe.masks[0])], lambda i, m: (i, m)) is None


@pytest.mark.parametrize("arch", ["pdn", "aspp", "fcn"])
def test_pdn_explain_writes_the_picture(arch, tmp_path, capsys, tiny_model) -> None:
    payload = ck.make_checkpoint(tiny_model(arch), classes=CLASSES, palette=PALETTE, config=None)
    checkpoint = ck.save_checkpoint(tmp_path / f"{arch}.pt", payload)
    image = tmp_path / "scene.png"
    Image.fromarray(random_image(48, 64, 0)).save(image)
    out = tmp_path / "why.png"
    args = ["explain", str(image), "--checkpoint", str(checkpoint), "--pixel", "20", "30"]
    assert main([*args, "--out", str(out), "--class", "b"]) == 0
    printed = capsys.readouterr().out
    assert "class 2 (b)" in printed and str(out) in printed
    assert ("diffusion.layers.1" in printed) == (arch == "pdn")
    picture = Image.open(out)
    panels = 4 + (arch == "pdn") * 2 - 1  # image, prediction, model map, one per layer
    assert picture.height > 256 and picture.width > panels * 256


def test_pdn_explain_bad_input_is_one_line(tmp_path, capsys, tiny_model) -> None:
    payload = ck.make_checkpoint(tiny_model("fcn"), classes=CLASSES, palette=PALETTE, config=None)
    checkpoint = ck.save_checkpoint(tmp_path / "fcn.pt", payload)
    image = tmp_path / "scene.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    base = ["explain", str(image), "--checkpoint", str(checkpoint)]
    for extra, message in (
        (["--pixel", "40", "0"], "outside the 40x40 image"),
        (["--pixel", "1", "1", "--class", "c"], "not a class"),
        (["--pixel", "1", "1", "--out", str(image)], "is the input image"),
    ):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert (
        main(
            [
                "explain",
                str(tmp_path / "nope.png"),
                "--checkpoint",
                str(checkpoint),
                "--pixel",
                "1",
                "1",
            ]
        )
        == 2
    )
    assert "nope.png" in capsys.readouterr().err
