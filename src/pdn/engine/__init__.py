"""Training, evaluation and inference machinery around the models.

Modules, one job each: ``config`` (YAML schema and overrides), ``checkpoint`` (the checkpoint file
format), ``trainer`` (the training loop), ``distributed`` (torchrun / DDP set-up), ``seeding``
(reproducible data order and RNG state), ``reporting`` (progress bar and scalar logs).
Submodules are imported on use so that ``import pdn`` stays light.
"""

from .segmenter import Segmenter

__all__ = ["Segmenter"]
