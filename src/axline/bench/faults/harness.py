"""What every fault scenario shares: the plant, a synthetic line feeding the service, waits on
conditions, the per-scenario result and the loop-stall and dashboard probes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

TAGS = [f"bench/faults/l1/c1/m1/t{j}" for j in range(8)]
NS = 10**9



# -- shared pieces --------------------------------------------------------------------------------
def _plant(base: Path, historian: str, safety: str = "{disk_check_s: 0.2}"):
    from axline.plant import parse_plant

    return parse_plant(f"""
plant: {{site: bench, area: faults}}
historian: {historian}
safety: {safety}
lines:
  - id: l1
    assets:
      - id: m1
        cell: c1
        tags: [{", ".join(f"{{signal: t{j}}}" for j in range(len(TAGS)))}]
""", "plant.yaml", base_dir=str(base))


class Producer:
    """A synthetic line: every ``period_s`` one batch of ``n`` readings over TAGS, each reading with a
    unique timestamp (``ts0`` + its sequence number, nanoseconds), fed to ``Service.ingest``."""

    def __init__(self, svc, ts0: int, n: int = 400, period_s: float = 0.01, seq0: int = 0) -> None:
        self.svc, self.ts0, self.n, self.period_s = svc, ts0, n, period_s
        self.seq = seq0
        self.sent = 0
        self._task: asyncio.Task | None = None

    def batch(self, n: int | None = None):
        """The next batch of ``n`` synthetic readings."""
        from axline.batch import Batch

        n = n or self.n
        s = self.seq + np.arange(n)
        self.seq += n
        return Batch(TAGS, s % len(TAGS), self.ts0 + s, np.sin(s / 100.0))

    def one(self, n: int | None = None) -> int:
        """Ingest one batch into the service; returns how many readings it held."""
        b = self.batch(n)
        self.svc.ingest(b)
        self.sent += len(b)
        return len(b)

    async def _run(self) -> None:
        while True:
            self.one()
            await asyncio.sleep(self.period_s)

    def start(self) -> None:
        """Start producing in the background."""
        self._task = asyncio.create_task(self._run(), name="bench-producer")

    async def stop(self) -> None:
        """Stop producing."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def _stored_ts(h, tags=TAGS) -> np.ndarray:
    got = h.query(list(tags), 0, 2**62)
    parts = [s.ts for s in got.values() if len(s)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


async def _wait(cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.02)


def _result(name: str, acknowledged: int, lost: int, recovered: bool, stall_ms: float | None, live: bool,
            **notes: Any) -> dict:
    return {"scenario": name, "readings_acknowledged": int(acknowledged), "readings_lost": int(lost),
            "recovered": bool(recovered), "max_loop_stall_ms": stall_ms, "loop_meant_live": live, **notes}


def _stall(svc) -> float:
    return round(svc.safety.loopwatch.max_stall_s * 1000, 1)


async def _health_probe(url: str, stop: asyncio.Event, out: dict) -> None:
    """GET /api/health every 100 ms while the fault lasts; the slowest answer is the dashboard's stall."""
    import aiohttp

    worst, n, failed = 0.0, 0, 0
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                async with http.get(url + "api/health", timeout=aiohttp.ClientTimeout(total=30)) as r:
                    await r.read()
                    if r.status != 200:
                        failed += 1
            except (aiohttp.ClientError, TimeoutError):
                failed += 1
            worst = max(worst, time.monotonic() - t0)
            n += 1
            await asyncio.sleep(0.1)
    out.update({"dashboard_requests": n, "dashboard_failed": failed, "dashboard_max_ms": round(worst * 1000, 1)})


