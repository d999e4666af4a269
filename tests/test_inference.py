"""Test-time inference (whole, sliding window, multi-scale, flip) and the Segmenter API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import pdn
from layouts import random_image
from pdn.engine import checkpoint as ck
from pdn.engine.inference import InferenceOptions, infer, predict_probabilities, window_starts
from pdn.engine.segmenter import to_image_tensor
from pdn.errors import CheckpointError, ConfigError, DataError

K = 3


class PerPixel(nn.Module):
    """A per-pixel network (two 1x1 convs): translation-equivariant, so any crop of its output is
    the output of the same crop of its input. Rejects inputs below 32 pixels like the real models."""

    def __init__(self, num_classes: int = K):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Tanh(), nn.Conv2d(8, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] >= 32 and x.shape[-1] >= 32
        return self.body(x)


class FlipSymmetric(nn.Module):
    """``f(x) + f(x.flip(-1)).flip(-1)`` of a context-dependent network: invariant to a flip."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + self.inner(x.flip(-1)).flip(-1)


def test_window_grid_matches_mmsegmentation():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]  # last window aligned to the border
    assert window_starts(5, 8, 3) == [0]  # smaller than the crop: one (padded) window
    assert window_starts(8, 8, 3) == [0]
    for size, crop, stride in [(97, 32, 21), (64, 33, 33), (100, 40, 7)]:
        starts = window_starts(size, crop, stride)
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s : s + crop] = True
            assert s >= 0 and s + crop <= size
        assert covered.all() and starts[-1] + crop == size


def test_slide_with_crop_equal_to_image_is_whole(tiny_model):
    model = tiny_model()
    x = torch.randn(2, 3, 45, 61)
    whole = predict_probabilities(model, x)
    slide = predict_probabilities(model, x, mode="slide", crop_size=(45, 61), stride=(30, 40))
    torch.testing.assert_close(slide, whole)
    assert whole.shape == (2, K, 45, 61)
    torch.testing.assert_close(whole.sum(1), torch.ones(2, 45, 61))


@pytest.mark.parametrize("size", [(64, 64), (77, 101), (33, 130)])
def test_overlapping_windows_of_a_per_pixel_model_equal_whole(size):
    model = PerPixel().eval()
    x = torch.randn(2, 3, *size)
    whole = predict_probabilities(model, x)
    slide = predict_probabilities(model, x, mode="slide", crop_size=(40, 36), stride=(17, 23))
    torch.testing.assert_close(slide, whole)


def test_images_smaller_than_crop_and_model_minimum_are_padded():
    model = PerPixel().eval()
    x = torch.randn(1, 3, 13, 21)  # below the 32-pixel minimum: padded, then cut back
    whole = predict_probabilities(model, x)
    assert whole.shape == (1, K, 13, 21)
    torch.testing.assert_close(whole, model.body(x).softmax(1))
    slide = predict_probabilities(model, x, mode="slide", crop_size=48, stride=32)
    torch.testing.assert_close(slide, whole)


def test_flip_averaging_of_flip_symmetric_model_is_noop(tiny_model):
    model = FlipSymmetric(tiny_model()).eval()
    x = torch.randn(1, 3, 48, 57)
    plain = predict_probabilities(model, x)
    flipped = predict_probabilities(model, x, flip=True)
    torch.testing.assert_close(flipped, plain, atol=1e-5, rtol=1e-5)
    # and for a model without the symmetry, flip does change the result
    inner = tiny_model()
    assert not torch.allclose(
        predict_probabilities(inner, x, flip=True), predict_probabilities(inner, x), atol=1e-4
    )


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_multi_scale_and_flip_shapes_on_odd_sizes(mode, tiny_model):
    model = tiny_model()
    x = torch.randn(2, 3, 37, 53)
    probs = predict_probabilities(
        model, x, mode=mode, crop_size=(33, 40), scales=(0.5, 0.75, 1.0, 1.5), flip=True
    )
    assert probs.shape == (2, K, 37, 53) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 37, 53))
    assert bool((probs >= 0).all())


def test_single_scale_one_is_the_plain_model(tiny_model):
    model = tiny_model()
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        expected = model(x).softmax(1)
    torch.testing.assert_close(predict_probabilities(model, x, scales=[1.0]), expected)


def test_scaled_per_pixel_model_is_close_to_unscaled():
    # a per-pixel model on a smooth image: resizing there and back changes little
    model = PerPixel().eval()
    x = torch.nn.functional.interpolate(torch.randn(1, 3, 8, 8), size=(64, 64), mode="bilinear")
    one = predict_probabilities(model, x)
    multi = predict_probabilities(model, x, scales=(0.75, 1.25))
    assert (multi - one).abs().max() < 0.05


def test_options_from_config_and_validation():
    config = {"data": {"crop_size": 96, "eval_resize": 64}, "eval": {"mode": "slide", "stride": 50}}
    options = InferenceOptions.from_config(config)
    assert options.crop_size == (96, 96) and options.window_stride == (50, 50)
    assert options.short_side == 64 and options.scale_factors(128, 256) == (0.5,)
    assert InferenceOptions(mode="slide", crop_size=(30, 60)).window_stride == (20, 40)
    assert options.override(mode="whole", stride=None).mode == "whole"
    assert "slide 96x96 stride 50x50" in options.describe()
    with pytest.raises(ConfigError, match="whole or slide"):
        InferenceOptions(mode="tile")
    with pytest.raises(ConfigError, match="crop size"):
        InferenceOptions(mode="slide")
    with pytest.raises(ConfigError, match="scales"):
        InferenceOptions(scales=(1.0, -1.0))


def test_infer_applies_short_side():
    model = PerPixel().eval()
    x = torch.randn(1, 3, 64, 96)
    options = InferenceOptions(short_side=32)
    probs = infer(model, x, options)
    assert probs.shape == (1, K, 64, 96)
    expected = predict_probabilities(model, x, scales=(0.5,))
    torch.testing.assert_close(probs, expected)


# --- pdn.Segmenter -------------------------------------------------------------------------------

CLASSES = ["background", "cat", "dog"]
PALETTE = [(0, 0, 0), (200, 30, 30), (30, 200, 30)]


def _checkpoint(model, path, config=None):
    payload = ck.make_checkpoint(
        model, classes=CLASSES, palette=PALETTE, config=config, iteration=3
    )
    return ck.save_checkpoint(path, payload)


def test_segmenter_predicts_same_labels_from_path_pil_array_and_tensor(tmp_path, tiny_model):
    seg = pdn.Segmenter.from_checkpoint(_checkpoint(tiny_model(), tmp_path / "m.pt"), device="cpu")
    assert seg.classes == CLASSES and seg.palette == PALETTE and seg.device.type == "cpu"
    assert not seg.model.training and seg.normalization == seg.model.normalization
    pixels = random_image(45, 70, 0)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    from_path = seg.predict(tmp_path / "photo.png")
    assert from_path.shape == (45, 70) and from_path.dtype == np.int64
    assert from_path.min() >= 0 and from_path.max() < 3
    np.testing.assert_array_equal(seg.predict(str(tmp_path / "photo.png")), from_path)
    np.testing.assert_array_equal(seg.predict(Image.fromarray(pixels)), from_path)
    np.testing.assert_array_equal(seg.predict(pixels), from_path)
    np.testing.assert_array_equal(seg.predict(torch.from_numpy(pixels).permute(2, 0, 1)), from_path)
    # the labels are the argmax of the model on the normalised image
    x = seg.normalization(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)[None]
    with torch.no_grad():
        np.testing.assert_array_equal(seg.model(x).argmax(1)[0].numpy(), from_path)


def test_gray_inputs_are_repeated_over_rgb(tmp_path, tiny_model):
    seg = pdn.Segmenter.from_checkpoint(_checkpoint(tiny_model(), tmp_path / "m.pt"), device="cpu")
    gray = random_image(45, 70, 0)[..., 0]
    expected = seg.predict(np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(seg.predict(gray), expected)
    np.testing.assert_array_equal(seg.predict(Image.fromarray(gray)), expected)


def test_predict_batch_matches_predict_on_mixed_sizes(tmp_path, tiny_model):
    seg = pdn.Segmenter.from_checkpoint(_checkpoint(tiny_model(), tmp_path / "m.pt"), device="cpu")
    seg.batch_size = 2
    images = [
        random_image(40, 50, 0),
        random_image(33, 64, 1),
        random_image(40, 50, 2),
        random_image(40, 50, 3),
    ]
    batched = seg.predict_batch(images)
    assert [b.shape for b in batched] == [(40, 50), (33, 64), (40, 50), (40, 50)]
    for image, labels in zip(images, batched, strict=True):
        np.testing.assert_array_equal(labels, seg.predict(image))


def test_inference_options_come_from_the_checkpoint_config(tmp_path, tiny_model):
    config = {"data": {"crop_size": 32}, "eval": {"mode": "slide", "stride": 24, "flip": True}}
    seg = pdn.Segmenter.from_checkpoint(
        _checkpoint(tiny_model(), tmp_path / "m.pt", config), device="cpu"
    )
    assert seg.options == InferenceOptions(
        mode="slide", crop_size=(32, 32), stride=(24, 24), flip=True
    )
    image = random_image(41, 50, 0)
    x = seg.prepare(image)[None]
    expected = predict_probabilities(
        seg.model, x, mode="slide", crop_size=32, stride=24, flip=True
    ).argmax(1)[0]
    np.testing.assert_array_equal(seg.predict(image), expected.numpy())
    whole = predict_probabilities(seg.model, x).argmax(1)[0]
    np.testing.assert_array_equal(seg.predict(image, mode="whole", flip=False), whole.numpy())
    with pytest.raises(TypeError, match="unknown inference options"):
        seg.predict(image, crops=3)


def test_segmenter_errors_are_one_line(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        pdn.Segmenter.from_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        pdn.Segmenter.from_checkpoint(tmp_path / "junk.pt")
    seg = pdn.Segmenter.from_checkpoint(_checkpoint(tiny_model(), tmp_path / "m.pt"), device="cpu")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match="broken.png") as error:
        seg.predict(tmp_path / "broken.png")
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="not found"):
        seg.predict(tmp_path / "nothing.jpg")
    with pytest.raises(DataError, match="uint8"):
        seg.predict(np.zeros((40, 40, 3), np.float32))
    with pytest.raises(DataError, match=r"\(H, W, 3\)"):
        to_image_tensor(np.zeros((40, 40, 4), np.uint8))
    with pytest.raises(DataError, match="list"):
        to_image_tensor([1, 2, 3])
