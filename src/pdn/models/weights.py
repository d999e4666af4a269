"""Loading state dicts from a local file or a URL, always as data (``weights_only=True``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError


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
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for corrupt files
            raise CheckpointError(f"{path}: not a readable state dict ({error})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: expected a state dict, found {type(state).__name__}")
    return state
