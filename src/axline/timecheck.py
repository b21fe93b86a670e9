"""Timestamp plausibility: a reading stamped far from the time it arrived is kept, but marked.

A PLC whose clock jumped a day ahead (a dead RTC battery, a wrong time zone, a technician testing)
sends readings that would otherwise look like the newest data for ever: repeat suppression would
drop every honest reading after them and "now" on the dashboard would jump a day ahead. The guard
compares each reading's timestamp with the receive time: one later than ``future_s`` (default 10
minutes) or, when ``past_s`` is set, earlier than that, is stored as it came but with the quality
``BAD_TIMESTAMP``, so nothing is lost and nothing downstream trusts its time. Each tag that starts
sending implausible stamps is reported once (until it sends plausible ones again).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from axline.batch import BAD_TIMESTAMP, NS_PER_S, Batch

DEFAULT_FUTURE_S = 600.0


class TimestampGuard:
    """Flags readings whose timestamp is too far from their arrival (a wrong machine clock)."""
    def __init__(self, future_s: float = DEFAULT_FUTURE_S, past_s: float | None = None,
                 on_event: Callable[[str, str, str, dict], None] | None = None, max_tags: int = 100_000) -> None:
        if not future_s > 0:
            raise ValueError(f"timestamps.future_s must be > 0 seconds, got {future_s!r}")
        if past_s is not None and not past_s > 0:
            raise ValueError(f"timestamps.past_s must be > 0 seconds or unset, got {past_s!r}")
        self.future_ns = int(future_s * NS_PER_S)
        self.past_ns = None if past_s is None else int(past_s * NS_PER_S)
        self.on_event = on_event
        self.flagged = 0
        self.flagged_by_tag: dict[str, int] = {}
        self._bad_tags: set[str] = set()  # tags currently sending implausible stamps (reported once)
        self.max_tags = max_tags

    def check(self, batch: Batch, now_ns: int) -> Batch:
        """``batch`` with implausible readings marked BAD_TIMESTAMP (a new batch; the input is not changed)."""
        if not len(batch):
            return batch
        bad = batch.ts > now_ns + self.future_ns
        if self.past_ns is not None:
            bad |= batch.ts < now_ns - self.past_ns
        if not bad.any():
            if self._bad_tags:
                for j in np.unique(batch.idx).tolist():
                    self._bad_tags.discard(batch.paths[j])
            return batch
        q = batch.quality.copy()
        q[bad] = BAD_TIMESTAMP
        self.flagged += int(bad.sum())
        counts = np.bincount(batch.idx[bad], minlength=len(batch.paths))
        good_tags = set(np.unique(batch.idx[~bad]).tolist())
        for j, c in enumerate(counts.tolist()):
            p = batch.paths[j]
            if c:
                if p in self.flagged_by_tag or len(self.flagged_by_tag) < self.max_tags:
                    self.flagged_by_tag[p] = self.flagged_by_tag.get(p, 0) + c
                if p not in self._bad_tags and len(self._bad_tags) < self.max_tags:
                    self._bad_tags.add(p)
                    worst = int(batch.ts[bad & (batch.idx == j)].max())
                    skew_s = (worst - now_ns) / NS_PER_S
                    if self.on_event is not None:
                        self.on_event(
                            "system.clock_implausible", "warning",
                            f"{p}: reading stamped {skew_s:+.0f} s from the time it arrived; stored with quality "
                            f"'bad_timestamp'. Check the clock of the machine that sends it (NTP, RTC battery, "
                            f"time zone)", {"tag": p, "skew_s": round(skew_s, 3), "tags": [p]})
            elif j in good_tags:
                self._bad_tags.discard(p)
        return Batch(batch.paths, batch.idx, batch.ts, batch.value, q)

    def status(self) -> dict:
        """Flagged readings, tags now implausible and the limits for health."""
        return {"flagged_readings": self.flagged, "tags_now_implausible": sorted(self._bad_tags)[:50],
                "future_s": self.future_ns / NS_PER_S,
                "past_s": None if self.past_ns is None else self.past_ns / NS_PER_S}
