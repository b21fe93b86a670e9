"""Nothing blocks the loop and nothing grows without bound: the stall monitor sees a blocked loop,
collection and the dashboard go on while the store hangs, camera folders stay bounded."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import aiohttp

from _wait import wait_for
from axline.batch import Batch
from axline.camera import FolderSource
from axline.camera_retention import CameraRetention
from axline.loopwatch import LoopStallMonitor
from axline.plant import parse_plant
from axline.service import Service

TAG = "s1/a1/l1/c1/press/temp"


def _plant(tmp_path):
    return parse_plant("""
plant: {site: s1, area: a1}
lines:
  - id: l1
    assets:
      - id: press
        cell: c1
        tags: [{signal: temp, unit: degC}]
""", "plant.yaml", base_dir=str(tmp_path))


async def test_the_stall_monitor_reports_a_blocked_loop():
    mon = LoopStallMonitor(interval_s=0.01, window_s=60)
    task = mon.start()
    try:
        await wait_for(lambda: mon.beats >= 3, what="heartbeats")
        time.sleep(0.3)  # a blocking call on the loop, deliberately
        await wait_for(lambda: mon.beats >= 5, what="heartbeats after the block")
        assert mon.max_stall_ms() >= 250 and mon.status()["max_stall_ms_last_minute"] >= 250
        assert len(mon._beats) <= mon._beats.maxlen  # bounded
    finally:
        task.cancel()


async def test_collection_and_dashboard_go_on_while_the_store_hangs(tmp_path):
    svc = Service(_plant(tmp_path), port=0)
    await svc.start()
    release = threading.Event()
    real = svc.forward.deliver

    def hanging(batch):  # a database that stops answering
        if not release.wait(120):
            raise TimeoutError("no answer")
        return real(batch)

    svc.forward.deliver = hanging
    svc.forward.spill_after_s = 0.1
    try:
        t0 = time.time_ns() - 10**12
        async with aiohttp.ClientSession() as http:
            for k in range(50):
                svc.ingest(Batch.from_readings([(TAG, t0 + k * 10**6, float(k))]))  # returns at once
                await asyncio.sleep(0)
            assert svc.latest[TAG][1] == 49.0  # the live view follows although nothing is stored yet
            await wait_for(lambda: len(svc.forward.spool) >= 48, what="the backlog to be spooled on disk")
            async with http.get(svc.url + "api/health") as r:  # the dashboard answers meanwhile
                assert r.status == 200
                health = await r.json()
            assert health["store"]["spooled_batches"] >= 48
            assert health["safety"]["loop"]["max_stall_ms_last_minute"] is not None
        release.set()
        await wait_for(lambda: svc.forward.pending == 0, what="the backlog to drain")
        s = svc.historian.query([TAG], 0, 2**62)[TAG]
        assert list(s.value) == [float(k) for k in range(50)]  # in order, each once
    finally:
        release.set()
        await svc.stop()


async def test_a_repeated_reading_in_one_batch_is_stored_once(tmp_path):
    svc = Service(_plant(tmp_path))
    await svc.start(web=False)
    try:
        t = time.time_ns() - 10**9
        svc.ingest(Batch.from_readings([(TAG, t, 1.0), (TAG, t + 1, 2.0), (TAG, t, 1.0)]))
        await wait_for(lambda: svc.forward.pending == 0)
        assert svc.historian.count() == 2 and svc.repeats_dropped == 1
    finally:
        await svc.stop()


def test_camera_folder_source_stays_bounded_and_skips_unchanged_folders(tmp_path):
    src = FolderSource("cam", tmp_path, "*.png", start_with_existing=True)
    for k in range(50):
        (tmp_path / f"img-{k:04d}.png").write_bytes(b"x")
    assert len(src.scan()) == 50
    for k in range(40):
        (tmp_path / f"img-{k:04d}.png").unlink()
    (tmp_path / "img-9999.png").write_bytes(b"x")
    assert [p.name for p in src.scan()] == ["img-9999.png"]
    assert len(src._seen) == 11  # what is in the folder, not everything ever seen
    old = time.time_ns() - 10 * 10**9
    os.utime(tmp_path, ns=(old, old))
    src.scan()
    assert not src.changed()  # an unchanged folder is not listed again
    (tmp_path / "img-a.png").write_bytes(b"x")
    assert src.changed()


def test_camera_retention_keeps_rejects_longer_than_passes(tmp_path):
    now = time.time()
    files = {}
    for name, age_h in (("pass-old.png", 30), ("pass-new.png", 2), ("reject-old.png", 30), ("reject-ancient.png", 800),
                        ("other.txt", 900)):
        p = tmp_path / name
        p.write_bytes(b"x")
        os.utime(p, (now - age_h * 3600, now - age_h * 3600))
        files[name] = p
    rejected = {str(files["reject-old.png"]), str(files["reject-ancient.png"])}
    ret = CameraRetention([(str(tmp_path), "*.png")], keep_pass_h=24, keep_reject_h=720,
                          rejected=lambda since: rejected)
    assert ret.sweep(now) == 2
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["other.txt", "pass-new.png", "reject-old.png"]
    assert ret.status()["deleted"] == 2 and ret.kept_rejects == 1



def test_mqtt_pending_readings_are_bounded_by_backpressure(tmp_path, monkeypatch):
    """Messages the service has not taken yet wait in a bounded list: past the bound the network thread
    waits (the broker keeps QoS 1 messages) instead of growing the list for ever."""
    from types import SimpleNamespace

    import axline.connect.broker as mq
    from axline.connect import registry

    plant = parse_plant(f"""
plant: {{site: s1, area: a1}}
connectors:
  - {{name: broker, type: mqtt, host: 127.0.0.1, port: 1, dead_letter_dir: '{tmp_path / "dead"}'}}
lines:
  - id: l1
    assets:
      - id: press
        cell: c1
        connector: broker
        tags: [{{signal: temp, source: {{address: "s1/press/temp"}}}}]
""", "plant.yaml", base_dir=str(tmp_path))
    cfg = plant.connectors[0]
    conn = registry.connector_class(cfg.type)(cfg.name, cfg.options, plant.connector_tags(cfg.name))
    monkeypatch.setattr(mq, "MAX_PENDING_READINGS", 10)
    got: list[Batch] = []

    def network_thread():  # paho's thread, delivering 30 messages
        for k in range(30):
            conn._on_message(None, None, SimpleNamespace(topic="s1/press/temp", payload=str(k).encode()))

    t = threading.Thread(target=network_thread, daemon=True)
    t.start()
    deadline = time.monotonic() + 120
    while t.is_alive():
        assert time.monotonic() < deadline, "the network thread never finished"
        assert conn._pending_readings <= 10  # never more than the bound waits
        if conn.backpressure_waits and conn._pending_readings >= 10:
            conn._flush(got.append)  # the service takes what waits
        time.sleep(0.01)
    conn._flush(got.append)
    assert conn.backpressure_waits >= 2
    assert sum(len(b) for b in got) == 30  # nothing dropped


async def test_the_service_opens_its_store_and_writes_events_off_the_loop(tmp_path, monkeypatch):
    import axline.service as service_mod
    from axline.historian.base import Event
    from axline.service_events import aemit, aupdate

    loop_thread = threading.get_ident()
    opened: list[int] = []
    real_open = service_mod.open_historian

    def open_historian(*a, **kw):  # replays the newest segment after a crash: file work
        opened.append(threading.get_ident())
        return real_open(*a, **kw)

    monkeypatch.setattr(service_mod, "open_historian", open_historian)
    svc = Service(_plant(tmp_path))
    await svc.start(web=False)
    try:
        assert opened and opened[0] != loop_thread
        writes: list[int] = []
        real_add, real_update = svc.safety.add_event, svc.safety.update_event
        svc.safety.add_event = lambda ev: (writes.append(threading.get_ident()), real_add(ev))[1]
        svc.safety.update_event = lambda i, **f: (writes.append(threading.get_ident()), real_update(i, **f))[1]
        q = svc.subscribe()
        eid = await aemit(svc, Event(ts=time.time_ns(), kind="alarm", source="s1/a1/l1/c1/press", code="x",
                                     severity="alarm", message="m"))
        await aupdate(svc, eid, end_ts=time.time_ns())
        assert len(writes) == 2 and loop_thread not in writes
        # live pages hear of both, and the alarm is no longer open
        got = [q.get_nowait()["type"] for _ in range(q.qsize())]
        assert "event" in got and "event_update" in got
        assert not svc._open_alarms.get("s1/a1/l1/c1/press")
        # (a slow event log hands out a provisional id first: look the alarm up by its code)
        await wait_for(lambda: any(e.end_ts is not None for e in svc.historian.events(kinds=["alarm"])
                                if e.code == "x"), what="the event log to store the update")
    finally:
        await svc.stop()


async def test_the_service_starts_its_worker_threads_while_starting(tmp_path):
    # a worker thread started while the service runs makes the loop wait in Thread.start() until the OS
    # runs it: all of the default executor's workers exist once start() returns
    svc = Service(_plant(tmp_path))
    await svc.start(web=False)
    try:
        executor = asyncio.get_running_loop()._default_executor
        assert executor is not None and len(executor._threads) == executor._max_workers
    finally:
        await svc.stop()
