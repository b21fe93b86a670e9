"""The baseline live monitor on synthetic streams with known excursions."""

from __future__ import annotations

import numpy as np
import pytest

from axline.batch import BAD_SENSOR, GOOD, NS_PER_S, Batch
from axline.historian.base import Event
from axline.monitor.baseline import AssetBaseline
from axline.plant import Asset, Tag

A = "s/a/l1/c/m1"
T0 = 1_767_225_600 * NS_PER_S


def _asset() -> Asset:
    tags = [Tag(f"{A}/{n}", n, "", 0, 100, 1.0) for n in ("temp", "flow", "vib")]
    tags.append(Tag(f"{A}/state", "state", "enum", 0, 5, 1.0, kind="state"))
    return Asset("m1", "c", "cnc", A, {"en": "m1"}, tags)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, ev: Event) -> int:
        ev.id = len(self.events)
        self.events.append(ev)
        return ev.id

    def update(self, eid: int, **fields) -> None:
        for k, v in fields.items():
            if k == "data":
                self.events[eid].data.update(v)
            else:
                setattr(self.events[eid], k, v)


def _run(mon: AssetBaseline, seconds: int, shift=None, state=1, quality=None, frozen: set[str] | None = None,
         start: int = 0, rng=None):
    """Feed one reading per signal per second, in 10-second batches."""
    rng = rng or np.random.default_rng(0)
    for b0 in range(start, start + seconds, 10):
        rows = []
        for t in range(b0, b0 + 10):
            ts = T0 + t * NS_PER_S
            for k, name in enumerate(("temp", "flow", "vib")):
                v = 50.0 + 2 * k + rng.normal(0, 0.5)
                if shift:
                    v += shift(name, t)
                if frozen and name in frozen:
                    v = 42.0
                q = quality(name, t) if quality else GOOD
                rows.append((f"{A}/{name}", ts, np.nan if q else v, q))
            rows.append((f"{A}/state", ts, float(state)))
        mon.update(Batch.from_readings(rows))
    return start + seconds


def test_one_shift_gives_one_alarm_that_names_the_signal():
    rec = Recorder()
    mon = AssetBaseline(_asset(), learn_s=300, emit=rec.emit, update=rec.update)
    t = _run(mon, 400)
    assert mon.trained and rec.events == []
    t = _run(mon, 200, start=t, shift=lambda n, s: 8.0 if n == "flow" else 0.0)
    assert len(rec.events) == 1
    ev = rec.events[0]
    assert ev.code == "anomaly.sensor" and ev.source == A and ev.data["top"] == "flow"
    assert next(iter(ev.data["contributions"])) == "flow" and ev.data["contributions"]["flow"] > 6
    assert ev.end_ts is None
    _run(mon, 200, start=t)  # back to normal: the alarm closes, no new one
    assert len(rec.events) == 1 and rec.events[0].end_ts is not None


def test_hysteresis_one_excursion_one_alarm():
    rec = Recorder()
    mon = AssetBaseline(_asset(), learn_s=300, emit=rec.emit, update=rec.update)
    t = _run(mon, 400)

    def wobble(name, s):  # hovering between z_off and far above z_on: still one excursion
        return (6.0 if (s // 15) % 2 else 3.0) if name == "temp" else 0.0

    _run(mon, 300, start=t, shift=wobble)
    assert [e.data["top"] for e in rec.events] == ["temp"]


def test_second_fault_on_the_same_asset_opens_its_own_alarm():
    rec = Recorder()
    mon = AssetBaseline(_asset(), learn_s=300, emit=rec.emit, update=rec.update)
    t = _run(mon, 400)
    t = _run(mon, 100, start=t, shift=lambda n, s: 8.0 if n == "temp" else 0.0)
    _run(mon, 100, start=t, shift=lambda n, s: 8.0 if n in ("temp", "vib") else 0.0)
    assert [e.data["top"] for e in rec.events] == ["temp", "vib"]
    assert rec.events[1].end_ts is None and rec.events[0].end_ts is None


def test_not_running_is_not_judged():
    rec = Recorder()
    mon = AssetBaseline(_asset(), learn_s=300, emit=rec.emit, update=rec.update)
    t = _run(mon, 400)
    _run(mon, 200, start=t, state=3, shift=lambda n, s: -30.0)  # a micro-stop: values drop, no alarm
    assert rec.events == []


def test_stuck_and_dropped_out_sensors():
    rec = Recorder()
    mon = AssetBaseline(_asset(), learn_s=300, stuck_s=30, bad_s=5, emit=rec.emit, update=rec.update)
    t = _run(mon, 400)
    t = _run(mon, 60, start=t, frozen={"vib"})
    stuck = [e for e in rec.events if e.code == "sensor.stuck"]
    assert len(stuck) == 1 and stuck[0].data["signal"] == "vib"
    t = _run(mon, 30, start=t)
    assert stuck[0].end_ts is not None
    _run(mon, 30, start=t, quality=lambda n, s: BAD_SENSOR if n == "flow" else GOOD)
    bad = [e for e in rec.events if e.code == "sensor.bad_quality"]
    assert len(bad) == 1 and bad[0].data["signal"] == "flow" and bad[0].end_ts is None


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="z_off < z_on"):
        AssetBaseline(_asset(), z_on=3, z_off=4)
    with pytest.raises(ValueError, match="learn_s must be >= 1"):
        AssetBaseline(_asset(), learn_s=0)
