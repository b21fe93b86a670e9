"""Background workers (SPC watcher, shift-report keeper, OPC UA publisher) show their failures in
/api/health."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from axline.plant import parse_plant
from axline.service import Service


def _plant(tmp_path):
    return parse_plant("""
plant: {site: s1, area: a1}
lines:
  - id: l1
    assets:
      - id: press
        cell: c1
        tags: [{signal: bore, unit: mm, spec: {lsl: 24.9, usl: 25.1}}]
""", "plant.yaml", base_dir=str(tmp_path))


async def _wait(cond, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_failing_spc_watcher_shows_in_health(tmp_path):
    svc = Service(_plant(tmp_path), port=0)
    await svc.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(svc.url + "api/health") as resp:
                health = await resp.json()
        assert health["workers"]["spc"] == {"errors": 0, "last_error": None}
        assert health["workers"]["shift_reports"] == {"errors": 0, "last_error": None}
        watcher = svc.workers["spc"]
        watcher.poll_s = 0.05

        def broken():
            raise ConnectionError("historian away")

        watcher.step = broken
        await _wait(lambda: svc.health_json()["workers"]["spc"]["errors"] >= 1)
        assert "historian away" in svc.health_json()["workers"]["spc"]["last_error"]
    finally:
        await svc.stop()


def test_a_worker_failure_is_counted_logged_and_raised_once_a_minute(caplog):
    from types import SimpleNamespace

    from axline.service_events import FailureReporter

    events = []

    class Svc:
        def now_ns(self):
            return 1

        def emit_event(self, ev):
            events.append(ev)
            return len(events)

    worker = SimpleNamespace(errors=0, last_error=None)
    failures = FailureReporter(Svc(), worker, source="axline/spc", code="spc.error",
                               log=logging.getLogger("axline.test"), every_s=3600)
    with caplog.at_level(logging.ERROR, logger="axline.test"):
        for i in range(3):
            failures.failed(ConnectionError(f"historian away {i}"), "step failed")
            failures.raise_event(pending=i)
    assert (worker.errors, worker.last_error) == (3, "ConnectionError: historian away 2")
    assert [r.exc_info[1].args[0] for r in caplog.records] == [f"historian away {i}" for i in range(3)]
    # one event for the three failures within the interval, with the count at the time
    assert [(e.code, e.source, e.severity, e.message, e.data) for e in events] == [
        ("spc.error", "axline/spc", "warning", "ConnectionError: historian away 0", {"errors": 1, "pending": 0})]
    failures.every_s = 0.0
    failures.raise_event()
    assert len(events) == 2 and events[1].data == {"errors": 3}

    class Broken(Svc):
        def emit_event(self, ev):
            raise OSError("disk full")

    with caplog.at_level(logging.ERROR, logger="axline.test"):
        FailureReporter(Broken(), worker, source="axline/spc", code="spc.error",
                        log=logging.getLogger("axline.test")).raise_event()
    assert "could not record a failure of axline/spc" in caplog.records[-1].getMessage()


async def test_a_failing_step_does_not_stop_the_worker():
    from types import SimpleNamespace

    from axline.service_events import FailureReporter

    worker = SimpleNamespace(errors=0, last_error=None)
    svc = SimpleNamespace(now_ns=lambda: 1, historian=SimpleNamespace(add_event=lambda ev: 1))
    calls = []

    async def step():
        calls.append(1)
        if len(calls) <= 2:
            raise ValueError(f"bad reading {len(calls)}")

    task = asyncio.create_task(FailureReporter(svc, worker, source="axline/spc", code="spc.error",
                                               log=logging.getLogger("axline.test")).run_forever(
        step, lambda: 0.0, "step failed"))
    await _wait(lambda: len(calls) >= 4)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and (worker.errors, worker.last_error) == (2, "ValueError: bad reading 2")
