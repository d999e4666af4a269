"""DataLoader workers for training and evaluation: they leave SIGINT / SIGTERM to the main process,
and they are always stopped when the iteration ends (normally or by an error)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch.utils.data import DataLoader

from ..errors import PdnError

__all__ = ["ignore_signals_in_worker", "loader_iteration"]


def ignore_signals_in_worker(_: int) -> None:
    """``worker_init_fn``: the main process alone handles SIGINT / SIGTERM (saves and stops)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextmanager
def loader_iteration(loader: DataLoader) -> Iterator[Iterator[Any]]:
    """Iterate ``loader`` and always stop its worker processes on the way out.

    Without this, an error in a worker reached the main process, but the iterator stayed alive
    in the traceback's frames and at exit ``multiprocessing`` waited forever to join workers that
    ignore SIGTERM. A :class:`PdnError` raised in a worker comes back with torch's "Caught ... in
    DataLoader worker" preamble and the worker's traceback; it is re-raised as its own one line.
    """
    iterator = iter(loader)
    try:
        yield iterator
    except PdnError as error:
        lines = str(error).strip().splitlines()
        if len(lines) > 1 and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]:
            last = lines[-1]
            prefix = f"{type(error).__module__}.{type(error).__name__}: "
            raise type(error)(last.removeprefix(prefix)) from None
        raise
    finally:
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
