"""Power cuts replayed: the file writes of a historian recorded in order, and the folder that a power cut
after any of them, or half-way through one, leaves on disk (the storage fault bench and the integrity
tests open every such folder and check what it holds)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from axline.historian import files


@contextmanager
def recorded_writes() -> Iterator[list[tuple[str, bytes]]]:
    """While open, every record and tag-directory write of a historian in this process is also appended
    to the list yielded, as (file name, bytes written)."""
    writes: list[tuple[str, bytes]] = []
    real = files.write_all

    def spy(fd: int, buf: memoryview) -> None:
        writes.append((os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), bytes(buf)))
        real(fd, buf)

    files.write_all = spy
    try:
        yield writes
    finally:
        files.write_all = real


def cut_points(n_writes: int) -> list[tuple[int, float]]:
    """(k, frac): the power fails after ``k`` whole writes and ``frac`` of the next one (0 or a half)."""
    return [(k, frac) for k in range(n_writes + 1) for frac in ((0.0, 0.5) if k < n_writes else (0.0,))]


def lay_down(folder: Path, writes: list[tuple[str, bytes]], k: int, frac: float) -> None:
    """Write into ``folder`` (empty) what is on disk after ``writes[:k]`` and ``frac`` of ``writes[k]``."""
    for name, data in writes[:k]:
        with open(folder / name, "ab") as f:
            f.write(data)
    if frac:
        name, data = writes[k]
        with open(folder / name, "ab") as f:
            f.write(data[: int(len(data) * frac)])
