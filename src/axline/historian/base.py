"""The historian interface: one contract, several backends (embedded files, PostgreSQL).

Times are integer nanoseconds since the Unix epoch, UTC. ``append`` returns only once the batch is
acknowledged: from then on it survives a crash of the process (``kill -9``).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axline.batch import Batch


@dataclass(slots=True)
class Series:
    """Raw readings of one tag, sorted by time."""

    ts: np.ndarray  # int64 ns
    value: np.ndarray  # float64
    quality: np.ndarray  # uint8

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(slots=True)
class Buckets:
    """Downsampled readings of one tag: one row per non-empty bucket, sorted by bucket start."""

    start: np.ndarray  # int64 ns, bucket start
    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    last: np.ndarray
    count: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.start)


@dataclass(slots=True)
class Event:
    """Something that happened: an alarm, a defect, a fault, a state change, a write.

    ``code`` is a stable machine-readable key (e.g. ``anomaly.sensor``) that the dashboard turns
    into Korean or English text with ``data``; ``message`` is an English fallback.
    """

    ts: int
    kind: str  # alarm | defect | inspection | fault | state | write | info
    source: str  # tag or asset path
    code: str
    message: str = ""
    severity: str = "info"  # info | warning | alarm
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    end_ts: int | None = None
    ack: str | None = None  # operator feedback: None | confirmed | overruled | acknowledged

    def to_json(self) -> dict[str, Any]:
        """The event as the dashboard and the API read it."""
        return {
            "id": self.id,
            "ts": self.ts,
            "end_ts": self.end_ts,
            "kind": self.kind,
            "source": self.source,
            "code": self.code,
            "message": self.message,
            "severity": self.severity,
            "data": self.data,
            "ack": self.ack,
        }


def distinct_paths(batch: Batch) -> Batch:
    """``batch`` with each tag path named once (readings of a repeated path merged, order kept)."""
    if len(set(batch.paths)) == len(batch.paths):
        return batch
    first: dict[str, int] = {}
    remap = np.array([first.setdefault(p, len(first)) for p in batch.paths], np.int32)
    return Batch(list(first), remap[batch.idx], batch.ts, batch.value, batch.quality)


def appendable(batch: Any) -> Batch:
    """``batch`` as every backend stores it: each tag path named once (:func:`distinct_paths`); a
    TypeError when it is not a Batch."""
    if not isinstance(batch, Batch):
        raise TypeError(f"append expects an axline.batch.Batch, got {type(batch).__name__}")
    return distinct_paths(batch)


def check_retention_days(retention_days: Any) -> None:
    """Refuse a ``retention_days`` that is not None or a number > 0 (every backend the same way)."""
    if retention_days is not None and not (
        isinstance(retention_days, int | float) and not isinstance(retention_days, bool) and retention_days > 0
    ):
        raise ValueError(f"historian retention_days must be a number > 0 or None, got {retention_days!r}")


class Historian(abc.ABC):
    """Time-series store of readings plus an event log."""

    # -- readings -------------------------------------------------------------------------------
    @abc.abstractmethod
    def append(self, batch: Batch) -> int:
        """Store a batch; return the number of readings acknowledged (durable on return)."""

    @abc.abstractmethod
    def tags(self) -> list[str]:
        """Every tag path that has readings."""

    @abc.abstractmethod
    def query(self, paths: Sequence[str], start: int, end: int) -> dict[str, Series]:
        """Raw readings with start <= ts < end, per path, sorted by time. Unknown paths map to empty series."""

    @abc.abstractmethod
    def query_buckets(self, paths: Sequence[str], start: int, end: int, step: int) -> dict[str, Buckets]:
        """min / max / mean / last per bucket of ``step`` ns, buckets aligned to ``start``.

        Only readings of good quality (code 0) enter the aggregates."""

    @abc.abstractmethod
    def latest(self, paths: Iterable[str] | None = None) -> dict[str, tuple[int, float, int]]:
        """Newest (ts, value, quality) per tag (all tags when ``paths`` is None)."""

    @abc.abstractmethod
    def count(self) -> int:
        """Total readings stored."""

    # -- events ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def add_event(self, event: Event) -> int:
        """Store an event; return its id (also set on ``event.id``)."""

    @abc.abstractmethod
    def update_event(self, event_id: int, **fields: Any) -> None:
        """Change ``end_ts``, ``ack``, ``severity`` or merge keys into ``data`` of a stored event."""

    @abc.abstractmethod
    def event(self, event_id: int) -> Event | None:
        """The stored event ``event_id``, or None when there is none (one indexed lookup)."""

    @abc.abstractmethod
    def events(
        self,
        start: int | None = None,
        end: int | None = None,
        kinds: Sequence[str] | None = None,
        source_prefix: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Events with start <= ts < end, newest first."""

    @abc.abstractmethod
    def event_counts(self) -> dict[str, int]:
        """Number of events per kind."""

    # -- life cycle -----------------------------------------------------------------------------
    def flush(self) -> None:  # noqa: B027 - optional for backends that buffer nothing
        """Make everything appended so far durable against power loss (fsync)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Write what is buffered and release the store."""

    def __enter__(self) -> Historian:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
