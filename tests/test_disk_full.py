"""Disk full, on a real small file system (a size-limited tmpfs the test mounts; CI runs as root):
fill it, keep ingesting, free it, and prove that every accepted reading is stored and every other
one was refused with a count per tag, never lost silently; no temp files are left behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid

import numpy as np
import pytest

from _wait import wait_for
from axline.batch import Batch
from axline.plant import parse_plant
from axline.service import Service

TAGS = [f"s1/a1/l1/c1/press/t{j}" for j in range(4)]


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0755", f"axline-test-{uuid.uuid4().hex[:6]}",
                        str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        msg = f"cannot mount a 6 MiB tmpfs (needs root): {r.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _plant(base):
    return parse_plant("""
plant: {site: s1, area: a1}
historian: {backend: embedded, path: data/historian, fsync: batch}
safety: {disk_check_s: 0.1, disk_warn_percent: [80, 90]}
lines:
  - id: l1
    assets:
      - id: press
        cell: c1
        tags: [{signal: t0}, {signal: t1}, {signal: t2}, {signal: t3}]
""", "plant.yaml", base_dir=str(base))


async def test_disk_full_refuses_with_a_count_and_loses_nothing_accepted(small_fs):
    svc = Service(_plant(small_fs))
    await svc.start(web=False)
    fwd = svc.forward
    fwd.memory_readings = 40_000  # a small memory queue, so refusals start soon after the disk is full
    ballast = small_fs / "ballast"
    sent = 0
    k = 0

    def ingest(n_batches: int) -> None:
        nonlocal sent, k
        for _ in range(n_batches):
            n = 2000
            idx = np.arange(n) % len(TAGS)
            ts = time.time_ns() - 60 * 10**9 + k * n + np.arange(n)
            svc.ingest(Batch(TAGS, idx, ts, np.random.default_rng(k).normal(size=n)))
            sent += n
            k += 1

    try:
        # fill the disk with ballast and data until writes fail
        with open(ballast, "wb") as f:
            f.write(b"\0" * (3 * 2**20))
        for _ in range(200):
            ingest(2)
            await asyncio.sleep(0.01)
            if fwd.refused:
                break
        assert fwd.refused > 0, "the disk never filled"
        await wait_for(lambda: not fwd.online, what="the forwarder to see the full disk")
        await wait_for(lambda: svc.safety.diskwatch.status()["level"] == 2, what="the disk watch to see it")
        health = svc.health_json()
        assert health["store"]["refused_readings"] == fwd.refused
        assert sum(health["store"]["refused_by_tag"].values()) == fwd.refused
        assert set(health["store"]["refused_by_tag"]) <= set(TAGS)
        assert any("refused" in w for w in health["safety"]["warnings"])
        assert any("% full" in w for w in health["safety"]["warnings"])
        ingest(5)  # still arriving while full: refused with a count, nothing blocks
        refused_while_full = fwd.refused
        # free the disk: what waited in memory and on disk is stored, new readings are accepted
        ballast.unlink()
        await wait_for(lambda: fwd.online and fwd.pending == 0, what="the backlog to drain")
        ingest(3)
        await wait_for(lambda: fwd.pending == 0, what="the new readings to be stored")
        accepted = sent - fwd.refused
        assert fwd.refused == refused_while_full
        assert svc.historian.count() == accepted  # every accepted reading is there, nothing else lost
        got = svc.historian.query(TAGS, 0, 2**62)
        assert sum(len(s) for s in got.values()) == accepted
        leftovers = [p for p in small_fs.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".compact")]
        assert leftovers == []
        await wait_for(lambda: any(e.code == "system.disk_full" for e in svc.historian.events(kinds=["system"])),
                    what="the disk-full system event to be written once space was back")
        codes = {e.code for e in svc.historian.events(kinds=["system"], limit=10000)}
        assert {"store.offline", "store.refused", "store.recovered"} <= codes
    finally:
        await svc.stop()


def test_disk_watch_warns_at_each_threshold_and_frees_space_by_retention_first(tmp_path, monkeypatch):
    from axline.diskwatch import DiskWatch
    from axline.resilience import Safety

    used = {"pct": 50.0}
    monkeypatch.setattr(DiskWatch, "measure", staticmethod(
        lambda path: {"path": path, "total_bytes": 100, "free_bytes": int(100 - used["pct"]),
                      "used_percent": used["pct"]}))
    events, critical = [], []
    w = DiskWatch({"data": str(tmp_path)}, [80, 90], on_event=lambda *a: events.append(a[0]),
                  on_critical=lambda name, u: critical.append(u["used_percent"]))
    for pct in (50, 85, 86, 95, 96, 70):
        used["pct"] = float(pct)
        w.check()
    assert events == ["system.disk_filling", "system.disk_full", "system.disk_ok"]  # once per crossing
    assert critical == [95.0, 96.0] and w.status()["level"] == 0

    class Hist:  # a historian with a retention rule: retention runs before anything is refused
        retention_days = 7.0
        path = str(tmp_path)

        def apply_retention(self):
            return 1234

    svc = type("Svc", (), {"historian": Hist(), "plant": _plant(tmp_path), "system_prefix": "s1/a1/axline"})()
    safety = Safety(svc)
    got = []
    safety.system_event = lambda code, sev, msg, data=None: got.append((code, data))
    safety._on_disk_critical("historian", {"path": str(tmp_path), "used_percent": 95.0})
    assert got == [("system.retention_freed", {"readings": 1234})] and safety.retention_runs == 1
    safety.config["retention_on_disk_full"] = False
    safety._on_disk_critical("historian", {"path": str(tmp_path), "used_percent": 95.0})
    assert safety.retention_runs == 1  # not allowed: nothing dropped
