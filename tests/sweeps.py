"""What the tests compare between the forms of a sweep's recurrent term
(``SweepDiffusion.recurrence``)."""

from __future__ import annotations

import torch

from pdn.models import SweepDiffusion


def output_and_gradients(
    layer: SweepDiffusion, x: torch.Tensor, recurrence: str
) -> list[torch.Tensor]:
    """``layer(x)`` with its recurrent term in form ``recurrence``, then the gradients of
    ``layer(x).square().sum()`` with respect to ``x`` and to each of the layer's parameters."""
    layer.recurrence = recurrence
    layer.zero_grad()
    probe = x.clone().requires_grad_()
    out = layer(probe)
    out.square().sum().backward()
    return [out.detach(), probe.grad, *(p.grad for p in layer.parameters())]
