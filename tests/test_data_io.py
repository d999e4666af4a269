"""Image conversion rules: grayscale and 16-bit images become 3-channel uint8 as documented."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pdn.data import read_image, read_label_array


def test_8_bit_grayscale_is_repeated_over_the_channels(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.dtype == torch.uint8 and image.shape == (3, 3, 4)
    for channel in range(3):
        np.testing.assert_array_equal(image[channel].numpy(), gray)


def test_16_bit_grayscale_is_rescaled_by_its_own_maximum_without_clipping(tmp_path):
    values = np.array([[0, 1000, 2000], [30000, 40000, 50000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as stored:
        assert stored.mode.startswith("I")
    image = read_image(tmp_path / "deep.png")
    expected = np.rint(values.astype(np.float64) * 255 / 50000).astype(np.uint8)
    np.testing.assert_array_equal(image[0].numpy(), expected)
    assert image.max() == 255 and image.min() == 0 and torch.equal(image[0], image[2])


def test_float_images_with_negative_values_map_their_range_onto_0_255(tmp_path):
    values = np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    image = read_image(tmp_path / "f.tif")
    assert image[0].tolist() == [[0, 64], [128, 255]]


def test_all_zero_deep_image_stays_zero(tmp_path):
    Image.fromarray(np.zeros((2, 2), dtype=np.uint16)).save(tmp_path / "z.png")
    assert read_image(tmp_path / "z.png").sum() == 0


def test_rgba_drops_alpha_and_palette_images_become_their_colours(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png")[:, 0, 0].tolist() == [200, 0, 0]
    indices = Image.fromarray(np.array([[0, 1]], dtype=np.uint8))
    indices.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    indices.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png")[:, 0, 1].tolist() == [10, 20, 30]


def test_palette_mask_gives_indices_not_colours(tmp_path):
    indices = Image.fromarray(np.array([[0, 1, 255]], dtype=np.uint8))
    indices.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    indices.save(tmp_path / "m.png")
    assert read_label_array(tmp_path / "m.png").tolist() == [[0, 1, 255]]
