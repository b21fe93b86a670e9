"""Know-how routes against a FakeService: roles, review by someone else, photos, privacy, the hook."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from _auth import make_security, token_headers
from _fake_service import LINE, FakeService, open_test_historian
from axline.app.server import create_app
from axline.historian.base import Event
from axline.knowhow.base import KnowHow
from axline.knowhow.live import KnowHowLive

SEC = make_security()


def U(name: str, role: str) -> dict[str, str]:
    """The caller ``name`` with ``role``, logged in with an API token (tests/_auth.py)."""
    return token_headers(SEC, name, role)


@pytest.fixture
async def env(tmp_path):
    historian = open_test_historian(tmp_path / "h")
    svc = FakeService(historian, tick_s=0.05, history_s=120)
    svc.knowhow = KnowHowLive(lambda: KnowHow(str(tmp_path / "kh")), historian=lambda: svc.historian)
    svc.knowhow.open_now()
    app = create_app(svc, security=SEC)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield svc, client
    await client.close()
    svc.knowhow.close()
    historian.close()


async def test_record_from_alarm_approve_and_suggest(env):
    svc, client = env
    r = await client.get(f"/api/knowhow/prefill?event_id={svc.alarm_id}", headers=U("kim", "operator"))
    assert r.status == 200, await r.text()
    pre = await r.json()
    assert pre["fields"]["asset"] == f"{LINE}/cnc/cnc1" and "vibration_rms" in pre["fields"]["tags"]
    # a viewer may not record
    r = await client.post("/api/knowhow/cases", json={"symptom": "x"}, headers=U("v", "viewer"))
    assert r.status == 403
    body = {"event_id": svc.alarm_id, "symptom": "스핀들 진동, 010-9876-5432로 연락", "cause": "베어링 마모",
            "action": "베어링 교체", "outcome": "fixed", "repair_min": 90, "parts": "6205 bearing"}
    r = await client.post("/api/knowhow/cases", json=body, headers=U("kim", "operator"))
    assert r.status == 201, await r.text()
    case = await r.json()
    assert case["state"] == "draft" and case["author"].startswith("W-") and "9876" not in case["symptom"]
    assert "vibration_rms" in case["signals"] and case["parts"] == ["6205 bearing"]
    cid = case["id"]
    # the author cannot approve, an engineer may not, another approver may
    r = await client.post(f"/api/knowhow/cases/{cid}/approve", json={}, headers=U("kim", "approver"))
    assert r.status == 403 and "author" in (await r.json())["error"]
    r = await client.post(f"/api/knowhow/cases/{cid}/approve", json={}, headers=U("lee", "engineer"))
    assert r.status == 403
    r = await client.post(f"/api/knowhow/cases/{cid}/approve", json={}, headers=U("boss", "approver"))
    assert r.status == 200 and (await r.json())["state"] == "approved"
    trail = SEC.audit.tail(100)
    assert any(e["action"] == "knowhow.approve" and e["who"] == "boss" and e["target"] == cid for e in trail)
    assert any(e["action"] == "knowhow.create" and e["who"] == "kim" for e in trail)
    # the same alarm pattern again: the case is suggested with why
    ev = Event(ts=svc.now_ns(), kind="alarm", source=f"{LINE}/cnc/cnc1", code="anomaly.sensor", severity="alarm",
               message="cnc1: unusual vibration_rms", data={"contributions": {"vibration_rms": 8.0, "spindle_temp": 2.0}})
    eid = svc.historian.add_event(ev)
    r = await client.get(f"/api/knowhow/suggestions?event_id={eid}", headers=U("v", "viewer"))
    sug = (await r.json())["suggestions"]
    assert sug[0]["id"] == cid and "vibration_rms" in sug[0]["why"]["signals"] and sug[0]["confidence"] > 0.5
    r = await client.post(f"/api/knowhow/cases/{cid}/feedback", json={"helpful": True, "event_id": eid},
                          headers=U("park", "operator"))
    assert (await r.json())["helpful"] == 1
    r = await client.get("/api/knowhow/status", headers=U("v", "viewer"))
    stats = (await r.json())["stats"]
    assert stats["feedback"] == {"helpful": 1} and "kim" not in str(stats)


async def test_search_gaps_photos_and_privacy_routes(env):
    svc, client = env
    r = await client.post("/api/knowhow/cases", json={"symptom": "Hydraulic oil leak at the press cylinder"},
                          headers=U("kim", "operator"))
    cid = (await r.json())["id"]
    r = await client.get("/api/knowhow/cases?q=" + "프레스 실린더 누유", headers=U("v", "viewer"))
    res = (await r.json())["results"]
    assert res[0]["id"] == cid and res[0]["case"]["symptom"].startswith("Hydraulic")
    await client.get("/api/knowhow/cases?q=robot+welding+spatter", headers=U("v", "viewer"))
    r = await client.get("/api/knowhow/gaps", headers=U("v", "viewer"))
    assert r.status == 403
    r = await client.get("/api/knowhow/gaps", headers=U("e", "engineer"))
    assert any(g["query"] == "robot welding spatter" for g in (await r.json())["gaps"])
    # a photo larger than the app's 64 KB JSON limit is accepted; a wrong type is refused
    jpeg = b"\xff\xd8\xff\xe0" + bytes(200_000)
    r = await client.post(f"/api/knowhow/cases/{cid}/photos?name=leak.jpg", data=jpeg,
                          headers={**U("kim", "operator"), "Content-Type": "image/jpeg"})
    assert r.status == 201, await r.text()
    pid = (await r.json())["id"]
    r = await client.get(f"/api/knowhow/photos/{pid}", headers=U("v", "viewer"))
    assert r.status == 200 and len(await r.read()) == len(jpeg)
    r = await client.post(f"/api/knowhow/cases/{cid}/photos", data=b"x",
                          headers={**U("kim", "operator"), "Content-Type": "text/plain"})
    assert r.status == 400
    # another operator may not edit kim's case; an engineer may (a new version, back to draft)
    r = await client.post(f"/api/knowhow/cases/{cid}", json={"action": "x"}, headers=U("choi", "operator"))
    assert r.status == 403
    r = await client.post(f"/api/knowhow/cases/{cid}", json={"action": "replaced the rod seal"},
                          headers=U("lee", "engineer"))
    assert (await r.json())["version"] == 2
    # consent: the real name is shown to admins only after kim consents
    r = await client.get(f"/api/knowhow/cases/{cid}", headers=U("a", "admin"))
    assert "author_name" not in await r.json()
    await client.post("/api/knowhow/consent", json={"given": True}, headers=U("kim", "operator"))
    r = await client.get(f"/api/knowhow/cases/{cid}", headers=U("a", "admin"))
    assert (await r.json())["author_name"] == "kim"
    r = await client.get(f"/api/knowhow/cases/{cid}", headers=U("v", "viewer"))
    assert "author_name" not in await r.json()
    # export and delete are for admins; delete wipes the case and its photo
    r = await client.get("/api/knowhow/authors/kim/export", headers=U("e", "engineer"))
    assert r.status == 403
    r = await client.get("/api/knowhow/authors/kim/export", headers=U("a", "admin"))
    assert [c["id"] for c in (await r.json())["cases"]] == [cid]
    r = await client.post("/api/knowhow/authors/kim/delete", json={}, headers=U("a", "admin"))
    assert (await r.json())["deleted_cases"] == 1
    r = await client.get(f"/api/knowhow/photos/{pid}", headers=U("v", "viewer"))
    assert r.status == 404
    r = await client.get(f"/api/knowhow/cases/{cid}", headers=U("v", "viewer"))
    assert r.status == 404


async def test_bad_input_is_explained(env):
    _, client = env
    r = await client.post("/api/knowhow/cases", json={"cause": "only a cause"}, headers=U("kim", "operator"))
    body = await r.json()
    assert r.status == 400 and "symptom" in body["error"] and body["hint"]
    r = await client.post("/api/knowhow/cases", json={"symptom": "x", "colour": "red"}, headers=U("kim", "operator"))
    assert r.status == 400 and "colour" in (await r.json())["error"]
    r = await client.get("/api/knowhow/prefill?event_id=999999", headers=U("kim", "operator"))
    assert r.status == 404


async def test_service_hook_suggests_on_alarm(tmp_path):
    """Service.emit_event hands each new alarm to the know-how base, which pushes suggestions."""
    from axline.plant import load_plant
    from axline.service import Service

    plant_file = tmp_path / "plant.yaml"
    from axline.plant import example_plant_text

    plant_file.write_text(example_plant_text(), encoding="utf-8")
    svc = Service(load_plant(str(plant_file)))
    from axline.historian import open_historian

    svc.historian = open_historian(str(tmp_path / "hist"))
    kh = KnowHow(str(tmp_path / "kh"))
    asset = svc.plant.assets()[0].path
    c = kh.record({"symptom": "vibration high", "asset": asset,
                   "snapshot": {"asset": asset, "code": "anomaly.sensor", "signals": {"vibration_rms": {"z": 7.0}}}},
                  "kim")
    kh.approve(c["id"], "boss")
    pushed: list[dict] = []
    svc.knowhow = KnowHowLive(lambda: kh, push=pushed.append, historian=lambda: svc.historian)
    svc.knowhow.open_now()
    try:
        q = svc.subscribe()
        eid = svc.emit_event(Event(ts=1, kind="alarm", source=asset, code="anomaly.sensor", severity="alarm",
                                   data={"contributions": {"vibration_rms": 6.0}}))
        assert q.qsize() == 1  # the event itself
        for _ in range(400):  # suggestions come from a worker thread
            if pushed:
                break
            await asyncio.sleep(0.05)
        msg = next(m for m in pushed if m["type"] == "knowhow")
        assert msg["event_id"] == eid and msg["suggestions"][0]["id"] == c["id"]
        assert svc.health_json()["knowhow"]["suggested"] == 1
    finally:
        svc.knowhow.close()
        svc.historian.close()
