"""Information-diffusion layers: multi-directional convolutional LSTMs with atrous recurrent filters.

This is the part of PDN that the paper's abstract describes (a stack of diffusion layers built from
multi-dimensional convolutional LSTMs whose units use atrous filters). The exact equations are our
reconstruction; see DESIGN.md section 2 and the README.

Two readings are implemented and selected with ``mode``:

``"sweep"`` (default)
    One ConvLSTM per direction. For ``"down"`` the map is cut into rows and the LSTM runs from the
    top row to the bottom one; ``"up"`` runs bottom to top, ``"right"`` runs over the columns from
    left to right and ``"left"`` from right to left. At slice ``s``::

        gates_s = Wx X_s + sum_r U_r (*atrous r) h_{s-1}      (1-D convolutions along the slice)
        c_s = f * c_{s-1} + i * g ;  h_s = o * tanh(c_s)        (zero initial state)

    The summed atrous filters ``U_r`` are stored as one filter over the union of their taps.

``"layerwise"``
    The LSTM's time axis is the layer index: each layer updates one ``(h, c)`` state per axis
    (vertical, horizontal) from its input and the previous layer's ``h``, through atrous ``k x 1``
    and ``1 x k`` filters. A :class:`DiffusionStack` multiplies the rates by ``2**l`` at layer
    ``l``, so the reach grows with depth. No loop over space.

Both modes end the same way: ``Y = ReLU(X + BN(Conv1x1(concat(h))))``.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

DIRECTIONS: tuple[str, ...] = ("down", "up", "right", "left")
MODES: tuple[str, ...] = ("sweep", "layerwise")
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


def _check_options(
    channels: int,
    hidden: int,
    directions: Sequence[str],
    rates: Sequence[int],
    kernel_size: int,
    mode: str,
) -> None:
    if mode not in MODES:
        raise ConfigError(f"diffusion mode must be one of {', '.join(MODES)}, got {mode!r}")
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown or not directions or len(set(directions)) != len(directions):
        raise ConfigError(
            f"directions must be distinct names from {', '.join(DIRECTIONS)}, got {list(directions)}"
        )
    if not rates or any(int(r) < 1 for r in rates):
        raise ConfigError(f"rates must be positive integers, got {list(rates)}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be a positive odd number, got {kernel_size}")
    if channels < 1 or hidden < 1:
        raise ConfigError(f"channels and hidden must be positive, got {channels} and {hidden}")


def _lstm_update(gates: torch.Tensor, cell: torch.Tensor | None, dim: int) -> State:
    """One LSTM cell update. ``gates`` holds (i, f, g, o) along ``dim``, in ``torch.nn.LSTM``'s order.

    One ``sigmoid`` over the adjacent input and forget gates and ``addcmul`` for the cell: seven
    kernels per update rather than nine (on a GPU the sweep is bound by kernel launches), and
    autograd saves no more than with one ``sigmoid`` per gate.
    """
    quarter = gates.shape[dim] // 4
    i, f = torch.sigmoid(gates.narrow(dim, 0, 2 * quarter)).chunk(2, dim=dim)
    candidate = torch.tanh(gates.narrow(dim, 2 * quarter, quarter))
    output = torch.sigmoid(gates.narrow(dim, 3 * quarter, quarter))
    cell = i * candidate if cell is None else torch.addcmul(f * cell, i, candidate)
    return output * torch.tanh(cell), cell


@torch.jit.script_if_tracing
def _traced_sweep_loop(
    steps: torch.Tensor, kernel: torch.Tensor, pad: int, count: int
) -> torch.Tensor:
    """The sweep's loop over slices in a form a trace keeps as a loop (an ONNX ``Loop``), so an
    exported graph takes any height and width; :meth:`DiffusionLayer._sweep` uses it only while
    tracing. The same arithmetic as the eager loop, which skips the zero first recurrent term.

    ``steps``: ``(S, B, count * 4 * hidden, L)`` input-to-state gates per slice; ``kernel``: the
    grouped ``conv1d`` weight of :meth:`DiffusionLayer._recurrent_kernel`. Returns the hidden
    states ``(S, B, count, hidden, L)``.
    """
    num_steps, batch, width, length = steps.shape
    hidden = width // (4 * count)
    h = steps.new_zeros(batch, count * hidden, length)
    cell = steps.new_zeros(batch, count, hidden, length)
    outputs: list[torch.Tensor] = []
    for s in range(num_steps):
        recurrent = F.conv1d(h, kernel, padding=pad, groups=count)
        g = (steps[s] + recurrent).view(batch, count, 4 * hidden, length)
        h4, cell = _lstm_update(g, cell, 2)
        h = h4.reshape(batch, count * hidden, length)
        outputs.append(h4)
    return torch.stack(outputs, 0)


class DiffusionLayer(nn.Module):
    """One information-diffusion layer: ``(B, C, H, W) -> (B, C, H, W)``.

    Args:
        channels: ``C``, the width of the input and output.
        hidden: hidden size per direction (``sweep``) or per axis (``layerwise``); default ``C // 4``.
        directions: a subset of ``("down", "up", "right", "left")``. In ``layerwise`` mode they only
            select the axes: ``down``/``up`` the vertical one, ``right``/``left`` the horizontal one.
        rates: dilation rates of the atrous recurrent filters.
        kernel_size: taps per rate of each recurrent filter (odd).
        mode: ``"sweep"`` or ``"layerwise"`` (see the module docstring).
        forget_bias: initial bias of the forget gates (1, as in DESIGN.md). A larger value starts
            the LSTMs with a longer memory (``sigmoid(b) ** n`` of a state survives ``n`` steps).
        chrono_steps: ``T``; when given, chrono initialisation (Tallec & Ollivier, 2018) replaces
            ``forget_bias``: each unit's forget bias is ``log(u)``, ``u ~ U(1, T - 1)``, and its
            input bias the negative of it, so that at initialisation every cell is a moving
            average over up to ``T`` slices whose state stays within ``(-1, 1)`` (with a forget
            bias of 3 and an input gate of 1/2 a cell sums its inputs and ``tanh`` saturates).

    A ``sweep`` layer runs ``H`` sequential steps for its vertical directions and ``W`` for its
    horizontal ones; directions whose slices have the same shape share the steps, batched together
    (the two of an axis always, all four on a square map, which then takes ``H`` steps in all),
    and each step works on a whole slice of the whole batch: one grouped ``conv1d`` for the
    recurrent filters of all its directions, then the gate arithmetic. In eval mode the output of
    a one-direction sweep at slice ``s`` depends on no input beyond ``s``. For inference on a GPU,
    where each step's kernel launches dominate, the recurrent filters run as one gathered ``bmm``
    per step instead (the same result; attribute ``recurrence``: ``"auto"``, ``"conv1d"`` or
    ``"gather"``).
    """

    offsets: list[int]
    pad: int
    recurrence: str
    vertical: list[int]
    horizontal: list[int]
    reverse: list[bool]

    def __init__(
        self,
        channels: int,
        *,
        hidden: int | None = None,
        directions: Sequence[str] = DIRECTIONS,
        rates: Sequence[int] = (1, 2, 4),
        kernel_size: int = 3,
        mode: str = "sweep",
        forget_bias: float = 1.0,
        chrono_steps: int | None = None,
    ):
        super().__init__()
        hidden = int(hidden) if hidden else max(1, channels // 4)
        directions = tuple(directions)
        rates = tuple(int(r) for r in rates)
        _check_options(channels, hidden, directions, rates, kernel_size, mode)
        if chrono_steps is not None and (isinstance(chrono_steps, bool) or int(chrono_steps) < 3):
            raise ConfigError(f"chrono_steps must be an integer >= 3, got {chrono_steps!r}")
        self.chrono_steps = None if chrono_steps is None else int(chrono_steps)
        self.channels, self.hidden, self.mode = channels, hidden, mode
        self.directions, self.rates, self.kernel_size = directions, rates, kernel_size
        self.forget_bias = float(forget_bias)
        self.offsets = tap_offsets(kernel_size, rates)
        self.pad = max(abs(o) for o in self.offsets)
        self.reverse = [d in _REVERSED for d in directions]
        self.recurrence = "auto"
        # Where each tap sits in a window of 2 * pad + 1 sites (the gathered recurrence).
        self.register_buffer(
            "tap_positions", torch.tensor(self.offsets) + self.pad, persistent=False
        )
        if mode == "sweep":
            streams = len(directions)
            self.vertical = [k for k, d in enumerate(directions) if d in _VERTICAL]
            self.horizontal = [k for k, d in enumerate(directions) if d not in _VERTICAL]
            self.input_to_state = nn.Conv2d(channels, streams * 4 * hidden, 1)
            # Recurrent filters of all directions, (D, 4*hidden, hidden * taps), channel-major taps.
            self.state_to_state = nn.Parameter(
                torch.empty(streams, 4 * hidden, hidden * len(self.offsets))
            )
            self.axis_convs = nn.ModuleList()
        else:
            axes = sorted({"vertical" if d in _VERTICAL else "horizontal" for d in directions})
            streams = len(axes)
            self.vertical = [0] if "vertical" in axes else []
            self.horizontal = [len(self.vertical)] if "horizontal" in axes else []
            self.input_to_state = nn.Conv2d(channels, streams * 4 * hidden, 1)
            self.state_to_state = nn.Parameter(torch.empty(0))
            convs = []
            for axis in axes:
                for rate in rates:
                    if axis == "vertical":
                        kernel, dilation, padding = (
                            (kernel_size, 1),
                            (rate, 1),
                            (rate * (kernel_size // 2), 0),
                        )
                    else:
                        kernel, dilation, padding = (
                            (1, kernel_size),
                            (1, rate),
                            (0, rate * (kernel_size // 2)),
                        )
                    convs.append(
                        nn.Conv2d(
                            hidden,
                            4 * hidden,
                            kernel,
                            padding=padding,
                            dilation=dilation,
                            bias=False,
                        )
                    )
            self.axis_convs = nn.ModuleList(convs)
        self.streams = streams
        self.fuse = nn.Conv2d(streams * hidden, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform init as in ``torch.nn.LSTM``; forget-gate bias ``forget_bias``, other biases 0,
        or the chrono biases when ``chrono_steps`` is set (see the class docstring)."""
        bound = 1.0 / math.sqrt(self.hidden)
        nn.init.uniform_(self.input_to_state.weight, -bound, bound)
        with torch.no_grad():
            bias = self.input_to_state.bias.view(self.streams, 4, self.hidden)
            bias.zero_()
            if self.chrono_steps is None:
                bias[:, 1] = self.forget_bias
            else:
                bias[:, 1].uniform_(1.0, self.chrono_steps - 1.0).log_()
                bias[:, 0] = -bias[:, 1]
        if self.state_to_state.numel():
            nn.init.uniform_(
                self.state_to_state, -bound / len(self.offsets), bound / len(self.offsets)
            )
        for conv in self.axis_convs:
            nn.init.uniform_(conv.weight, -bound / len(self.rates), bound / len(self.rates))

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, hidden={self.hidden}, directions={self.directions}, "
            f"rates={self.rates}, kernel_size={self.kernel_size}, mode={self.mode!r}"
            + (f", forget_bias={self.forget_bias}" if self.forget_bias != 1.0 else "")
            + (f", chrono_steps={self.chrono_steps}" if self.chrono_steps else "")
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``, starting from a zero state."""
        return self.forward_with_state(x, None)[0]

    def forward_with_state(
        self, x: torch.Tensor, state: State | None
    ) -> tuple[torch.Tensor, State | None]:
        """Run the layer; ``state`` is the previous layer's ``(h, c)`` in ``layerwise`` mode.

        Returns the output ``(B, C, H, W)`` and, in ``layerwise`` mode, this layer's ``(h, c)``, each
        ``(B, axes * hidden, H, W)``; ``sweep`` mode ignores ``state`` and returns ``None``.
        """
        if self.mode == "sweep":
            hidden, new_state = self.hidden_states(x), None
        else:
            new_state = self.layerwise_states(x, state)
            hidden = new_state[0]
        return torch.relu(x + self.norm(self.fuse(hidden))), new_state

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """The sweep's hidden states before fusion: ``(B, C, H, W) -> (B, D * hidden, H, W)``.

        Channels are grouped by direction, in the order of ``directions``. Directions whose slices
        have the same shape (all four on a square map) run batched in one loop over the slices.
        """
        batch, _, height, width = x.shape
        gates = self.input_to_state(x).view(batch, self.streams, 4 * self.hidden, height, width)
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
        oriented: list[torch.Tensor] = []
        for stream in streams:
            g = gates[:, stream]  # (B, 4h, H, W)
            if stream in self.horizontal:
                g = g.transpose(2, 3)  # slices are columns: (B, 4h, W, H)
            if self.reverse[stream]:
                g = g.flip(2)
            oriented.append(g.permute(2, 0, 1, 3))  # (S, B, 4h, L)
        # (S, B, D_group * 4h, L): step s of every stream, sites along the slice L.
        steps = torch.stack(oriented, 2)
        num_steps, batch, count, _, length = steps.shape
        steps = steps.view(num_steps, batch, count * 4 * self.hidden, length)
        if self.recurrence not in ["auto", "conv1d", "gather"]:
            raise ValueError(f"recurrence must be auto, conv1d or gather, got {self.recurrence}")
        if torch.jit.is_tracing():
            loop = _traced_sweep_loop(steps, self._recurrent_kernel(streams), self.pad, count)
            states = loop.permute(1, 2, 3, 0, 4)
        else:
            states = self._eager_sweep_loop(steps, streams)
        result: list[torch.Tensor] = []
        for k, stream in enumerate(streams):
            state = states[:, k]
            if self.reverse[stream]:
                state = state.flip(2)
            if stream in self.horizontal:
                state = state.transpose(2, 3)
            result.append(state)
        return result

    def _eager_sweep_loop(self, steps: torch.Tensor, streams: list[int]) -> torch.Tensor:
        """The loop over slices: ``(S, B, D_group * 4 * hidden, L)`` gates -> hidden states
        ``(B, D_group, hidden, S, L)``."""
        num_steps, batch, _, length = steps.shape
        count = len(streams)
        # Training keeps conv1d: autograd would save the gathered taps, 7x the states, per step.
        inference = steps.is_cuda and not steps.requires_grad
        gather = self.recurrence == "gather" or (self.recurrence == "auto" and inference)
        kernel = self._stream_weights(streams) if gather else self._recurrent_kernel(streams)
        h = steps.new_zeros(batch, count * self.hidden, length)
        cell: torch.Tensor | None = None
        outputs: list[torch.Tensor] = []
        # unbind, not steps[s]: indexing would make the backward pass write a zero-filled
        # gradient of the whole `steps` tensor for every slice, quadratic in the number of slices.
        for s, step in enumerate(steps.unbind(0)):
            g = step.view(batch, count, 4 * self.hidden, length)
            if s > 0 and gather:
                g = g + self._gathered_recurrence(h, kernel)
            elif s > 0:
                recurrent = F.conv1d(h, kernel, padding=self.pad, groups=count)
                g = g + recurrent.view(batch, count, 4 * self.hidden, length)
            h4, cell = _lstm_update(g, cell, dim=2)  # (B, D_group, hidden, L)
            h = h4.reshape(batch, count * self.hidden, length)
            outputs.append(h4)
        return torch.stack(outputs, 3)

    def layerwise_states(self, x: torch.Tensor, state: State | None) -> State:
        """``layerwise`` update: ``(B, C, H, W)`` and the previous ``(h, c)`` -> this layer's ``(h, c)``.

        ``h`` and ``c`` are ``(B, axes * hidden, H, W)``, vertical axis first.
        """
        batch, _, height, width = x.shape
        gates = self.input_to_state(x).view(batch, self.streams, 4 * self.hidden, height, width)
        cell: torch.Tensor | None = None
        if state is not None:
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


class DiffusionStack(nn.Module):
    """``num_layers`` diffusion layers: ``(B, C, H, W) -> (B, C, H, W)``.

    In ``layerwise`` mode layer ``l`` uses the rates multiplied by ``2**l`` and receives the
    previous layer's LSTM state.
    """

    def __init__(
        self,
        channels: int,
        num_layers: int = 2,
        *,
        hidden: int | None = None,
        directions: Sequence[str] = DIRECTIONS,
        rates: Sequence[int] = (1, 2, 4),
        kernel_size: int = 3,
        mode: str = "sweep",
        forget_bias: float = 1.0,
        chrono_steps: int | None = None,
    ):
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"num_layers must be at least 1, got {num_layers}")
        layers = []
        for index in range(num_layers):
            scale = 2**index if mode == "layerwise" else 1
            layers.append(
                DiffusionLayer(
                    channels,
                    hidden=hidden,
                    directions=directions,
                    rates=tuple(r * scale for r in rates),
                    kernel_size=kernel_size,
                    mode=mode,
                    forget_bias=forget_bias,
                    chrono_steps=chrono_steps,
                )
            )
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state: State | None = None
        for layer in self.layers:
            x, state = layer.forward_with_state(x, state)
        return x
