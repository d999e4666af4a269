"""Loading state dicts from a local file or a URL, always as data (``weights_only=True``)."""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError


def load_data_file(path: Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as one line naming ``path``;
    ``what`` names the kind of file in the message (``"checkpoint"``)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        text = str(error).strip()
        # torch's weights-only failures open with generic advice; the cause follows this marker
        marker = "WeightsUnpickler error:"
        cause = text.split(marker, 1)[1].strip() if marker in text else text
        first = cause.splitlines()[0].strip() if cause else type(error).__name__
        refused = _unsupported_global(text) if isinstance(error, pickle.UnpicklingError) else None
        if refused:
            raise CheckpointError(
                f"{path}: refused to load: holds more than plain data (a pickled {refused})"
            ) from None
        raise CheckpointError(f"{path}: corrupt or not a {what} ({first})") from None


def _unsupported_global(message: str) -> str | None:
    """The class or function a weights-only load refused (``"torch.nn...Linear"``), if that was why."""
    for line in message.splitlines():
        if "Unsupported global: GLOBAL " in line:
            return line.split("GLOBAL ", 1)[1].split(" ", 1)[0]
    return None


def load_state_dict(source: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a local path or an http(s) URL.

    URLs go through ``torch.hub.load_state_dict_from_url`` (cached under ``$TORCH_HOME``); nothing is
    ever fetched unless the caller passes a URL. A checkpoint that wraps the weights under
    ``"state_dict"`` or ``"model"`` is unwrapped.
    """
    source = str(source)
    if source.startswith(("http://", "https://")):
        state = torch.hub.load_state_dict_from_url(source, map_location="cpu", weights_only=True)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{path}: weights file not found")
        state = load_data_file(path, "weights file")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: expected a state dict, found {type(state).__name__}")
    return state


_SHOWN_KEYS = 5


def describe_keys(keys: Iterable[str]) -> str:
    """The first few of ``keys`` in sorted order, with how many more there are."""
    keys = sorted(keys)
    shown = ", ".join(keys[:_SHOWN_KEYS])
    more = f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
    return shown + more


def load_weights_strict(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    *,
    drop_prefixes: tuple[str, ...] = (),
) -> None:
    """Load ``state`` into ``model`` strictly, after dropping keys under ``drop_prefixes``.

    ``num_batches_tracked`` buffers missing from the file (older torchvision checkpoints lack
    them) are filled with zero; any other missing, unexpected or wrongly shaped key raises a
    :class:`~pdn.errors.CheckpointError` that names ``source`` and the first offending keys.
    """
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    expected = model.state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    problems = []
    missing = expected.keys() - state.keys()
    unexpected = state.keys() - expected.keys()
    if missing:
        problems.append(f"missing keys {describe_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {describe_keys(unexpected)}")
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if mismatched:
        problems.append(f"shape mismatches (file vs model) {describe_keys(mismatched)}")
    if problems:
        raise CheckpointError(
            f"{source}: not a {type(model).__name__} state dict: {'; '.join(problems)}"
        )
    model.load_state_dict(state, strict=True)


def load_matching_weights(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str
) -> tuple[list[str], list[str]]:
    """Copy every tensor of ``state`` whose name and shape match one of ``model`` (fine-tuning from
    another run: a classifier for another class count is left at its initialisation).

    Returns the names loaded and a description of each tensor of the model left as it was. Raises
    :class:`~pdn.errors.CheckpointError` naming ``source`` when nothing matches.
    """
    expected = model.state_dict()
    loaded = {k: v for k, v in state.items() if k in expected and v.shape == expected[k].shape}
    if not loaded:
        raise CheckpointError(
            f"{source}: no tensor matches the model by name and shape (file keys: "
            f"{describe_keys(state)}; model keys: {describe_keys(expected)})"
        )
    kept = [
        f"{k} (file {tuple(state[k].shape)} vs model {tuple(v.shape)})" if k in state else k
        for k, v in expected.items()
        if k not in loaded and not k.endswith("num_batches_tracked")
    ]
    model.load_state_dict(loaded, strict=False)
    return sorted(loaded), kept
