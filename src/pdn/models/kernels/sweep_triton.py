"""Triton kernels of the sweep's recurrence: the loop over slices in one launch, forward and backward.

Imported only when a fused sweep runs (it imports ``triton``); :mod:`pdn.models.kernels.sweep`
holds the autograd function and the checks. One program per ``(batch item, stream)`` owns a whole
slice row: it walks the slices in order (the backward in reverse), computes the recurrent term of
a block of hidden units with ``tl.dot`` over the taps and the blocks of the previous slice's
states, applies the LSTM update and stores the block's new state. The previous slice's states are
read back from the output tensor (on chip in L1/L2 for the sizes supported), and a barrier between
slices makes one slice's stores visible to the next slice's loads; no program waits for another,
so the interpreter (``TRITON_INTERPRET=1``), which runs programs one after another, runs them too.

Layouts (all contiguous, fp32 unless said): ``steps`` and ``gates``: ``(S, B, D * 4 * hidden, L)``,
gate ``q`` (i, f, g, o) of unit ``u`` of stream ``d`` in row ``d * 4 * hidden + q * hidden + u``;
``states``, ``cells``: ``(B * D, hidden, S, L)``; ``weight``: ``(D, taps, 4 * hidden, hidden)``, the
filter of each tap; ``weight_t``: its transpose per tap, ``(D, taps, hidden, 4 * hidden)``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_UNITS = 32  # hidden units (rows of each gate) per block
BLOCK_REDUCE = 32  # hidden units (forward) or gate rows (backward) per step of a dot's reduction
MIN_DOT = 16  # tl.dot needs every side >= 16
# Whether the kernels below run in Triton's interpreter (on CPU tensors): ``triton.jit`` decides
# it when the module is imported, from ``TRITON_INTERPRET``.
INTERPRETED = bool(triton.knobs.runtime.interpret)


# Only builtins of triton.language inside the kernels, not its @triton.jit helpers (tl.sigmoid,
# tl.zeros_like): those are built interpreted or compiled when triton is first imported, and the
# kernels must run in the interpreter even if triton was imported before TRITON_INTERPRET was set.
@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    return 2.0 * _sigmoid(2.0 * x) - 1.0


@triton.jit
def _slice_row(streams, length, BLOCK_L: tl.constexpr):
    """This program's index ``b * D + d``, its batch item ``b`` and stream ``d``, the sites of its
    slice row and which of them are inside the slice."""
    program = tl.program_id(0).to(tl.int64)
    sites = tl.arange(0, BLOCK_L)
    return program, program // streams, program % streams, sites, sites < length


@triton.jit
def _load_gates(pointer, at, gate_stride, mask):
    """The gates i, f, g, o of a block, in fp32: ``pointer + at`` and the three blocks that
    follow it ``gate_stride`` apart."""
    i = tl.load(pointer + at, mask=mask, other=0.0).to(tl.float32)
    f = tl.load(pointer + at + gate_stride, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(pointer + at + 2 * gate_stride, mask=mask, other=0.0).to(tl.float32)
    o = tl.load(pointer + at + 3 * gate_stride, mask=mask, other=0.0).to(tl.float32)
    return i, f, g, o


@triton.jit
def _store_gates(pointer, at, gate_stride, mask, i, f, g, o):
    """Store four blocks where :func:`_load_gates` loads them."""
    tl.store(pointer + at, i, mask=mask)
    tl.store(pointer + at + gate_stride, f, mask=mask)
    tl.store(pointer + at + 2 * gate_stride, g, mask=mask)
    tl.store(pointer + at + 3 * gate_stride, o, mask=mask)


@triton.jit
def _add_recurrent_term(
    i,
    f,
    g,
    o,
    filters_ptr,
    offsets_ptr,
    previous_ptr,
    unit_stride,
    units,
    sites,
    hidden,
    length,
    TAPS: tl.constexpr,
    BLOCK_K: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    """The gates of ``units`` plus, tap by tap, the stream's filters (``filters_ptr``:
    ``(taps, 4 * hidden, hidden)``) times the previous slice's states shifted by the tap's offset
    (unit ``k`` at site ``l``: ``previous_ptr + k * unit_stride + l``; zero beyond the slice)."""
    reduce0 = tl.arange(0, BLOCK_K)
    gate_rows = hidden * hidden
    for t in range(TAPS):
        source = sites + tl.load(offsets_ptr + t)
        heard = (source >= 0) & (source < length)
        tap = filters_ptr + t * 4 * gate_rows
        for k in range(0, hidden, BLOCK_K):
            inner = k + reduce0
            h_at = previous_ptr + inner[:, None] * unit_stride + source[None, :]
            h = tl.load(h_at, mask=(inner < hidden)[:, None] & heard[None, :], other=0.0)
            w_at = tap + units[:, None] * hidden + inner[None, :]
            w_mask = (units < hidden)[:, None] & (inner < hidden)[None, :]
            w = tl.load(w_at, mask=w_mask, other=0.0)
            i = tl.dot(w, h, i, input_precision=INPUT_PRECISION)
            w = tl.load(w_at + gate_rows, mask=w_mask, other=0.0)
            f = tl.dot(w, h, f, input_precision=INPUT_PRECISION)
            w = tl.load(w_at + 2 * gate_rows, mask=w_mask, other=0.0)
            g = tl.dot(w, h, g, input_precision=INPUT_PRECISION)
            w = tl.load(w_at + 3 * gate_rows, mask=w_mask, other=0.0)
            o = tl.dot(w, h, o, input_precision=INPUT_PRECISION)
    return i, f, g, o


@triton.jit
def _sweep_forward_kernel(
    steps_ptr,
    weight_ptr,
    offsets_ptr,
    states_ptr,
    cells_ptr,
    gates_ptr,
    num_steps,
    batch,
    streams,
    hidden,
    length,
    cell_unit_stride,
    cell_slice_stride,
    TAPS: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_L: tl.constexpr,
    SAVE_GATES: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    """``states[b*D + d, :, s] = h_s`` of stream ``d``, batch item ``b``, for every slice ``s``;
    ``cells`` gets ``c_s`` (``cell_slice_stride`` 0: only the last) and, with ``SAVE_GATES``,
    ``gates`` the pre-activation gates."""
    program, b, d, sites, in_slice = _slice_row(streams, length, BLOCK_L)
    four_h = 4 * hidden
    unit_stride = num_steps * length
    state_base = states_ptr + program * hidden * unit_stride
    cell_base = cells_ptr + program * hidden * cell_unit_stride
    filters = weight_ptr + d * TAPS * four_h * hidden
    for s in range(num_steps):
        row0 = (s * batch + b) * streams * four_h + d * four_h
        for j in range(0, hidden, BLOCK_H):
            units = j + tl.arange(0, BLOCK_H)
            mask = (units < hidden)[:, None] & in_slice[None, :]
            at = (row0 + units)[:, None] * length + sites[None, :]  # gate i of these units
            i, f, g, o = _load_gates(steps_ptr, at, hidden * length, mask)
            if s > 0:
                previous = state_base + (s - 1) * length
                i, f, g, o = _add_recurrent_term(
                    i, f, g, o, filters, offsets_ptr, previous, unit_stride, units, sites,
                    hidden, length, TAPS, BLOCK_K, INPUT_PRECISION,
                )  # fmt: skip
            if SAVE_GATES:
                _store_gates(gates_ptr, at, hidden * length, mask, i, f, g, o)
            cell = _sigmoid(i) * _tanh(g)
            c_at = cell_base + units[:, None] * cell_unit_stride + sites[None, :]
            if s > 0:
                previous_cell = tl.load(c_at + (s - 1) * cell_slice_stride, mask=mask, other=0.0)
                cell += _sigmoid(f) * previous_cell
            tl.store(c_at + s * cell_slice_stride, cell, mask=mask)
            h_at = state_base + units[:, None] * unit_stride + s * length + sites[None, :]
            tl.store(h_at, _sigmoid(o) * _tanh(cell), mask=mask)
        tl.debug_barrier()  # this slice's states, stored by every thread, feed the next slice


@triton.jit
def _add_recurrent_gradient(
    dh,
    filters_t_ptr,
    offsets_ptr,
    grad_next_ptr,
    units,
    sites,
    hidden,
    length,
    TAPS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    """``dh`` of ``units`` plus, tap by tap, the stream's transposed filters (``filters_t_ptr``:
    ``(taps, hidden, 4 * hidden)``) times the next slice's gate gradients shifted back by the
    tap's offset (gate row ``r`` at site ``l``: ``grad_next_ptr + r * length + l``)."""
    rows0 = tl.arange(0, BLOCK_R)
    four_h = 4 * hidden
    for t in range(TAPS):
        target = sites - tl.load(offsets_ptr + t)
        heard = (target >= 0) & (target < length)
        tap = filters_t_ptr + t * hidden * four_h
        for r in range(0, four_h, BLOCK_R):
            rows = r + rows0
            g_at = grad_next_ptr + rows[:, None] * length + target[None, :]
            grad_next = tl.load(g_at, mask=(rows < four_h)[:, None] & heard[None, :], other=0.0)
            w_mask = (units < hidden)[:, None] & (rows < four_h)[None, :]
            w = tl.load(tap + units[:, None] * four_h + rows[None, :], mask=w_mask, other=0.0)
            dh = tl.dot(w, grad_next, dh, input_precision=INPUT_PRECISION)
    return dh


@triton.jit
def _sweep_backward_kernel(
    grad_states_ptr,
    gates_ptr,
    cells_ptr,
    weight_t_ptr,
    offsets_ptr,
    grad_gates_ptr,
    carry_ptr,
    num_steps,
    batch,
    streams,
    hidden,
    length,
    TAPS: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_L: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    """``grad_gates`` (the gradient of ``steps``) from the gradient of the states, in reverse
    slice order: ``dh_s`` = the states' gradient + the recurrent filters' transpose applied to
    slice ``s + 1``'s gate gradients (atrous taps mirrored); ``carry`` holds ``dc_{s+1} * f_{s+1}``."""
    program, b, d, sites, in_slice = _slice_row(streams, length, BLOCK_L)
    four_h = 4 * hidden
    state_base = program * hidden * num_steps * length
    filters_t = weight_t_ptr + d * TAPS * hidden * four_h
    for step in range(num_steps):
        s = num_steps - 1 - step
        row0 = (s * batch + b) * streams * four_h + d * four_h
        for j in range(0, hidden, BLOCK_H):
            units = j + tl.arange(0, BLOCK_H)
            mask = (units < hidden)[:, None] & in_slice[None, :]
            h_at = state_base + units[:, None] * num_steps * length + s * length + sites[None, :]
            dh = tl.load(grad_states_ptr + h_at, mask=mask, other=0.0)
            if s < num_steps - 1:
                grad_next = grad_gates_ptr + (row0 + batch * streams * four_h) * length
                dh = _add_recurrent_gradient(
                    dh, filters_t, offsets_ptr, grad_next, units, sites, hidden, length,
                    TAPS, BLOCK_R, INPUT_PRECISION,
                )  # fmt: skip
            at = (row0 + units)[:, None] * length + sites[None, :]
            i, f, g, o = _load_gates(gates_ptr, at, hidden * length, mask)
            i, f, g, o = _sigmoid(i), _sigmoid(f), _tanh(g), _sigmoid(o)
            cell = _tanh(tl.load(cells_ptr + h_at, mask=mask, other=0.0))
            dc = dh * o * (1.0 - cell * cell)
            carry_at = carry_ptr + (program * hidden + units[:, None]) * length + sites[None, :]
            if s < num_steps - 1:
                dc += tl.load(carry_at, mask=mask, other=0.0)
            df = dc * 0.0
            if s > 0:
                previous_cell = tl.load(cells_ptr + h_at - length, mask=mask, other=0.0)
                df = dc * previous_cell * f * (1.0 - f)
            di, dg, do = dc * g * i * (1.0 - i), dc * i * (1.0 - g * g), dh * cell * o * (1.0 - o)
            _store_gates(grad_gates_ptr, at, hidden * length, mask, di, df, dg, do)
            tl.store(carry_at, dc * f, mask=mask)
        tl.debug_barrier()  # this slice's gate gradients feed the previous slice


KERNELS = {"forward": _sweep_forward_kernel, "backward": _sweep_backward_kernel}


def launch_options(
    kernel: str, hidden: int, length: int, taps: int, *, precision: str, save: bool = True
) -> dict[str, object]:
    """The compile-time options of a launch of ``kernel`` (``"forward"`` or ``"backward"``): its
    ``tl.constexpr`` arguments and ``num_warps``, ``num_stages``.

    A whole slice row per program, hidden units in blocks. Chosen from the register use of the
    kernels compiled for sm_90 (``cuobjdump -res-usage``): 8 warps, no software pipelining, 32
    units per block up to 64 sites and 16 above compile without spills for hidden 128 and slices
    of up to 128 sites.
    """
    block_l = max(MIN_DOT, triton.next_power_of_2(length))
    units = BLOCK_UNITS if block_l <= 64 else BLOCK_UNITS // 2
    options: dict[str, object] = {
        "TAPS": taps,
        "BLOCK_H": max(MIN_DOT, min(units, triton.next_power_of_2(hidden))),
        "BLOCK_L": block_l,
        "INPUT_PRECISION": precision,
        "num_warps": 8,
        "num_stages": 1,
    }
    if kernel == "forward":
        options["BLOCK_K"] = max(MIN_DOT, min(BLOCK_REDUCE, triton.next_power_of_2(hidden)))
        options["SAVE_GATES"] = save
    else:
        options["BLOCK_R"] = BLOCK_REDUCE
    return options


def sweep_forward(
    steps: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor, *, save: bool, precision: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One launch: ``steps`` ``(S, B, D * 4 * hidden, L)`` (any float dtype), ``weight``
    ``(D, taps, 4 * hidden, hidden)`` fp32, ``offsets`` ``(taps,)`` int32 -> the states
    ``(B * D, hidden, S, L)`` fp32, the cells (every slice's with ``save``, else the last one's,
    ``(B * D, hidden, 1, L)``) and, with ``save``, the pre-activation gates, shaped as ``steps``."""
    num_steps, batch, _, length = steps.shape
    streams, taps, _, hidden = weight.shape
    states = steps.new_empty(batch * streams, hidden, num_steps, length, dtype=torch.float32)
    cell_slices = num_steps if save else 1  # without autograd only the running cell is kept
    cells = states.new_empty(batch * streams, hidden, cell_slices, length)
    gates = torch.empty_like(steps, dtype=torch.float32) if save else states
    options = launch_options("forward", hidden, length, taps, precision=precision, save=save)
    _sweep_forward_kernel[(batch * streams,)](
        steps,
        weight,
        offsets,
        states,
        cells,
        gates,
        num_steps,
        batch,
        streams,
        hidden,
        length,
        cell_slices * length,
        length if save else 0,
        **options,
    )
    return states, cells, gates if save else None


def sweep_backward(
    grad_states: torch.Tensor,
    gates: torch.Tensor,
    cells: torch.Tensor,
    weight_t: torch.Tensor,
    offsets: torch.Tensor,
    *,
    precision: str,
) -> torch.Tensor:
    """One launch: the gradient of the states ``(B * D, hidden, S, L)`` fp32 and what the forward
    saved -> the gradient of ``steps``, ``(S, B, D * 4 * hidden, L)`` fp32. ``weight_t``:
    ``(D, taps, hidden, 4 * hidden)``."""
    num_steps, batch, _, length = gates.shape
    streams, taps, hidden, _ = weight_t.shape
    grad_gates = torch.empty_like(gates)
    carry = gates.new_empty(batch * streams, hidden, length)
    _sweep_backward_kernel[(batch * streams,)](
        grad_states,
        gates,
        cells,
        weight_t,
        offsets,
        grad_gates,
        carry,
        num_steps,
        batch,
        streams,
        hidden,
        length,
        **launch_options("backward", hidden, length, taps, precision=precision),
    )
    return grad_gates
