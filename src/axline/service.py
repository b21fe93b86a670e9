"""`axline serve`: connectors -> bus -> historian, monitors, KPIs, inspection hook, web dashboard."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from axline import i18n
from axline.batch import BAD_TIMESTAMP, Batch
from axline.bus import Bus
from axline.camera import FolderSource, OpenCVSource
from axline.connect import registry
from axline.connect.base import CONNECTED, Connector
from axline.historian import Event, Historian, open_historian
from axline.kpi import STATE_NAMES, LineKpiTracker
from axline.loopwatch import warm_default_executor
from axline.monitor.baseline import AssetBaseline, monitors_for_plant
from axline.plant import Plant
from axline.resilience import Safety
from axline.service_vision import VisionStations
from axline.spool import DiskSpool, SpoolFullError, StoreAndForward, StoreRefusedError

log = logging.getLogger(__name__)

# An inspector hook: (camera id, image path, image) -> dict with at least "score" and "verdict"
InspectHook = Callable[[str, Path, np.ndarray], dict[str, Any]]


class Service(VisionStations):
    """Everything `axline serve` runs, in one asyncio loop."""

    def __init__(self, plant: Plant, *, host: str = "127.0.0.1", port: int = 8000,
                 admin_password: str | None = None, broadcast_s: float = 0.5,
                 monitor_params: dict[str, Any] | None = None, security: Any = None,
                 ssl_context: Any = None) -> None:
        if admin_password is not None:
            raise TypeError("the shared admin password is gone: add people with `axline users add NAME --role ROLE`")
        self.plant = plant
        self.host, self.port = host, port
        # axline.app.security.Security, or its SecuritySettings (accounts and audit then live in data/)
        self.security = security
        self.ssl_context = ssl_context
        self.broadcast_s = broadcast_s
        self.monitor_params = monitor_params or {}
        self.historian: Historian | None = None
        self.bus = Bus()
        self.connectors: dict[str, Connector] = {}
        self.kpi = {ln.id: LineKpiTracker(ln, plant.timezone) for ln in plant.lines}
        self.monitors: dict[str, AssetBaseline] = {}
        self.latest: dict[str, tuple[int, float, int]] = {}
        self._dirty: set[str] = set()
        self._subscribers: set[asyncio.Queue] = set()
        self._tasks: list[asyncio.Task] = []
        self._open_alarms: dict[str, set[int]] = {}
        self._event_source: dict[int, str] = {}
        self.cameras: dict[str, FolderSource | OpenCVSource] = {}
        self._triggers: dict[str, tuple[OpenCVSource, float]] = {}  # trigger tag -> (source, last value)
        self.inspect_hooks: dict[str, InspectHook] = {}
        self.vision: dict[str, Any] = {}  # camera id -> VisionStation
        self.images_received = 0
        self.started_wall = time.time()
        self.runner = None
        self.url: str | None = None
        self.forward: StoreAndForward | None = None
        self.uplink: StoreAndForward | None = None
        self.publisher = None
        self.repeats_dropped = 0
        self._last_good: dict[str, int] = {}
        self.store_errors = 0
        self.system_prefix = f"{plant.site}/{plant.area}/axline"
        self.safety = Safety(self)
        self.knowhow = None  # axline.knowhow.live.KnowHowLive: cases suggested for each new alarm
        self.operating = None  # axline.knowhow.operating_live.OperatingKnowHow: advice learnt from audited moves
        self.workers: dict[str, Any] = {}  # background workers whose failures health shows (register_worker)

    # -- life cycle -----------------------------------------------------------------------------
    def _open_security(self) -> None:
        from axline.app.security import Security, SecuritySettings

        if not isinstance(self.security, Security):
            settings = self.security if isinstance(self.security, SecuritySettings) else SecuritySettings()
            settings.bind_host = self.host
            settings.tls = settings.tls or self.ssl_context is not None
            self.security = Security.for_dir(self.plant.base_dir, settings)
        trail = self.security.audit
        trail.on_warning = trail.on_warning or (lambda m: self._audit_event("audit.capacity", "warning", m))
        trail.on_failure = trail.on_failure or (lambda m: self._audit_event("audit.failing", "alarm", m))
        try:
            self._audit_loop = asyncio.get_running_loop()
        except RuntimeError:
            self._audit_loop = None

    def _audit_event(self, code: str, severity: str, message: str) -> None:
        """A system event about the audit trail; the trail calls this from a worker thread."""
        def emit() -> None:
            self.emit_event(Event(ts=time.time_ns(), kind="system", source=self.system_prefix, code=code,
                                  severity=severity, message=message))

        loop = getattr(self, "_audit_loop", None)
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(emit)
        else:
            emit()

    async def audit(self, who: str, action: str, target: str = "", **kw: Any) -> dict:
        """Append to the audit trail (who, what, target, old/new, result, from where); see axline.app.audit."""
        if not hasattr(self.security, "audit"):
            self._open_security()
        return await self.security.audit.arecord(who, action, target, **kw)

    async def start(self, web: bool = True) -> None:
        """Open the historian, start connectors, monitors, inspectors, keepers and (when ``web``) the web
        server."""
        self._open_security()
        await warm_default_executor()
        # opening replays the newest segment (a torn tail after a crash), reads the tag directory and
        # scans the spool: file work, done in a worker so the loop stays free for whoever else runs on it
        self.historian, latest, spool = await asyncio.get_running_loop().run_in_executor(None, self._open_store)
        self.latest.update({p: v for p, v in latest.items() if v[2] != BAD_TIMESTAMP})
        self._last_good = {p: v[0] for p, v in self.latest.items() if v[2] == 0}
        self.forward = StoreAndForward(self.historian.append, spool, retry_on=_retryable_errors(),
                                       on_event=self.safety.system_event, name="historian")
        self._tasks.extend(self.safety.start())
        self._tasks.append(asyncio.create_task(self.forward.run(), name="store-and-forward"))
        self.bus.subscribe("historian", self._store)
        self.bus.subscribe("latest", self._track_latest)
        self.bus.subscribe("kpi", self._update_kpis)
        self._setup_monitors()
        self.bus.subscribe("monitors", self._update_monitors)
        for cfg in self.plant.connectors:
            cls = registry.connector_class(cfg.type)
            options = dict(cfg.options)
            # files and folders in the plant file are relative to the plant file
            for key in ("dead_letter_dir", "certificate", "private_key", "server_certificate"):
                if options.get(key) and not os.path.isabs(options[key]):
                    options[key] = os.path.join(self.plant.base_dir, options[key])
            conn = cls(cfg.name, options, self.plant.connector_tags(cfg.name))
            conn.on_state = self._connector_state
            self.connectors[cfg.name] = conn
            self._tasks.append(asyncio.create_task(conn.run(self.ingest), name=f"connector-{cfg.name}"))
        self._setup_vision()
        for cam in self.plant.cameras:
            if cam.source == "folder" or cam.source == "sim":
                folder = cam.path if os.path.isabs(cam.path or "") else os.path.join(self.plant.base_dir, cam.path or "")
                # with an inspector the conveyor waits on us: look for new images more often
                src = FolderSource(cam.id, folder, cam.pattern, poll_s=0.02 if cam.id in self.vision else 0.1)
                await asyncio.get_running_loop().run_in_executor(None, src.prime)
                self.cameras[cam.id] = src
                self._tasks.append(asyncio.create_task(src.run(self._on_image), name=f"camera-{cam.id}"))
            elif cam.source == "opencv":
                src = OpenCVSource(cam.id, cam.device, self._path(os.path.join("data", "frames", cam.id)),
                                   interval_s=cam.interval_s)
                self.cameras[cam.id] = src
                if cam.trigger_tag:
                    self._triggers[cam.trigger_tag] = (src, 0.0)
                self._tasks.append(asyncio.create_task(src.run(self._on_image), name=f"camera-{cam.id}"))
        if self._triggers:
            self.bus.subscribe("camera-triggers", self._check_triggers)
        self._tasks.append(asyncio.create_task(self._broadcast_loop(), name="broadcast"))
        if self.vision:
            self._tasks.append(asyncio.create_task(self._camera_watchdog(), name="camera-watchdog"))
        from axline.knowhow.live import KnowHowLive

        self.knowhow = KnowHowLive.for_service(self)
        self._tasks.append(asyncio.create_task(self.knowhow.start(), name="knowhow"))
        from axline.knowhow.operating_live import OperatingKnowHow

        self.operating = OperatingKnowHow.for_service(self)
        if web:
            await self._start_web()

    def _open_store(self) -> tuple[Historian, dict, DiskSpool]:
        """Blocking: the historian, its newest reading per tag and the store-and-forward spool."""
        historian = open_historian(self.plant.historian, base_dir=self.plant.base_dir)
        try:
            latest = historian.latest()
            spool = DiskSpool(os.path.join(self.plant.base_dir, "data", "spool", "historian"))
        except BaseException:
            historian.close()
            raise
        return historian, latest, spool

    async def _start_web(self) -> None:
        from aiohttp import web

        from axline.app.routes import document_static
        from axline.app.server import create_app

        self.security.check_bind()
        app = create_app(self, security=self.security)
        # heat maps and camera images for the inspection views (behind the same login)
        heat = self._path(os.path.join("data", "heatmaps"))
        os.makedirs(heat, exist_ok=True)
        app.router.add_static("/heatmaps/", heat, show_index=False)
        for cam in self.plant.cameras:
            if cam.path and os.path.isdir(self._path(cam.path)):
                app.router.add_static(f"/camera/{cam.id}/", self._path(cam.path), show_index=False)
        document_static("/heatmaps", "viewer")
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        port = self.port
        if port == 0:
            port = self.runner.addresses[0][1]
            self.port = port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if self.ssl_context is not None else 'http'}://{host}:{port}/"

    async def stop(self) -> None:
        """Stop connectors and workers, flush the store-and-forward queues and close the historian."""
        for conn in self.connectors.values():
            conn.stop()
        loop = asyncio.get_running_loop()
        for fwd in (self.forward, self.uplink):
            if fwd is not None:
                await loop.run_in_executor(None, fwd.close)
        if self.publisher is not None:
            self.publisher.stop()
        for cam in self.cameras.values():
            cam.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await loop.run_in_executor(None, self.safety.close)
        if self.knowhow is not None:
            self.knowhow.close()
        if self.historian is not None:
            self.historian.close()
            self.historian = None

    # -- data path ------------------------------------------------------------------------------
    def ingest(self, batch: Batch) -> None:
        """Entry of every batch from a connector: drop readings already seen, then publish."""
        guard = self.safety.timeguard
        if guard is not None:
            batch = guard.check(batch, time.time_ns())
        self.bus.publish(self._drop_seen(batch))

    def _drop_seen(self, batch: Batch) -> Batch:
        """A reading not newer than the newest stored for its tag is a repeat (an OPC UA initial value
        after a reconnect, an MQTT redelivery, a batch an edge sent again): count it and drop it."""
        if not len(batch):
            return batch
        # compared with the newest *good* reading: a status marker stamped with the PC's clock (a tag
        # that could not be subscribed, say) must not hide real readings on the machine's clock
        last = np.array([self._last_good.get(p, -(2**62)) for p in batch.paths], dtype=np.int64)
        keep = (batch.ts > last[batch.idx]) | (batch.quality != 0)
        if len(batch) > 1:  # the same reading twice in one batch (a redelivery gathered with the original)
            o = np.lexsort((batch.ts, batch.idx))
            same = (batch.idx[o][1:] == batch.idx[o][:-1]) & (batch.ts[o][1:] == batch.ts[o][:-1])
            if same.any():
                keep[o[1:][same & (batch.quality[o][1:] == 0)]] = False
        if keep.all():
            return batch
        self.repeats_dropped += int(len(keep) - keep.sum())
        return batch.select(keep)

    def _store(self, batch: Batch) -> None:
        try:
            self.forward.put(batch)
        except (SpoolFullError, StoreRefusedError):
            self.store_errors += 1
            raise

    def _track_latest(self, batch: Batch) -> None:
        # last reading per tag in this batch (batches are small; vectorised per distinct tag)
        if (batch.quality == BAD_TIMESTAMP).any():  # stored, but its time is not to be trusted
            batch = batch.select(batch.quality != BAD_TIMESTAMP)
            if not len(batch):
                return
        order = np.argsort(batch.ts, kind="stable")
        idx = batch.idx[order]
        last_pos = np.full(len(batch.paths), -1)
        last_pos[idx] = order  # later assignments win: the newest reading of each tag
        for j, pos in enumerate(last_pos.tolist()):
            if pos < 0:
                continue
            path = batch.paths[j]
            t = int(batch.ts[pos])
            prev = self.latest.get(path)
            if prev is None or t >= prev[0]:
                self.latest[path] = (t, float(batch.value[pos]), int(batch.quality[pos]))
                self._dirty.add(path)
        good = batch.quality == 0  # only readings fully trusted, timestamps included
        if good.any():
            g_idx, g_ts = batch.idx[good], batch.ts[good]
            newest = np.full(len(batch.paths), -(2**62), dtype=np.int64)
            np.maximum.at(newest, g_idx, g_ts)
            for j in np.flatnonzero(newest > -(2**62)).tolist():
                path = batch.paths[j]
                if newest[j] > self._last_good.get(path, -(2**62)):
                    self._last_good[path] = int(newest[j])

    def _check_triggers(self, batch: Batch) -> None:
        """A trigger tag going from 0 to 1 (part in place) grabs a frame from its camera."""
        for j, path in enumerate(batch.paths):
            if path not in self._triggers:
                continue
            src, last = self._triggers[path]
            sel = batch.idx == j
            for v in batch.value[sel][np.argsort(batch.ts[sel], kind="stable")].tolist():
                if v == v:
                    if v >= 0.5 > last:
                        src.trigger()
                    last = v
            self._triggers[path] = (src, last)

    def _update_kpis(self, batch: Batch) -> None:
        for tracker in self.kpi.values():
            tracker.update(batch)

    def _setup_monitors(self) -> None:
        self.monitors = monitors_for_plant(self.plant, self.emit_event, self.update_event, **self.monitor_params)

    def _path(self, p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(self.plant.base_dir, p)

    def _update_monitors(self, batch: Batch) -> None:
        for mon in self.monitors.values():
            mon.update(batch)

    def _connector_state(self, conn: Connector) -> None:
        """Connection state is a tag too (1 connected, 0 not), so gaps are visible in history."""
        path = f"{self.system_prefix}/connectors/{conn.name}/connected"
        self.bus.publish(Batch([path], np.zeros(1), np.array([time.time_ns()]),
                               np.array([1.0 if conn.state == CONNECTED else 0.0])))
        self._push({"type": "status", **self.status_json()})

    # -- events ---------------------------------------------------------------------------------
    def emit_event(self, event: Event) -> int:
        """Store ``event``, tell the live pages and the know-how watcher; returns its id."""
        eid = self.safety.add_event(event)
        self._emitted(eid, event)
        return eid

    async def aemit_event(self, event: Event) -> int:
        """``emit_event`` with the event log's write in a worker: the loop never waits on the log."""
        eid = await asyncio.get_running_loop().run_in_executor(None, self.safety.add_event, event)
        self._emitted(eid, event)
        return eid

    def _emitted(self, eid: int, event: Event) -> None:
        if event.kind == "alarm" and event.end_ts is None:
            self._open_alarms.setdefault(event.source, set()).add(eid)
            self._event_source[eid] = event.source
        self._push({"type": "event", "event": event.to_json()})
        if self.knowhow is not None and event.kind == "alarm" and event.end_ts is None:
            self.knowhow.on_alarm(eid, event)

    def update_event(self, event_id: int, **fields: Any) -> None:
        """Change stored fields of event ``event_id`` and tell the live pages."""
        self.safety.update_event(event_id, **fields)
        self._updated(event_id, fields)

    async def aupdate_event(self, event_id: int, **fields: Any) -> None:
        """``update_event`` with the event log's write in a worker."""
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self.safety.update_event, event_id, **fields))
        self._updated(event_id, fields)

    def _updated(self, event_id: int, fields: dict[str, Any]) -> None:
        if fields.get("end_ts") is not None and event_id in self._event_source:
            self._open_alarms.get(self._event_source.pop(event_id), set()).discard(event_id)
        self._push({"type": "event_update", "id": event_id, **{k: v for k, v in fields.items() if k != "data"}})

    async def write_tag(self, path: str, value: float, user: str, source: str = "service") -> dict[str, Any]:
        """Write a setpoint or a signal back to its machine. Every attempt, refused ones too, lands in
        the audit trail (axline.app.audit: who, what, old, new, result, from where) and in the event
        log (kind "write"). When the audit trail cannot be written, nothing is written to the machine."""
        if not hasattr(self.security, "audit"):
            self._open_security()
        from axline.app.audit import AuditError

        audit_log = self.security.audit
        if audit_log.last_error is not None:
            raise i18n.error(AuditError, "audit.failing", error=audit_log.last_error)
        tag = self.plant.tag(path)
        old = self.latest.get(path)
        if tag is None:
            await audit_log.arecord(user, "tag.write", path, new=value, result="refused: unknown tag", source=source)
            raise i18n.error(KeyError, "err.write.tag_unknown", tag=repr(path))
        result = "ok"
        try:
            if not tag.writable:
                raise i18n.error(PermissionError, "err.write.tag_read_only", tag=path)
            if tag.source is None or tag.source.connector not in self.connectors:
                raise i18n.error(ValueError, "err.write.no_connector", tag=path)
            value = float(value)
            if not math.isfinite(value) or not (tag.lo <= value <= tag.hi):
                raise i18n.error(ValueError, "err.write.outside_range", value=repr(value), tag=path, lo=f"{tag.lo:g}",
                                 hi=f"{tag.hi:g}")
            # the trail must take the attempt before the value goes to the machine (AuditError: 503)
            await audit_log.arecord(user, "tag.write", path, old=old[1] if old else None, new=value,
                                    result="attempt", source=source)
            await self.connectors[tag.source.connector].write(tag, value)
        except Exception as e:
            result = f"{type(e).__name__}: {e}"
            if isinstance(e, AuditError):  # the attempt could not be recorded: nothing was written
                raise i18n.error(AuditError, "audit.write_refused", error=audit_log.last_error) from e
            raise
        finally:
            if audit_log.last_error is None:
                await audit_log.arecord(user, "tag.write", path, old=old[1] if old else None, new=value,
                                        result=result, source=source)
            self.emit_event(Event(ts=time.time_ns(), kind="write", source=path, code="write.setpoint",
                                  severity="info" if result == "ok" else "warning",
                                  message=f"{user} wrote {value!r} to {path}: {result}",
                                  data={"user": user, "old": old[1] if old else None, "new": value,
                                        "result": result, "tags": [path]}))
        return {"path": path, "old": old[1] if old else None, "new": value, "result": result}

    # -- the view the web app reads -------------------------------------------------------------
    def now_ns(self) -> int:
        """Plant time: the newest reading's timestamp (never far ahead of the wall clock)."""
        if self.latest:
            newest = max(v[0] for v in self.latest.values())
            guard = self.safety.timeguard
            # never ahead of the wall clock by more than the plausibility window
            return newest if guard is None else min(newest, time.time_ns() + guard.future_ns)
        return time.time_ns()

    def plant_json(self) -> dict:
        """The plant model for ``/api/plant``."""
        return self.plant.to_json()

    def status_json(self) -> dict:
        """Station states, connectors and store for ``/api/status``."""
        lines = {}
        for ln in self.plant.lines:
            stations = {}
            for asset in ln.assets:
                st = asset.tag("state")
                state = "unknown"
                if st is not None and st.path in self.latest:
                    v = self.latest[st.path][1]
                    state = STATE_NAMES.get(int(v), "unknown") if not math.isnan(v) else "unknown"
                alarms = len(self._open_alarms.get(asset.path, ()))
                conns = {t.source.connector for t in asset.tags if t.source}
                if conns and any(self.connectors.get(c) and self.connectors[c].state != CONNECTED for c in conns):
                    state = "offline"
                elif alarms:
                    state = "alarm"
                stations[asset.path] = {"state": state, "alarms": alarms}
            for station in self.vision.values():  # a camera's inspection on its station's card
                if station.camera.asset in stations:
                    stations[station.camera.asset].setdefault("vision", []).append(station.card())
            lines[ln.id] = {"state": self.kpi[ln.id].to_json()["state"], "stations": stations}
        return {"lines": lines,
                "connectors": {n: {"state": c.state, "error": c.last_error, "readings": c.readings}
                               for n, c in self.connectors.items()},
                "store": self.forward.status() if self.forward else None}

    def kpi_json(self) -> dict:
        """OEE and counts per line for ``/api/kpi``."""
        return {"lines": {lid: t.to_json() for lid, t in self.kpi.items()}}

    def health_json(self) -> dict:
        """Health of the service for ``/api/health``: connectors, store, workers, disk, clock."""
        return {"ok": self.historian is not None and all(c.state == CONNECTED for c in self.connectors.values()),
                "readings_stored": self.safety.readings_stored(),
                "uptime_s": round(time.time() - self.started_wall, 1),
                "images_received": self.images_received,
                "vision": self.vision_json()["cameras"],
                "store": self.forward.status() if self.forward else None,
                "uplink": ({**self.uplink.status(), "broker": self.publisher.status()}
                           if hasattr(self.publisher, "status") else self.uplink.status()) if self.uplink else None,
                "repeats_dropped": self.repeats_dropped,
                "store_errors": self.store_errors,
                "subscriber_errors": dict(self.bus.errors),
                "safety": self.safety.status(),
                "knowhow": self.knowhow.status() if self.knowhow is not None else None,
                "operating": self.operating.status() if self.operating is not None else None,
                "audit": self.security.audit.status() if hasattr(self.security, "audit") else None,
                "workers": {n: {"errors": w.errors, "last_error": w.last_error} for n, w in self.workers.items()},
                "connectors": {n: c.state for n, c in self.connectors.items()}}

    def subscribe(self) -> asyncio.Queue:
        """A bounded queue of live updates for one stream client."""
        q: asyncio.Queue = asyncio.Queue(maxsize=200)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        """Stop sending live updates to ``q``."""
        self._subscribers.discard(q)

    async def feedback(self, event_id: int, verdict: str, user: str) -> dict:
        """Record ``user``'s review (confirmed or overruled) of inspection ``event_id`` and teach the
        inspector."""
        if verdict not in ("confirmed", "overruled"):
            raise ValueError(f"verdict must be 'confirmed' or 'overruled', got {verdict!r}")
        ev = await asyncio.get_running_loop().run_in_executor(None, self.historian.event, event_id)
        if ev is None:
            raise KeyError(f"event {event_id} does not exist")
        if ev.kind == "alarm":  # an alarm has its life cycle, with its own audit: POST /api/alarms/{id}/ack
            raise ValueError(f"event {event_id} is an alarm; acknowledge it with POST /api/alarms/{event_id}/ack")
        learned: dict[str, Any] = {}
        station = self.vision.get(ev.data.get("camera", "")) if ev.kind in ("inspection", "defect") else None
        if station is not None and ev.ack is None:
            learned = await asyncio.get_running_loop().run_in_executor(None, station.feedback, ev.data, verdict)
            self.inspector_learnt(station, learned, user, event_id)
        self.update_event(event_id, ack=verdict, data={"feedback": {"verdict": verdict, "user": user,
                                                                     "ts": time.time_ns(),
                                                                     "learned": learned.get("learned", False)}})
        return {"id": event_id, "ack": verdict, **({"model": learned} if learned else {})}

    def _push(self, msg: dict) -> None:
        for q in list(self._subscribers):
            if q.full():
                try:
                    q.get_nowait()
                except asyncio.QueueEmpty:
                    pass
            q.put_nowait(msg)

    async def _broadcast_loop(self) -> None:
        k = 0
        while True:
            await asyncio.sleep(self.broadcast_s)
            k += 1
            if not self._subscribers:
                self._dirty.clear()
                continue
            if self._dirty:
                values = {p: list(self.latest[p]) for p in self._dirty}
                self._dirty.clear()
                self._push({"type": "latest", "ts": self.now_ns(), "values": values})
            if k % 2 == 0:
                self._push({"type": "kpi", **self.kpi_json()})
                self._push({"type": "status", **self.status_json()})


def _retryable_errors() -> tuple[type[BaseException], ...]:
    """Errors after which a historian write is worth retrying later (the server went away)."""
    errors: list[type[BaseException]] = [ConnectionError, OSError, TimeoutError]
    try:
        import psycopg

        errors.append(psycopg.OperationalError)
    except ImportError:
        pass
    return tuple(errors)
