"""The embedded historian's directory: its errors and the low-level file operations."""

from __future__ import annotations

import os
import re

import numpy as np

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
SEG_RE = re.compile(r"^seg-(\d{6,})\.dat$")
INT64_MIN = np.iinfo(np.int64).min


class HistorianLockedError(RuntimeError):
    """The historian directory is already open in another process."""


class HistorianCorruptError(RuntimeError):
    """A historian file is damaged somewhere other than a torn tail."""


def fsync(fd: int) -> None:
    """Flush a file's data to the disk (fdatasync where there is one)."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def fsync_dir(path: str) -> None:
    """Flush a directory entry change (a file created, renamed or removed) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, buf: memoryview) -> None:
    """Write all of ``buf`` (``os.write`` may write less)."""
    while len(buf):
        n = os.write(fd, buf)
        buf = buf[n:]

