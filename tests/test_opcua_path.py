"""The OPC UA path end to end: virtual factory -> real asyncua server -> connector -> bus -> historian.

Nothing is mocked: the simulator publishes on an asyncua server on a local port and the service
collects it with the same connector a real PLC would get.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from _auth import PASSWORD
from _wait import wait_for
from axline.connect.base import CONNECTED, DISCONNECTED
from axline.demo import demo_plant
from axline.service import Service
from axline.sim.line import VirtualLine
from axline.sim.server import SimServer

START = 1_767_225_600 * 1_000_000_000  # 2026-01-01 00:00 UTC, fixed for determinism


def _sim(endpoint: str, speed: float = 20.0, faults=None) -> SimServer:
    line = VirtualLine(seed=7, start_ns=START, faults=faults, render_images=False)
    return SimServer(line, endpoint=endpoint, speed=speed)


async def test_every_published_value_arrives_in_the_historian(tmp_path, port):
    endpoint = f"opc.tcp://127.0.0.1:{port}/axline/sim"
    sim = _sim(endpoint, speed=10.0)
    sim_task = asyncio.create_task(sim.run())
    await sim.ready.wait()
    svc = Service(demo_plant(tmp_path, endpoint))
    await svc.start(web=False)
    try:
        await wait_for(lambda: svc.connectors["sim"].state == CONNECTED, 120, "the connector to connect")
        await wait_for(lambda: svc.historian.count() > 3000, 120, "3000 readings")
    finally:
        sim.stop()
        await sim_task
        # what arrived is stored (the comparison below holds for any prefix of the stream)
        await wait_for(lambda: svc.forward.pending == 0, 60, "the store to catch up")
        stored = svc.historian.count()
        h = svc.historian
        tags = h.tags()
        # compare with a replica of the same deterministic simulation, stepped the same way
        replica = VirtualLine(seed=7, start_ns=START, faults=None, render_images=False)
        # the server opens with every tag's value at the start time, then steps
        expected = {p: [(START // 1000, v)] for p, v in replica.current_values().items()}
        while replica.now_ns < sim.line.now_ns:
            for r in replica.step(sim.tick_s):
                expected.setdefault(r.path, []).append((r.ts // 1000, r.value))
        checks = [
            "changwon/plant1/line1/cnc/cnc1/spindle_current",
            "changwon/plant1/line1/furnace/furnace1/zone1_temp",
            "changwon/plant1/line1/line/totals/parts_total",
        ]
        got = h.query(checks, START, START + 10**15)
        why = (f"connector {svc.connectors['sim'].state} ({svc.connectors['sim'].last_error}), "
               f"{svc.connectors['sim'].connects} connects, spool {len(svc.forward.spool)}, "
               f"repeats dropped {svc.repeats_dropped}")
        await svc.stop()
    assert stored > 3000
    assert len([t for t in tags if t.startswith("changwon/plant1/line1/")]) == len(sim.line.tags)
    # the connection state is history too: connected (1) while collecting
    assert "changwon/plant1/axline/connectors/sim/connected" in tags
    for path in checks:
        s = got[path]
        exp = expected[path]
        assert len(s) > 20, f"{path}: only {len(s)} readings stored; {why}"
        # subscribed after the server started: the first samples may predate the subscription
        first = next(i for i, e in enumerate(exp) if e[0] == s.ts[0] // 1000)
        exp = exp[first : first + len(s)]
        assert [e[0] for e in exp] == (s.ts // 1000).tolist(), f"{path}: timestamps differ"
        np.testing.assert_array_equal(np.array([e[1] for e in exp]), s.value, err_msg=path)


async def test_connector_reconnects_when_the_plc_comes_back(tmp_path, port):
    endpoint = f"opc.tcp://127.0.0.1:{port}/axline/sim"
    svc = Service(demo_plant(tmp_path, endpoint))
    await svc.start(web=False)
    conn = svc.connectors["sim"]
    try:
        # nothing listens yet: the connector keeps trying and says so
        await wait_for(lambda: conn.last_error is not None, 120, "the connector to report the failed connection")
        assert conn.state != CONNECTED and conn.last_error
        assert (
            svc.status_json()["lines"]["line1"]["stations"]["changwon/plant1/line1/cnc/cnc1"]["state"]
            == "offline"
        )
        sim = _sim(endpoint)
        task = asyncio.create_task(sim.run())
        await wait_for(lambda: conn.state == CONNECTED, 120, "the first connection")
        await wait_for(lambda: svc.historian.count() > 500, 120, "readings")
        sim.stop()
        await task
        await wait_for(lambda: conn.state == DISCONNECTED, 120, "the connector to notice the server is gone")
        before = svc.historian.count()
        sim2 = _sim(endpoint)
        task2 = asyncio.create_task(sim2.run())
        await wait_for(lambda: conn.state == CONNECTED and conn.connects >= 2, 120, "the reconnection")
        await wait_for(lambda: svc.historian.count() > before + 500, 120, "readings after reconnecting")
        sim2.stop()
        await task2
    finally:
        await svc.stop()


async def test_writes_reach_the_plc_and_are_audited(tmp_path, port):
    import aiohttp

    endpoint = f"opc.tcp://127.0.0.1:{port}/axline/sim"
    sim = _sim(endpoint, speed=5.0)
    task = asyncio.create_task(sim.run())
    await sim.ready.wait()
    plant = demo_plant(tmp_path, endpoint)
    svc = Service(plant, port=0)
    await svc.start()
    diverter = "changwon/plant1/line1/vision/camera1/diverter"
    setpoint = "changwon/plant1/line1/furnace/furnace1/temp_setpoint"
    try:
        await wait_for(lambda: svc.connectors["sim"].state == CONNECTED, 120, "connection")
        result = await svc.write_tag(diverter, 1, "kim")
        assert result["result"] == "ok" and result["new"] == 1.0
        await wait_for(lambda: (diverter, 1.0) in sim.client_writes, 120, "the simulator to see the write")
        with pytest.raises(PermissionError, match="not writable"):
            await svc.write_tag("changwon/plant1/line1/press/press1/oil_temp", 1, "kim")
        with pytest.raises(ValueError, match="outside the range"):
            await svc.write_tag(setpoint, 2000, "kim")
        # the same through the HTTP API, as the dashboard would: logged in as an engineer; the name in
        # the body is ignored
        svc.security.accounts.add("lee", "engineer", PASSWORD)
        async with aiohttp.ClientSession(headers={"Origin": svc.url.rstrip("/")},
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(svc.url + "login", json={"username": "lee", "password": PASSWORD}) as r:
                assert r.status == 200, await r.text()
            async with http.post(svc.url + "api/write", json={"path": setpoint, "value": 840, "user": "mallory"}) as r:
                assert r.status == 200, await r.text()
            async with http.post(svc.url + "api/write", json={"path": setpoint, "value": "hot"}) as r:
                assert r.status == 400 and "value must be a number" in (await r.json())["error"]
            async with http.post(svc.url + "api/write",
                                 json={"path": "changwon/plant1/line1/press/press1/oil_temp", "value": 1}) as r:
                assert r.status == 403
        await wait_for(lambda: (setpoint, 840.0) in sim.client_writes, 120, "the setpoint write")
        audit = [(e.data["user"], e.data["new"], e.data["result"].split(":")[0])
                 for e in reversed(svc.historian.events(kinds=["write"]))]
        # refused attempts are in the audit log too; a body that is not even a number never reaches it
        assert audit == [("kim", 1.0, "ok"), ("kim", 1, "PermissionError"), ("kim", 2000.0, "ValueError"),
                         ("lee", 840.0, "ok"), ("lee", 1.0, "PermissionError")]
        assert all("old" in e.data and e.ts > 0 for e in svc.historian.events(kinds=["write"]))
        # and in the hash-chained audit trail, with where each request came from
        trail = [(e["who"], e["new"], e["result"].split(":")[0], e["from"])
                 for e in reversed(svc.security.audit.tail(100, action="tag.write"))]
        # a write that reaches the machine is in the trail before it goes out ("attempt"), then its result
        assert trail == [("kim", 1.0, "attempt", "service"), ("kim", 1.0, "ok", "service"),
                         ("kim", 1.0, "PermissionError", "service"),
                         ("kim", 2000.0, "ValueError", "service"), ("lee", 840.0, "attempt", "127.0.0.1"),
                         ("lee", 840.0, "ok", "127.0.0.1"),
                         ("lee", "hot", "refused", "127.0.0.1"), ("lee", 1.0, "PermissionError", "127.0.0.1")]
        assert svc.security.audit.verify().ok
    finally:
        sim.stop()
        await task
        await svc.stop()
