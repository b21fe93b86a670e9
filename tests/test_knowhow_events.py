"""Know-how cases in the event log: an approval and a "this helped" reach the event log (so the
proof-of-value report lists them among what changed) with the case's id and masked title, never a
person's name or pseudonym."""

from __future__ import annotations

import json

from aiohttp.test_utils import TestClient, TestServer

from _auth import make_security, token_headers
from _fake_service import LINE, FakeService, open_test_historian
from axline.app.server import create_app
from axline.demo import demo_plant
from axline.knowhow.base import KnowHow
from axline.knowhow.live import KnowHowLive
from axline.report.value import build_value_report, value_to_html

H = 3600 * 1_000_000_000


async def test_approved_and_helpful_cases_are_events_the_value_report_lists(tmp_path):
    sec = make_security()
    historian = open_test_historian(tmp_path / "h")
    svc = FakeService(historian, tick_s=0.05, history_s=120)
    svc.knowhow = KnowHowLive(lambda: KnowHow(str(tmp_path / "kh")), historian=lambda: svc.historian)
    svc.knowhow.open_now()
    client = TestClient(TestServer(create_app(svc, security=sec)))
    await client.start_server()
    try:
        body = {"title": "Spindle bearing worn", "symptom": "vibration rising after lunch", "cause": "bearing wear",
                "action": "replaced the bearing", "asset": f"{LINE}/cnc/cnc1"}
        r = await client.post("/api/knowhow/cases", json=body, headers=token_headers(sec, "kim", "operator"))
        assert r.status == 201, await r.text()
        case = await r.json()
        cid, author = case["id"], case["author"]
        r = await client.post(f"/api/knowhow/cases/{cid}/feedback", json={"helpful": True},
                              headers=token_headers(sec, "park", "operator"))
        assert r.status == 200
        r = await client.post(f"/api/knowhow/cases/{cid}/approve", json={}, headers=token_headers(sec, "boss", "approver"))
        assert r.status == 200, await r.text()
        r = await client.post(f"/api/knowhow/cases/{cid}/feedback", json={"helpful": False},
                              headers=token_headers(sec, "park", "operator"))
        assert r.status == 200
        r = await client.post(f"/api/knowhow/cases/{cid}/feedback", json={"helpful": True},
                              headers=token_headers(sec, "park", "operator"))
        assert r.status == 200
    finally:
        await client.close()
        svc.knowhow.close()
    events = sorted(historian.events(kinds=["knowhow"]), key=lambda e: e.id)
    # helped as a draft, approved, not helpful once (no event), helped again
    assert [(e.code, e.data["state"]) for e in events] == [("knowhow.helped", "draft"), ("knowhow.approved", "approved"),
                                                           ("knowhow.helped", "approved")]
    for e in events:
        assert e.data["case_id"] == cid and e.data["title"] == "Spindle bearing worn"
        said = json.dumps(e.to_json(), ensure_ascii=False)
        assert not any(name in said for name in ("kim", "park", "boss", author))
    # the value report lists both among what changed
    plant = demo_plant(tmp_path / "plant", "opc.tcp://127.0.0.1:1/unused")
    ts = events[1].ts
    rep = build_value_report(historian, plant, (ts - 3 * H, ts - H), (ts - H, ts + H))
    changes = [(c["what"], c["by"]) for c in rep["changes"]]
    assert ("knowhow.approved", None) in changes and ("knowhow.helped", None) in changes
    assert "Spindle bearing worn" in value_to_html(rep, "en")
    historian.close()
