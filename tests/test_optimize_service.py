"""The optimiser against the running service: virtual factory over OPC UA -> service -> HTTP API.

Two people: ``kim`` (engineer) proposes, ``lee`` (approver) approves, each with an API token of
their own account."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import yaml

from _auth import make_security, token_headers
from axline.app.server import create_app, start_site
from axline.connect.base import CONNECTED
from axline.demo import demo_plant
from axline.optimize.spec import furnace_spec
from axline.service import Service
from axline.sim.line import VirtualLine
from axline.sim.server import SimServer

pytestmark = pytest.mark.slow
START = 1_767_225_600 * 1_000_000_000
P = "changwon/plant1/line1"
A = f"{P}/furnace/furnace1"
T = f"{P}/line/totals"
TEMP = f"{A}/temp_setpoint"


def write_optimize_yaml(folder, settle_s: float, verify_s: float) -> None:
    """The virtual furnace's problem with short windows, as an engineer would declare it."""
    spec = furnace_spec(A, T)
    doc = {"units": [{
        "unit": spec.unit, "objective": spec.objective, "state_tag": spec.state_tag, "twin": "virtual_furnace",
        "plot": list(spec.plot), "name": spec.name,
        "settle_s": settle_s, "verify_s": verify_s,
        "decisions": [{"tag": d.tag, "lo": d.lo, "hi": d.hi, "max_step": d.max_step} for d in spec.decisions],
        "metrics": [{"name": m.name, "kind": m.kind, "tag": m.tag, **({"per": m.per} if m.per else {})}
                    for m in spec.metrics],
        "constraints": [{"metric": c.metric, "kind": c.kind,
                         **({"limit": c.limit} if c.kind != "hold" else {"tolerance": c.tolerance})}
                        for c in spec.constraints],
    }]}
    (folder / "optimize.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")


async def _wait(cond, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not await cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.5)


async def test_propose_approve_apply_verify_and_roll_back_through_the_service(tmp_path, port):
    endpoint = f"opc.tcp://127.0.0.1:{port}/axline/sim"
    line = VirtualLine(seed=12, start_ns=START, faults=None, render_images=False, changeover_interval_s=None)
    sim = SimServer(line, endpoint=endpoint, speed=10.0)
    sim_task = asyncio.create_task(sim.run())
    await sim.ready.wait()
    write_optimize_yaml(tmp_path, settle_s=120.0, verify_s=240.0)
    svc = Service(demo_plant(tmp_path, endpoint))
    await svc.start(web=False)
    sec = make_security()
    app = create_app(svc, security=sec)
    runner, bound = await start_site(app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{bound}"
    kim = {**token_headers(sec, "kim", "engineer"), "Origin": url}
    kim_approver = {**token_headers(sec, "kim", "approver"), "Origin": url}
    lee = {**token_headers(sec, "lee", "approver"), "Origin": url}
    try:
        await _wait(lambda: _true(svc.connectors["sim"].state == CONNECTED), 300, "the connector")
        async with aiohttp.ClientSession() as http:
            async def units():
                async with http.get(url + "/api/optimize", headers=kim) as r:
                    assert r.status == 200
                    return (await r.json())["units"]

            async def known():
                u = await units()
                return bool(u) and all(v is not None for v in u[0]["x"].values())

            await _wait(known, 300, "today's setpoints")
            # readings for a baseline window before the change
            await _wait(lambda: _true(line.now_ns > START + 300 * 1_000_000_000), 300, "five simulated minutes")
            async with http.post(url + "/api/optimize/furnace1/submit", headers=kim,
                                 json={"x": {TEMP: 830.0}, "note": "cooler, same belt"}) as r:
                assert r.status == 200, await r.text()
                p = (await r.json())["proposal"]
            assert p["proposer"] == "kim" and p["status"] == "proposed" and p["twin"] is not None
            pid = p["id"]
            # a viewer-level user cannot approve; the proposer cannot approve their own change
            async with http.post(url + f"/api/optimize/proposals/{pid}/approve", headers=kim) as r:
                assert r.status == 403 and "role approver" in (await r.json())["error"]
            async with http.post(url + f"/api/optimize/proposals/{pid}/approve",
                                 headers=kim_approver) as r:
                assert r.status == 403 and "may not approve" in (await r.json())["error"]
            # outside the trust region: refused at the door
            async with http.post(url + "/api/optimize/furnace1/submit", headers=kim, json={"x": {TEMP: 760.0}}) as r:
                assert r.status == 400 and "maximum step" in (await r.json())["error"]
            async with http.post(url + f"/api/optimize/proposals/{pid}/approve", headers=lee) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["proposal"]["approver"] == "lee"

            async def finished():
                u = await units()
                q = next(x for x in u[0]["proposals"] if x["id"] == pid)
                return q["status"] in ("kept", "rolled_back", "failed")

            try:
                await _wait(finished, 900, "the verdict")
            except AssertionError:
                u = (await units())[0]
                q = u["proposals"][0]
                raise AssertionError(f"{u['errors']} errors; {q['status']} applied {q['applied_ns']} sim now "
                                     f"{line.now_ns} svc {svc.now_ns()} {q['steps'][-1]}") from None
            q = next(x for x in (await units())[0]["proposals"] if x["id"] == pid)
        assert q["status"] == "rolled_back", (q["reason"], q["steps"][-1])
        assert "hardness" in q["reason"]
        assert [s["step"] for s in q["steps"]] == ["proposed", "approval_refused", "approved", "applied", "rolled_back"]
        # the simulator saw the change and the automatic rollback
        assert sim.client_writes == [(TEMP, 830.0), (TEMP, 850.0)]
        await _wait(lambda: _true(line._furnace.setpoint == 850.0), 120, "the setpoint back at 850")
        # the audit trail: every write under the approver's name, every step an event
        events = sorted(svc.historian.events(limit=500), key=lambda e: e.id)
        writes = [e for e in events if e.kind == "write" and e.source.startswith(A)]
        assert [(e.source, e.data["new"]) for e in writes] == [(TEMP, 830.0), (TEMP, 850.0)]
        assert {e.data["user"] for e in writes} == {"lee"}
        assert all(e.data["result"] == "ok" for e in writes)
        codes = [e.code for e in events if e.kind == "optimize"]
        for code in ("optimize.proposed", "optimize.approval_refused", "optimize.approved", "optimize.applied",
                     "optimize.rolled_back"):
            assert code in codes
        refused = next(e for e in events if e.code == "optimize.approval_refused")
        assert refused.data["user"] == "kim"
    finally:
        await runner.cleanup()
        await svc.stop()
        sim.stop()
        await sim_task


async def _true(v: bool) -> bool:
    return v
