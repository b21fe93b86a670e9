"""A reading stamped far in the future is stored, marked, reported; it never hides later readings."""

from __future__ import annotations

import asyncio
import time

import pytest

from axline.batch import BAD_TIMESTAMP, GOOD, Batch
from axline.plant import PlantConfigError, parse_plant
from axline.service import Service
from axline.timecheck import TimestampGuard

TAG = "s1/a1/l1/c1/press/temp"
OTHER = "s1/a1/l1/c1/press/pressure"
DAY = 86400 * 10**9


def _plant(tmp_path, safety: str = ""):
    return parse_plant(f"""
plant: {{site: s1, area: a1}}
{safety}
lines:
  - id: l1
    assets:
      - id: press
        cell: c1
        tags: [{{signal: temp, unit: degC}}, {{signal: pressure, unit: bar}}]
""", "plant.yaml", base_dir=str(tmp_path))


async def _wait(cond, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_a_clock_jump_on_one_tag_is_marked_and_hides_nothing(tmp_path):
    svc = Service(_plant(tmp_path))
    await svc.start(web=False)
    try:
        now = time.time_ns()
        svc.ingest(Batch.from_readings([(TAG, now - 3 * 10**9, 1.0), (OTHER, now - 3 * 10**9, 5.0)]))
        svc.ingest(Batch.from_readings([(TAG, now + DAY, 2.0)]))  # the PLC's clock jumped a day ahead
        later = [(TAG, now - 2 * 10**9 + k * 10**8, 10.0 + k) for k in range(5)]
        svc.ingest(Batch.from_readings(later))  # honest readings after the jump: must all be stored
        await _wait(lambda: svc.historian.count() == 8)
        s = svc.historian.query([TAG], now - 10 * 10**9, now + 2 * DAY)[TAG]
        assert list(s.value) == [1.0, 10.0, 11.0, 12.0, 13.0, 14.0, 2.0]
        assert list(s.quality) == [GOOD] * 6 + [BAD_TIMESTAMP]
        assert svc.repeats_dropped == 0
        assert svc.latest[TAG][1] == 14.0  # the live view shows the honest newest value
        assert svc.now_ns() < now + 11 * 60 * 10**9  # "now" did not jump a day ahead
        await _wait(lambda: any(e.code == "system.clock_implausible" for e in svc.historian.events(kinds=["system"])))
        ev = next(e for e in svc.historian.events(kinds=["system"]) if e.code == "system.clock_implausible")
        assert ev.data["tag"] == TAG and ev.data["skew_s"] > 86000
        health = svc.health_json()
        assert health["safety"]["timestamps"]["flagged_readings"] == 1
        # repeats still dropped, judged on plausible data only
        svc.ingest(Batch.from_readings([(TAG, now - 2 * 10**9, 99.0)]))
        assert svc.repeats_dropped == 1
    finally:
        await svc.stop()


def test_guard_window_is_configurable_and_validated(tmp_path):
    p = _plant(tmp_path, "safety: {timestamp_future_s: 5, timestamp_past_s: 60}")
    assert p.safety["timestamp_future_s"] == 5.0 and p.safety["timestamp_past_s"] == 60.0
    with pytest.raises(PlantConfigError, match="safety.disk_warn_percent"):
        _plant(tmp_path, "safety: {disk_warn_percent: [90, 80]}")
    g = TimestampGuard(future_s=5, past_s=60)
    now = 10**18
    b = Batch.from_readings([(TAG, now, 1.0), (TAG, now + 6 * 10**9, 2.0), (TAG, now - 61 * 10**9, 3.0)])
    out = g.check(b, now)
    assert list(out.quality) == [GOOD, BAD_TIMESTAMP, BAD_TIMESTAMP] and list(b.quality) == [0, 0, 0]
