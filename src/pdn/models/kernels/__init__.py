"""Fused kernels of the diffusion layers, in Triton (optional: ``pip install pdn[gpu]``).

Importing this package does not import ``triton``; a kernel imports it when it first runs.
"""

from .sweep import MAX_LENGTH, fused_sweep, triton_available, uses_fused_sweep

__all__ = ["MAX_LENGTH", "fused_sweep", "triton_available", "uses_fused_sweep"]
