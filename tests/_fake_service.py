"""A small ServiceView for app tests, on a real historian, with values that change over time.

Uses ``axline.historian.embedded.EmbeddedHistorian`` when it is importable, else the tiny in-memory
:class:`MemoryHistorian` below. ``FakeService.run()`` (an asyncio task) feeds readings for every tag
of the plant every ``tick_s`` seconds and puts live messages on subscriber queues.
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from axline.batch import Batch
from axline.historian.base import Buckets, Event, Historian, Series

NS = 1_000_000_000
T0 = 1_780_000_000 * NS  # a fixed plant clock start, 2026-05-28 UTC


class MemoryHistorian(Historian):
    """In-memory historian: enough of the contract for tests (not durable, not fast)."""

    def __init__(self) -> None:
        self._data: dict[str, list[tuple[int, float, int]]] = {}
        self._events: list[Event] = []

    def append(self, batch: Batch) -> int:
        for r in batch:
            self._data.setdefault(r.path, []).append((r.ts, r.value, r.quality))
        return len(batch)

    def tags(self) -> list[str]:
        return sorted(self._data)

    def _arrays(self, path: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = sorted(r for r in self._data.get(path, []) if start <= r[0] < end)
        ts = np.array([r[0] for r in rows], dtype=np.int64)
        return ts, np.array([r[1] for r in rows], dtype=float), np.array([r[2] for r in rows], dtype=np.uint8)

    def query(self, paths: Sequence[str], start: int, end: int) -> dict[str, Series]:
        return {p: Series(*self._arrays(p, start, end)) for p in paths}

    def query_buckets(self, paths: Sequence[str], start: int, end: int, step: int) -> dict[str, Buckets]:
        out = {}
        for p in paths:
            ts, v, q = self._arrays(p, start, end)
            good = q == 0
            ts, v = ts[good], v[good]
            b = (ts - start) // step
            keys = np.unique(b)
            rows = [(start + k * step, v[b == k]) for k in keys]
            out[p] = Buckets(
                np.array([r[0] for r in rows], dtype=np.int64),
                np.array([r[1].min() for r in rows]),
                np.array([r[1].max() for r in rows]),
                np.array([r[1].mean() for r in rows]),
                np.array([r[1][-1] for r in rows]),
                np.array([len(r[1]) for r in rows], dtype=np.int64),
            )
        return out

    def latest(self, paths: Iterable[str] | None = None) -> dict[str, tuple[int, float, int]]:
        wanted = self._data.keys() if paths is None else paths
        return {p: max(self._data[p]) for p in wanted if self._data.get(p)}

    def count(self) -> int:
        return sum(len(v) for v in self._data.values())

    def add_event(self, event: Event) -> int:
        event.id = len(self._events) + 1
        self._events.append(event)
        return event.id

    def update_event(self, event_id: int, **fields: Any) -> None:
        if not 1 <= event_id <= len(self._events):
            raise KeyError(event_id)
        e = self._events[event_id - 1]
        for k, v in fields.items():
            if k == "data":
                e.data.update(v)
            else:
                setattr(e, k, v)

    def event(self, event_id: int) -> Event | None:
        # a copy, as a database gives: later updates do not show in it
        return copy.deepcopy(self._events[event_id - 1]) if 1 <= event_id <= len(self._events) else None

    def events(self, start=None, end=None, kinds=None, source_prefix=None, limit=1000) -> list[Event]:
        sel = [
            e
            for e in self._events
            if (start is None or e.ts >= start)
            and (end is None or e.ts < end)
            and (not kinds or e.kind in kinds)
            and (not source_prefix or e.source.startswith(source_prefix))
        ]
        return sorted(sel, key=lambda e: (e.ts, e.id), reverse=True)[:limit]

    def event_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self._events:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        return counts

    def close(self) -> None:
        pass


def open_test_historian(tmp_dir: str | Path) -> Historian:
    """The embedded historian in ``tmp_dir`` when that backend exists, else a MemoryHistorian."""
    try:
        from axline.historian.embedded import EmbeddedHistorian
    except ImportError:
        return MemoryHistorian()
    return EmbeddedHistorian(str(Path(tmp_dir) / "historian"))


LINE = "changwon/plant1/line1"
LINE2 = "changwon/plant1/line2"


def _tag(asset: str, signal: str, unit: str, rng: list[float], en: str, ko: str, trend: bool = True) -> dict:
    return {
        "path": f"{asset}/{signal}",
        "signal": signal,
        "unit": unit,
        "range": rng,
        "period_s": 1.0,
        "writable": False,
        "name": {"en": en, "ko": ko},
        "trend": trend,
    }


def _line_assets(line: str) -> list[dict]:
    """Loader -> CNC -> washer -> vision on ``line``, with a few tags each."""
    loader, cnc = f"{line}/load/loader1", f"{line}/cnc/cnc1"
    washer, cam = f"{line}/wash/washer1", f"{line}/vision/camera1"
    assets = [
        {
            "path": loader,
            "id": "loader1",
            "cell": "load",
            "kind": "robot",
            "name": {"en": "Loader robot", "ko": "로더 로봇"},
            "tags": [
                _tag(loader, "motor_current", "A", [0, 20], "Motor current", "모터 전류"),
                _tag(loader, "parts_count", "pcs", [0, 10000], "Parts", "부품 수", trend=False),
            ],
        },
        {
            "path": cnc,
            "id": "cnc1",
            "cell": "cnc",
            "kind": "cnc",
            "name": {"en": "CNC machining", "ko": "CNC 가공"},
            "tags": [
                _tag(cnc, "spindle_temp", "degC", [10, 120], "Spindle temperature", "주축 온도"),
                _tag(cnc, "vibration_rms", "mm/s", [0, 20], "Vibration", "진동"),
                _tag(cnc, "power", "kW", [0, 30], "Power", "전력"),
            ],
        },
        {
            "path": washer,
            "id": "washer1",
            "cell": "wash",
            "kind": "washer",
            "name": {"en": "Parts washer", "ko": "부품 세척기"},
            "tags": [
                _tag(washer, "water_temp", "degC", [10, 90], "Water temperature", "수온"),
                _tag(washer, "pressure", "bar", [0, 10], "Pressure", "압력"),
            ],
        },
        {
            "path": cam,
            "id": "camera1",
            "cell": "vision",
            "kind": "camera",
            "name": {"en": "Visual inspection", "ko": "비전 검사"},
            "tags": [_tag(cam, "reject_rate", "%", [0, 100], "Reject rate", "불량률")],
        },
    ]
    return assets


def make_plant(lines: int = 1) -> dict:
    """A plant of one line (or two: ``line1`` and a slower ``line2``)."""
    if lines not in (1, 2):
        raise ValueError(f"lines must be 1 or 2, got {lines}")
    line_list = [
        {
            "id": "line1",
            "path": LINE,
            "name": {"en": "Line 1", "ko": "1라인"},
            "takt_s": 12.0,
            "assets": _line_assets(LINE),
        },
    ]
    if lines == 2:
        line_list.append(
            {
                "id": "line2",
                "path": LINE2,
                "name": {"en": "Line 2", "ko": "2라인"},
                "takt_s": 15.0,
                "assets": _line_assets(LINE2),
            }
        )
    return {
        "site": "changwon",
        "area": "plant1",
        "name": {"en": "Changwon Plant 1", "ko": "창원 1공장"},
        "timezone": "Asia/Seoul",
        "lines": line_list,
        "cameras": [
            {"id": f"cam{i + 1}", "asset": f"{ln['path']}/vision/camera1"} for i, ln in enumerate(line_list)
        ],
    }


class FakeService:
    """ServiceView for tests. Plant time starts at ``T0`` and advances ``plant_step_s`` per tick."""

    def __init__(
        self,
        historian: Historian,
        tick_s: float = 0.2,
        plant_step_s: float = 1.0,
        history_s: int = 600,
        lines: int = 1,
    ) -> None:
        if tick_s <= 0:
            raise ValueError(f"tick_s must be > 0, got {tick_s}")
        self.historian = historian
        self.tick_s = tick_s
        self.plant_step_ns = int(plant_step_s * NS)
        self.plant = make_plant(lines)
        self.tags = [t for ln in self.plant["lines"] for a in ln["assets"] for t in a["tags"]]
        self._now = T0
        self._step = 0
        self._queues: list[asyncio.Queue] = []
        self.feedback_calls: list[tuple[int, str, str]] = []
        self.writes: list[tuple[str, float, str]] = []
        self.started = time.monotonic()
        self._fill_history(history_s)
        self.alarm_id = historian.add_event(
            Event(
                ts=T0 - 30 * NS,
                kind="alarm",
                source=f"{LINE}/cnc/cnc1",
                code="anomaly.sensor",
                message="cnc1: unusual vibration_rms (z=7.2)",
                severity="alarm",
                data={
                    "score": 7.2,
                    "top": "vibration_rms",
                    "contributions": {"vibration_rms": 0.62, "spindle_temp": 0.25, "power": 0.13},
                },
            )
        )
        self.inspection_id = historian.add_event(
            Event(
                ts=T0 - 10 * NS,
                kind="inspection",
                source=f"{LINE}/vision/camera1",
                code="inspection.defect",
                message="Defect found on part P-1042 (score 0.91)",
                severity="warning",
                data={"part": "P-1042", "score": 0.91, "heatmap_url": "/static/favicon.svg"},
            )
        )

    # -- simulated values -----------------------------------------------------------------------
    def value(self, tag: dict, step: int) -> float:
        lo, hi = tag["range"]
        phase = sum(map(ord, tag["signal"])) % 100 / 10.0
        if tag["signal"] == "parts_count":
            return float((step + 6000) // 12)
        return lo + (hi - lo) * (0.5 + 0.3 * math.sin(step / 20.0 + phase) + 0.05 * math.sin(step * 1.7))

    def _batch(self, step: int, ts: int) -> Batch:
        rows = []
        for t in self.tags:
            if t["signal"] == "pressure" and step % 17 == 0:
                rows.append((t["path"], ts, float("nan"), 5))  # a sensor dropout: NaN with BAD_SENSOR
            else:
                rows.append((t["path"], ts, self.value(t, step), 0))
        return Batch.from_readings(rows)

    def _fill_history(self, history_s: int) -> None:
        n = history_s * NS // self.plant_step_ns
        self.historian.append(
            Batch.concat([self._batch(-i, T0 - i * self.plant_step_ns) for i in range(int(n), 0, -1)])
        )
        self.historian.append(self._batch(0, T0))

    def tick(self) -> None:
        """Advance the plant clock one step, store readings, tell subscribers."""
        self._step += 1
        self._now += self.plant_step_ns
        batch = self._batch(self._step, self._now)
        self.historian.append(batch)
        values = {r.path: [r.ts, r.value, r.quality] for r in batch}
        self._broadcast({"type": "latest", "ts": self._now, "values": values})
        if self._step % 5 == 0:
            self._broadcast({"type": "kpi", **self.kpi_json()})
            self._broadcast({"type": "status", **self.status_json()})

    async def run(self) -> None:
        """Tick forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(self.tick_s)
            self.tick()

    def _broadcast(self, msg: dict) -> None:
        for q in list(self._queues):
            q.put_nowait(msg)

    # -- ServiceView ----------------------------------------------------------------------------
    def plant_json(self) -> dict:
        return self.plant

    def now_ns(self) -> int:
        return self._now

    def status_json(self) -> dict:
        out = {}
        for n, line in enumerate(self.plant["lines"]):
            states = (
                ["running", "running", "microstop", "running"] if n == 0 else ["idle", "down", "idle", "idle"]
            )
            if n == 0 and self._step % 40 >= 30:
                states[1] = "alarm"
            stations = {
                a["path"]: {"state": states[i], "alarms": 1 if states[i] == "alarm" else 0}
                for i, a in enumerate(line["assets"])
            }
            out[line["id"]] = {"state": "running" if n == 0 else "down", "stations": stations}
        return {"lines": out}

    def kpi_json(self) -> dict:
        total = 400 + self._step
        rejected = 9 + self._step // 50
        out = {
            "line1": {
                "oee": 0.78,
                "availability": 0.92,
                "performance": 0.88,
                "quality": (total - rejected) / total,
                "cycle_time_s": 11.4 + 0.1 * math.sin(self._step),
                "takt_s": 12.0,
                "fpy": 0.965,
                "energy_per_good_kwh": 0.42,
                "parts_total": total,
                "parts_good": total - rejected,
                "parts_rejected": rejected,
                "shift": "A",
                "shift_start": T0 - 3 * 3600 * NS,
            }
        }
        if len(self.plant["lines"]) > 1:
            out["line2"] = dict(
                out["line1"],
                oee=0.5,
                availability=0.6,
                cycle_time_s=16.5,
                takt_s=15.0,
                energy_per_good_kwh=None,
                parts_total=120,
                parts_good=118,
                parts_rejected=2,
            )
        return {"lines": out}

    def health_json(self) -> dict:
        return {
            "ok": True,
            "readings_stored": self.historian.count(),
            "uptime_s": time.monotonic() - self.started,
            "subscribers": len(self._queues),
            "nan_example": float("nan"),
        }

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue()
        self._queues.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        if q in self._queues:
            self._queues.remove(q)

    @property
    def subscriber_count(self) -> int:
        return len(self._queues)

    async def write_tag(self, path: str, value: float, user: str, source: str = "service") -> dict:
        """Like the real service: an unknown tag is a KeyError; every write is recorded in ``writes`` and,
        when the test gave the service a ``security``, audited there under ``user``."""
        known = {t["path"] for t in self.tags}
        result = "ok" if path in known else "refused: unknown tag"
        audit_log = getattr(getattr(self, "security", None), "audit", None)
        if audit_log is not None:
            await audit_log.arecord(user, "tag.write", path, new=value, result=result, source=source)
        if path not in known:
            raise KeyError(f"tag {path!r} is not in the plant file")
        self.writes.append((path, value, user))
        return {"path": path, "old": None, "new": value, "result": "ok"}

    async def feedback(self, event_id: int, verdict: str, user: str) -> dict:
        """Like the real service: store the verdict, tell subscribers with an ``event_update``."""
        if event_id not in {e.id for e in self.historian.events(limit=100000)}:
            raise KeyError(f"event {event_id} does not exist")
        self.feedback_calls.append((event_id, verdict, user))
        self.historian.update_event(
            event_id, ack=verdict, data={"feedback": {"verdict": verdict, "user": user}}
        )
        self._broadcast({"type": "event_update", "id": event_id, "ack": verdict})
        return {"id": event_id, "ack": verdict}
