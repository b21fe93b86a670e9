"""Keeps a shift handover report in the event log at the end of every shift, per line."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from axline.historian.base import Event
from axline.report.shift import build_report, report_event, shift_ends_between

log = logging.getLogger(__name__)


MAX_PENDING = 200  # shifts waiting for their report (a week of three shifts on nine lines)


class ShiftReportKeeper:
    """Checks every ``poll_s`` whether a shift has ended since the last check and, when no report of
    that shift is in the event log yet, builds and keeps one. A shift stays pending until its report
    is stored, so a failed build (the historian away at the shift end) is tried again at the next
    check. Failures are counted and raised as a system event."""

    def __init__(self, service: Any, poll_s: float = 30.0) -> None:
        self.svc = service
        self.poll_s = poll_s
        self.last_check: int | None = None
        self.pending: dict[tuple[str, int], tuple[str, int]] = {}  # (line, shift start) -> (shift, end)
        self.kept = 0
        self.errors = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._failures: list[Exception] = []

    def status(self) -> dict[str, Any]:
        """Reports kept, errors, pending and dropped for health."""
        return {"kept": self.kept, "errors": self.errors, "last_error": self.last_error,
                "pending": len(self.pending), "dropped": self.dropped}

    def due(self) -> list[Event]:
        """Report events for shifts that ended since the last check, and for earlier ones whose report
        could not be made yet (blocking: call off the loop). A shift whose report fails to build stays
        pending; the failures are in ``self._failures`` (see :meth:`run`)."""
        plant = self.svc.plant_json()
        now = int(self.svc.now_ns())
        self._failures = []
        if self.last_check is None:  # the first check only notes where we are
            self.last_check = now
            return []
        lines = {ln["id"]: ln for ln in plant.get("lines", [])}
        for ln in lines.values():
            for name, start, end in shift_ends_between(plant, ln["id"], self.last_check, now):
                self.pending[(ln["id"], int(start))] = (name, int(end))
        self.last_check = now
        while len(self.pending) > MAX_PENDING:
            key = next(iter(self.pending))
            del self.pending[key]
            self.dropped += 1
            self._failures.append(RuntimeError(f"the report of line {key[0]}'s shift from {key[1]} was given up: "
                                               f"more than {MAX_PENDING} shift reports are waiting"))
        out = []
        for key, (name, end) in list(self.pending.items()):
            line_id, start = key
            ln = lines.get(line_id)
            if ln is None:  # the line left the plant file
                del self.pending[key]
                continue
            path = ln.get("path", line_id)
            try:
                kept = self.svc.historian.events(start=end, kinds=["report"], source_prefix=path, limit=50)
                if any(e.data.get("from") == start and e.data.get("line") == line_id for e in kept):
                    del self.pending[key]
                    continue
                rep = build_report(self.svc.historian, plant, line_id, start, end, now, name, None)
                out.append(report_event(rep, path))
            except Exception as e:  # noqa: BLE001 - stays pending; counted and raised by run()
                self._failures.append(e)
        return out

    def stored(self, event: Event) -> None:
        """``event`` (from :meth:`due`) is in the event log: its shift is done."""
        self.pending.pop((event.data.get("line"), event.data.get("from")), None)
        self.kept += 1

    async def run(self) -> None:
        """Make each shift's report when the shift ends, and retry those that failed."""
        from axline.service_events import FailureReporter, emit

        loop = asyncio.get_running_loop()
        failures = FailureReporter(self.svc, self, source="axline/reports", code="report.error", log=log)
        while True:
            failed = False
            try:
                for ev in await loop.run_in_executor(None, self.due):
                    emit(self.svc, ev)
                    self.stored(ev)
                for e in self._failures:
                    failures.failed(e, "shift report failed")
                    failed = True
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - counted, logged and raised as a system event
                failures.failed(e, "shift report failed")
                failed = True
            if failed:
                failures.raise_event(pending=len(self.pending))
            await asyncio.sleep(self.poll_s)
