"""The plants an optimiser loop runs against: the running service (historian, audited writes, event
log) and an in-process virtual line (benchmarks and tests), both behind :class:`PlantIO`."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

import numpy as np

from axline.historian import Event
from axline.optimize.metrics import NS, Series


class PlantIO(Protocol):
    """What the optimiser needs of a plant: time, readings, history, writes, events and waiting."""
    def now_ns(self) -> int:
        """Plant time in ns since the epoch."""
    def latest(self, tags: list[str]) -> dict[str, float]:
        """The newest value of each of ``tags``."""
    async def series(self, tags: list[str], start: int, end: int) -> dict[str, Series]:
        """Good readings of ``tags`` between ``start`` and ``end`` as (timestamps, values)."""
    async def write(self, tag: str, value: float, user: str) -> None:
        """Write ``value`` to ``tag`` on behalf of ``user`` (audited)."""
    def record(self, event: Event) -> None:
        """Store ``event``."""
    async def sleep_until(self, t_ns: int) -> None:
        """Wait until plant time reaches ``t_ns``."""


class ServiceIO:
    """The running service: latest values, the historian, the audited write path, the event log."""

    def __init__(self, service: Any, tags: list[str] | None = None) -> None:
        self.service = service
        self.tags = list(tags or [])

    def now_ns(self) -> int:
        """The plant time of the unit's own readings (a simulator or a gateway may run its own clock)."""
        stamps = [v[0] for v in (self.service.latest.get(t) for t in self.tags) if v is not None]
        return int(max(stamps)) if stamps else int(self.service.now_ns())

    def latest(self, tags: list[str]) -> dict[str, float]:
        """The newest value of each of ``tags`` from the running service."""
        out = {}
        for t in tags:
            v = self.service.latest.get(t)
            if v is not None:
                out[t] = float(v[1])
        return out

    async def series(self, tags: list[str], start: int, end: int) -> dict[str, Series]:
        """Good readings of ``tags`` from the historian, read off the loop."""
        h = self.service.historian
        got = await asyncio.get_running_loop().run_in_executor(None, h.query, tags, start, end)
        return {p: (s.ts[s.quality == 0], s.value[s.quality == 0]) for p, s in got.items()}

    async def write(self, tag: str, value: float, user: str) -> None:
        """Write through the service (audited with ``user``)."""
        await self.service.write_tag(tag, value, user)

    def record(self, event: Event) -> None:
        """Emit ``event`` through the service."""
        self.service.emit_event(event)

    async def sleep_until(self, t_ns: int) -> None:
        """Wait until the readings' clock reaches ``t_ns``."""
        while self.now_ns() < t_ns:  # plant time: the readings' clock, whatever the simulator's speed
            await asyncio.sleep(0.1)


class SimIO:
    """An in-process virtual line as the plant: it advances only while the loop waits."""

    def __init__(self, line: Any, keep_s: float = 4 * 3600.0, step_s: float = 60.0) -> None:
        self.line = line
        self.keep_ns = int(keep_s * NS)
        self.step_s = step_s
        self.events: deque[Event] = deque(maxlen=10_000)
        self.writes: deque[tuple[int, str, float, str]] = deque(maxlen=10_000)
        self._chunks: deque[Any] = deque()
        self._latest = dict(line.current_values())

    def now_ns(self) -> int:
        """The simulated line's time."""
        return int(self.line.now_ns)

    def advance(self, seconds: float) -> None:
        """Run the simulated line ``seconds`` ahead, keeping a bounded window of readings."""
        n = max(1, int(round(seconds / self.step_s)))
        for _ in range(n):
            b = self.line.step(self.step_s)
            self._chunks.append(b)
        self._latest = dict(self.line.current_values())
        while self._chunks and self._chunks[0].ts.size and self._chunks[0].ts[-1] < self.now_ns() - self.keep_ns:
            self._chunks.popleft()

    def latest(self, tags: list[str]) -> dict[str, float]:
        """The newest simulated value of each of ``tags``."""
        return {t: float(self._latest[t]) for t in tags if t in self._latest}

    async def series(self, tags: list[str], start: int, end: int) -> dict[str, Series]:
        """Good simulated readings of ``tags`` between ``start`` and ``end``."""
        idx = {self.line.paths.index(t): t for t in tags if t in self.line.paths}
        out: dict[str, list] = {t: [[], []] for t in idx.values()}
        for b in self._chunks:
            if not b.ts.size or b.ts[-1] < start or b.ts[0] >= end:
                continue
            m0 = (b.ts >= start) & (b.ts < end) & (b.quality == 0)
            for i, t in idx.items():
                m = m0 & (b.idx == i)
                out[t][0].append(b.ts[m])
                out[t][1].append(b.value[m])
        return {t: (np.concatenate(a) if a else np.zeros(0, np.int64), np.concatenate(v) if v else np.zeros(0))
                for t, (a, v) in out.items()}

    async def write(self, tag: str, value: float, user: str) -> None:
        """Write to the simulated line and record the write event."""
        self.writes.append((self.now_ns(), tag, value, user))
        self.line.write(tag, value)
        self._latest[tag] = float(value)
        self.record(Event(ts=self.now_ns(), kind="write", source=tag, code="write.setpoint",
                          message=f"{user} wrote {value!r} to {tag}: ok",
                          data={"user": user, "new": value, "result": "ok", "tags": [tag]}))

    def record(self, event: Event) -> None:
        """Keep ``event`` in the run's list."""
        self.events.append(event)

    async def sleep_until(self, t_ns: int) -> None:
        """Run the simulated line up to ``t_ns``."""
        if t_ns > self.now_ns():
            self.advance((t_ns - self.now_ns()) / NS)
        await asyncio.sleep(0)
