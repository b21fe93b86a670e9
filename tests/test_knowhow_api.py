"""Know-how routes against a FakeService: roles, review by someone else, photos, privacy, the hook."""

from __future__ import annotations

import asyncio
import threading
import time

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
        deadline = time.monotonic() + 120  # suggestions come from a worker thread; generous on a busy machine
        while not pushed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        msg = next(m for m in pushed if m["type"] == "knowhow")
        assert msg["event_id"] == eid and msg["suggestions"][0]["id"] == c["id"]
        assert svc.health_json()["knowhow"]["suggested"] == 1
    finally:
        svc.knowhow.close()
        svc.historian.close()


async def test_no_author_names_in_the_event_log_and_audit_events_for_admins_only(env):
    """Know-how actions go to the admin-only audit trail; the event log every viewer reads holds no
    real names, and audit events (of any feature) are shown to admins only."""
    svc, client = env
    r = await client.post("/api/knowhow/cases", json={"symptom": "Coolant pump noise"}, headers=U("kim", "operator"))
    cid = (await r.json())["id"]
    await client.post("/api/knowhow/consent", json={"given": True}, headers=U("kim", "operator"))
    await client.post(f"/api/knowhow/cases/{cid}/approve", json={}, headers=U("boss", "approver"))
    for e in svc.historian.events(limit=1000):
        text = str(e.to_json())
        assert "kim" not in text and "boss" not in text, text
    trail = [e for e in SEC.audit.tail(1000) if e["action"].startswith("knowhow.")]
    assert {e["action"] for e in trail} >= {"knowhow.create", "knowhow.consent", "knowhow.approve"}
    # an audit event in the log (e.g. an alarm acknowledged) names a real user: admins only
    svc.historian.add_event(Event(ts=svc.now_ns(), kind="audit", source=LINE, code="alarm.ack", severity="info",
                                  message="kim: ack", data={"user": "kim"}))
    for query in ("?kind=audit", "", "?kind=audit,alarm", "?limit=1"):
        r = await client.get("/api/events" + query, headers=U("v", "viewer"))
        assert r.status == 200
        assert all(e["kind"] != "audit" for e in (await r.json())["events"]), query
    r = await client.get("/api/events?limit=1", headers=U("v", "viewer"))
    assert len((await r.json())["events"]) == 1  # the page is filled from older events
    r = await client.get("/api/events?kind=audit", headers=U("a", "admin"))
    assert [e["code"] for e in (await r.json())["events"]] == ["alarm.ack"]


async def test_an_approver_cannot_approve_text_they_edited(env):
    _, client = env
    r = await client.post("/api/knowhow/cases", json={"symptom": "Press stops at top dead centre"},
                          headers=U("kim", "operator"))
    cid = (await r.json())["id"]
    r = await client.post(f"/api/knowhow/cases/{cid}", json={"cause": "worn clutch lining"},
                          headers=U("boss", "approver"))
    assert r.status == 200 and (await r.json())["state"] == "draft"
    r = await client.post(f"/api/knowhow/cases/{cid}/approve", json={}, headers=U("boss", "approver"))
    assert r.status == 403 and "edited" in (await r.json())["error"]
    r = await client.post(f"/api/knowhow/cases/{cid}/approve", json={}, headers=U("han", "approver"))
    assert r.status == 200
    # after that approval kim edits again: boss's edit is older than the last approval, so boss may approve
    r = await client.post(f"/api/knowhow/cases/{cid}", json={"action": "relined the clutch"},
                          headers=U("kim", "operator"))
    assert (await r.json())["state"] == "draft"
    r = await client.post(f"/api/knowhow/cases/{cid}/approve", json={}, headers=U("boss", "approver"))
    assert r.status == 200, await r.text()


async def test_photos_only_on_own_cases_for_operators(env):
    _, client = env
    r = await client.post("/api/knowhow/cases", json={"symptom": "Belt slips"}, headers=U("kim", "operator"))
    cid = (await r.json())["id"]
    jpeg = b"\xff\xd8\xff\xe0" + bytes(100)
    r = await client.post(f"/api/knowhow/cases/{cid}/photos", data=jpeg,
                          headers={**U("choi", "operator"), "Content-Type": "image/jpeg"})
    assert r.status == 403
    r = await client.get(f"/api/knowhow/cases/{cid}", headers=U("v", "viewer"))
    assert (await r.json())["photos"] == []
    r = await client.post(f"/api/knowhow/cases/{cid}/photos", data=jpeg,
                          headers={**U("lee", "engineer"), "Content-Type": "image/jpeg"})
    assert r.status == 201
    assert any(e["action"] == "knowhow.photo" and e["who"] == "lee" and e["target"] == cid
               for e in SEC.audit.tail(100))


async def test_export_and_delete_are_refused_when_the_audit_trail_fails(env, monkeypatch):
    from axline.app.audit import AuditError

    _, client = env
    r = await client.post("/api/knowhow/cases", json={"symptom": "Spindle overheats"}, headers=U("kim", "operator"))
    cid = (await r.json())["id"]

    def broken(*a, **kw):
        raise AuditError("the audit trail cannot be written (disk full)")

    monkeypatch.setattr(SEC.audit, "record", broken)
    r = await client.get("/api/knowhow/authors/kim/export", headers=U("a", "admin"))
    assert r.status == 503 and "audit" in (await r.json())["error"]
    r = await client.post("/api/knowhow/authors/kim/delete", json={}, headers=U("a", "admin"))
    assert r.status == 503
    monkeypatch.undo()
    r = await client.get(f"/api/knowhow/cases/{cid}", headers=U("v", "viewer"))
    assert r.status == 200  # nothing was deleted


async def test_case_answers_are_built_off_the_loop(env):
    """Masking and the author look-up query the store: never on the event loop."""
    svc, client = env
    kh = svc.knowhow.kh
    loop_thread = threading.get_ident()
    threads: list[int] = []
    real = kh.known_names

    def spy():
        threads.append(threading.get_ident())
        return real()

    kh.known_names = spy
    r = await client.post("/api/knowhow/cases", json={"symptom": "Chiller alarm"}, headers=U("kim", "operator"))
    cid = (await r.json())["id"]
    await client.post(f"/api/knowhow/cases/{cid}", json={"action": "reset"}, headers=U("kim", "operator"))
    await client.post(f"/api/knowhow/cases/{cid}/approve", json={}, headers=U("boss", "approver"))
    assert len(threads) >= 3 and loop_thread not in threads


async def test_searches_record_gaps_only_for_logged_in_users(tmp_path):
    historian = open_test_historian(tmp_path / "h")
    svc = FakeService(historian, tick_s=0.05, history_s=120)
    svc.knowhow = KnowHowLive(lambda: KnowHow(str(tmp_path / "kh")), historian=lambda: svc.historian)
    svc.knowhow.open_now()
    sec = make_security(anonymous_view=True)
    client = TestClient(TestServer(create_app(svc, security=sec)))
    await client.start_server()
    try:
        r = await client.get("/api/knowhow/cases?q=robot+welding+spatter")
        assert r.status == 200, await r.text()
        assert svc.knowhow.kh.store.gaps() == []
        r = await client.get("/api/knowhow/cases?q=robot+welding+spatter", headers=token_headers(sec, "v", "viewer"))
        assert [g["query"] for g in svc.knowhow.kh.store.gaps()] == ["robot welding spatter"]
    finally:
        await client.close()
        svc.knowhow.close()
        historian.close()


async def test_a_failure_in_a_worker_thread_is_reported_on_the_loop(tmp_path):
    """The system event of a failed suggestion is handed to the event loop (the service's queues are
    not thread-safe), not emitted from the worker thread."""
    emitted: list[tuple[int, Event]] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def emit(ev: Event) -> None:
        emitted.append((threading.get_ident(), ev))
        loop.call_soon_threadsafe(done.set)

    class Broken:
        def suggest(self, *a, **kw):
            raise RuntimeError("index damaged")

        def close(self):
            pass

    live = KnowHowLive(lambda: Broken(), emit=emit)
    await live.start()
    live.on_alarm(7, Event(ts=1, kind="alarm", source=LINE, code="x", severity="alarm"))
    await asyncio.wait_for(done.wait(), 120)
    assert emitted[0][0] == threading.get_ident() and emitted[0][1].code == "knowhow.error"
    assert live.errors == 1


async def test_the_live_stream_sends_audit_events_to_admins_only(env):
    import json

    svc, client = env

    async def first_event(resp) -> dict:
        name = None
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("event: "):
                name = line[7:].strip()
            elif line.startswith("data: ") and name == "event":
                return json.loads(line[6:])["event"]

    viewer = await client.get("/api/stream", headers=U("v", "viewer"))
    admin = await client.get("/api/stream", headers=U("a", "admin"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if svc.subscriber_count == 2:
            break
        await asyncio.sleep(0.02)
    assert svc.subscriber_count == 2
    for kind, code in (("audit", "alarm.ack"), ("alarm", "anomaly.sensor")):
        ev = Event(ts=svc.now_ns(), kind=kind, source=LINE, code=code, severity="info", data={"user": "kim"})
        for q in list(svc._queues):
            q.put_nowait({"type": "event", "event": ev.to_json()})
    assert (await asyncio.wait_for(first_event(viewer), 60))["kind"] == "alarm"
    assert (await asyncio.wait_for(first_event(admin), 60))["kind"] == "audit"
    viewer.close()
    admin.close()
