"""Crash-safe file writes: write a temporary file, fsync it, rename it over the target."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replaces ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    atomic_write_with(path, lambda out: out.write(data))


def atomic_copy(source: Path, target: Path) -> None:
    """Copies ``source`` over ``target`` atomically, streaming instead of reading it whole."""

    def copy(out: BinaryIO) -> None:
        with source.open("rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)

    atomic_write_with(target, copy)


def atomic_write_with(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replaces ``target`` with what ``write`` writes to the file it is given, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
