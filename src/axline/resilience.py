"""What keeps `axline serve` honest under faults, wired into a Service in one place:

* the loop-stall monitor (health: the largest stall of the last minute),
* the timestamp guard (readings stamped implausibly far from their arrival are marked, not trusted),
* the disk watch (every data folder; warnings as system events; retention first when near full),
* system events from worker threads (store-and-forward outages, quarantines, refusals), written to
  the event log off the event loop and shown on the dashboard.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from typing import Any

from axline.camera_retention import CameraRetention
from axline.diskwatch import DiskWatch
from axline.eventlog import EventWriter
from axline.historian import Event
from axline.loopwatch import LoopStallMonitor
from axline.plant import SAFETY_DEFAULTS as DEFAULTS
from axline.timecheck import TimestampGuard

log = logging.getLogger(__name__)


class Safety:
    """The service's safety net: event writer, clock, disk, camera-retention and loop watches."""
    def __init__(self, service: Any) -> None:
        self.service = service
        self.config = dict(DEFAULTS)
        self.config.update(getattr(service.plant, "safety", None) or {})
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loopwatch = LoopStallMonitor()
        fut = self.config["timestamp_future_s"]
        self.timeguard = (TimestampGuard(fut, self.config["timestamp_past_s"], on_event=self.system_event)
                          if fut and fut > 0 else None)
        self.diskwatch: DiskWatch | None = None
        self.camera_retention: CameraRetention | None = None
        self.events: EventWriter | None = None
        self._count_cache: int | None = None
        self.events_raised = 0
        self.event_errors = 0
        self.retention_runs = 0
        self._pending_events = 0
        self._unwritten: deque[Event] = deque(maxlen=1000)  # events the log could not take (full disk)

    def start(self) -> list[asyncio.Task]:
        """Start the watches on the running loop; returns their tasks."""
        self.loop = asyncio.get_running_loop()
        svc = self.service
        self.events = EventWriter(lambda: self.service.historian)
        folders = {"data": os.path.join(svc.plant.base_dir, "data")}
        hist = getattr(svc.historian, "path", None)
        if hist:
            folders["historian"] = hist
        folders["spool"] = os.path.join(svc.plant.base_dir, "data", "spool")
        self.diskwatch = DiskWatch(folders, self.config["disk_warn_percent"], on_event=self.system_event,
                                   on_critical=self._on_disk_critical, after_check=self.retry_unwritten)
        tasks = [self.loopwatch.start(),
                 asyncio.create_task(self.diskwatch.run(self.config["disk_check_s"]), name="disk-watch")]
        folders = []
        for cam in svc.plant.cameras:
            if cam.source in ("folder", "sim") and cam.path:
                folders.append((svc._path(cam.path), cam.pattern))
        heat = svc._path(os.path.join("data", "heatmaps"))
        for cam in svc.plant.cameras:
            folders.append((os.path.join(heat, cam.id), "*.png"))
        if folders:
            self.camera_retention = CameraRetention(folders, self.config["camera_keep_pass_h"],
                                                    self.config["camera_keep_reject_h"], self._rejected_images)
            tasks.append(asyncio.create_task(self.camera_retention.run(), name="camera-retention"))
        tasks.append(asyncio.create_task(self._refresh_count(), name="count-refresh"))
        h = svc.historian
        if hasattr(h, "on_damage"):
            for d in h.damaged():
                self._on_damage(d)
            h.on_damage = self._on_damage
        return tasks

    # -- events and counts without blocking the loop -----------------------------------------------
    def add_event(self, event: Event) -> int:
        """Store ``event`` through the event writer (or the historian before start); returns its id."""
        if self.events is None:
            return self.service.historian.add_event(event)
        return self.events.add(event)

    def update_event(self, event_id: int, **fields: Any) -> None:
        """Change stored fields of event ``event_id``."""
        if self.events is None:
            self.service.historian.update_event(event_id, **fields)
        else:
            self.events.update(event_id, **fields)

    def readings_stored(self) -> int:
        """The historian's count: the embedded one is in memory; a server's is refreshed in a worker."""
        h = self.service.historian
        if h is None:
            return 0
        if self._count_cache is None or getattr(h, "path", None):
            return h.count()
        return self._count_cache

    async def _refresh_count(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            h = self.service.historian
            if h is not None and not getattr(h, "path", None):
                try:
                    self._count_cache = await loop.run_in_executor(None, h.count)
                except Exception as e:  # noqa: BLE001 - the server may be away; health says so elsewhere
                    log.debug("count refresh failed: %s", e)
            await asyncio.sleep(2.0)

    def close(self) -> None:
        """Blocking: let queued events reach the log (call it off the loop, before the historian closes)."""
        if self.events is not None:
            self.events.close()
            self.events = None

    def _rejected_images(self, since_ns: int) -> set[str]:
        """Image paths (and their heat maps) of rejected parts since ``since_ns``, from the event log."""
        h = self.service.historian
        out: set[str] = set()
        for ev in h.events(start=since_ns, kinds=["defect"], limit=100_000):
            p = ev.data.get("path")
            if p:
                out.add(p)
                cam = ev.data.get("camera")
                if cam:
                    stem = os.path.splitext(os.path.basename(p))[0]
                    out.add(os.path.join(self.service._path(os.path.join("data", "heatmaps")), cam, stem + ".png"))
        return out

    def _on_damage(self, d: dict) -> None:
        self.system_event("system.historian_damage", "alarm",
                          f"historian: {d['file']} offset {d['offset']} ({d['length']} bytes) is damaged: "
                          f"{d['reason']}; quarantined and kept out of every query. Run `axline historian "
                          f"verify` and restore from a backup if you have one", d)

    # -- system events ----------------------------------------------------------------------------
    def system_event(self, code: str, severity: str, message: str, data: dict | None = None) -> None:
        """Record a system event; safe from any thread, never blocks the loop (written in a worker)."""
        svc = self.service
        ev = Event(ts=time.time_ns(), kind="system", source=svc.system_prefix, code=code, severity=severity,
                   message=message, data=dict(data or {}))
        self.events_raised += 1
        loop = self.loop
        if loop is None or loop.is_closed():
            self._write(ev)
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._schedule(ev)
        else:
            try:
                loop.call_soon_threadsafe(self._schedule, ev)
            except RuntimeError:  # the loop closed meanwhile
                self._write(ev)

    def _schedule(self, ev: Event) -> None:
        if self._pending_events > 1000:  # bounded: a storm of events must not pile up tasks
            self.event_errors += 1
            return
        self._pending_events += 1
        fut = self.loop.run_in_executor(None, self._write, ev)
        fut.add_done_callback(lambda f, ev=ev: self._written(f, ev))

    def _written(self, fut: asyncio.Future, ev: Event) -> None:
        self._pending_events -= 1
        if fut.exception() is None and ev.id is not None:
            self.service._push({"type": "event", "event": ev.to_json()})

    def _write(self, ev: Event) -> None:
        h = self.service.historian
        if h is None:
            return
        try:
            while self._unwritten:  # older events first, once the log takes writes again
                h.add_event(self._unwritten[0])
                self._unwritten.popleft()
            h.add_event(ev)
        except Exception as e:  # noqa: BLE001 - the event log may be on the full disk itself
            self.event_errors += 1
            if len(self._unwritten) == self._unwritten.maxlen:
                log.error("system events: %d unwritten, dropping the oldest", len(self._unwritten))
            if ev.id is None and ev not in self._unwritten:
                self._unwritten.append(ev)
            log.error("cannot record system event %s (%s): %s; kept to retry", ev.code, e, ev.message)

    def retry_unwritten(self) -> None:
        """Write one system event that could not be written before."""
        if self._unwritten and self.service.historian is not None:
            ev = self._unwritten.pop()
            self._write(ev)

    # -- disk pressure ---------------------------------------------------------------------------
    def _on_disk_critical(self, folder: str, usage: dict) -> None:
        """Runs in the disk watch's worker thread: apply retention by data time, if configured."""
        h = self.service.historian
        if not self.config["retention_on_disk_full"] or h is None:
            return
        apply = getattr(h, "apply_retention", None)
        if apply is None or getattr(h, "retention_days", None) is None:
            return
        dropped = apply()
        self.retention_runs += 1
        if dropped:
            self.system_event("system.retention_freed", "info",
                              f"the disk of {usage['path']} is nearly full: retention dropped {dropped} readings "
                              f"older than {h.retention_days:g} days (data time)", {"readings": dropped})

    def warnings(self) -> list[str]:
        """What needs a person now, in one list (health shows it first)."""
        out = []
        svc = self.service
        for name, fwd in (("store", svc.forward), ("uplink", svc.uplink)):
            if fwd is None:
                continue
            if not fwd.online:
                out.append(f"{name}: destination unavailable ({fwd.last_error}); buffering")
            if fwd.quarantined:
                out.append(f"{name}: {fwd.quarantined} batch(es) quarantined in {fwd.quarantine_dir}")
            if fwd.refused:
                out.append(f"{name}: {fwd.refused} readings refused (destination and buffer full)")
        if self.diskwatch is not None:
            for folder, u in self.diskwatch.usage.items():
                if u.get("level"):
                    out.append(f"disk of {folder} is {u['used_percent']}% full")
        stall = self.loopwatch.max_stall_ms()
        if stall > 200:
            out.append(f"the service stalled {stall:.0f} ms in the last minute")
        damaged = len(getattr(svc.historian, "_damaged", ()) or ())
        if damaged:
            out.append(f"historian: {damaged} damaged record(s) quarantined; run `axline historian verify`")
        if self.timeguard is not None and self.timeguard._bad_tags:
            out.append(f"{len(self.timeguard._bad_tags)} tag(s) send implausible timestamps")
        return out

    def status(self) -> dict:
        """Warnings, loop, timestamps, disk, retention and event-log state for health."""
        return {"warnings": self.warnings(), "loop": self.loopwatch.status(),
                "timestamps": self.timeguard.status() if self.timeguard else None,
                "disk": self.diskwatch.status() if self.diskwatch else None,
                "camera_retention": self.camera_retention.status() if self.camera_retention else None,
                "historian_damaged": len(getattr(self.service.historian, "_damaged", ()) or ()),
                "event_log": self.events.status() if self.events else None,
                "system_events": self.events_raised, "system_event_errors": self.event_errors,
                "system_events_unwritten": len(self._unwritten),
                "retention_runs_on_disk_full": self.retention_runs}


