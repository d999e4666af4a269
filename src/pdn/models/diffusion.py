"""Information-diffusion layers: multi-directional convolutional LSTMs with atrous recurrent filters.

This is the part of PDN that the paper's abstract describes (a stack of diffusion layers built from
multi-dimensional convolutional LSTMs whose units use atrous filters). The exact equations are our
reconstruction; see docs/architecture.md ("The diffusion layer") and the README.

Two readings, selected with :attr:`DiffusionOptions.mode`, each a class with its equations:

- ``"sweep"`` (default), :class:`SweepDiffusion`: one ConvLSTM per direction, running over the
  rows or the columns of the map.
- ``"layerwise"``, :class:`LayerwiseDiffusion`: the LSTM's time axis is the layer index; no loop
  over space.

Both end the same way, in :class:`DiffusionLayerBase`: ``Y = ReLU(X + BN(Conv1x1(concat(h))))``.
:func:`DiffusionLayer` builds the class for a mode; :class:`DiffusionStack` chains layers.
"""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..vocabulary import DIFFUSION_MODES, RECURRENCES

DIRECTIONS: tuple[str, ...] = ("down", "up", "right", "left")
# The sweep's default chrono initialisation horizon (DiffusionOptions.chrono_steps).
CHRONO_STEPS = 32
MODES: tuple[str, ...] = DIFFUSION_MODES
_VERTICAL = ("down", "up")
_REVERSED = ("up", "left")

# No postponed annotations in modules that TorchScript compiles: it cannot parse string annotations.
State = tuple[torch.Tensor, torch.Tensor]


def tap_offsets(kernel_size: int, rates: Sequence[int]) -> list[int]:
    """The offsets along a slice heard by the summed atrous filters.

    ``kernel_size=3, rates=(1, 2, 4)`` gives ``[-4, -2, -1, 0, 1, 2, 4]``.
    """
    half = kernel_size // 2
    return sorted({rate * (j - half) for rate in rates for j in range(kernel_size)})


@dataclasses.dataclass(frozen=True)
class DiffusionOptions:
    """The options of a diffusion layer, and of every layer of a :class:`DiffusionStack`.

    Attributes:
        hidden: hidden size per direction (``sweep``) or per axis (``layerwise``); ``None``:
            ``C // 4`` for ``C`` channels (:meth:`hidden_size`).
        directions: a subset of ``("down", "up", "right", "left")``. In ``layerwise`` mode they only
            select the axes: ``down``/``up`` the vertical one, ``right``/``left`` the horizontal one.
        rates: dilation rates of the atrous recurrent filters.
        kernel_size: taps per rate of each recurrent filter (odd).
        mode: ``"sweep"`` or ``"layerwise"`` (see the module docstring).
        forget_bias: initial bias of the forget gates when chrono initialisation is off
            (``chrono_steps=0``; ``None``: 1.0, docs/architecture.md, "The diffusion layer"). A
            larger value starts the LSTMs with a longer memory (``sigmoid(b) ** n`` of a state
            survives ``n`` steps). Giving it while chrono initialisation is on is an error.
        chrono_steps: ``T`` of the chrono initialisation (Tallec & Ollivier, 2018) of the gate
            biases: each unit's forget bias is ``log(u)``, ``u ~ U(1, T - 1)``, and its input
            bias the negative of it, so that at initialisation every cell is a moving average
            over up to ``T`` slices whose state stays within ``(-1, 1)`` (with a forget bias of
            3 and an input gate of 1/2 a cell sums its inputs and ``tanh`` saturates). ``0``:
            off, ``forget_bias`` instead. ``None``: the mode's default, :data:`CHRONO_STEPS`
            for ``sweep`` (where a cue 16+ slices away must survive the trip; measured in
            BENCHMARKS.md), off for ``layerwise`` (whose time axis is the 2-3 layers).
        recurrent_dilations: ``sweep`` only: further slices back, each ``d >= 2``, whose hidden
            state also feeds the gates at the same site (``+ V_d h_{s-d}``): a dilated
            recurrence, along which a cue ``n`` slices away is ``n / d`` hops from a site rather
            than ``n``. Empty (the default): the recurrence hears ``h_{s-1}`` only.
        gate_norm: ``sweep`` only: layer-normalised LSTM gates (Ba, Kiros and Hinton, 2016): at
            each site and direction the input-to-state and the recurrent contributions to the
            ``4 * hidden`` gates are each normalised to zero mean and unit variance and scaled by
            a learned gain (initially 1) before the gate biases are added, and the cell is
            normalised (gain and shift) before the output's ``tanh``: ``h = o * tanh(LN(c))``.
            The gates then no longer depend on the scale of the weights or of the input.

    Sequences given as lists (as configs give them) are stored as tuples; invalid values raise
    :class:`~pdn.errors.ConfigError`.
    """

    hidden: int | None = None
    directions: Sequence[str] = DIRECTIONS
    rates: Sequence[int] = (1, 2, 4)
    kernel_size: int = 3
    mode: str = "sweep"
    forget_bias: float | None = None
    chrono_steps: int | None = None
    recurrent_dilations: Sequence[int] = ()
    gate_norm: bool = False

    def __post_init__(self) -> None:
        chrono = self.chrono_steps
        if chrono is None:
            chrono = CHRONO_STEPS if self.mode == "sweep" else 0
        normalised = {
            "chrono_steps": chrono,
            "hidden": int(self.hidden) if self.hidden else None,
            "directions": tuple(self.directions),
            "rates": tuple(int(r) for r in self.rates),
            "forget_bias": None if self.forget_bias is None else float(self.forget_bias),
            "recurrent_dilations": tuple(int(d) for d in self.recurrent_dilations),
            "gate_norm": bool(self.gate_norm),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)
        self._check()
        object.__setattr__(self, "chrono_steps", int(self.chrono_steps))

    def _check(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(
                f"diffusion mode must be one of {', '.join(MODES)}, got {self.mode!r}"
            )
        directions = self.directions
        unknown = [d for d in directions if d not in DIRECTIONS]
        if unknown or not directions or len(set(directions)) != len(directions):
            raise ConfigError(
                f"directions must be distinct names from {', '.join(DIRECTIONS)}, got {list(directions)}"
            )
        if not self.rates or any(r < 1 for r in self.rates):
            raise ConfigError(f"rates must be positive integers, got {list(self.rates)}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be a positive odd number, got {self.kernel_size}")
        dilations = self.recurrent_dilations
        if any(d < 2 for d in dilations) or len(set(dilations)) != len(dilations):
            raise ConfigError(
                f"recurrent_dilations must be distinct integers >= 2, got {list(dilations)}"
            )
        if dilations and self.mode != "sweep":
            raise ConfigError("recurrent_dilations are a sweep option (mode 'sweep')")
        if self.gate_norm and self.mode != "sweep":
            raise ConfigError("gate_norm is a sweep option (mode 'sweep')")
        steps = self.chrono_steps
        if isinstance(steps, bool) or (int(steps) != 0 and int(steps) < 3):
            raise ConfigError(f"chrono_steps must be 0 (off) or an integer >= 3, got {steps!r}")
        if int(steps) and self.forget_bias is not None:
            raise ConfigError(
                f"forget_bias={self.forget_bias} is the initial forget bias without chrono "
                f"initialisation, which is on (chrono_steps={steps}); give chrono_steps=0 too "
                "(model.chrono_steps=0 in a config)"
            )

    @property
    def initial_forget_bias(self) -> float:
        """The forget-gate bias every unit starts with when chrono initialisation is off."""
        return 1.0 if self.forget_bias is None else self.forget_bias

    def hidden_size(self, channels: int) -> int:
        """``hidden``, or by default ``channels // 4`` (at least 1)."""
        return self.hidden if self.hidden else max(1, channels // 4)

    def with_rates_scaled(self, factor: int) -> "DiffusionOptions":
        """The same options with every rate multiplied by ``factor``."""
        return dataclasses.replace(self, rates=tuple(r * factor for r in self.rates))


def _normalised(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x`` at zero mean and unit variance along ``dim`` (layer normalisation without its affine
    part; epsilon 1e-5 as ``torch.nn.LayerNorm``'s)."""
    mean = x.mean(dim, keepdim=True)
    centred = x - mean
    return centred * torch.rsqrt(centred.square().mean(dim, keepdim=True) + 1e-5)


def _lstm_cell(gates: torch.Tensor, cell: torch.Tensor | None, dim: int) -> State:
    """One LSTM cell update without its output's ``tanh``: the output gate and the new cell.
    ``gates`` holds (i, f, g, o) along ``dim``, in ``torch.nn.LSTM``'s order.

    One ``sigmoid`` over the adjacent input and forget gates and ``addcmul`` for the cell: with
    :func:`_lstm_update`'s ``tanh`` and product, seven kernels per update rather than nine (on a
    GPU the sweep is bound by kernel launches), and autograd saves no more than with one
    ``sigmoid`` per gate.
    """
    quarter = gates.shape[dim] // 4
    i, f = torch.sigmoid(gates.narrow(dim, 0, 2 * quarter)).chunk(2, dim=dim)
    candidate = torch.tanh(gates.narrow(dim, 2 * quarter, quarter))
    output = torch.sigmoid(gates.narrow(dim, 3 * quarter, quarter))
    cell = i * candidate if cell is None else torch.addcmul(f * cell, i, candidate)
    return output, cell


def _lstm_update(gates: torch.Tensor, cell: torch.Tensor | None, dim: int) -> State:
    """One LSTM cell update, ``(h, c)``: ``h = o * tanh(c)`` (see :func:`_lstm_cell`)."""
    output, cell = _lstm_cell(gates, cell, dim)
    return output * torch.tanh(cell), cell


def _normed_lstm_update(
    gates: torch.Tensor,
    cell: torch.Tensor | None,
    dim: int,
    cell_gain: torch.Tensor,
    cell_shift: torch.Tensor,
) -> State:
    """One LSTM cell update whose output reads the layer-normalised cell (normalised along
    ``dim``; the carried cell is not): ``h = o * tanh(LN(c) * gain + shift)``."""
    output, cell = _lstm_cell(gates, cell, dim)
    return output * torch.tanh(torch.addcmul(cell_shift, _normalised(cell, dim), cell_gain)), cell


class DiffusionLayerBase(nn.Module):
    """What both readings share: ``streams`` LSTMs whose gates come from one input-to-state 1x1
    conv ``Wx`` (``input_to_state``, with the gate biases), and the fusion of their hidden states
    ``Y = ReLU(X + BN(Conv1x1(concat h)))`` (``fuse``, ``norm``). ``(B, C, H, W) -> (B, C, H, W)``.

    Args:
        channels: ``C``, the width of the input and output.
        options: the layer's :class:`DiffusionOptions`; their ``mode`` must be the class's.
        streams: the number of LSTMs (directions or axes).

    A subclass registers its recurrent weights between ``super().__init__`` and
    :meth:`_add_fusion`, then calls :meth:`reset_parameters`: the parameter order and the random
    draws of the single layer class these replace, so its checkpoints and seeds give the same
    weights.
    """

    mode: str  # the reading, set by each subclass
    dilations: list[int]

    def __init__(self, channels: int, options: DiffusionOptions, streams: int):
        super().__init__()
        if options.mode != self.mode:
            raise ConfigError(
                f"{type(self).__name__} is the {self.mode!r} mode, got options for {options.mode!r}"
            )
        hidden = options.hidden_size(channels)
        if channels < 1 or hidden < 1:
            raise ConfigError(f"channels and hidden must be positive, got {channels} and {hidden}")
        self.channels, self.hidden, self.streams = channels, hidden, streams
        self.directions, self.rates = tuple(options.directions), tuple(options.rates)
        self.kernel_size = options.kernel_size
        self.forget_bias, self.chrono_steps = options.initial_forget_bias, options.chrono_steps
        self.dilations = list(options.recurrent_dilations)
        self.input_to_state = nn.Conv2d(channels, streams * 4 * hidden, 1)

    def _add_fusion(self) -> None:
        """Register the fusion's 1x1 conv ``(streams * hidden -> C)`` and BatchNorm."""
        self.fuse = nn.Conv2d(self.streams * self.hidden, self.channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(self.channels)

    def _lstm_uniform_(self, weight: torch.Tensor, parts: int) -> None:
        """``torch.nn.LSTM``'s init ``U(-1/sqrt(hidden), 1/sqrt(hidden))``, divided among the
        ``parts`` filters whose outputs are summed."""
        bound = 1.0 / math.sqrt(self.hidden) / parts
        nn.init.uniform_(weight, -bound, bound)

    def reset_parameters(self) -> None:
        """Uniform ``Wx`` as in ``torch.nn.LSTM``; the chrono biases (``chrono_steps > 0``), or
        forget-gate bias ``forget_bias`` and other biases 0 (see :class:`DiffusionOptions`).
        Subclasses then initialise their recurrent weights."""
        self._lstm_uniform_(self.input_to_state.weight, 1)
        with torch.no_grad():
            bias = self.input_to_state.bias.view(self.streams, 4, self.hidden)
            bias.zero_()
            if not self.chrono_steps:
                bias[:, 1] = self.forget_bias
            else:
                bias[:, 1].uniform_(1.0, self.chrono_steps - 1.0).log_()
                bias[:, 0] = -bias[:, 1]

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, hidden={self.hidden}, directions={self.directions}, "
            f"rates={self.rates}, kernel_size={self.kernel_size}, mode={self.mode!r}"
            + (f", chrono_steps={self.chrono_steps}" if self.chrono_steps else "")
            + (f", forget_bias={self.forget_bias}" if not self.chrono_steps else "")
            + (f", recurrent_dilations={tuple(self.dilations)}" if self.dilations else "")
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``, starting from a zero state."""
        return self.forward_with_state(x, None)[0]

    def forward_with_state(
        self, x: torch.Tensor, state: State | None
    ) -> tuple[torch.Tensor, State | None]:
        """Run the layer; ``state`` is the previous layer's ``(h, c)`` where the reading uses it.

        Returns the output ``(B, C, H, W)`` and this layer's ``(h, c)`` for the next layer, or
        ``None`` for a reading that passes no state.
        """
        raise NotImplementedError

    def _fused(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """``ReLU(X + BN(Conv1x1(h)))``: ``x`` ``(B, C, H, W)``, ``hidden``
        ``(B, streams * hidden, H, W)`` -> ``(B, C, H, W)``."""
        return torch.relu(x + self.norm(self.fuse(hidden)))

    def _gates(self, x: torch.Tensor) -> torch.Tensor:
        """``Wx X`` per stream: ``(B, C, H, W) -> (B, streams, 4 * hidden, H, W)``, gates
        (i, f, g, o) in ``torch.nn.LSTM``'s order."""
        batch, _, height, width = x.shape
        return self.input_to_state(x).view(batch, self.streams, 4 * self.hidden, height, width)


def _split_norm(norm: torch.Tensor, hidden: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The recurrent gains ``(D, 4 * hidden, 1)``, cell gains and cell shifts ``(D, hidden, 1)``
    packed in ``norm`` (:meth:`SweepDiffusion._norm_parameters`); ``norm`` itself three times
    when it is empty (no gate norm)."""
    if norm.numel() == 0:
        return norm, norm, norm
    return (
        norm[:, : 4 * hidden, None],
        norm[:, 4 * hidden : 5 * hidden, None],
        norm[:, 5 * hidden :, None],
    )


@torch.jit.script_if_tracing
def _traced_sweep_loop(
    steps: torch.Tensor,
    kernel: torch.Tensor,
    pad: int,
    count: int,
    dilated: torch.Tensor,
    dilations: list[int],
    norm: torch.Tensor,
) -> torch.Tensor:
    """The sweep's loop over slices in a form a trace keeps as a loop (an ONNX ``Loop``), so an
    exported graph takes any height and width; :meth:`SweepDiffusion._sweep` uses it only while
    tracing. The same arithmetic as the eager loop, which skips the zero first recurrent term.

    ``steps``: ``(S, B, count * 4 * hidden, L)`` input-to-state gates per slice; ``kernel``: the
    grouped ``conv1d`` weight of :meth:`SweepDiffusion._recurrent_kernel`; ``dilated``: the
    same-site weights ``(len(dilations), count, 4 * hidden, hidden)`` of the further slices
    ``dilations`` back; ``norm``: the gate norm's ``(count, 6 * hidden)`` recurrent gains, cell
    gains and cell shifts of :meth:`SweepDiffusion._norm_parameters`, empty without it. Returns
    the hidden states ``(S, B, count, hidden, L)``.
    """
    num_steps, batch, width, length = steps.shape
    hidden = width // (4 * count)
    normed = norm.numel() > 0
    recurrent_gain, cell_gain, cell_shift = _split_norm(norm, hidden)
    h = steps.new_zeros(batch, count * hidden, length)
    cell = steps.new_zeros(batch, count, hidden, length)
    outputs: list[torch.Tensor] = []
    for s in range(num_steps):
        recurrent = F.conv1d(h, kernel, padding=pad, groups=count).view(
            batch, count, 4 * hidden, length
        )
        for j, d in enumerate(dilations):
            if s >= d:
                recurrent = recurrent + torch.matmul(dilated[j], outputs[s - d])
        if normed and s > 0:
            recurrent = _normalised(recurrent, 2) * recurrent_gain
        g = steps[s].view(batch, count, 4 * hidden, length) + recurrent
        if normed:
            h4, cell = _normed_lstm_update(g, cell, 2, cell_gain, cell_shift)
        else:
            h4, cell = _lstm_update(g, cell, 2)
        h = h4.reshape(batch, count * hidden, length)
        outputs.append(h4)
    return torch.stack(outputs, 0)


class DilatedRecurrence(nn.Module):
    """The weights ``V_d`` of a sweep's dilated recurrence: ``weight``
    ``(len(dilations), streams, 4 * hidden, hidden)``, one same-site ``4 * hidden x hidden``
    matrix per further slice ``d`` and direction."""

    def __init__(self, dilations: int, streams: int, hidden: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dilations, streams, 4 * hidden, hidden))


class GateNorm(nn.Module):
    """The learned parts of a sweep's layer-normalised gates (:attr:`DiffusionOptions.gate_norm`),
    per direction: ``input_gain`` and ``recurrent_gain`` ``(streams, 4 * hidden)``, the gains of
    the normalised input-to-state and recurrent contributions, and ``cell_gain`` and
    ``cell_shift`` ``(streams, hidden)``, those of the normalised cell the output reads."""

    def __init__(self, streams: int, hidden: int):
        super().__init__()
        self.input_gain = nn.Parameter(torch.ones(streams, 4 * hidden))
        self.recurrent_gain = nn.Parameter(torch.ones(streams, 4 * hidden))
        self.cell_gain = nn.Parameter(torch.ones(streams, hidden))
        self.cell_shift = nn.Parameter(torch.zeros(streams, hidden))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.input_gain)
        nn.init.ones_(self.recurrent_gain)
        nn.init.ones_(self.cell_gain)
        nn.init.zeros_(self.cell_shift)


class SweepDiffusion(DiffusionLayerBase):
    """The ``sweep`` reading: one ConvLSTM per direction. ``(B, C, H, W) -> (B, C, H, W)``.

    For ``"down"`` the map is cut into rows and the LSTM runs from the top row to the bottom one;
    ``"up"`` runs bottom to top, ``"right"`` runs over the columns from left to right and
    ``"left"`` from right to left. At slice ``s``::

        gates_s = Wx X_s + sum_r U_r (*atrous r) h_{s-1}      (1-D convolutions along the slice)
        c_s = f * c_{s-1} + i * g ;  h_s = o * tanh(c_s)        (zero initial state)

    (with ``gate_norm``, ``LN(Wx X_s) + LN(sum_r U_r h_{s-1}) + b`` and ``h_s = o * tanh(LN(c_s))``,
    see :class:`DiffusionOptions`.)

    The summed atrous filters ``U_r`` of all directions are stored as one filter over the union of
    their taps (:func:`tap_offsets`), ``state_to_state``: ``(D, 4 * hidden, hidden * taps)``,
    channel-major taps.

    Args:
        channels: ``C``, the width of the input and output.
        options: :class:`DiffusionOptions` with ``mode="sweep"`` (default: the defaults).

    A layer runs ``H`` sequential steps for its vertical directions and ``W`` for its horizontal
    ones; directions whose slices have the same shape share the steps, batched together (the two
    of an axis always, all four on a square map, which then takes ``H`` steps in all), and each
    step works on a whole slice of the whole batch: one grouped ``conv1d`` for the recurrent
    filters of all its directions, then the gate arithmetic. In eval mode the output of a
    one-direction sweep at slice ``s`` depends on no input beyond ``s``. For inference on a GPU,
    where each step's kernel launches dominate, the recurrent filters run as one gathered ``bmm``
    per step instead (the same result; attribute ``recurrence``: ``"auto"``, ``"conv1d"`` or
    ``"gather"``). With ``triton`` installed (``pip install pdn[gpu]``), ``"auto"`` on a GPU and
    ``"triton"`` run the whole loop as one kernel launch instead (:mod:`pdn.models.kernels`).
    """

    mode = "sweep"
    offsets: list[int]
    pad: int
    recurrence: str
    recurrences: list[str]
    dilations: list[int]  # TorchScript reads a module's own annotations, not its base's
    vertical: list[int]
    horizontal: list[int]
    reverse: list[bool]

    def __init__(self, channels: int, options: DiffusionOptions | None = None):
        options = options if options is not None else DiffusionOptions(mode=self.mode)
        super().__init__(channels, options, streams=len(options.directions))
        self.offsets = tap_offsets(self.kernel_size, self.rates)
        self.pad = max(abs(o) for o in self.offsets)
        self.vertical = [k for k, d in enumerate(self.directions) if d in _VERTICAL]
        self.horizontal = [k for k, d in enumerate(self.directions) if d not in _VERTICAL]
        self.reverse = [d in _REVERSED for d in self.directions]
        self.recurrence = "auto"
        self.recurrences = list(RECURRENCES)  # an attribute: TorchScript reads no global tuples
        # Where each tap sits in a window of 2 * pad + 1 sites (the gathered recurrence).
        self.register_buffer(
            "tap_positions", torch.tensor(self.offsets) + self.pad, persistent=False
        )
        self.state_to_state = nn.Parameter(
            torch.empty(self.streams, 4 * self.hidden, self.hidden * len(self.offsets))
        )
        # only when used, so that the default layer's state-dict keys stay as they were
        self.dilated = (
            DilatedRecurrence(len(self.dilations), self.streams, self.hidden)
            if self.dilations
            else None
        )
        self.gate_norm = GateNorm(self.streams, self.hidden) if options.gate_norm else None
        self._add_fusion()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``Wx`` and the gate biases as in :class:`DiffusionLayerBase`; ``U`` uniform as in
        ``torch.nn.LSTM``, its bound divided among the taps; the gate norm's gains 1, shifts 0."""
        super().reset_parameters()
        self._lstm_uniform_(self.state_to_state, len(self.offsets))
        if self.dilated is not None:
            self._lstm_uniform_(self.dilated.weight, len(self.offsets))
        if self.gate_norm is not None:
            self.gate_norm.reset_parameters()

    def extra_repr(self) -> str:
        return super().extra_repr() + (", gate_norm=True" if self.gate_norm is not None else "")

    def _normalised_gates(self, x: torch.Tensor) -> torch.Tensor:
        """``LN(Wx X) * gain + b`` per stream and site (``gate_norm``):
        ``(B, C, H, W) -> (B, streams, 4 * hidden, H, W)``."""
        assert self.gate_norm is not None
        batch, channels, height, width = x.shape
        shape = (batch, self.streams, 4 * self.hidden, height, width)
        pre = F.conv2d(x, self.input_to_state.weight).view(shape)
        # the gate biases, read through the conv on one zero site: a trace cannot reshape the
        # conv's bias attribute itself (its declared type is Optional[Tensor])
        bias = self.input_to_state(x.new_zeros(1, channels, 1, 1))
        bias = bias.view(1, self.streams, 4 * self.hidden, 1, 1)
        gain = self.gate_norm.input_gain[:, :, None, None]
        return torch.addcmul(bias, _normalised(pre, 2), gain)

    def _norm_parameters(self, streams: list[int], steps: torch.Tensor) -> torch.Tensor:
        """The gate norm's recurrent gains, cell gains and cell shifts of ``streams`` side by side:
        ``(len(streams), 6 * hidden)``, empty without ``gate_norm``."""
        if self.gate_norm is None:
            return steps.new_zeros(0)
        norm = self.gate_norm
        packed = torch.cat([norm.recurrent_gain, norm.cell_gain, norm.cell_shift], dim=1)
        if len(streams) < self.streams:
            packed = packed.index_select(0, torch.tensor(streams, device=packed.device))
        return packed

    def forward_with_state(
        self, x: torch.Tensor, state: State | None
    ) -> tuple[torch.Tensor, State | None]:
        """``(B, C, H, W) -> (B, C, H, W)``; a sweep starts from a zero state, so ``state`` is
        ignored and the returned state is ``None``."""
        return self._fused(x, self.hidden_states(x)), None

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """The sweep's hidden states before fusion: ``(B, C, H, W) -> (B, D * hidden, H, W)``.

        Channels are grouped by direction, in the order of ``directions``. Directions whose slices
        have the same shape (all four on a square map) run batched in one loop over the slices.
        """
        gates = self._gates(x) if self.gate_norm is None else self._normalised_gates(x)
        height, width = x.shape[2], x.shape[3]
        if height == width and not torch.jit.is_tracing():  # a trace must fit every shape
            groups = [self.vertical + self.horizontal]
        else:
            groups = [self.vertical, self.horizontal]
        by_stream: dict[int, torch.Tensor] = {}
        for streams in groups:
            if len(streams) > 0:
                for stream, state in zip(streams, self._sweep(gates, streams), strict=True):
                    by_stream[stream] = state
        return torch.cat([by_stream[stream] for stream in range(self.streams)], dim=1)

    def _recurrent_kernel(self, streams: list[int]) -> torch.Tensor:
        """The summed atrous filters of ``streams`` as one grouped ``conv1d`` weight over the
        contiguous taps ``-pad..pad``: ``(len(streams) * 4 * hidden, hidden, 2 * pad + 1)``."""
        weight = self._stream_weights(streams)
        weight = weight.reshape(len(streams) * 4 * self.hidden, self.hidden, len(self.offsets))
        dense = weight.new_zeros(weight.shape[0], self.hidden, 2 * self.pad + 1)
        return dense.index_copy(2, self.tap_positions, weight)

    def _stream_weights(self, streams: list[int]) -> torch.Tensor:
        """The recurrent filters of ``streams``: ``(len(streams), 4 * hidden, hidden * taps)``."""
        weight = self.state_to_state
        if len(streams) < self.streams:
            weight = weight.index_select(0, torch.tensor(streams, device=weight.device))
        return weight

    def _gathered_recurrence(self, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The recurrent term as one batched matrix product over the gathered taps.

        ``h``: ``(B, D_group * hidden, L)`` states of the previous slice; ``weight`` from
        :meth:`_stream_weights`. Returns ``(B, D_group, 4 * hidden, L)`` (a permuted view). Three
        kernels (pad, gather, ``bmm``) and no zero taps, where cuDNN's grouped ``conv1d`` launches
        a dozen per step on a GPU.
        """
        batch, _, length = h.shape
        count, taps = weight.shape[0], len(self.offsets)
        padded = F.pad(h, (self.pad, self.pad))
        windows = padded.view(batch, count, self.hidden, length + 2 * self.pad)
        windows = windows.unfold(3, 2 * self.pad + 1, 1)  # (B, D, hidden, L, 2*pad+1)
        # (D, hidden, taps, B, L), channel-major taps as in the weight's columns.
        gathered = windows.permute(1, 2, 4, 0, 3).index_select(2, self.tap_positions)
        columns = gathered.reshape(count, self.hidden * taps, batch * length)
        product = torch.bmm(weight, columns)  # (D, 4*hidden, B*L)
        return product.view(count, 4 * self.hidden, batch, length).permute(2, 0, 1, 3)

    def _sweep(self, gates: torch.Tensor, streams: list[int]) -> list[torch.Tensor]:
        """Sweep the given directions together; their slices must have the same shape.

        ``gates``: ``(B, D, 4*hidden, H, W)`` input-to-state projections of all directions.
        Returns one ``(B, hidden, H, W)`` hidden-state map per stream. The recurrent term is a
        grouped ``conv1d`` on the CPU (oneDNN's fastest form there) and in training, and a gathered
        ``bmm`` for inference on a GPU (:meth:`_gathered_recurrence`); ``recurrence`` =
        ``"conv1d"`` or ``"gather"`` forces one.
        """
        if self.recurrence not in self.recurrences:
            raise ValueError(
                f"recurrence must be auto, conv1d, gather or triton, got {self.recurrence}"
            )
        steps = self._slices(gates, streams)
        if torch.jit.is_tracing():
            kernel = self._recurrent_kernel(streams)
            dilated = self._dilated_weights(streams, steps)
            norm = self._norm_parameters(streams, steps)
            loop = _traced_sweep_loop(
                steps, kernel, self.pad, len(streams), dilated, self.dilations, norm
            )
            states = loop.permute(1, 2, 3, 0, 4)
        else:
            plain = (
                not torch.jit.is_scripting() and len(self.dilations) == 0 and self.gate_norm is None
            )
            fused = self._fused_sweep_loop(steps, streams) if plain else None
            states = self._eager_sweep_loop(steps, streams) if fused is None else fused
        result: list[torch.Tensor] = []
        for k, stream in enumerate(streams):
            state = states[:, k]
            if self.reverse[stream]:
                state = state.flip(2)
            if stream in self.horizontal:
                state = state.transpose(2, 3)
            result.append(state)
        return result

    def _slices(self, gates: torch.Tensor, streams: list[int]) -> torch.Tensor:
        """The gates of ``streams`` slice by slice, each in its direction's order:
        ``(B, D, 4*hidden, H, W) -> (S, B, D_group * 4*hidden, L)``, sites along the slice ``L``."""
        oriented: list[torch.Tensor] = []
        for stream in streams:
            g = gates[:, stream]  # (B, 4h, H, W)
            if stream in self.horizontal:
                g = g.transpose(2, 3)  # slices are columns: (B, 4h, W, H)
            if self.reverse[stream]:
                g = g.flip(2)
            oriented.append(g.permute(2, 0, 1, 3))  # (S, B, 4h, L)
        steps = torch.stack(oriented, 2)
        num_steps, batch, count, _, length = steps.shape
        return steps.view(num_steps, batch, count * 4 * self.hidden, length)

    def _dilated_weights(self, streams: list[int], steps: torch.Tensor) -> torch.Tensor:
        """The same-site weights of the dilated recurrence for ``streams``:
        ``(len(dilations), len(streams), 4 * hidden, hidden)``, empty without dilations."""
        if self.dilated is None:
            return steps.new_zeros(0)
        weight = self.dilated.weight
        if len(streams) < self.streams:
            weight = weight.index_select(1, torch.tensor(streams, device=weight.device))
        return weight

    @torch.jit.unused
    def _fused_sweep_loop(self, steps: torch.Tensor, streams: list[int]) -> torch.Tensor | None:
        """The loop over slices as one Triton kernel launch, where ``recurrence`` and the input
        call for it (see :func:`pdn.models.kernels.uses_fused_sweep`), else ``None``."""
        from .kernels import fused_sweep, uses_fused_sweep

        if not uses_fused_sweep(self.recurrence, steps):
            return None
        return fused_sweep(steps, self._stream_weights(streams), self.offsets)

    def _eager_sweep_loop(self, steps: torch.Tensor, streams: list[int]) -> torch.Tensor:
        """The loop over slices: ``(S, B, D_group * 4 * hidden, L)`` gates -> hidden states
        ``(B, D_group, hidden, S, L)``."""
        num_steps, batch, _, length = steps.shape
        count = len(streams)
        # Training keeps conv1d: autograd would save the gathered taps, 7x the states, per step.
        inference = steps.is_cuda and not steps.requires_grad
        gather = self.recurrence == "gather" or (self.recurrence == "auto" and inference)
        kernel = self._stream_weights(streams) if gather else self._recurrent_kernel(streams)
        dilated = (
            self._dilated_weights(streams, steps) if len(self.dilations) > 0 else steps.new_zeros(0)
        )
        norm = self._norm_parameters(streams, steps)
        normed = norm.numel() > 0
        recurrent_gain, cell_gain, cell_shift = _split_norm(norm, self.hidden)
        h = steps.new_zeros(batch, count * self.hidden, length)
        cell: torch.Tensor | None = None
        outputs: list[torch.Tensor] = []
        # unbind, not steps[s]: indexing would make the backward pass write a zero-filled
        # gradient of the whole `steps` tensor for every slice, quadratic in the number of slices.
        for s, step in enumerate(steps.unbind(0)):
            g = step.view(batch, count, 4 * self.hidden, length)
            if s > 0:
                if gather:
                    recurrent = self._gathered_recurrence(h, kernel)
                else:
                    recurrent = F.conv1d(h, kernel, padding=self.pad, groups=count).view(
                        batch, count, 4 * self.hidden, length
                    )
                for j, d in enumerate(self.dilations):
                    if s >= d:
                        recurrent = recurrent + torch.matmul(dilated[j], outputs[s - d])
                if normed:
                    recurrent = _normalised(recurrent, 2) * recurrent_gain
                g = g + recurrent
            if normed:
                h4, cell = _normed_lstm_update(g, cell, 2, cell_gain, cell_shift)
            else:
                h4, cell = _lstm_update(g, cell, dim=2)  # (B, D_group, hidden, L)
            h = h4.reshape(batch, count * self.hidden, length)
            outputs.append(h4)
        return torch.stack(outputs, 3)


def _axis_conv(hidden: int, axis: str, rate: int, kernel_size: int) -> nn.Conv2d:
    """One atrous recurrent filter of the ``layerwise`` reading, ``hidden -> 4 * hidden``:
    ``kernel_size x 1`` along the columns for the ``"vertical"`` axis, ``1 x kernel_size`` along
    the rows for the ``"horizontal"`` one, dilated by ``rate``; keeps the spatial size."""
    reach = rate * (kernel_size // 2)
    if axis == "vertical":
        kernel, dilation, padding = (kernel_size, 1), (rate, 1), (reach, 0)
    else:
        kernel, dilation, padding = (1, kernel_size), (1, rate), (0, reach)
    return nn.Conv2d(hidden, 4 * hidden, kernel, padding=padding, dilation=dilation, bias=False)


class LayerwiseDiffusion(DiffusionLayerBase):
    """The ``layerwise`` reading: the LSTM's time axis is the layer index.
    ``(B, C, H, W) -> (B, C, H, W)``, with the LSTM state passed from layer to layer.

    Each layer ``l`` updates one ``(h, c)`` state per axis from its input ``X_l`` and the
    previous layer's ``h``, with no loop over space::

        gates_l = Wx X_l + sum_r V_r (*atrous r) h_{l-1}
        c_l = f * c_{l-1} + i * g ;  h_l = o * tanh(c_l)        (zero state before layer 0)

    where the ``V_r`` (``axis_convs``, ``len(rates)`` per axis) are ``k x 1`` filters for the
    vertical axis and ``1 x k`` ones for the horizontal axis, dilated by ``r``. A
    :class:`DiffusionStack` multiplies the rates by ``2**l`` at layer ``l``, so the reach grows
    with depth.

    Args:
        channels: ``C``, the width of the input and output.
        options: :class:`DiffusionOptions` with ``mode="layerwise"`` (default: the defaults in
            that mode); the directions select the axes: ``down``/``up`` the vertical one,
            ``right``/``left`` the horizontal one.

    The axes are the streams in alphabetical order: ``"horizontal"`` first when both are used.
    """

    mode = "layerwise"

    def __init__(self, channels: int, options: DiffusionOptions | None = None):
        options = options if options is not None else DiffusionOptions(mode=self.mode)
        axes = sorted({"vertical" if d in _VERTICAL else "horizontal" for d in options.directions})
        super().__init__(channels, options, streams=len(axes))
        # Empty, no recurrent filter over slices here; registered so that the keys (and the
        # parameter order) stay those of the single layer class that had it in both modes.
        self.state_to_state = nn.Parameter(torch.empty(0))
        self.axis_convs = nn.ModuleList(
            _axis_conv(self.hidden, axis, rate, self.kernel_size)
            for axis in axes
            for rate in self.rates
        )
        self._add_fusion()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``Wx`` and the gate biases as in :class:`DiffusionLayerBase`; each ``V_r`` uniform as in
        ``torch.nn.LSTM``, its bound divided among the rates."""
        super().reset_parameters()
        for conv in self.axis_convs:
            self._lstm_uniform_(conv.weight, len(self.rates))

    def forward_with_state(
        self, x: torch.Tensor, state: State | None
    ) -> tuple[torch.Tensor, State | None]:
        """``x`` ``(B, C, H, W)`` and the previous layer's ``(h, c)`` (``None`` before the first
        layer) -> the output ``(B, C, H, W)`` and this layer's ``(h, c)``, each
        ``(B, axes * hidden, H, W)``."""
        new_state = self.layerwise_states(x, state)
        return self._fused(x, new_state[0]), new_state

    def layerwise_states(self, x: torch.Tensor, state: State | None) -> State:
        """``(B, C, H, W)`` and the previous ``(h, c)`` -> this layer's ``(h, c)``, each
        ``(B, axes * hidden, H, W)``, grouped by axis in stream order."""
        gates = self._gates(x)
        cell: torch.Tensor | None = None
        if state is not None:
            batch, _, height, width = x.shape
            h_prev, cell = state
            h_prev = h_prev.view(batch, self.streams, self.hidden, height, width)
            cell = cell.view(batch, self.streams, self.hidden, height, width)
            recurrent: list[torch.Tensor] = []
            per_axis = len(self.rates)
            for axis in range(self.streams):
                total = torch.zeros_like(gates[:, axis])
                for k, conv in enumerate(self.axis_convs):
                    if k // per_axis == axis:
                        total = total + conv(h_prev[:, axis])
                recurrent.append(total)
            gates = gates + torch.stack(recurrent, 1)
        h, cell = _lstm_update(gates, cell, dim=2)
        return h.flatten(1, 2), cell.flatten(1, 2)


_READINGS: dict[str, type[DiffusionLayerBase]] = {
    SweepDiffusion.mode: SweepDiffusion,
    LayerwiseDiffusion.mode: LayerwiseDiffusion,
}


def diffusion_layer(channels: int, options: DiffusionOptions) -> DiffusionLayerBase:
    """The layer of ``options.mode`` (:class:`SweepDiffusion` or :class:`LayerwiseDiffusion`)
    on ``channels`` channels."""
    return _READINGS[options.mode](channels, options)


def DiffusionLayer(channels: int, **options: Any) -> DiffusionLayerBase:
    """One information-diffusion layer, ``(B, C, H, W) -> (B, C, H, W)``, from keyword options:
    ``DiffusionLayer(C, mode="layerwise", rates=(1, 2))`` is
    ``LayerwiseDiffusion(C, DiffusionOptions(mode="layerwise", rates=(1, 2)))``. (Named as a
    class: it was the one class of both readings, and callers construct it as one.)

    Args:
        channels: ``C``, the width of the input and output.
        **options: the fields of :class:`DiffusionOptions`, as keywords.

    Returns:
        A :class:`SweepDiffusion` or a :class:`LayerwiseDiffusion`, both
        :class:`DiffusionLayerBase`.
    """
    return diffusion_layer(channels, DiffusionOptions(**options))


class DiffusionStack(nn.Module):
    """``num_layers`` diffusion layers: ``(B, C, H, W) -> (B, C, H, W)``.

    Args:
        channels: ``C``, the width of the input and output.
        num_layers: the number of layers (at least 1).
        options: every layer's :class:`DiffusionOptions` (default: the defaults). In ``layerwise``
            mode layer ``l`` uses the rates multiplied by ``2**l`` and receives the previous
            layer's LSTM state.
    """

    def __init__(self, channels: int, num_layers: int = 2, options: DiffusionOptions | None = None):
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"num_layers must be at least 1, got {num_layers}")
        options = options if options is not None else DiffusionOptions()
        layerwise = options.mode == LayerwiseDiffusion.mode
        self.layers = nn.ModuleList(
            diffusion_layer(channels, options.with_rates_scaled(2**index if layerwise else 1))
            for index in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state: State | None = None
        for layer in self.layers:
            x, state = layer.forward_with_state(x, state)
        return x
