"""Prometheus text exposition of what the service and the web app are doing (``GET /metrics``, API token).

Readings in (per connector) and out (stored, forwarded), spool depth, event-loop stall, inspection
latency, alarms, and the security counters (refused hosts, cross-site refusals, failed logins, rate
limiting, live streams, audit trail size).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

LOOP_KEY: web.AppKey[Any] = web.AppKey("loop_monitor", object)


class LoopMonitor:
    """How late the event loop wakes up: the largest stall since start and over the last minute."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.max_stall_s = 0.0
        self.recent_stall_s = 0.0
        self._recent: list[tuple[float, float]] = []
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        """Measure how late the event loop wakes up, forever (the stall is kept for metrics)."""
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(self.interval_s)
            stall = max(0.0, time.monotonic() - t0 - self.interval_s)
            now = time.monotonic()
            self.max_stall_s = max(self.max_stall_s, stall)
            self._recent = [(t, s) for t, s in self._recent if now - t < 60][-480:] + [(now, stall)]
            self.recent_stall_s = max(s for _, s in self._recent)


async def start_loop_monitor(app: web.Application) -> None:
    """Start the loop monitor of ``app`` (an ``on_startup`` hook)."""
    mon = app[LOOP_KEY]
    mon.task = asyncio.get_running_loop().create_task(mon.run(), name="loop-monitor")


async def stop_loop_monitor(app: web.Application) -> None:
    """Stop the loop monitor of ``app`` (an ``on_cleanup`` hook)."""
    mon = app[LOOP_KEY]
    if mon.task is not None:
        mon.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mon.task


def _esc(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._seen: set[str] = set()

    def add(self, name: str, value: Any, help_: str, type_: str = "gauge", **labels: Any) -> None:
        if value is None:
            return
        try:
            v = float(value)
        except (TypeError, ValueError):
            return
        if name not in self._seen:
            self._seen.add(name)
            self.lines.append(f"# HELP {name} {help_}")
            self.lines.append(f"# TYPE {name} {type_}")
        lab = ",".join(f'{k}="{_esc(x)}"' for k, x in labels.items())
        self.lines.append(f"{name}{{{lab}}} {v:g}" if lab else f"{name} {v:g}")


def prometheus_text(app: web.Application) -> str:
    """The service's metrics in the Prometheus text format."""
    from axline.app.security import SECURITY_KEY

    out = _Out()
    svc = app.get(_service_key())
    for name, conn in (getattr(svc, "connectors", None) or {}).items():
        out.add("axline_connector_readings_total", getattr(conn, "readings", None), "readings received",
                "counter", connector=name)
        out.add("axline_connector_up", 1 if getattr(conn, "state", "") == "connected" else 0,
                "1 when the connector is connected", connector=name)
    out.add("axline_repeats_dropped_total", getattr(svc, "repeats_dropped", None), "repeated readings dropped",
            "counter")
    out.add("axline_store_errors_total", getattr(svc, "store_errors", None), "historian write failures", "counter")
    out.add("axline_images_received_total", getattr(svc, "images_received", None), "camera images", "counter")
    for which in ("forward", "uplink"):
        fwd = getattr(svc, which, None)
        if fwd is not None:
            st = fwd.status()
            out.add("axline_spool_batches", st.get("spooled_batches"), "batches waiting in the spool", spool=which)
            out.add("axline_spool_bytes", st.get("spool_bytes"), "bytes waiting in the spool", spool=which)
            out.add("axline_spool_fill_ratio", st.get("spool_fill"), "spool fill (0..1)", spool=which)
    pub = getattr(svc, "publisher", None)
    out.add("axline_uplink_messages_total", getattr(pub, "messages", None), "messages sent to the central broker",
            "counter")
    for cid, st in (getattr(svc, "vision", None) or {}).items():
        with contextlib.suppress(Exception):
            s = st.status()
            lat = s.get("latency_ms") or {}
            out.add("axline_inspection_latency_ms", lat.get("p50"), "image to PLC signal latency", camera=cid,
                    quantile="0.5")
            out.add("axline_inspection_latency_ms", lat.get("p99"), "image to PLC signal latency", camera=cid,
                    quantile="0.99")
            for verdict, n in (s.get("counts") or {}).items():
                out.add("axline_inspections_total", n, "inspections by verdict", "counter", camera=cid,
                        verdict=verdict)
    open_alarms = getattr(svc, "_open_alarms", None)
    if isinstance(open_alarms, dict):
        out.add("axline_alarms_open", sum(len(v) for v in open_alarms.values()), "alarms open now")
    mon = app.get(LOOP_KEY)
    if mon is not None:
        out.add("axline_loop_stall_seconds_max", mon.max_stall_s, "largest event-loop stall since start")
        out.add("axline_loop_stall_seconds_recent", mon.recent_stall_s, "largest event-loop stall, last minute")
    sec = app.get(SECURITY_KEY)
    if sec is not None:
        for k, v in sorted(sec.counters.items()):
            out.add("axline_security_events_total", v, "security refusals and logins", "counter", kind=k)
        out.add("axline_sessions", len(sec.sessions), "logged-in sessions")
        out.add("axline_streams", sum(sec.streams.values()), "open live streams")
        st = sec.audit.status()
        out.add("axline_audit_bytes", st["bytes"], "size of the audit trail")
        out.add("axline_audit_used_ratio", st["used"], "audit trail size over its budget")
        out.add("axline_audit_failures_total", st["failures"], "audit writes that failed", "counter")
    return "\n".join(out.lines) + "\n"


def _service_key():
    from axline.app.http import SERVICE_KEY

    return SERVICE_KEY
