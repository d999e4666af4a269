"""Test-time inference (whole, sliding window, multi-scale, flip) and the Segmenter API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pdn
from pdn.engine.inference import InferenceOptions, infer, predict_probabilities, window_starts
from pdn.errors import ConfigError

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


def _tiny_model(**options) -> nn.Module:
    torch.manual_seed(0)
    model = pdn.build_model("pdn", K, backbone="tiny", channels=16, **options)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that eval mode is not identity
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


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


def test_slide_with_crop_equal_to_image_is_whole():
    model = _tiny_model()
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


def test_flip_averaging_of_flip_symmetric_model_is_noop():
    model = FlipSymmetric(_tiny_model()).eval()
    x = torch.randn(1, 3, 48, 57)
    plain = predict_probabilities(model, x)
    flipped = predict_probabilities(model, x, flip=True)
    torch.testing.assert_close(flipped, plain, atol=1e-5, rtol=1e-5)
    # and for a model without the symmetry, flip does change the result
    inner = _tiny_model()
    assert not torch.allclose(
        predict_probabilities(inner, x, flip=True), predict_probabilities(inner, x), atol=1e-4
    )


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_multi_scale_and_flip_shapes_on_odd_sizes(mode):
    model = _tiny_model()
    x = torch.randn(2, 3, 37, 53)
    probs = predict_probabilities(
        model, x, mode=mode, crop_size=(33, 40), scales=(0.5, 0.75, 1.0, 1.5), flip=True
    )
    assert probs.shape == (2, K, 37, 53) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 37, 53))
    assert bool((probs >= 0).all())


def test_single_scale_one_is_the_plain_model():
    model = _tiny_model()
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
