"""Batches of readings: the unit that flows from connectors through the bus to the historian.

A reading is (tag path, timestamp, value, quality). Volume matters, so a batch keeps columns, not
one Python object per reading: the tag paths are dictionary-encoded (``paths`` holds each distinct
path once, ``idx`` points into it), timestamps are integer nanoseconds since the Unix epoch (UTC),
values are float64 and quality is a small integer code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

# Quality codes (uint8). 0 is good; anything >= BAD is not to be trusted as a measurement.
GOOD = 0
UNCERTAIN = 1
BAD = 2
BAD_OUT_OF_RANGE = 3
BAD_NO_CONNECTION = 4
BAD_SENSOR = 5
BAD_CONFIG = 6
BAD_TIMESTAMP = 7  # stored as it came, but stamped implausibly far from its arrival

QUALITY_NAMES = {
    GOOD: "good",
    UNCERTAIN: "uncertain",
    BAD: "bad",
    BAD_OUT_OF_RANGE: "bad_out_of_range",
    BAD_NO_CONNECTION: "bad_no_connection",
    BAD_SENSOR: "bad_sensor",
    BAD_CONFIG: "bad_config",
    BAD_TIMESTAMP: "bad_timestamp",
}

NS_PER_S = 1_000_000_000

Row = tuple[str, int, float, int]  # one reading as plain values: (tag path, ts ns, value, quality)


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading: tag path, timestamp (ns since the epoch, UTC), value and quality."""
    path: str
    ts: int  # ns since epoch, UTC
    value: float
    quality: int = GOOD


class Batch:
    """Columns of readings. ``paths[idx[i]]`` is the tag path of reading ``i``."""

    __slots__ = ("paths", "idx", "ts", "value", "quality")

    def __init__(
        self,
        paths: Sequence[str],
        idx: np.ndarray,
        ts: np.ndarray,
        value: np.ndarray,
        quality: np.ndarray | None = None,
    ) -> None:
        self.paths: tuple[str, ...] = tuple(paths)
        self.idx = np.ascontiguousarray(idx, dtype=np.int32)
        self.ts = np.ascontiguousarray(ts, dtype=np.int64)
        self.value = np.ascontiguousarray(value, dtype=np.float64)
        n = len(self.idx)
        if quality is None:
            quality = np.zeros(n, dtype=np.uint8)
        self.quality = np.ascontiguousarray(quality, dtype=np.uint8)
        if not (len(self.ts) == len(self.value) == len(self.quality) == n):
            raise ValueError(
                f"batch columns differ in length: idx={n} ts={len(self.ts)} "
                f"value={len(self.value)} quality={len(self.quality)}"
            )
        if n and (self.idx.min() < 0 or self.idx.max() >= len(self.paths)):
            raise ValueError(f"batch idx points outside paths (0..{len(self.paths) - 1})")

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> Batch:
        """A batch with no readings."""
        z = np.zeros(0)
        return cls((), z.astype(np.int32), z.astype(np.int64), z, z.astype(np.uint8))

    @classmethod
    def from_readings(cls, readings: Iterable[Reading | tuple]) -> Batch:
        """A batch from ``Reading`` objects or ``(path, ts, value[, quality])`` tuples."""
        lookup: dict[str, int] = {}
        idx, ts, val, q = [], [], [], []
        for r in readings:
            if isinstance(r, Reading):
                p, t, v, qq = r.path, r.ts, r.value, r.quality
            else:
                p, t, v, *rest = r
                qq = rest[0] if rest else GOOD
            i = lookup.get(p)
            if i is None:
                i = lookup[p] = len(lookup)
            idx.append(i)
            ts.append(t)
            val.append(v)
            q.append(qq)
        return cls(list(lookup), np.array(idx), np.array(ts, dtype=np.int64), np.array(val, dtype=float), np.array(q))

    @classmethod
    def concat(cls, batches: Sequence[Batch]) -> Batch:
        """One batch holding the readings of ``batches`` in order."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        lookup: dict[str, int] = {}
        idxs = []
        for b in batches:
            remap = np.array([lookup.setdefault(p, len(lookup)) for p in b.paths], dtype=np.int32)
            idxs.append(remap[b.idx])
        return cls(
            list(lookup),
            np.concatenate(idxs),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.quality for b in batches]),
        )

    # -- access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.idx)

    def __iter__(self) -> Iterator[Reading]:
        paths = self.paths
        for i, t, v, q in zip(self.idx.tolist(), self.ts.tolist(), self.value.tolist(), self.quality.tolist(), strict=True):
            yield Reading(paths[i], t, v, q)

    def __repr__(self) -> str:
        return f"Batch({len(self)} readings, {len(self.paths)} tags)"

    def path_array(self) -> np.ndarray:
        """Tag path per reading as an object array (convenient, not fast)."""
        return np.asarray(self.paths, dtype=object)[self.idx] if len(self) else np.zeros(0, dtype=object)

    def select(self, mask: np.ndarray) -> Batch:
        """The readings where ``mask`` is true."""
        return Batch(self.paths, self.idx[mask], self.ts[mask], self.value[mask], self.quality[mask])

    def for_paths(self, wanted: Iterable[str]) -> Batch:
        """The readings of the tags in ``wanted``."""
        wanted = set(wanted)
        keep = np.array([p in wanted for p in self.paths], dtype=bool)
        if keep.all():
            return self
        return self.select(keep[self.idx]) if len(self) else self
