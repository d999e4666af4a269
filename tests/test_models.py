"""The network: shapes on odd sizes for every arch and backbone, gradients, exact causality of the
sweeps, equivalence with torch.nn.LSTM, reach, scripting."""

import math

import pytest
import torch

import pdn
from pdn.engine.checkpoint import model_from_checkpoint
from pdn.errors import ConfigError
from pdn.models import (
    DiffusionLayer,
    DiffusionLayerBase,
    DiffusionOptions,
    DiffusionStack,
    LayerwiseDiffusion,
    SweepDiffusion,
)
from pdn.models.diffusion import DIRECTIONS, tap_offsets
from sweeps import output_and_gradients

ARCHS = ("pdn", "fcn", "aspp", "ppm")
BACKBONES = [
    ("tiny", 8),
    ("tiny", 16),
    ("resnet18", 8),
    ("resnet18", 16),
    ("resnet50", 8),
    ("resnet50", 16),
    ("efficientnet_lite0", 8),
    ("efficientnet_lite0", 16),
]


@pytest.mark.parametrize("backbone,output_stride", BACKBONES)
@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_gradients(arch: str, backbone: str, output_stride: int) -> None:
    torch.manual_seed(0)
    model = pdn.build_model(arch, 3, backbone=backbone, output_stride=output_stride, channels=32)
    for training in (True, False):
        model.train(training)
        for batch in (1, 2):
            for height, width in ((65, 97), (33, 129)):
                with torch.set_grad_enabled(training):
                    logits = model(torch.randn(batch, 3, height, width))
                assert logits.shape == (batch, 3, height, width)
    model.train()
    logits, aux = model.forward_train(torch.randn(2, 3, 33, 65))
    assert aux is not None and aux.shape == logits.shape == (2, 3, 33, 65)
    (logits.square().mean() + aux.square().mean()).backward()
    without = [
        name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert without == []


def _causality_gradients(direction: str, slice_index: int) -> torch.Tensor:
    """Gradient magnitude of the output at one slice with respect to every input slice."""
    torch.manual_seed(1)
    layer = DiffusionLayer(8, hidden=4, directions=(direction,)).eval()
    with torch.no_grad():
        layer.norm.running_mean.uniform_(-1, 1)
        layer.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 8, 11, 13, requires_grad=True)
    y = layer(x)
    vertical = direction in ("down", "up")
    picked = y[:, :, slice_index] if vertical else y[:, :, :, slice_index]
    picked.sum().backward()
    return x.grad.abs().sum(dim=(0, 1, 3) if vertical else (0, 1, 2))


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_sweep_is_exactly_causal(direction: str) -> None:
    grads = _causality_gradients(direction, 5)
    forward = direction in ("down", "right")
    later = grads[6:] if forward else grads[:5]
    earlier = grads[:5] if forward else grads[6:]
    assert torch.all(later == 0)
    assert torch.all(earlier > 0)
    assert grads[5] > 0


def test_sweep_equals_torch_lstm() -> None:
    """kernel_size=1, rates=(1,): the downward sweep is an nn.LSTM run over each column."""
    torch.manual_seed(2)
    channels, hidden, height, width = 6, 5, 9, 4
    layer = DiffusionLayer(channels, hidden=hidden, directions=("down",), rates=(1,), kernel_size=1)
    lstm = torch.nn.LSTM(channels, hidden)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(layer.input_to_state.weight.view(4 * hidden, channels))
        lstm.bias_ih_l0.copy_(layer.input_to_state.bias)
        lstm.bias_hh_l0.zero_()
        lstm.weight_hh_l0.copy_(layer.state_to_state[0])
    x = torch.randn(2, channels, height, width)
    with torch.no_grad():
        ours = layer.hidden_states(x)
        sequence = x.permute(2, 0, 3, 1).reshape(height, 2 * width, channels)
        reference, _ = lstm(sequence)
    reference = reference.reshape(height, 2, width, hidden).permute(1, 3, 0, 2)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def _reference_sweep(layer: DiffusionLayer, x: torch.Tensor) -> torch.Tensor:
    """The sweep of docs/architecture.md (section Sweep) written out site by site: for each
    direction, slice by slice, each site's gates are ``Wx X_s`` plus the recurrent filter's taps
    over the previous slice's hidden states; with ``gate_norm``, each of the two sums normalised
    over the site's ``4 * hidden`` gates and scaled by its gain, and ``h = o * tanh(LN(c))``."""
    hidden, offsets, dilations = layer.hidden, layer.offsets, layer.dilations
    batch, _, height, width = x.shape
    norm = layer.gate_norm

    def ln(v: torch.Tensor) -> torch.Tensor:  # over dim 1, at each site
        return torch.nn.functional.layer_norm(v.movedim(1, -1), v.shape[1:2]).movedim(-1, 1)

    streams = len(layer.directions)
    if norm is None:
        gates_in = layer.input_to_state(x).view(batch, streams, 4 * hidden, height, width)
    else:
        plain = torch.nn.functional.conv2d(x, layer.input_to_state.weight)
        plain = plain.view(batch, streams, 4 * hidden, height, width)
        bias = layer.input_to_state.bias.view(streams, 4 * hidden, 1, 1)
        gates_in = torch.stack(
            [ln(plain[:, k]) * norm.input_gain[k, :, None, None] + bias[k] for k in range(streams)],
            1,
        )
    outputs = []
    for k, direction in enumerate(layer.directions):
        g = gates_in[:, k]
        if direction in ("right", "left"):
            g = g.transpose(2, 3)
        if direction in ("up", "left"):
            g = g.flip(2)
        steps, length = g.shape[2], g.shape[3]
        weight = layer.state_to_state[k].view(4 * hidden, hidden, len(offsets))
        h = torch.zeros(batch, hidden, length)
        c = torch.zeros(batch, hidden, length)
        states = torch.zeros(batch, hidden, steps, length)
        for s in range(steps):
            recurrent = torch.zeros(batch, 4 * hidden, length)
            for site in range(length):
                for t, offset in enumerate(offsets):
                    if s > 0 and 0 <= site + offset < length:
                        recurrent[:, :, site] += h[:, :, site + offset] @ weight[:, :, t].T
                for j, d in enumerate(dilations):  # the dilated recurrence: h_{s-d}, same site
                    if s >= d:
                        far = layer.dilated.weight[j, k]
                        recurrent[:, :, site] += states[:, :, s - d, site] @ far.T
            if norm is not None and s > 0:
                recurrent = ln(recurrent) * norm.recurrent_gain[k, :, None]
            gates = g[:, :, s] + recurrent
            i, f, cand, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cand)
            read = c
            if norm is not None:
                read = ln(c) * norm.cell_gain[k, :, None] + norm.cell_shift[k, :, None]
            h = torch.sigmoid(o) * torch.tanh(read)
            states[:, :, s] = h
        if direction in ("up", "left"):
            states = states.flip(2)
        if direction in ("right", "left"):
            states = states.transpose(2, 3)
        outputs.append(states)
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("gate_norm", [False, True])
@pytest.mark.parametrize("dilations", [(), (2, 4)])
@pytest.mark.parametrize("recurrence", ["conv1d", "gather"])
@pytest.mark.parametrize("height,width", [(6, 6), (5, 9)])
def test_sweep_matches_the_equations_site_by_site(
    height: int, width: int, recurrence: str, dilations: tuple[int, ...], gate_norm: bool
) -> None:
    """Atrous taps (1, 2, 4), four directions, on a square map (all directions batched in one loop)
    and a non-square one (one loop per axis); the CPU's grouped conv1d and the GPU's gathered bmm
    (both forced here, on the CPU); with and without the dilated recurrence (h_{s-2}, h_{s-4});
    with and without layer-normalised gates (gains and shifts drawn away from 1 and 0)."""
    torch.manual_seed(5)
    layer = DiffusionLayer(
        8, hidden=3, rates=(1, 2, 4), recurrent_dilations=dilations, gate_norm=gate_norm
    )
    layer.recurrence = recurrence
    if gate_norm:
        with torch.no_grad():
            for parameter in layer.gate_norm.parameters():
                parameter.uniform_(0.5, 1.5)
    x = torch.randn(2, 8, height, width)
    with torch.no_grad():
        torch.testing.assert_close(layer.hidden_states(x), _reference_sweep(layer, x))


@pytest.mark.parametrize("gate_norm", [False, True])
@pytest.mark.parametrize("directions", [DIRECTIONS, ("up", "right")])
def test_gathered_recurrence_has_the_conv1d_gradients(
    directions: tuple[str, ...], gate_norm: bool
) -> None:
    """The two forms of the recurrent term train alike: same output, same gradients of the input
    and of every weight (all four directions batched; a subset of the streams, one per axis; with
    and without layer-normalised gates); a form with another name is refused, not run as conv1d."""
    torch.manual_seed(8)
    layer = DiffusionLayer(
        8, hidden=4, directions=directions, rates=(1, 3), gate_norm=gate_norm
    ).train()
    x = torch.randn(2, 8, 5, 7)
    # in float64: the two forms sum in other orders, and float32 rounding (magnified by the gate
    # norm's division by small spreads, and varying with the thread count) reaches 3e-4 here
    layer, x = layer.double(), x.double()
    reference = output_and_gradients(layer, x, "conv1d")
    gathered = output_and_gradients(layer, x, "gather")
    for result, expected in zip(gathered, reference, strict=True):
        torch.testing.assert_close(result, expected)
    layer.recurrence = "gathered"
    with pytest.raises(ValueError, match="recurrence must be auto, conv1d, gather or triton"):
        layer(x)


def test_gate_norm_makes_the_sweep_blind_to_the_scale_of_its_weights() -> None:
    """With layer-normalised gates, multiplying the input-to-state and the recurrent weights by
    positive factors leaves the layer's output unchanged (up to the normalisation's epsilon,
    negligible with weights this large: 300x their initial scale); without it the output changes. The option is a sweep's
    only, and it adds its gains to the state dict only when on."""
    torch.manual_seed(4)
    x = torch.randn(2, 8, 6, 7)
    changes = {}
    for gate_norm in (False, True):
        layer = DiffusionLayer(8, hidden=4, gate_norm=gate_norm).eval()
        with torch.no_grad():
            layer.input_to_state.weight.mul_(300)
            layer.state_to_state.mul_(300)
            before = layer(x)
            layer.input_to_state.weight.mul_(3)
            layer.state_to_state.mul_(0.25)
            changes[gate_norm] = float((layer(x) - before).abs().max())
    assert changes[True] < 1e-4 < 0.01 < changes[False]
    keys = set(DiffusionLayer(8, gate_norm=True).state_dict()) - set(DiffusionLayer(8).state_dict())
    assert keys == {
        f"gate_norm.{name}" for name in ("input_gain", "recurrent_gain", "cell_gain", "cell_shift")
    }
    with pytest.raises(ConfigError, match="gate_norm is a sweep option"):
        DiffusionLayer(8, mode="layerwise", gate_norm=True)


def test_reversed_directions_mirror_forward_ones() -> None:
    """'up' on a map equals 'down' on the flipped map, flipped back (same for left/right)."""
    torch.manual_seed(3)
    for forward, backward, dim in (("down", "up", 2), ("right", "left", 3)):
        a = DiffusionLayer(8, directions=(forward,)).eval()
        b = DiffusionLayer(8, directions=(backward,)).eval()
        b.load_state_dict(a.state_dict())
        x = torch.randn(1, 8, 7, 9)
        with torch.no_grad():
            torch.testing.assert_close(b(x), a(x.flip(dim)).flip(dim))


def test_atrous_taps() -> None:
    assert tap_offsets(3, (1, 2, 4)) == [-4, -2, -1, 0, 1, 2, 4]
    assert tap_offsets(1, (1,)) == [0]
    assert tap_offsets(5, (1,)) == [-2, -1, 0, 1, 2]


def _reach(module: torch.nn.Module, x: torch.Tensor) -> float:
    """|d out[..., -1, -1] / d in[..., 0, 0]|: does the top-left corner reach the bottom-right one?"""
    x = x.clone().requires_grad_(True)
    out = module(x)
    out[..., -1, -1].sum().backward()
    return float(x.grad[..., 0, 0].abs().sum())


def test_one_layer_reaches_the_opposite_corner() -> None:
    torch.manual_seed(4)
    layer = DiffusionLayer(16).eval()
    assert _reach(layer, torch.randn(1, 16, 16, 16)) > 0
    one_direction = DiffusionLayer(16, directions=("up",)).eval()
    assert _reach(one_direction, torch.randn(1, 16, 16, 16)) == 0


def test_pdn_reaches_across_the_image_and_fcn_does_not() -> None:
    torch.manual_seed(5)
    x = torch.randn(1, 3, 129, 129)
    fcn = pdn.build_model("fcn", 2, backbone="tiny").eval()
    model = pdn.build_model("pdn", 2, backbone="tiny").eval()
    assert _reach(fcn, x) == 0
    assert _reach(model, x) > 0


def test_layerwise_passes_state_between_layers() -> None:
    torch.manual_seed(6)
    stack = DiffusionStack(16, 2, DiffusionOptions(mode="layerwise")).eval()
    assert [layer.rates for layer in stack.layers] == [(1, 2, 4), (2, 4, 8)]
    x = torch.randn(1, 16, 10, 12)
    with torch.no_grad():
        first, state = stack.layers[0].forward_with_state(x, None)
        second, _ = stack.layers[1].forward_with_state(first, state)
        torch.testing.assert_close(stack(x), second)
        assert not torch.allclose(second, stack.layers[1](first))


# TorchScript is deprecated in recent PyTorch but still what `pdn export --format torchscript` uses;
# a trace is fixed to its input size (the export module's doc says so), which its warnings repeat.
@pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("mode", ["sweep", "layerwise"])
def test_pdn_scripts_and_traces(mode: str) -> None:
    torch.manual_seed(7)
    model = pdn.build_model("pdn", 4, backbone="tiny", mode=mode).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, 64, 48)
    traced = torch.jit.trace(model, x)
    with torch.no_grad():
        for size in ((64, 48), (41, 77)):
            y = torch.randn(2, 3, *size)
            torch.testing.assert_close(scripted(y), model(y))
        torch.testing.assert_close(traced(x), model(x))
        logits, aux = scripted.forward_train(x)
        assert aux is not None and logits.shape == aux.shape == (1, 4, 64, 48)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="num_layer"):
        pdn.build_model("pdn", 3, backbone="tiny", num_layer=3)
    with pytest.raises(ConfigError, match="pdm"):
        pdn.build_model("pdm", 3, backbone="tiny")
    with pytest.raises(ConfigError, match="directions"):
        DiffusionLayer(8, directions=("down", "sideways"))
    with pytest.raises(ConfigError, match="mode"):
        DiffusionLayer(8, mode="spiral")
    model = pdn.build_model("fcn", 3, backbone="tiny").eval()
    with pytest.raises(ValueError, match="at least 32x32"):
        model(torch.randn(1, 3, 16, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 1, 64, 64))


@pytest.mark.parametrize("output_stride,rates", [(8, (12, 24, 36)), (16, (6, 12, 18))])
def test_aspp_rates_default_to_the_output_stride(output_stride: int, rates: tuple) -> None:
    model = pdn.build_model("aspp", 3, backbone="tiny", output_stride=output_stride)
    atrous = [branch[0].dilation[0] for branch in model.decode_head.branches[1:-1]]
    assert tuple(atrous) == rates
    assert "atrous_rates" not in model.model_config
    given = pdn.build_model("aspp", 3, backbone="tiny", output_stride=16, atrous_rates=(2, 3))
    assert [branch[0].dilation[0] for branch in given.decode_head.branches[1:-1]] == [2, 3]


def test_head_options_are_the_head_keywords() -> None:
    from pdn.models.build import head_options

    assert head_options("ppm") == ["channels", "bins", "dropout"]
    assert head_options("aspp") == ["channels", "atrous_rates", "dropout"]
    with pytest.raises(ConfigError, match="unknown architecture .pdm.; did you mean"):
        head_options("pdm")


@pytest.mark.parametrize("forget_bias", [1.0, 4.0])
def test_forget_bias_sets_the_forget_gate(forget_bias: float) -> None:
    """With every weight zero and the candidate's bias 1, a "down" sweep's cell follows
    c_s = sigmoid(forget_bias) * c_(s-1) + tanh(1) / 2 from c_0 = tanh(1) / 2. It needs chrono
    initialisation, a sweep's default, turned off: given with it on, it is refused."""
    layer = DiffusionLayer(
        4, hidden=2, directions=("down",), forget_bias=forget_bias, chrono_steps=0
    )
    with torch.no_grad():
        layer.input_to_state.weight.zero_()
        layer.state_to_state.zero_()
        layer.input_to_state.bias.view(1, 4, 2)[:, 2] = 1.0  # (i, f, g, o): g
    hidden = layer.hidden_states(torch.randn(1, 4, 6, 3))  # (1, 2, 6, 3)
    forget, cell, expected = torch.sigmoid(torch.tensor(forget_bias)), torch.tensor(0.0), []
    for _ in range(6):
        cell = forget * cell + torch.tanh(torch.tensor(1.0)) / 2
        expected.append(torch.tanh(cell) / 2)
    torch.testing.assert_close(hidden[0, 0, :, 0], torch.stack(expected))
    model = pdn.build_model("pdn", 3, backbone="tiny", forget_bias=forget_bias, chrono_steps=0)
    assert all(layer.forget_bias == forget_bias for layer in model.decode_head.diffusion.layers)
    assert pdn.build_model(**model.model_config).model_config == model.model_config
    with pytest.raises(ConfigError, match="give chrono_steps=0 too"):
        DiffusionLayer(4, forget_bias=forget_bias)


def test_chrono_init_draws_forget_biases_in_range_and_ties_the_input_gate() -> None:
    """Chrono init: forget biases log(U(1, T - 1)), input biases their negatives, the others 0;
    so a cell whose input is constant stays a moving average of it, |c| < 1."""
    steps = 32
    layer = DiffusionLayer(8, hidden=16, chrono_steps=steps)
    bias = layer.input_to_state.bias.detach().view(layer.streams, 4, 16)
    forget = bias[:, 1]
    assert float(forget.min()) >= 0.0 and float(forget.max()) <= math.log(steps - 1) + 1e-6
    assert float(forget.std()) > 0.3  # drawn, not one constant
    torch.testing.assert_close(bias[:, 0], -forget)
    assert not bias[:, 2:].any()
    with torch.no_grad():
        layer.input_to_state.weight.zero_()
        layer.state_to_state.zero_()
        layer.input_to_state.bias.view(layer.streams, 4, 16)[:, 2] = 3.0  # g = tanh(3)
    with torch.no_grad():
        hidden = layer.hidden_states(torch.randn(1, 8, 40, 40))
    # c_s = f c_(s-1) + (1 - f) tanh(3) approaches tanh(3) from below; h = tanh(c) / 2
    assert float(hidden.max()) < float(torch.tanh(torch.tanh(torch.tensor(3.0)))) / 2 + 1e-6
    model = pdn.build_model("pdn", 3, backbone="tiny", chrono_steps=steps)
    assert all(m.chrono_steps == steps for m in model.decode_head.diffusion.layers)
    assert pdn.build_model(**model.model_config).model_config == model.model_config
    with pytest.raises(ConfigError, match="chrono_steps"):
        DiffusionLayer(8, chrono_steps=2)


def test_chrono_init_is_the_sweeps_default_and_not_the_layerwise_one() -> None:
    """A sweep draws chrono biases unless told ``chrono_steps=0`` (then every forget bias is 1 and
    every input bias 0); ``layerwise``, whose time axis is the layers, keeps the forget bias."""
    torch.manual_seed(0)
    default = DiffusionLayer(8, hidden=16)
    assert default.chrono_steps == 32
    bias = default.input_to_state.bias.detach().view(default.streams, 4, 16)
    assert float(bias[:, 1].std()) > 0.3 and torch.equal(bias[:, 0], -bias[:, 1])
    for layer in (
        DiffusionLayer(8, hidden=16, chrono_steps=0),
        DiffusionLayer(8, mode="layerwise"),
    ):
        bias = layer.input_to_state.bias.detach().view(layer.streams, 4, -1)
        assert layer.chrono_steps == 0
        assert torch.equal(bias[:, 1], torch.ones_like(bias[:, 1])) and not bias[:, 0].any()


# The stored keys and shapes of a tiny pdn model's diffusion layers (64 channels, hidden 16, the
# default options); checkpoints saved before the two readings became two classes have exactly these.
_NORM_KEYS = {
    "norm.weight": (64,),
    "norm.bias": (64,),
    "norm.running_mean": (64,),
    "norm.running_var": (64,),
    "norm.num_batches_tracked": (),
}
_SWEEP_LAYER_KEYS = {
    "state_to_state": (4, 64, 112),
    "input_to_state.weight": (256, 64, 1, 1),
    "input_to_state.bias": (256,),
    "fuse.weight": (64, 64, 1, 1),
    **_NORM_KEYS,
}
_LAYERWISE_LAYER_KEYS = {
    "state_to_state": (0,),
    "input_to_state.weight": (128, 64, 1, 1),
    "input_to_state.bias": (128,),
    **{f"axis_convs.{k}.weight": (64, 16, 1, 3) for k in range(3)},  # horizontal axis first
    **{f"axis_convs.{k}.weight": (64, 16, 3, 1) for k in range(3, 6)},
    "fuse.weight": (64, 32, 1, 1),
    **_NORM_KEYS,
}


@pytest.mark.parametrize(
    "mode,layer_keys", [("sweep", _SWEEP_LAYER_KEYS), ("layerwise", _LAYERWISE_LAYER_KEYS)]
)
def test_diffusion_state_dict_keys_are_those_of_stored_checkpoints(
    mode: str, layer_keys: dict[str, tuple[int, ...]]
) -> None:
    model = pdn.build_model("pdn", 3, backbone="tiny", mode=mode)
    stored = {k: tuple(v.shape) for k, v in model.decode_head.diffusion.state_dict().items()}
    expected = {f"layers.{i}.{key}": shape for i in (0, 1) for key, shape in layer_keys.items()}
    assert list(stored.items()) == list(expected.items())  # the order too: optimizer states
    assert len(model.state_dict()) == 76 + len(expected)


@pytest.mark.parametrize("mode,cls", [("sweep", SweepDiffusion), ("layerwise", LayerwiseDiffusion)])
def test_diffusion_layer_builds_the_class_of_its_mode(mode: str, cls: type) -> None:
    """``DiffusionLayer(C, **options)`` is ``cls(C, DiffusionOptions(**options))``, draw for draw;
    a class refuses options of the other mode; list options are stored as tuples."""
    torch.manual_seed(9)
    layer = DiffusionLayer(8, mode=mode, directions=["down", "left"], rates=[1, 3])
    torch.manual_seed(9)
    direct = cls(8, DiffusionOptions(mode=mode, directions=("down", "left"), rates=(1, 3)))
    assert type(layer) is cls and isinstance(layer, DiffusionLayerBase)
    assert layer.mode == mode and layer.directions == ("down", "left") and layer.rates == (1, 3)
    assert layer.state_dict().keys() == direct.state_dict().keys()
    assert all(torch.equal(v, direct.state_dict()[k]) for k, v in layer.state_dict().items())
    other = next(m for m in ("sweep", "layerwise") if m != mode)
    with pytest.raises(ConfigError, match=f"{cls.__name__} is the '{mode}' mode"):
        cls(8, DiffusionOptions(mode=other))


def test_model_config_rebuilds_the_same_architecture() -> None:
    model = pdn.build_model("pdn", 3, backbone="tiny", rates=(1, 3), num_layers=1)
    again = pdn.build_model(**model.model_config)
    assert again.model_config == model.model_config
    again.load_state_dict(model.state_dict())


def test_tiny_fcn_sees_at_most_107_pixels_away() -> None:
    """The reach the ablation relies on: an output pixel of fcn on the tiny backbone depends on no
    input pixel more than 107 px away, so in 256 px context scenes (cue >= 128 px from every object)
    it is a local model, while in 64 px scenes it can see the whole image."""
    model = pdn.build_model("fcn", 5, backbone="tiny", aux=False).eval()
    x = torch.randn(1, 3, 320, 320, requires_grad=True)
    model(x)[0, :, 160, 160].sum().backward()
    seen = x.grad.abs().sum(dim=(0, 1)) > 0
    rows = torch.nonzero(seen.any(dim=1)).flatten()
    cols = torch.nonzero(seen.any(dim=0)).flatten()
    reach = max(160 - int(rows.min()), int(rows.max()) - 160, 160 - int(cols.min()))
    assert reach == 107


@pytest.mark.parametrize("arch", ARCHS)
def test_low_level_skip_feeds_an_earlier_stage_to_the_head(arch: str) -> None:
    """With the last stage's map held at zero, only the skip can make the logits depend on the
    image: they do with it and do not without it. The model rebuilds from its config."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 72)
    outputs = {}
    for stage in (None, 1):
        model = pdn.build_model(
            arch, 3, backbone="tiny", low_level_stage=stage, image_skip=False
        ).eval()
        last = model.backbone.stages[-1]
        last.register_forward_hook(lambda module, args, out: torch.zeros_like(out))
        with torch.no_grad():
            logits = model(x)
        outputs[stage] = float((logits[0] - logits[1]).abs().max())
        rebuilt = pdn.build_model(**model.model_config)
        rebuilt.load_state_dict(model.state_dict())
        assert rebuilt.model_config == model.model_config
    assert outputs[None] == 0.0
    assert outputs[1] > 1e-7


@pytest.mark.parametrize("arch", ARCHS)
def test_image_skip_puts_the_pooled_image_beside_the_heads_input(arch: str) -> None:
    """The head's input ends in the image's 8 x 8 window means (the last window of a side 68 px
    long averages its 4 px), so with every backbone stage held at zero the logits still depend
    on the image. It is on by default for pdn only; the config always holds the key, a
    checkpoint that lacks it (made before the key existed) was made without the skip, and the
    model rebuilds from its config."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 68)
    model = pdn.build_model(arch, 3, backbone="tiny", image_skip=True).eval()
    assert model.model_config["image_skip"] is True
    default = pdn.build_model(arch, 3, backbone="tiny")
    assert default.model_config["image_skip"] is (arch == "pdn")
    without = pdn.build_model(arch, 3, backbone="tiny", image_skip=False)
    legacy = {key: value for key, value in without.model_config.items() if key != "image_skip"}
    old_checkpoint = {"model_config": legacy, "model": without.state_dict()}
    assert model_from_checkpoint(old_checkpoint).image_skip is None
    seen = {}
    model.decode_head.register_forward_pre_hook(lambda module, args: seen.update(input=args[0]))
    for stage in model.backbone.stages:
        stage.register_forward_hook(lambda module, args, out: torch.zeros_like(out))
    with torch.no_grad():
        logits = model(x)
    expected = torch.zeros(2, 3, 8, 9)
    for j in range(9):
        expected[..., j] = x[..., :, 8 * j : 8 * j + 8].unflatten(2, (8, 8)).mean(dim=(3, 4))
    assert seen["input"].shape[1] == model.backbone.channels[-1] + 3
    torch.testing.assert_close(seen["input"][:, -3:], expected, rtol=1e-5, atol=1e-6)
    assert float((logits[0] - logits[1]).abs().max()) > 1e-7
    rebuilt = pdn.build_model(**model.model_config)
    rebuilt.load_state_dict(model.state_dict())


def test_low_level_skip_index_is_checked() -> None:
    for stage in (-1, 3):
        with pytest.raises(ConfigError, match="low_level_stage must be an earlier backbone stage"):
            pdn.build_model("pdn", 3, backbone="tiny", low_level_stage=stage)
    model = pdn.build_model("pdn", 3, backbone="resnet18", low_level_stage=0).eval()
    assert model(torch.randn(1, 3, 40, 48)).shape == (1, 3, 40, 48)
