"""One process per run directory: an OS file lock held while ``pdn train`` runs in it.

The lock is ``fcntl.flock`` on ``RUN_DIR/.lock``, so the kernel releases it on any exit of the
holder, SIGKILL included: a killed run never leaves a directory locked. The file holds the
holder's PID and host for the message a second process gets. Under ``torchrun`` only rank 0
takes it (every rank of one run shares the directory). On a system without ``fcntl`` (Windows)
no lock is taken.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from ..errors import PdnError

LOCK_FILE = ".lock"


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the partial ``.NAME.*.tmp`` checkpoint files a killed run left; returns them.
    Safe only while the lock is held (no other process is writing one)."""
    removed = []
    for path in run_dir.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def run_directory_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the lock of ``run_dir`` (created if missing) for the ``with`` block. A folder this
    call created and in which nothing but the lock was written is removed again at the end.

    Raises:
        PdnError: another process holds it (names its PID and host), or the folder cannot be
            created or written.
    """
    run_dir = Path(run_dir)
    if _rank() != 0:
        yield run_dir
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield run_dir
        return
    created = not run_dir.exists()
    lock = run_dir / LOCK_FILE
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+")  # noqa: SIM115 - held for the whole block
    except OSError as error:
        raise PdnError(f"{run_dir}: cannot use as a run directory ({error.strerror})") from None
    acquired = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the file locked must still be the one at the path (not one a finishing run unlinked)
            acquired = os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino
        except (BlockingIOError, FileNotFoundError):
            pass
        if not acquired:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise PdnError(
                f"{run_dir} is in use by another pdn train ({holder}); wait for it to end or "
                "choose another --out"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        remove_stale_temporaries(run_dir)
        yield run_dir
    finally:
        try:
            if acquired and created:
                _remove_if_only_the_lock(run_dir)
        finally:
            handle.close()  # closing releases the lock


def _remove_if_only_the_lock(run_dir: Path) -> None:
    """Remove ``run_dir`` if the lock (still held) is all it holds: a run that failed before
    writing anything leaves no folder behind. Errors (the folder moved meanwhile) are ignored."""
    with contextlib.suppress(OSError):
        if [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
            (run_dir / LOCK_FILE).unlink()
            run_dir.rmdir()
