"""Alarm life cycle (ISA-18.2 states, acknowledge, shelve with expiry, suppression by design),
alarm performance figures, and the alarm API with its role checks and audit records."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from _auth import make_security
from _fake_service import LINE, NS, T0, FakeService, open_test_historian
from axline.alarms import lifecycle as lc
from axline.alarms.performance import chattering, flood_periods, performance, rate_rating
from axline.app.server import create_app
from axline.batch import Batch
from axline.historian.base import Event

CNC = f"{LINE}/cnc/cnc1"


def _alarm(ts: int, source: str = CNC, code: str = "anomaly.sensor", end_ts: int | None = None,
           severity: str = "alarm", eid: int = 1) -> Event:
    return Event(ts=ts, kind="alarm", source=source, code=code, severity=severity, end_ts=end_ts, id=eid,
                 message="m")


# -- life cycle -------------------------------------------------------------------------------------
def test_states_follow_the_isa_18_2_life_cycle():
    now = T0
    ev = _alarm(T0 - 60 * NS)
    assert lc.alarm_state(ev, now) == "active"
    ev.end_ts = T0 - 10 * NS
    assert lc.alarm_state(ev, now) == "returned"  # returned to normal, unacknowledged
    upd = lc.acknowledge(ev, "kim", now, note="  reset the pump ")
    assert upd["ack"] == "acknowledged" and upd["data"]["ack"] == {"user": "kim", "ts": now, "note": "reset the pump"}
    ev.ack, ev.data = upd["ack"], upd["data"]
    assert lc.alarm_state(ev, now) == "cleared"
    ev.end_ts = None
    assert lc.alarm_state(ev, now) == "acknowledged"
    with pytest.raises(lc.AlarmActionError, match="already acknowledged by kim"):
        lc.acknowledge(ev, "lee", now)
    assert lc.alarm_state(ev, now, suppressed="changeover") == "suppressed"


def test_shelving_expires_by_itself_and_needs_a_reason_and_a_bounded_time():
    ev = _alarm(T0)
    with pytest.raises(lc.AlarmActionError, match="reason is required"):
        lc.shelve(ev, "kim", T0, 30, "  ")
    with pytest.raises(lc.AlarmActionError, match="between 1 and 1440"):
        lc.shelve(ev, "kim", T0, 3000, "sensor swap")
    with pytest.raises(lc.AlarmActionError, match="minutes must be a number"):
        lc.shelve(ev, "kim", T0, "30", "sensor swap")
    upd = lc.shelve(ev, "kim", T0, 30, "sensor swap")
    ev.data.update(upd["data"])
    assert lc.alarm_state(ev, T0 + 29 * 60 * NS) == "shelved"
    assert lc.alarm_state(ev, T0 + 30 * 60 * NS) == "active"  # expired: back in front of the operator
    ev.data.update(lc.unshelve(ev, "lee", T0 + 60 * NS)["data"])
    assert lc.alarm_state(ev, T0 + 2 * 60 * NS) == "active"
    assert [a["action"] for a in ev.data["actions"]] == ["shelve", "unshelve"]
    with pytest.raises(lc.AlarmActionError, match="not shelved"):
        lc.unshelve(ev, "lee", T0 + 3 * 60 * NS)


def test_priorities():
    assert lc.priority_of(_alarm(T0)) == "high"
    assert lc.priority_of(_alarm(T0, severity="warning")) == "medium"
    assert lc.priority_of(_alarm(T0, code="spc.rule1", severity="warning")) == "low"
    ev = _alarm(T0)
    ev.data["priority"] = "low"
    assert lc.priority_of(ev) == "low"


def test_alarms_raised_during_changeover_are_suppressed_by_design(tmp_path):
    hist = open_test_historian(tmp_path)
    try:
        state = f"{CNC}/state"
        # running, then changeover from T0 + 100 s, running again from T0 + 200 s
        hist.append(Batch.from_readings([(state, T0, 1.0, 0), (state, T0 + 100 * NS, 4.0, 0),
                                         (state, T0 + 200 * NS, 1.0, 0)]))
        a = _alarm(T0 + 50 * NS, eid=None)
        b = _alarm(T0 + 150 * NS, eid=None)
        c = _alarm(T0 + 250 * NS, eid=None)
        other = _alarm(T0 + 150 * NS, source=f"{LINE}/wash/washer1", eid=None)
        for e in (a, b, c, other):
            hist.add_event(e)
        assert lc.designed_suppression(hist, [a, b, c, other]) == {b.id: "changeover"}
    finally:
        hist.close()


# -- performance ----------------------------------------------------------------------------------
def test_flood_is_more_than_ten_alarms_in_ten_minutes():
    t = T0 + np.arange(10) * 30 * NS  # 10 alarms in 5 minutes: busy, not a flood
    assert flood_periods(t, T0, T0 + 3600 * NS) == []
    t = T0 + np.arange(11) * 30 * NS  # the 11th makes it a flood
    floods = flood_periods(t, T0, T0 + 3600 * NS)
    assert len(floods) == 1 and floods[0][0] == T0 and floods[0][2] == 11
    assert rate_rating(6) == "acceptable" and rate_rating(7) == "manageable" and rate_rating(13) == "overloaded"


def test_chattering_counts_bursts_of_three_within_a_minute():
    assert chattering(np.array([0, 20, 40]) * NS + T0) == 1
    assert chattering(np.array([0, 40, 80, 120]) * NS + T0) == 0
    assert chattering(np.array([0, 10, 20, 30, 300, 310, 320]) * NS + T0) == 2


def test_performance_report_per_position():
    hour = 3600 * NS
    alarms = []
    # line 1: 12 alarms in 2 hours (6/h); 4 chattering within a minute, 5 in the busiest 10 minutes
    for i in range(8):
        alarms.append({"id": i, "ts": T0 + i * 15 * 60 * NS, "source": CNC, "code": "anomaly.sensor",
                       "state": "cleared", "priority": "high", "end_ts": T0 + i * 15 * 60 * NS + 1})
    for i in range(4):
        alarms.append({"id": 100 + i, "ts": T0 + hour + i * 10 * NS, "source": f"{LINE}/wash/washer1",
                       "code": "sensor.stuck", "state": "returned", "priority": "medium", "end_ts": T0 + hour})
    alarms.append({"id": 200, "ts": T0 + 5 * NS, "source": CNC, "code": "x", "state": "suppressed",
                   "priority": "low", "end_ts": None})
    # line 2: one alarm active for more than a day: stale
    alarms.append({"id": 300, "ts": T0 - 30 * hour, "source": "changwon/plant1/line2/press/press1",
                   "code": "anomaly.sensor", "state": "active", "priority": "low", "end_ts": None})
    rep = performance(alarms, T0, T0 + 2 * hour, [("line1", LINE), ("line2", "changwon/plant1/line2")])
    p1 = next(p for p in rep["positions"] if p["position"] == "line1")
    assert p1["alarms"] == 12 and p1["per_hour"] == pytest.approx(6.0) and p1["rating"] == "acceptable"
    assert p1["peak_10min"] == 5 and p1["floods"] == []
    assert rep["suppressed"] == 1 and rep["alarms"] == 12
    assert rep["top"][0]["source"] == CNC and rep["top"][0]["count"] == 8
    assert rep["chattering"] == [{"source": f"{LINE}/wash/washer1", "code": "sensor.stuck", "count": 4, "bursts": 1}]
    assert [s["id"] for s in rep["stale"]] == [300]
    assert rep["priorities"]["high"]["count"] == 8


# -- the API ------------------------------------------------------------------------------------------
# Callers log in for real: API tokens of a viewer and an operator (tests/_auth.py)
SEC = make_security()
OP = {"Authorization": "Bearer " + SEC.accounts.token_add("kim", "operator")[0]}
VIEWER = {"Authorization": "Bearer " + SEC.accounts.token_add("park", "viewer")[0]}


@pytest.fixture
async def api(tmp_path):
    hist = open_test_historian(tmp_path)
    svc = FakeService(hist, tick_s=10, history_s=60)
    app = create_app(svc, security=SEC)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield svc, client
    await client.close()
    hist.close()


async def test_acknowledge_shelve_and_expiry_through_the_api(api):
    svc, client = api
    aid = svc.alarm_id
    resp = await client.get("/api/alarms", headers=VIEWER)
    assert resp.status == 200
    body = await resp.json()
    assert [a["id"] for a in body["alarms"]] == [aid]
    assert body["alarms"][0]["state"] == "active" and body["alarms"][0]["priority"] == "high"
    # a viewer may look, not act
    resp = await client.post(f"/api/alarms/{aid}/ack", json={"note": "x"}, headers=VIEWER)
    assert resp.status == 403
    resp = await client.post(f"/api/alarms/{aid}/ack", json={"note": "재설정함", "user": "forged"}, headers=OP)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "acknowledged"
    resp = await client.post(f"/api/alarms/{aid}/ack", json={}, headers=OP)
    assert resp.status == 409 and "already acknowledged by kim" in (await resp.json())["error"]
    resp = await client.post(f"/api/alarms/{aid}/shelve", json={"minutes": 5}, headers=OP)
    assert resp.status == 400 and "reason is required" in (await resp.json())["error"]
    resp = await client.post(f"/api/alarms/{aid}/shelve", json={"minutes": 5, "reason": "sensor swap"}, headers=OP)
    assert resp.status == 200 and (await resp.json())["state"] == "shelved"
    assert (await (await client.get("/api/alarms?state=shelved", headers=VIEWER)).json())["counts"]["shelved"] == 1
    # plant time passes the shelve's end: the alarm is back
    svc._now += 6 * 60 * NS
    body = await (await client.get("/api/alarms", headers=VIEWER)).json()
    assert body["alarms"][0]["state"] == "acknowledged"
    # every action is audited under the caller's name, never the body's "user"
    audits = svc.historian.events(kinds=["audit"])
    assert [(e.code, e.data["user"]) for e in reversed(audits)] == [("alarm.ack", "kim"), ("alarm.shelve", "kim")]
    assert audits[-1].data["ack"]["note"] == "재설정함"


async def test_alarm_api_refuses_bad_input_clearly(api):
    svc, client = api
    resp = await client.post("/api/alarms/999999/ack", json={}, headers=OP)
    assert resp.status == 404
    resp = await client.post(f"/api/alarms/{svc.inspection_id}/ack", json={}, headers=OP)
    assert resp.status == 404  # not an alarm
    resp = await client.get("/api/alarms?state=open", headers=VIEWER)
    assert resp.status == 400 and "active" in (await resp.json())["hint"]
    resp = await client.post(f"/api/alarms/{svc.alarm_id}/ack", data="note", headers=OP)
    assert resp.status == 400


async def test_performance_api(api):
    svc, client = api
    resp = await client.get(f"/api/alarms/performance?from={T0 - 3600 * NS}&to={T0}", headers=VIEWER)
    assert resp.status == 200
    rep = await resp.json()
    assert rep["alarms"] == 1 and rep["positions"][0]["position"] == "line1"
    assert rep["positions"][0]["per_hour"] == pytest.approx(1.0)
    resp = await client.get(f"/api/alarms/performance?from={T0}&to={T0 - 1}", headers=VIEWER)
    assert resp.status == 400


async def test_dashboard_verdicts_are_refused_for_alarms(api):
    svc, client = api
    aid = svc.alarm_id
    resp = await client.post(f"/api/events/{aid}/feedback", json={"verdict": "confirmed"}, headers=OP)
    assert resp.status == 409, await resp.text()
    assert f"/api/alarms/{aid}/ack" in (await resp.json())["hint"]
    assert svc.historian.event(aid).ack is None and svc.feedback_calls == []
    # an inspection still takes a verdict
    resp = await client.post(f"/api/events/{svc.inspection_id}/feedback", json={"verdict": "confirmed"}, headers=OP)
    assert resp.status == 200


async def test_an_old_alarm_is_found_behind_many_newer_events(api):
    svc, client = api
    aid = svc.alarm_id
    real = svc.historian.events
    svc.historian.events = lambda *a, **k: []  # a scan of the newest events would not find it
    try:
        resp = await client.post(f"/api/alarms/{aid}/note", json={"note": "checked"}, headers=OP)
    finally:
        svc.historian.events = real
    assert resp.status == 200, await resp.text()
    assert [a["note"] for a in svc.historian.event(aid).data["actions"]] == ["checked"]


async def test_two_operators_acting_at_once_lose_no_action(api):
    import asyncio
    import threading

    svc, client = api
    aid = svc.alarm_id
    real = svc.historian.event
    both_read = threading.Barrier(2, timeout=1.0)

    def slow_event(event_id):
        ev = real(event_id)
        try:  # both requests read the alarm before either writes, unless they are serialised
            both_read.wait()
        except threading.BrokenBarrierError:
            pass
        return ev

    svc.historian.event = slow_event
    r1, r2 = await asyncio.gather(
        client.post(f"/api/alarms/{aid}/note", json={"note": "first"}, headers=OP),
        client.post(f"/api/alarms/{aid}/note", json={"note": "second"}, headers=OP))
    svc.historian.event = real
    assert (r1.status, r2.status) == (200, 200)
    assert sorted(a["note"] for a in real(aid).data["actions"]) == ["first", "second"]


async def test_an_action_builds_on_the_last_one_even_before_the_event_log_has_stored_it(api):
    svc, client = api
    aid = svc.alarm_id
    real = svc.historian.update_event
    deferred = []
    svc.historian.update_event = lambda event_id, **fields: deferred.append((event_id, fields))  # a slow writer
    try:
        for note in ("first", "second"):
            resp = await client.post(f"/api/alarms/{aid}/note", json={"note": note}, headers=OP)
            assert resp.status == 200, await resp.text()
        assert [a["note"] for a in (await resp.json())["data"]["actions"]] == ["first", "second"]
    finally:
        svc.historian.update_event = real
    for event_id, fields in deferred:  # the writer catches up
        real(event_id, **fields)
    assert [a["note"] for a in svc.historian.event(aid).data["actions"]] == ["first", "second"]


async def test_alarm_actions_write_the_event_log_off_the_loop(api):
    svc, client = api
    aid = svc.alarm_id
    loop_thread = threading.get_ident()
    writes: list[tuple[str, int]] = []
    real_update, real_add = svc.historian.update_event, svc.historian.add_event

    def update_event(event_id, **fields):
        writes.append(("update", threading.get_ident()))
        return real_update(event_id, **fields)

    def add_event(event):
        writes.append(("add", threading.get_ident()))
        return real_add(event)

    svc.historian.update_event, svc.historian.add_event = update_event, add_event
    try:
        resp = await client.post(f"/api/alarms/{aid}/ack", json={"note": "checked"}, headers=OP)
        assert resp.status == 200, await resp.text()
        resp = await client.post(f"/api/alarms/{aid}/shelve", json={"minutes": 5, "reason": "swap"}, headers=OP)
        assert resp.status == 200, await resp.text()
    finally:
        svc.historian.update_event, svc.historian.add_event = real_update, real_add
    # each action updates the alarm and stores its audit event, both in a worker thread
    assert sorted(w for w, _ in writes) == ["add", "add", "update", "update"]
    assert all(t != loop_thread for _, t in writes), writes
