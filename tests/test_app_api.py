"""HTTP API of the web app, against a FakeService on a real historian."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from _auth import PASSWORD, add_user, client_as, make_security, start_client
from _fake_service import LINE, NS, T0, FakeService, open_test_historian
from axline import i18n
from axline.app.security import SECURITY_KEY
from axline.app.server import check_bind, create_app, dumps_json, is_loopback

SPINDLE = f"{LINE}/cnc/cnc1/spindle_temp"
VIB = f"{LINE}/cnc/cnc1/vibration_rms"


@pytest.fixture
def service(tmp_path):
    historian = open_test_historian(tmp_path)
    svc = FakeService(historian, tick_s=0.05, history_s=120)
    yield svc
    historian.close()


async def _client(service: FakeService, security=None) -> TestClient:
    return await start_client(create_app(service, security=security or make_security()))


@pytest.fixture
async def client(service):
    """Anonymous, on a loopback app without accounts: a read-only viewer."""
    c = await _client(service)
    yield c
    await c.close()


@pytest.fixture
async def operator(service):
    c = await client_as(create_app(service, security=make_security()), "operator", name="kim")
    yield c
    await c.close()


@pytest.fixture
async def locked(service):
    """An app with accounts: nothing but the login page without logging in."""
    sec = make_security()
    add_user(sec, "admin", "admin")
    c = await _client(service, sec)
    yield c
    await c.close()


def _basic(password: str, user: str = "admin") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def _error(resp, status: int) -> dict:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert {"error", "hint"} <= set(body) <= {"error", "hint", "request_id", "code", "params"}
    assert body["error"] and body["hint"]
    if "code" in body:  # a catalog text: the browser shows it in its own language from code and params
        assert i18n.text(body["code"], "en", **body["params"]) == body["error"]
        ko = i18n.text(body["code"], "ko", **body["params"]) + i18n.text(body["code"] + ".hint", "ko", **body["params"])
        assert ko != body["error"] + body["hint"]
    return body


# -- plain JSON endpoints -------------------------------------------------------------------------
async def test_plant_status_kpi_health(client, service):
    r = await client.get("/api/plant")
    assert r.status == 200 and r.content_type == "application/json"
    plant = await r.json()
    assert plant == service.plant_json()
    assert plant["name"]["ko"] == "창원 1공장"
    r = await client.get("/api/status")
    stations = (await r.json())["lines"]["line1"]["stations"]
    assert stations[f"{LINE}/cnc/cnc1"]["state"] in ("running", "alarm")
    kpi = (await (await client.get("/api/kpi")).json())["lines"]["line1"]
    assert 0 <= kpi["oee"] <= 1 and kpi["parts_good"] + kpi["parts_rejected"] == kpi["parts_total"]
    text = await (await client.get("/api/health")).text()
    assert "NaN" not in text
    health = json.loads(text)
    assert health["ok"] is True and health["readings_stored"] == service.historian.count()
    assert health["nan_example"] is None


async def test_security_headers(client):
    for path in ("/", "/api/plant", "/static/app.js", "/api/nope"):
        r = await client.get(path)
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


async def test_index_and_static(client):
    r = await client.get("/")
    html = await r.text()
    assert r.status == 200 and r.content_type == "text/html"
    for marker in ('id="lang-toggle"', 'id="kpi-oee"', 'id="events"', 'id="stream-state"', "/static/app.js"):
        assert marker in html
    assert (await client.get("/static/i18n.js")).status == 200
    assert (await client.get("/static/../server.py")).status in (403, 404)


async def test_unknown_api_route_is_json_404(client):
    body = await _error(await client.get("/api/nope"), 404)
    assert "/api/nope" in body["error"]


def test_dumps_json_maps_nan_and_numpy_to_valid_json():
    import numpy as np

    text = dumps_json({"a": float("nan"), "b": [float("inf"), np.float32(1.5)], "c": np.array([1.0, np.nan])})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": [1.0, None]}


# -- latest / series --------------------------------------------------------------------------------
async def test_latest_all_and_selected(client, service):
    body = await (await client.get("/api/latest")).json()
    assert body["ts"] == service.now_ns()
    assert set(body["values"]) == {t["path"] for t in service.tags}
    ts, value, quality = body["values"][SPINDLE]
    assert ts == T0 and quality == 0 and value == pytest.approx(service.value(service.tags[2], 0))
    service.tick()
    body = await (await client.get(f"/api/latest?tags={SPINDLE},{LINE}/nope/x")).json()
    assert list(body["values"]) == [SPINDLE]
    assert body["values"][SPINDLE][0] == T0 + NS


async def test_series_defaults_match_historian(client, service):
    body = await (await client.get("/api/series")).json()
    trend = [t["path"] for t in service.tags if t["trend"]]
    assert list(body["tags"]) == trend
    assert body["to"] == service.now_ns() and body["from"] == body["to"] - 600 * NS
    s = body["tags"][SPINDLE]
    assert len(s["t"]) >= 50 and s["t"] == sorted(s["t"])
    assert all(body["from"] // 10**6 <= t < body["to"] // 10**6 for t in s["t"])
    assert all(lo <= m <= hi for lo, m, hi in zip(s["min"], s["mean"], s["max"], strict=True))
    ref = service.historian.query_buckets([SPINDLE], body["from"], body["to"], body["step"])[SPINDLE]
    assert s["mean"] == pytest.approx(ref.mean.tolist())
    assert s["t"][0] == ref.start[0] // 10**6


async def test_series_raw_and_explicit_window(client, service):
    start, end = T0 - 10 * NS, T0 + NS
    body = await (await client.get(f"/api/series?tags={SPINDLE},{VIB}&from={start}&to={end}&raw=1")).json()
    s = body["tags"][SPINDLE]
    assert len(s["t"]) == 11 and s["t"][-1] == T0 // 10**6
    assert s["value"][-1] == pytest.approx(service.value(service.tags[2], 0))
    assert set(s) == {"t", "value", "quality"}
    step = 5 * NS
    body = await (await client.get(f"/api/series?tags={VIB}&from={start}&to={end}&step={step}")).json()
    assert body["step"] == step and len(body["tags"][VIB]["t"]) == 3


async def test_series_nan_reading_is_null(client, service):
    pressure = f"{LINE}/wash/washer1/pressure"
    for _ in range(17):
        service.tick()
    body = await (await client.get(f"/api/series?tags={pressure}&from={T0}&to={T0 + 20 * NS}&raw=1")).json()
    s = body["tags"][pressure]
    assert s["value"][-1] is None and s["quality"][-1] == 5


async def test_series_unknown_tag_is_empty(client):
    body = await (await client.get("/api/series?tags=a/b/c/d/e/f")).json()
    assert body["tags"] == {"a/b/c/d/e/f": {"t": [], "min": [], "max": [], "mean": [], "last": []}}


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("from=abc", "from must be an integer (ns since epoch)"),
        ("to=1.5e18", "to must be an integer"),
        ("from=-5", "from must be between 0"),
        (f"from={T0}&to={T0}", "from must be before to"),
        ("step=0", "step must be between 1"),
        (f"from={T0 - 3600 * NS}&to={T0}&step=1000", "step is too small"),
        ("raw=yes", "raw must be 0 or 1"),
        ("tags=" + ",".join(f"t{i}" for i in range(501)), "at most 500 tags"),
    ],
)
async def test_series_bad_parameters(client, query, needle):
    body = await _error(await client.get(f"/api/series?{query}"), 400)
    assert needle in body["error"]


# -- events and feedback -----------------------------------------------------------------------------
async def test_events_filters(client, service):
    body = await (await client.get("/api/events")).json()
    events = body["events"]
    assert [e["id"] for e in events] == [service.inspection_id, service.alarm_id]  # newest first
    alarm = events[1]
    assert alarm["data"]["contributions"]["vibration_rms"] == pytest.approx(0.62)
    assert [e["id"] for e in (await (await client.get("/api/events?kind=alarm")).json())["events"]] == [
        service.alarm_id
    ]
    body = await (await client.get(f"/api/events?source={LINE}/vision")).json()
    assert [e["id"] for e in body["events"]] == [service.inspection_id]
    assert len((await (await client.get("/api/events?limit=1")).json())["events"]) == 1
    body = await (await client.get(f"/api/events?before={T0 - 20 * NS}")).json()
    assert [e["id"] for e in body["events"]] == [service.alarm_id]
    assert (
        "limit must be between 1 and 1000"
        in (await _error(await client.get("/api/events?limit=0"), 400))["error"]
    )
    assert (
        "before must be an integer" in (await _error(await client.get("/api/events?before=x"), 400))["error"]
    )


async def test_feedback_updates_event(operator, service):
    # the reviewer is the logged-in user, never a name from the body
    r = await operator.post(
        f"/api/events/{service.inspection_id}/feedback", json={"verdict": "overruled", "user": "mallory"}
    )
    assert r.status == 200, await r.text()
    assert service.feedback_calls == [(service.inspection_id, "overruled", "kim")]
    events = (await (await operator.get("/api/events?kind=inspection")).json())["events"]
    assert events[0]["ack"] == "overruled"
    sec = operator.app[SECURITY_KEY]
    entry = sec.audit.tail(1, action="event.feedback")[0]
    assert (entry["who"], entry["role"], entry["new"], entry["result"]) == ("kim", "operator", "overruled", "ok")


async def test_feedback_needs_an_operator(client, service):
    r = await client.post(f"/api/events/{service.inspection_id}/feedback", json={"verdict": "overruled"})
    assert (await _error(r, 401))["error"] == "login required"
    assert service.feedback_calls == []


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/api/events/1/feedback", {"verdict": "maybe"}, 400, "verdict must be one of confirmed, overruled"),
        ("/api/events/x/feedback", {"verdict": "confirmed"}, 400, "event id must be an integer"),
        ("/api/events/999/feedback", {"verdict": "confirmed"}, 404, "event 999 does not exist"),
        ("/api/events/1/feedback", "verdict=confirmed", 400, "the body must be sent as JSON"),
        ("/api/events/1/feedback", [1, 2], 400, "must be a JSON object"),
    ],
)
async def test_feedback_validation(operator, service, path, body, status, needle):
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    err = await _error(await operator.post(path, **kwargs), status)
    assert needle in err["error"]
    assert service.feedback_calls == []


# -- live stream -----------------------------------------------------------------------------------
async def _read_sse_event(resp, wanted: str, timeout: float = 60.0) -> dict:
    async def read() -> dict:
        name = None
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("event: "):
                name = line[7:].strip()
            elif line.startswith("data: ") and name == wanted:
                return json.loads(line[6:])

    return await asyncio.wait_for(read(), timeout)


async def test_stream_delivers_latest_and_unsubscribes(client, service):
    resp = await client.get("/api/stream")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    deadline = time.monotonic() + 120  # fails only if the socket never subscribes
    while time.monotonic() < deadline:
        if service.subscriber_count:
            break
        await asyncio.sleep(0.02)
    assert service.subscriber_count == 1
    for _ in range(17):  # step 17 carries a NaN reading
        service.tick()
    msg = await _read_sse_event(resp, "latest")
    assert msg["type"] == "latest" and msg["ts"] == T0 + NS
    assert msg["values"][SPINDLE][1] == pytest.approx(service.value(service.tags[2], 1))
    kpi = await _read_sse_event(resp, "kpi")
    assert kpi["lines"]["line1"]["takt_s"] == 12.0
    for _ in range(20):
        msg = await _read_sse_event(resp, "latest")
        if msg["ts"] == T0 + 17 * NS:
            break
    assert msg["values"][f"{LINE}/wash/washer1/pressure"][1:] == [None, 5]
    resp.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if service.subscriber_count == 0:
            break
        await asyncio.sleep(0.05)
    assert service.subscriber_count == 0


async def test_stream_with_feeder_task(client, service):
    task = asyncio.create_task(service.run())
    try:
        resp = await client.get("/api/stream")
        first = await _read_sse_event(resp, "latest")
        second = await _read_sse_event(resp, "latest")
        assert second["ts"] > first["ts"]
        resp.close()
    finally:
        task.cancel()


# -- auth: the full story is in test_security_*.py ---------------------------------------------------
async def test_locked_app_requires_login(locked):
    body = await _error(await locked.get("/api/plant"), 401)
    assert "login required" in body["error"]
    assert (await locked.get("/api/stream")).status == 401
    r = await locked.get("/", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/login"
    assert (await locked.get("/static/app.js")).status == 401
    r = await locked.get("/login")
    assert r.status == 200 and 'name="password"' in await r.text() and 'name="username"' in await r.text()
    for asset in ("/static/login.js", "/static/i18n.js", "/static/style.css", "/i18n/catalog.js"):
        assert (await locked.get(asset)).status == 200, asset


async def test_the_catalog_is_served_to_every_page(locked):
    # the login page needs it before anyone is logged in
    r = await locked.get("/i18n/catalog.js", headers={"Accept-Encoding": "gzip"})
    body = await r.text()
    assert r.status == 200 and r.content_type == "text/javascript" and r.headers.get("Content-Encoding") == "gzip"
    assert body == i18n.catalog_js()[0] and '"login.title"' in body
    again = await locked.get("/i18n/catalog.js", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status == 304


async def test_login_json_sets_session_cookie(locked):
    body = await _error(await locked.post("/login", json={"username": "admin", "password": "wrong-one"}), 401)
    assert body["error"] == "wrong user name or password"
    assert (await locked.get("/api/plant")).status == 401
    r = await locked.post("/login", json={"username": "admin", "password": PASSWORD})
    assert r.status == 200
    cookie = r.headers["Set-Cookie"]
    assert "axline_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert (await locked.get("/api/plant")).status == 200
    assert (await locked.get("/")).status == 200
    r = await locked.post("/logout", allow_redirects=False)
    assert r.status == 303
    assert (await locked.get("/api/plant")).status == 401


async def test_login_form(locked):
    r = await locked.post("/login", data={"username": "admin", "password": "nope-nope"}, allow_redirects=False)
    assert (
        r.status == 401
        and 'id="login-error"' in await r.text()
        and 'id="login-error" hidden' not in await r.text()
    )
    r = await locked.post("/login", data={"username": "admin", "password": PASSWORD}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/"
    assert (await locked.get("/api/kpi")).status == 200
    body = await _error(await locked.post("/login", data={"username": "admin"}), 400)
    assert body["error"] == "password is missing"


async def test_basic_auth_is_gone(locked):
    basic = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    body = await _error(await locked.get("/api/health", headers={"Authorization": basic}), 401)
    assert "only API tokens" in body["error"]


async def test_cross_origin_post_refused(operator, service):
    r = await operator.post(
        f"/api/events/{service.alarm_id}/feedback",
        json={"verdict": "confirmed"},
        headers={"Origin": "http://evil.example"},
    )
    assert (await _error(r, 403))["error"] == "cross-site request refused"
    assert service.feedback_calls == []


def test_check_bind():
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"):
        check_bind(host)
        assert is_loopback(host)
    for host in ("0.0.0.0", "::", "192.168.0.10", "plant-pc"):
        with pytest.raises(ValueError, match="refusing plain HTTP on") as e:
            check_bind(host)
        assert "--tls" in str(e.value) and "127.0.0.1" in str(e.value)
        with pytest.raises(ValueError, match="without an admin account"):
            check_bind(host, tls=True)
        with pytest.raises(ValueError, match="without an admin account"):
            check_bind(host, insecure_http=True)
    with pytest.raises(ValueError, match="host must be"):
        check_bind("")


def test_create_app_rejects_incomplete_service():
    with pytest.raises(TypeError, match="service lacks"):
        create_app(object())


def test_fake_values_stay_in_range(service):
    for tag in service.tags:
        lo, hi = tag["range"]
        vals = [service.value(tag, s) for s in range(200)]
        assert all(lo <= v <= hi for v in vals if not math.isnan(v)), tag["path"]


async def test_stream_sends_keepalive(client, monkeypatch):
    from axline.app import stream

    monkeypatch.setattr(stream, "KEEPALIVE_S", 0.05)
    monkeypatch.setattr(stream, "STREAM_POLL_S", 0.05)
    resp = await client.get("/api/stream")
    lines = []
    while ": keep-alive\n" not in lines:
        lines.append((await asyncio.wait_for(resp.content.readline(), 60)).decode())
    assert lines[0] == "retry: 3000\n"
    resp.close()


async def test_shutdown_ends_open_streams(service):
    c = await _client(service)
    resp = await c.get("/api/stream")
    assert service.subscriber_count == 1
    await asyncio.wait_for(c.close(), 40)  # would hang until the 60 s shutdown timeout without on_shutdown
    assert service.subscriber_count == 0
    resp.close()


async def test_service_failure_is_generic_500_with_request_id(client, service, monkeypatch, caplog):
    def broken() -> dict:
        raise RuntimeError("kpi store unavailable at /secret/path")

    monkeypatch.setattr(service, "kpi_json", broken)
    r = await client.get("/api/kpi")
    assert r.status == 500
    body = await r.json()
    assert body["error"] == "internal error" and "secret" not in json.dumps(body)
    assert body["request_id"] == r.headers["X-Request-Id"] and body["request_id"] in body["hint"]
    # the details are in the server log, under the same request id
    assert any(body["request_id"] in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_the_app_is_built_and_started_in_a_thread(tmp_path):
    # tools and tests serve the app from a thread whose stack has no module frame
    import threading

    hist = open_test_historian(tmp_path)
    out: dict = {}

    def build() -> None:
        async def go() -> None:
            app = create_app(FakeService(hist), security=make_security())
            client = TestClient(TestServer(app))
            await client.start_server()
            out["status"] = (await client.get("/api/health")).status
            await client.close()

        try:
            asyncio.run(go())
        except BaseException as e:  # reported to the test
            out["error"] = e

    t = threading.Thread(target=build)
    t.start()
    t.join(120)
    hist.close()
    assert "error" not in out, repr(out.get("error"))
    assert out["status"] in (200, 401)
