"""Keeps a shift handover report in the event log at the end of every shift, per line."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from axline.historian.base import Event
from axline.report.shift import build_report, report_event, shift_ends_between

log = logging.getLogger(__name__)


class ShiftReportKeeper:
    """Checks every ``poll_s`` whether a shift has ended since the last check and, when no report of
    that shift is in the event log yet, builds and keeps one. Failures are counted and raised as a
    system event."""

    def __init__(self, service: Any, poll_s: float = 30.0) -> None:
        self.svc = service
        self.poll_s = poll_s
        self.last_check: int | None = None
        self.kept = 0
        self.errors = 0
        self.last_error: str | None = None

    def status(self) -> dict[str, Any]:
        return {"kept": self.kept, "errors": self.errors, "last_error": self.last_error}

    def due(self) -> list[Event]:
        """Report events for shifts that ended since the last check (blocking: call off the loop)."""
        plant = self.svc.plant_json()
        now = int(self.svc.now_ns())
        if self.last_check is None:  # the first check only notes where we are
            self.last_check = now
            return []
        t0, self.last_check = self.last_check, now
        out = []
        for ln in plant.get("lines", []):
            for name, start, end in shift_ends_between(plant, ln["id"], t0, now):
                kept = self.svc.historian.events(start=end, kinds=["report"], source_prefix=ln.get("path", ln["id"]),
                                                 limit=50)
                if any(e.data.get("from") == start and e.data.get("line") == ln["id"] for e in kept):
                    continue
                rep = build_report(self.svc.historian, plant, ln["id"], start, end, now, name, None)
                out.append(report_event(rep, ln.get("path", ln["id"])))
        return out

    async def run(self) -> None:
        from axline.service_events import emit

        loop = asyncio.get_running_loop()
        failed_at = 0.0
        while True:
            try:
                for ev in await loop.run_in_executor(None, self.due):
                    emit(self.svc, ev)
                    self.kept += 1
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - counted, logged and raised as a system event
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"[:300]
                log.exception("shift report failed")
                if time.monotonic() - failed_at > 60:
                    failed_at = time.monotonic()
                    try:
                        emit(self.svc, Event(ts=int(self.svc.now_ns()), kind="info", source="axline/reports",
                                             code="report.error", severity="warning", message=self.last_error,
                                             data={"errors": self.errors}))
                    except Exception:  # noqa: BLE001 - the historian itself is failing; counted above
                        log.exception("could not record the report failure as an event")
            await asyncio.sleep(self.poll_s)
