"""Background workers (SPC watcher, shift-report keeper, OPC UA publisher) show their failures in
/api/health."""

from __future__ import annotations

import asyncio
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


async def _wait(cond, timeout_s=30.0):
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
