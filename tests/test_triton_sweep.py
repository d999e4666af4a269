"""The fused Triton sweep (``recurrence="triton"``) against the reference loop (grouped conv1d).

On the CPU the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``, which ``triton.jit``
reads when the kernel module is first imported, inside these tests); ``PDN_TEST_DEVICE=cuda`` runs
the same tests compiled on a GPU, with TF32 off on both sides. Skipped without ``triton``, but for
the check that pdn runs without it. Tolerance, in fp32: 1e-5 relative, and 1e-5 absolute times the
largest magnitude of the reference tensor where it exceeds 1 (a layer's weight gradients sum over
every site and reach ~100, where the two fp32 loops each differ from a float64 one by ~2e-5).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from pdn.models.diffusion import DIRECTIONS, DiffusionLayer, SweepDiffusion
from pdn.models.kernels import MAX_LENGTH, fused_sweep, sweep, uses_fused_sweep
from sweeps import output_and_gradients

DEVICE = torch.device(os.environ.get("PDN_TEST_DEVICE", "cpu"))
TOLERANCE = 1e-5


def assert_agrees(actual: torch.Tensor, expected: torch.Tensor) -> None:
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected, atol=TOLERANCE * scale, rtol=TOLERANCE)


@pytest.fixture(scope="module")
def kernels():
    """Triton, in its interpreter on the CPU (for this module's tests) and TF32 off on a GPU."""
    saved_env = os.environ.get("TRITON_INTERPRET")
    if DEVICE.type == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    elif not torch.cuda.is_available():
        pytest.skip("PDN_TEST_DEVICE=cuda but no CUDA device")
    pytest.importorskip("triton")
    saved_tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved_tf32
    if saved_env is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = saved_env


def _reference_layer(directions, rates, hidden: int = 4) -> SweepDiffusion:
    """A layer whose recurrent filters are large enough that the recurrence shows in the result."""
    layer = DiffusionLayer(8, hidden=hidden, directions=directions, rates=rates).to(DEVICE)
    with torch.no_grad():
        bound = 2 / (hidden * len(layer.offsets)) ** 0.5
        layer.state_to_state.uniform_(-bound, bound)
    return layer


def _assert_fused_sweep_agrees(layer: SweepDiffusion, streams: list[int], shape) -> None:
    """The fused sweep of ``streams`` against the layer's conv1d loop on random gates of
    ``shape = (S, B, L)``: the states, the gradients of the gates and of the recurrent filters,
    and the forward without autograd (which keeps only the running cell)."""
    num_steps, batch, length = shape
    layer.recurrence = "conv1d"
    width = len(streams) * 4 * layer.hidden
    steps = torch.randn(num_steps, batch, width, length, device=DEVICE, requires_grad=True)
    upstream = torch.randn(batch, len(streams), layer.hidden, num_steps, length, device=DEVICE)
    results = []
    for run in (
        lambda: layer._eager_sweep_loop(steps, streams),
        lambda: _fused(steps, layer, streams),
    ):
        states = run()
        grads = torch.autograd.grad(states, (steps, layer.state_to_state), upstream)
        results.append((states, *grads))
    for fused_result, reference in zip(results[1], results[0], strict=True):
        assert_agrees(fused_result, reference)
    with torch.no_grad():
        assert_agrees(_fused(steps, layer, streams), results[0][0])


@pytest.mark.parametrize("rates", [(1,), (1, 2, 4)])
@pytest.mark.parametrize("streams", [[0], [1, 3], [0, 1, 2, 3]])
def test_fused_sweep_matches_the_conv1d_loop(kernels, streams: list[int], rates) -> None:
    """One stream, a pair picked out of four, all four; S=5 slices of L=7 sites, batch 2."""
    torch.manual_seed(len(streams) + len(rates))
    _assert_fused_sweep_agrees(_reference_layer(DIRECTIONS, rates), streams, (5, 2, 7))


def test_fused_sweep_over_blocks_of_units(kernels) -> None:
    """Hidden 40: two blocks of 32 units and of the forward's reduction (the second block partly
    masked), the backward's reduction over 160 gate rows in five; 20 sites in a block of 32."""
    torch.manual_seed(9)
    layer = _reference_layer(("down", "left"), (1, 2), hidden=40)
    _assert_fused_sweep_agrees(layer, [0, 1], (4, 1, 20))


def _fused(steps: torch.Tensor, layer: SweepDiffusion, streams: list[int]) -> torch.Tensor:
    return fused_sweep(steps, layer._stream_weights(streams), layer.offsets)


# The pair and the four on a non-square map run one loop per axis, the four on a square map one.
@pytest.mark.parametrize(
    "directions,size",
    [(("up",), (5, 7)), (("right", "left"), (5, 7)), (DIRECTIONS, (5, 7)), (DIRECTIONS, (6, 6))],
)
def test_triton_recurrence_trains_like_conv1d(kernels, directions, size) -> None:
    """The layer with ``recurrence="triton"``: the same output and the same gradients of the
    input and of every weight as with the grouped conv1d (batch 2, rates 1, 2, 4)."""
    torch.manual_seed(sum(size) + len(directions))
    layer = _reference_layer(directions, (1, 2, 4)).train()
    x = torch.randn(2, 8, *size, device=DEVICE)
    reference = output_and_gradients(layer, x, "conv1d")
    fused = output_and_gradients(layer, x, "triton")
    for result, expected in zip(fused, reference, strict=True):
        assert_agrees(result, expected)


def test_reduced_precision_gates_run_in_fp32(kernels) -> None:
    """bf16 gates (autocast's): the fp32 result of the same values, returned in bf16, and their
    gradient in bf16."""
    torch.manual_seed(2)
    steps = torch.randn(4, 1, 16, 6, device=DEVICE).bfloat16().requires_grad_()
    weight = torch.randn(1, 16, 4 * 3, device=DEVICE) * 0.3
    states = fused_sweep(steps, weight, [-1, 0, 1])
    expected = fused_sweep(steps.detach().float(), weight, [-1, 0, 1])
    assert states.dtype == torch.bfloat16
    torch.testing.assert_close(states, expected.bfloat16(), atol=0, rtol=0)
    (grad,) = torch.autograd.grad(states.float().sum(), steps)
    assert grad.dtype == torch.bfloat16


def test_which_sweep_runs(kernels, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` takes the kernel on CUDA only; ``triton`` wherever it runs; slices longer than
    the kernel holds fall back to the reference; ``triton`` where it cannot run says why."""
    steps = torch.zeros(3, 1, 16, MAX_LENGTH, device=DEVICE)
    longer = torch.zeros(3, 1, 16, MAX_LENGTH + 1, device=DEVICE)
    assert uses_fused_sweep("auto", steps) is (DEVICE.type == "cuda")
    assert uses_fused_sweep("triton", steps) and not uses_fused_sweep("triton", longer)
    assert not uses_fused_sweep("auto", longer) and not uses_fused_sweep("gather", steps)
    if DEVICE.type == "cpu":
        monkeypatch.delenv("TRITON_INTERPRET")
        with pytest.raises(RuntimeError, match="not CUDA, and TRITON_INTERPRET is not set"):
            uses_fused_sweep("triton", steps)
    monkeypatch.setattr(sweep, "triton_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"pip install pdn\[gpu\]"):
        uses_fused_sweep("triton", steps)


def test_pdn_runs_without_triton() -> None:
    """With ``triton`` unimportable, pdn imports, and a model runs and trains on the CPU (``auto``
    takes the reference loop); ``triton`` asked for says how to install it."""
    script = """
import sys
sys.modules["triton"] = None  # import triton now raises ImportError
import torch, pdn
model = pdn.build_model("pdn", 3, backbone="tiny")
model(torch.randn(1, 3, 32, 32)).sum().backward()
layer = model.decode_head.diffusion.layers[0]
layer.recurrence = "triton"
try:
    layer(torch.randn(1, layer.channels, 4, 4))
except RuntimeError as error:
    print(error)
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert "triton is not installed (pip install pdn[gpu])" in done.stdout
