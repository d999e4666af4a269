"""The sweep's loop over slices as one fused kernel launch (forward and backward), in Triton.

:func:`fused_sweep` computes what ``SweepDiffusion._eager_sweep_loop`` computes for one group
of streams, from the same input-to-state gates and recurrent filters. What is fused: the forward
(the recurrent term of every slice, ``tl.dot`` over the taps, and the LSTM update, all slices in
one launch) and the backward's recurrence (the gradient of every slice's gates, in reverse, in one
launch). The recurrent filters' gradient is not: it is one matrix product per tap over the saved
states and gate gradients, in PyTorch, after the backward kernel.

``triton`` is optional (``pip install pdn[gpu]``): this module imports it only when a fused sweep
runs. The kernels run on CUDA tensors, or on the CPU under Triton's interpreter
(``TRITON_INTERPRET=1`` set before ``triton`` is first imported), which is how the tests run them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Sequence

import torch
import torch.nn.functional as F

MAX_LENGTH = 128  # the longest slice a program holds (a whole slice row per program)


@functools.cache
def triton_available() -> bool:
    """Whether ``triton`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # ValueError: a module without a spec (a stub or None)
        return False


def _interpreting() -> bool:
    """Whether the kernels run in Triton's interpreter: built for it when first imported, and
    ``TRITON_INTERPRET`` still set (Triton reads it again while running them)."""
    from triton import knobs

    from .sweep_triton import INTERPRETED

    return INTERPRETED and bool(knobs.runtime.interpret)


def runs_here(steps: torch.Tensor) -> bool:
    """Whether the fused kernels can run on ``steps``: ``triton`` is installed and the tensor is
    on CUDA, or on the CPU under Triton's interpreter."""
    if not triton_available():
        return False
    return steps.is_cuda or (steps.device.type == "cpu" and _interpreting())


def supports(steps: torch.Tensor) -> bool:
    """Whether :func:`fused_sweep` takes slices of this length (``steps``: ``(S, B, *, L)``)."""
    return steps.shape[-1] <= MAX_LENGTH


def uses_fused_sweep(recurrence: str, steps: torch.Tensor) -> bool:
    """Whether a sweep whose ``recurrence`` attribute is ``recurrence`` runs :func:`fused_sweep`
    on ``steps``: ``"auto"`` on CUDA when ``triton`` is installed; ``"triton"`` wherever the kernels
    run (a clear error elsewhere); both only for the slice lengths supported (else the reference)."""
    if recurrence == "auto":
        return steps.is_cuda and runs_here(steps) and supports(steps)
    if recurrence != "triton":
        return False
    if not runs_here(steps):
        where = "triton is not installed (pip install pdn[gpu])"
        if triton_available():
            where = f"the input is on {steps.device}, not CUDA, and TRITON_INTERPRET is not set"
        raise RuntimeError(f"recurrence 'triton' cannot run: {where}")
    return supports(steps)


def _precision(steps: torch.Tensor, allow_tf32: bool | None) -> str:
    """``tl.dot``'s input precision: TF32 on CUDA when ``allow_tf32`` (``None``: as PyTorch's
    convolutions, ``torch.backends.cudnn.allow_tf32``, which the conv1d recurrence follows)."""
    if allow_tf32 is None:
        allow_tf32 = torch.backends.cudnn.allow_tf32
    return "tf32" if allow_tf32 and steps.is_cuda else "ieee"


def _per_tap(weight: torch.Tensor, taps: int) -> torch.Tensor:
    """``(D, 4 * hidden, hidden * taps)`` channel-major taps -> ``(D, taps, 4 * hidden, hidden)``
    fp32, each tap's filter."""
    streams, rows, columns = weight.shape
    return weight.float().view(streams, rows, columns // taps, taps).permute(0, 3, 1, 2)


def recurrent_weight_gradient(
    grad_gates: torch.Tensor, states: torch.Tensor, offsets: Sequence[int]
) -> torch.Tensor:
    """The recurrent filters' gradient, one matrix product per tap over every slice but the first.

    ``grad_gates``: ``(S, B, D * 4 * hidden, L)``; ``states``: ``(B, D, hidden, S, L)``, the forward's
    hidden states. Returns ``(D, 4 * hidden, hidden * taps)`` with channel-major taps, the layout of
    ``SweepDiffusion.state_to_state``.
    """
    num_steps, batch, _, length = grad_gates.shape
    streams, hidden = states.shape[1], states.shape[2]
    if num_steps == 1:
        return grad_gates.new_zeros(streams, 4 * hidden, hidden * len(offsets))
    pad = max(abs(o) for o in offsets)
    later = grad_gates[1:].view(num_steps - 1, batch, streams, 4 * hidden, length)
    later = later.permute(2, 3, 0, 1, 4).reshape(streams, 4 * hidden, -1)  # (D, 4h, (S-1)*B*L)
    earlier = F.pad(states[:, :, :, :-1], (pad, pad))  # h_{s-1} of slices 1.., zero beyond the ends
    per_tap = []
    for offset in offsets:
        heard = earlier[..., pad + offset : pad + offset + length]  # (B, D, hidden, S-1, L)
        heard = heard.permute(1, 3, 0, 4, 2).reshape(streams, -1, hidden)
        per_tap.append(torch.bmm(later, heard))  # (D, 4h, hidden)
    return torch.stack(per_tap, -1).flatten(2)


def _forward(
    steps: torch.Tensor, weight: torch.Tensor, offsets: list[int], *, save: bool, precision: str
) -> tuple[torch.Tensor, ...]:
    """Launch the forward kernel; returns its states ``(B * D, hidden, S, L)``, cells and gates
    (see :func:`~pdn.models.kernels.sweep_triton.sweep_forward`), the per-tap filters and the
    offsets as a tensor, which the backward kernel reads too."""
    from .sweep_triton import sweep_forward

    per_tap = _per_tap(weight.detach(), len(offsets)).contiguous()
    offset_tensor = torch.tensor(offsets, dtype=torch.int32, device=steps.device)
    states, cells, gates = sweep_forward(
        steps.detach().contiguous(), per_tap, offset_tensor, save=save, precision=precision
    )
    return states, cells, gates, per_tap, offset_tensor


def _as_output(states: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """The kernel's ``(B * D, hidden, S, L)`` fp32 states as the eager loop's
    ``(B, D, hidden, S, L)``, in the dtype of ``steps``."""
    return states.view(steps.shape[1], -1, *states.shape[1:]).to(steps.dtype)


class _FusedSweep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, steps, weight, offsets, precision):  # type: ignore[override]
        states, cells, gates, per_tap, offset_tensor = _forward(
            steps, weight, offsets, save=True, precision=precision
        )
        ctx.save_for_backward(gates, cells, states, per_tap, offset_tensor)
        ctx.offsets, ctx.precision, ctx.dtypes = offsets, precision, (steps.dtype, weight.dtype)
        return _as_output(states, steps)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        from .sweep_triton import sweep_backward

        gates, cells, states, per_tap, offset_tensor = ctx.saved_tensors
        grad_states = grad.float().contiguous().view(states.shape)
        weight_t = per_tap.transpose(2, 3).contiguous()
        grad_gates = sweep_backward(
            grad_states, gates, cells, weight_t, offset_tensor, precision=ctx.precision
        )
        steps_dtype, weight_dtype = ctx.dtypes
        grad_weight = None
        if ctx.needs_input_grad[1]:
            shaped = states.view(grad.shape)  # (B, D, hidden, S, L)
            grad_weight = recurrent_weight_gradient(grad_gates, shaped, ctx.offsets)
            grad_weight = grad_weight.to(weight_dtype)
        return grad_gates.to(steps_dtype), grad_weight, None, None


def fused_sweep(
    steps: torch.Tensor,
    weight: torch.Tensor,
    offsets: Sequence[int],
    *,
    allow_tf32: bool | None = None,
) -> torch.Tensor:
    """The sweep of one group of streams in one kernel launch (differentiable).

    Args:
        steps: ``(S, B, D * 4 * hidden, L)`` input-to-state gates of each slice, as
            ``SweepDiffusion._eager_sweep_loop`` receives them (any float dtype; the kernels
            compute in fp32).
        weight: ``(D, 4 * hidden, hidden * taps)`` recurrent filters, channel-major taps
            (``SweepDiffusion._stream_weights``).
        offsets: the ``taps`` offsets along a slice (``SweepDiffusion.offsets``).
        allow_tf32: products in TF32 on CUDA; ``None``: as ``torch.backends.cudnn.allow_tf32``.

    Returns the hidden states ``(B, D, hidden, S, L)`` in the dtype of ``steps``, zero initial state.
    """
    streams, rows, columns = weight.shape
    if steps.shape[2] != streams * rows or columns != rows // 4 * len(offsets):
        raise ValueError(
            f"steps {tuple(steps.shape)} and weight {tuple(weight.shape)} do not match "
            f"{len(offsets)} taps"
        )
    if not supports(steps):
        raise ValueError(
            f"fused_sweep takes slices of up to {MAX_LENGTH} sites, got {steps.shape[-1]}"
        )
    offsets = [int(o) for o in offsets]
    precision = _precision(steps, allow_tf32)
    with _on(steps.device):
        if torch.is_grad_enabled() and (steps.requires_grad or weight.requires_grad):
            return _FusedSweep.apply(steps, weight, offsets, precision)
        states = _forward(steps, weight, offsets, save=False, precision=precision)[0]
        return _as_output(states, steps)


def _on(device: torch.device) -> contextlib.AbstractContextManager:
    """The CUDA device of a launch (Triton launches on the current device)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
