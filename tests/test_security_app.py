"""The web app's guard, end to end over HTTP: Host allow-list, cross-site refusals, roles on every
route, sessions, lockout, tokens, limits, headers, audit of every write attempt, OpenAPI, metrics."""

from __future__ import annotations

import re

import pytest

from _auth import PASSWORD, add_user, client_as, login, make_security, start_client
from _fake_service import LINE, FakeService, open_test_historian
from axline.app import security as security_mod
from axline.app.roles import RANK, ROLES
from axline.app.routes import PUBLIC, ROUTES, undocumented
from axline.app.security import SECURITY_KEY
from axline.app.server import create_app

SPINDLE = f"{LINE}/cnc/cnc1/spindle_temp"


@pytest.fixture
def service(tmp_path):
    from axline.knowhow.base import KnowHow
    from axline.knowhow.live import KnowHowLive

    historian = open_test_historian(tmp_path)
    svc = FakeService(historian, tick_s=0.05, history_s=60)
    svc.knowhow = KnowHowLive(lambda: KnowHow(str(tmp_path / "kh")), historian=lambda: svc.historian)
    svc.knowhow.open_now()
    yield svc
    svc.knowhow.close()
    historian.close()


@pytest.fixture
def app(service):
    sec = make_security()
    service.security = sec  # the fake service audits its writes here, as the real one does
    add_user(sec, "root", "admin")
    return create_app(service, security=sec)


def _audit(app, action: str) -> list[dict]:
    return app[SECURITY_KEY].audit.tail(100, action=action)


# -- Host and cross-site ----------------------------------------------------------------------------
async def test_foreign_host_is_refused(app, service):
    c = await client_as(app, "engineer")
    try:
        for method in ("GET", "POST"):
            r = await c.request(method, "/api/write", json={"path": SPINDLE, "value": 1},
                                headers={"Host": "attacker.example:8000", "Origin": "http://attacker.example:8000"})
            assert r.status == 421, method
        assert (await c.get("/api/plant", headers={"Host": "attacker.example"})).status == 421
        assert (await c.get("/api/plant", headers={"Host": f"localhost:{c.port}"})).status == 200
        assert service.writes == []
    finally:
        await c.close()


async def test_configured_host_names_are_allowed(service):
    sec = make_security(hosts=["line1-pc.plant.local"])
    c = await start_client(create_app(service, security=sec))
    try:
        assert (await c.get("/api/plant", headers={"Host": "line1-pc.plant.local:8000"})).status == 200
        assert (await c.get("/api/plant", headers={"Host": "line2-pc.plant.local:8000"})).status == 421
    finally:
        await c.close()


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])
async def test_cross_site_writes_are_refused_and_audited(app, service, headers):
    c = await client_as(app, "engineer")
    try:
        r = await c.post("/api/write", json={"path": SPINDLE, "value": 1}, headers=headers)
        assert r.status == 403 and (await r.json())["error"] == "cross-site request refused"
        assert service.writes == []
        denied = _audit(app, "http.denied")
        assert denied and denied[0]["who"] == "engineer" and denied[0]["target"] == "POST /api/write"
    finally:
        await c.close()


async def test_a_cookie_without_origin_is_refused_but_a_token_is_not(app, service):
    c = await client_as(app, "engineer")
    try:
        del c.session.headers["Origin"]
        r = await c.post("/api/write", json={"path": SPINDLE, "value": 2})
        assert r.status == 403
        text, _ = app[SECURITY_KEY].accounts.token_add("line-script", "engineer")
        c.session.cookie_jar.clear()
        r = await c.post("/api/write", json={"path": SPINDLE, "value": 3},
                         headers={"Authorization": f"Bearer {text}"})
        assert r.status == 200, await r.text()
        assert service.writes == [(SPINDLE, 3.0, "line-script")]
    finally:
        await c.close()


# -- writes and roles -------------------------------------------------------------------------------
async def test_write_needs_login_and_the_engineer_role_and_is_audited(app, service):
    anon = await start_client(app)
    viewer = await client_as(app, "viewer", name="park")
    engineer = await client_as(app, "engineer", name="kim")
    try:
        body = {"path": SPINDLE, "value": 42.5, "user": "somebody-else"}
        assert (await anon.post("/api/write", json=body)).status == 401
        r = await viewer.post("/api/write", json=body)
        assert r.status == 403 and (await r.json())["error"] == "role engineer required"
        assert service.writes == []
        r = await engineer.post("/api/write", json=body)
        assert r.status == 200, await r.text()
        assert service.writes == [(SPINDLE, 42.5, "kim")]  # the logged-in name, never the body's
        writes = _audit(app, "tag.write")
        assert [(e["who"], e["target"], e["new"], e["result"]) for e in writes] == [(SPINDLE and "kim", SPINDLE,
                                                                                     42.5, "ok")]
        denied = [(e["who"], e["result"]) for e in _audit(app, "http.denied")]
        assert ("park", "refused: role engineer required") in denied
        assert ("anonymous", "refused: login required") in denied
        assert app[SECURITY_KEY].audit.verify().ok
    finally:
        for c in (anon, viewer, engineer):
            await c.close()


async def test_every_route_is_documented(app):
    assert undocumented(app) == []


async def test_role_matrix_over_every_route(app):
    """Each role reaches exactly the routes whose least role it holds (API tokens per role)."""
    sec = app[SECURITY_KEY]
    tokens = {r: sec.accounts.token_add(f"svc-{r}", r)[0] for r in ROLES}
    c = await start_client(app)
    checked = 0
    try:
        for (method, path), spec in sorted(ROUTES.items()):
            if not any(r.method == method and r.resource and r.resource.canonical == path
                       for r in app.router.routes()):
                continue
            url = re.sub(r"\{\w+(:[^}]*)?\}", "1", path)
            for role in (None, *ROLES):
                headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
                kw = {"json": {}} if method != "GET" else {}
                r = await c.request(method, url, headers=headers, allow_redirects=False, **kw)
                status = r.status
                text = "" if spec.stream else await r.text()
                r.close()
                assert status < 500, (method, path, role, status, text)
                allowed = spec.role == PUBLIC or (role is not None and RANK[role] >= RANK[spec.role])
                if allowed:
                    assert status not in (401, 403), (method, path, role, status, text)
                else:
                    assert status in (401, 403) or (status == 302 and role is None), (method, path, role, status)
                checked += 1
    finally:
        await c.close()
    assert checked >= 6 * 25


async def test_anonymous_viewer_only_on_loopback_without_accounts(service):
    sec = make_security()
    c = await start_client(create_app(service, security=sec))
    try:
        assert (await c.get("/api/plant")).status == 200  # the demo-style open dashboard
        assert (await c.get("/api/me")).status == 200
        assert (await c.get("/api/openapi.json")).status == 401  # behind login
        assert (await c.post("/api/events/1/feedback", json={"verdict": "confirmed"})).status == 401
        add_user(sec, "root", "admin")  # once there are accounts, nothing without a login
        assert (await c.get("/api/plant")).status == 401
    finally:
        await c.close()


# -- sessions ---------------------------------------------------------------------------------------
async def test_role_change_and_disable_end_sessions_at_once(app):
    sec = app[SECURITY_KEY]
    admin = await client_as(app, "admin", name="root")
    kim = await client_as(app, "engineer", name="kim")
    try:
        assert (await kim.get("/api/me")).status == 200
        r = await admin.post("/api/users/kim", json={"role": "viewer"})
        assert r.status == 200, await r.text()
        assert (await kim.get("/api/me")).status == 401  # logged out now, not at the next login
        await login(kim, "kim")
        assert (await (await kim.get("/api/me")).json())["role"] == "viewer"
        sec.accounts.set_disabled("kim", True)  # as `axline users disable kim` does from another process
        assert (await kim.get("/api/me")).status == 401
        r = await kim.post("/login", json={"username": "kim", "password": PASSWORD})
        assert r.status == 403
        assert [e["action"] for e in _audit(app, "user.")] == ["user.role"]
        assert (await kim.get("/api/users")).status == 401
    finally:
        await admin.close()
        await kim.close()


async def test_login_makes_a_new_session_and_logout_ends_it(app):
    c = await start_client(app)
    try:
        c.session.cookie_jar.update_cookies({"axline_session": "planted-by-an-attacker"})
        await login(c, "root")
        token = c.session.cookie_jar.filter_cookies(c.make_url("/"))["axline_session"].value
        assert token != "planted-by-an-attacker" and len(token) >= 43
        assert (await c.get("/api/users")).status == 200
        assert (await c.post("/logout", allow_redirects=False)).status == 303
        c.session.cookie_jar.update_cookies({"axline_session": token})  # the old cookie, replayed
        assert (await c.get("/api/users")).status == 401
        assert [e["result"] for e in _audit(app, "login")] == ["ok"]
        assert _audit(app, "logout")[0]["who"] == "root"
    finally:
        await c.close()


async def test_idle_and_absolute_timeouts(app, monkeypatch):
    sec = app[SECURITY_KEY]
    now = [1000.0]
    monkeypatch.setattr(security_mod.time, "monotonic", lambda: now[0])
    c = await client_as(app, "viewer")
    try:
        now[0] += sec.settings.session_idle_s - 1
        assert (await c.get("/api/me")).status == 200
        now[0] += sec.settings.session_idle_s + 1
        assert (await c.get("/api/me")).status == 401  # idle too long
        await login(c, "viewer")
        for _ in range(int(sec.settings.session_max_s // sec.settings.session_idle_s) + 1):
            now[0] += sec.settings.session_idle_s - 1
            if (await c.get("/api/me")).status == 401:
                break
        else:
            pytest.fail("the session outlived its absolute timeout")
    finally:
        await c.close()


async def test_sixth_wrong_password_is_locked_out_and_admin_unlocks(app):
    add_user(app[SECURITY_KEY], "kim", "operator")
    c = await start_client(app)
    admin = await client_as(app, "admin", name="root")
    try:
        statuses = [(await c.post("/login", json={"username": "kim", "password": f"guess-{i}-xx"})).status
                    for i in range(6)]
        assert statuses == [401] * 5 + [423]
        r = await c.post("/login", json={"username": "kim", "password": PASSWORD})
        assert r.status == 423 and int(r.headers["Retry-After"]) > 0  # the right password waits too
        assert [e["result"] for e in _audit(app, "login") if e["who"] == "kim"].count("bad") == 5
        assert (await admin.post("/api/users/kim", json={"unlock": True})).status == 200
        await login(c, "kim")
    finally:
        await c.close()
        await admin.close()


async def test_address_throttle(service):
    sec = make_security()
    sec.settings.lock.address_max_failures = 3
    sec.address_failures.window_s = 300
    c = await start_client(create_app(service, security=sec))
    try:
        statuses = [(await c.post("/login", json={"username": f"user{i}", "password": "not-the-one"})).status
                    for i in range(4)]
        assert statuses == [401, 401, 401, 429]
    finally:
        await c.close()


async def test_basic_auth_is_refused_and_tokens_are_checked(app):
    sec = app[SECURITY_KEY]
    text, tok = sec.accounts.token_add("exporter", "viewer")
    c = await start_client(app)
    try:
        import base64

        basic = "Basic " + base64.b64encode(f"root:{PASSWORD}".encode()).decode()
        assert (await c.get("/api/plant", headers={"Authorization": basic})).status == 401
        assert (await c.get("/api/plant", headers={"Authorization": f"Bearer {text}"})).status == 200
        assert (await c.get("/api/users", headers={"Authorization": f"Bearer {text}"})).status == 403
        refused = _audit(app, "http.denied")[0]  # a refused read is audited too
        assert (refused["who"], refused["target"], refused["result"]) == ("exporter", "GET /api/users",
                                                                           "refused: role admin required")
        sec.accounts.token_revoke(tok.id)
        assert (await c.get("/api/plant", headers={"Authorization": f"Bearer {text}"})).status == 401
    finally:
        await c.close()


async def test_tokens_over_the_api_are_shown_once(app):
    admin = await client_as(app, "admin", name="root")
    try:
        r = await admin.post("/api/tokens", json={"account": "mes-bridge", "role": "viewer", "days": 30})
        body = await r.json()
        assert r.status == 200 and body["token"].startswith("axl_") and body["shown_once"]
        listed = await (await admin.get("/api/tokens")).json()
        assert body["token"] not in str(listed) and listed["tokens"][0]["account"] == "mes-bridge"
        assert (await admin.delete(f"/api/tokens/{body['id']}")).status == 200
        assert _audit(app, "token.")[0]["action"] == "token.revoke"
    finally:
        await admin.close()


async def test_no_token_for_a_person_and_the_creator_is_recorded(app):
    """An admin cannot mint a token for a person's account and act under that person's name."""
    sec = app[SECURITY_KEY]
    add_user(sec, "kim", "engineer")
    admin = await client_as(app, "admin", name="root")
    try:
        r = await admin.post("/api/tokens", json={"account": "kim", "role": "engineer", "days": 30})
        assert r.status == 400 and "service" in (await r.json())["error"]
        assert not [t for t in sec.accounts.tokens() if t.account == "kim"]
        refused = _audit(app, "token.add")[0]
        assert refused["who"] == "root" and refused["result"].startswith("refused")
        r = await admin.post("/api/tokens", json={"account": "mes-bridge", "role": "viewer", "days": 30})
        assert r.status == 200
        made = _audit(app, "token.add")[0]
        assert made["who"] == "root" and made["detail"]["creator"] == "root" and made["result"] == "ok"
        assert (await r.json())["creator"] == "root"
    finally:
        await admin.close()


# -- limits and headers -----------------------------------------------------------------------------
async def test_stream_caps(service):
    sec = make_security(streams_per_user=1, streams_total=2)
    app = create_app(service, security=sec)
    add_user(sec, "a", "viewer")
    add_user(sec, "b", "viewer")
    add_user(sec, "c", "viewer")
    clients = [await client_as(app, None) for _ in range(3)]
    try:
        for c, name in zip(clients, "abc", strict=True):
            await login(c, name)
        s1 = await clients[0].get("/api/stream")
        assert s1.status == 200
        assert (await clients[0].get("/api/stream")).status == 429  # per user
        s2 = await clients[1].get("/api/stream")
        assert s2.status == 200
        assert (await clients[2].get("/api/stream")).status == 429  # overall
        s1.close()
        s2.close()
    finally:
        for c in clients:
            await c.close()


async def test_history_window_capped_before_reading(app, service, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the historian was asked to read")

    monkeypatch.setattr(service.historian, "query", boom)
    monkeypatch.setattr(service.historian, "query_buckets", boom)
    c = await client_as(app, "viewer")
    try:
        r = await c.get(f"/api/series?tags={SPINDLE}&from=0&to={7 * 3600 * 10**9}&raw=1")
        assert r.status == 400 and "tag-seconds" in (await r.json())["error"]
        tags = ",".join(f"{SPINDLE}{i}" for i in range(30))
        r = await c.get(f"/api/series?tags={tags}&from=0&to={86400 * 10**9}&step={60 * 10**9}")
        assert r.status == 400 and "tag-seconds" in (await r.json())["error"]
    finally:
        await c.close()


async def test_body_and_rate_limits(service):
    sec = make_security(rate_per_s=1.0, rate_burst=5.0)
    c = await start_client(create_app(service, security=sec))
    try:
        r = await c.post("/login", data=b"x" * (sec.settings.max_body + 1),
                         headers={"Content-Type": "application/json"})
        assert r.status == 413
        statuses = [(await c.get("/api/plant")).status for _ in range(10)]
        assert 429 in statuses and statuses[0] == 200
    finally:
        await c.close()


async def test_security_headers(app, service):
    c = await client_as(app, "viewer")
    try:
        r = await c.get("/api/plant")
        h = r.headers
        assert h["X-Content-Type-Options"] == "nosniff" and h["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"] and h["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in h and len(h["X-Request-Id"]) == 16
    finally:
        await c.close()
    tls = make_security(tls=True)
    c = await start_client(create_app(service, security=tls))
    try:
        r = await c.get("/login")
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        add_user(tls, "kim", "viewer")
        r = await c.post("/login", json={"username": "kim", "password": PASSWORD},
                         headers={"Origin": f"https://127.0.0.1:{c.port}"})
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("__Host-axline_session=") and "Secure" in cookie and "HttpOnly" in cookie
        # over TLS a plain-http Origin is another origin
        r = await c.post("/login", json={"username": "kim", "password": PASSWORD},
                         headers={"Origin": f"http://127.0.0.1:{c.port}"})
        assert r.status == 403
    finally:
        await c.close()


# -- OpenAPI and metrics ----------------------------------------------------------------------------
async def test_openapi_covers_every_route_behind_login(app):
    c = await client_as(app, "viewer")
    try:
        doc = await (await c.get("/api/openapi.json")).json()
        assert doc["openapi"] == "3.1.0"
        served = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
                  if r.resource is not None and r.method not in ("HEAD", "OPTIONS")
                  and not r.resource.canonical.startswith("/static")}
        documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
        assert served == documented
        assert doc["paths"]["/api/write"]["post"]["x-axline-role"] == "engineer"
        assert doc["paths"]["/api/write"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "required"] == ["path", "value"]
        for ops in doc["paths"].values():
            for op in ops.values():
                assert op["summary"] and "2XX" in op["responses"] and "4XX" in op["responses"]
    finally:
        await c.close()


async def test_metrics_need_a_token(app):
    sec = app[SECURITY_KEY]
    text, _ = sec.accounts.token_add("prometheus", "viewer")
    c = await client_as(app, "admin", name="root")
    try:
        assert (await c.get("/metrics")).status == 401  # a browser session is not enough
        r = await c.get("/metrics", headers={"Authorization": f"Bearer {text}"})
        body = await r.text()
        assert r.status == 200 and "# TYPE axline_loop_stall_seconds_max gauge" in body
        assert 'axline_security_events_total{kind="login_ok"} 1' in body
    finally:
        await c.close()
