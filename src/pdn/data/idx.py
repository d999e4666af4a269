"""Reading IDX files, the format of MNIST and Fashion-MNIST (``*-idx3-ubyte``, gzipped or not).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions ``n``),
``n`` big-endian uint32 sizes, then the data in C order. pdn reads the unsigned-byte type (code
``0x08``), the only one those datasets use.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from ..errors import DataError

UNSIGNED_BYTE = 0x08


def find_idx(root: Path, stem: str) -> Path | None:
    """``root/stem`` or ``root/stem.gz``, whichever exists (the plain file first), else None."""
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file of unsigned bytes: ``uint8`` of the shape its header gives.

    Raises:
        DataError: the file is missing, truncated, not IDX, or not of unsigned bytes (the
            message names the file).
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError) as error:  # gzip's BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read it ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (its first bytes are not an IDX magic number)")
    if raw[2] != UNSIGNED_BYTE:
        raise DataError(f"{path}: IDX type 0x{raw[2]:02x}, pdn reads unsigned bytes (0x08) only")
    dims = raw[3]
    header = 4 + 4 * dims
    if dims == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({dims} dimensions)")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: the header gives shape {list(shape)} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes of data"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
