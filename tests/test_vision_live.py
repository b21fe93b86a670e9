"""The vision station live: virtual camera -> folder -> inspector (ONNX) -> OK/NG to the PLC over OPC UA
-> the simulated diverter acts on it; operator feedback updates the model without retraining."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import numpy as np
import pytest

from _auth import PASSWORD
from _wait import wait_for  # polled every 0.05 s here: each look reads the historian
from axline.connect.base import CONNECTED
from axline.demo import demo_plant
from axline.service import Service
from axline.sim.camera import render_part
from axline.sim.line import VirtualLine
from axline.sim.server import SimServer

START = 1_767_225_600 * 1_000_000_000
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from axline.inspect.train import train_inspector

    rng = np.random.default_rng(1)
    goods = [render_part(rng, None, size=128)[0] for _ in range(40)]
    path = tmp_path_factory.mktemp("model") / "inspector.axi"
    train_inspector(goods, path, size=128, progress=False)
    return path


async def test_verdicts_drive_the_diverter_and_feedback_updates_the_model(tmp_path, port, model):
    endpoint = f"opc.tcp://127.0.0.1:{port}/axline/sim"
    camera_dir = tmp_path / "data" / "camera"
    line = VirtualLine(seed=3, start_ns=START, faults=None, warmup_s=0, auto_divert=False, vision_wait_s=10.0,
                       image_size=128)
    truth = tmp_path / "truth.jsonl"  # the simulator writes every finished part here
    sim = SimServer(line, endpoint=endpoint, speed=8, camera_dir=camera_dir, truth_file=truth)
    camera_dir.mkdir(parents=True)
    task = asyncio.create_task(sim.run())
    await sim.ready.wait()
    plant = demo_plant(tmp_path, endpoint)
    plant.cameras[0].model = str(model)
    svc = Service(plant, port=0)
    try:
        await svc.start()
        await wait_for(lambda: svc.connectors["sim"].state == CONNECTED, 120, "connection", poll_s=0.05)
        verdicts = lambda: svc.historian.events(kinds=["inspection", "defect"], limit=1000)  # noqa: E731
        await wait_for(lambda: len(verdicts()) >= 8, 120, "eight verdicts", poll_s=0.05)
        evs = verdicts()
        decided = {e.data["path"].rsplit("-", 1)[1].split(".")[0]: e.data["verdict"] for e in evs}

        def finished() -> dict[str, bool]:  # part id -> diverted, for parts that left the line
            rows = [json.loads(x) for x in truth.read_text().splitlines() if x.strip()] if truth.exists() else []
            return {f"{r['part_id']:07d}": r["diverted"] for r in rows if r.get("type") == "part"}

        await wait_for(lambda: decided.keys() <= finished().keys(), 180, "the answered parts to leave the line", poll_s=0.05)
        diverter = "changwon/plant1/line1/vision/camera1/diverter"
        ok = "changwon/plant1/line1/vision/camera1/result_ok"
        for e in evs:
            assert e.data.get("signal") == (diverter if e.data["verdict"] == "reject" else ok), e.data.get("signal_error")
            assert (tmp_path / "data" / "heatmaps" / "cam1" / (e.data["path"].rsplit("/", 1)[1])).exists()
            assert e.data["latency_ms"] is not None and e.data["latency_ms"] > 0
        assert {p for p, _ in sim.client_writes} <= {diverter, ok}
        # the audit log holds the inspector's writes
        assert any(e.data.get("user") == "inspector:cam1" for e in svc.historian.events(kinds=["write"]))
        # operator feedback: a verdict overruled teaches the model (good statistics or threshold change)
        # (an overruled reject joins the good patches; an overruled pass is an escape, a
        # labelled defect that refines the threshold)
        target = evs[-1]
        m0 = svc.vision["cam1"].inspector.model
        before = len(m0.bank), len(m0.defect_scores), m0.gaussian.count if m0.gaussian is not None else 0
        # through the web app, logged in as an operator; the review is audited under that name
        svc.security.accounts.add("kim", "operator", PASSWORD)
        origin = svc.url.rstrip("/")
        async with aiohttp.ClientSession(headers={"Origin": origin}, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            r = await http.post(svc.url + "login", json={"username": "kim", "password": PASSWORD})
            assert r.status == 200, await r.text()
            r = await http.post(f"{svc.url}api/events/{target.id}/feedback", json={"verdict": "overruled"})
            assert r.status == 200, await r.text()
            reply = await r.json()
        assert svc.security.audit.tail(1, action="event.feedback")[0]["who"] == "kim"
        assert any(e["who"] == "inspector:cam1" for e in svc.security.audit.tail(1000, action="tag.write"))
        m1 = svc.vision["cam1"].inspector.model
        assert reply["model"]["learned"] is True and m1 is not m0
        if target.data["verdict"] == "reject":  # its patches join the bank or the per-position Gaussian
            assert len(m1.bank) > before[0] or (m1.gaussian is not None and m1.gaussian.count > before[2])
        else:
            assert len(m1.defect_scores) == before[1] + 1
        rates = svc.vision_json()["cameras"]["cam1"]["rates"]
        assert rates["n_good"] + rates["n_defect"] == 1
        # the same verdict cannot teach twice
        again = await svc.feedback(target.id, "overruled", "kim")
        assert "model" not in again
    finally:
        sim.stop()
        await task
        await svc.stop()
    # what the PLC did matches what axline decided, part by part
    done = finished()
    for key, verdict in decided.items():
        assert done[key] == (verdict == "reject"), key
