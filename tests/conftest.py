"""Fixtures shared by the test files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import pdn


def _tiny_eval_model(arch: str = "pdn", num_classes: int = 3, **options: Any) -> nn.Module:
    torch.manual_seed(0)
    model = pdn.build_model(arch, num_classes, backbone="tiny", channels=16, **options)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that eval mode is not identity
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model() -> Callable[..., nn.Module]:
    """``tiny_model(arch="pdn", num_classes=3, **options)``: ``arch`` on the tiny backbone with head
    width 16, drawn from seed 0, in eval mode with random BatchNorm running statistics; the same
    call gives the same weights. ``(B, 3, H, W) -> (B, num_classes, H, W)``."""
    return _tiny_eval_model
