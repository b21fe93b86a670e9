"""The web app: HTTP JSON API, live stream (Server-Sent Events), login, and the dashboard page.

The app only presents what a *service* owns (connectors, historian, detectors, KPIs); the service
is duck-typed by :class:`ServiceView`. ``create_app(service)`` returns an ``aiohttp`` application;
``check_bind`` refuses to expose an unprotected dashboard beyond the loopback interface.

Times in the API are integer nanoseconds since the epoch, UTC, except trend time axes (``t``),
which are milliseconds so that browsers can use them directly.

Routes: ``GET /`` (dashboard), ``/static/...``, ``GET|POST /login``, ``POST /logout``,
``GET /api/plant|status|kpi|health``, ``GET /api/latest?tags=``,
``GET /api/series?tags=&from=&to=&step=&raw=`` (tags default to the plant's trend tags),
``GET /api/events?limit=&kind=&source=&before=&since=``, ``POST /api/events/{id}/feedback``,
``GET /api/stream`` (Server-Sent Events; event name = message type). Bad parameters answer 400 with
``{"error", "hint"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import numpy as np
from aiohttp import web

from axline.app.roles import USER_REQUEST_KEY, User
from axline.historian.base import Historian

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")

SESSION_COOKIE = "axline_session"
SESSION_TTL_S = 12 * 3600
KEEPALIVE_S = 15.0
STREAM_POLL_S = 1.0  # how often a stream checks whether its client went away
DEFAULT_WINDOW_NS = 10 * 60 * 1_000_000_000
DEFAULT_BUCKETS = 300
MAX_BUCKETS = 20_000
MAX_TAGS = 500
MAX_EVENTS = 1000
MAX_RAW_POINTS = 200_000
NS_MAX = 2**63 - 1
LOGIN_FAILURES_ALLOWED = 10
LOGIN_FAILURE_WINDOW_S = 300.0
VERDICTS = ("confirmed", "overruled")

# Static files that the login page needs; reachable without a session.
LOGIN_ASSETS = frozenset({"/static/style.css", "/static/i18n.js", "/static/login.js", "/static/favicon.svg"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


SERVICE_KEY: web.AppKey[Any] = web.AppKey("service", object)
PASSWORD_KEY: web.AppKey[Any] = web.AppKey("admin_password", object)
SESSIONS_KEY: web.AppKey[Any] = web.AppKey("sessions", object)
FAILURES_KEY: web.AppKey[Any] = web.AppKey("login_failures", object)
STREAMS_KEY: web.AppKey[Any] = web.AppKey("streams", object)
STOPPING_KEY: web.AppKey[Any] = web.AppKey("stopping", object)


@runtime_checkable
class ServiceView(Protocol):
    """What the app needs from the running service (the lead's ``axline serve`` provides it)."""

    historian: Historian

    def plant_json(self) -> dict: ...

    def status_json(self) -> dict: ...

    def kpi_json(self) -> dict: ...

    def now_ns(self) -> int: ...

    def health_json(self) -> dict: ...

    def subscribe(self) -> asyncio.Queue: ...

    def unsubscribe(self, q: asyncio.Queue) -> None: ...

    async def feedback(self, event_id: int, verdict: str, user: str) -> dict: ...


# -- JSON ---------------------------------------------------------------------------------------
def to_jsonable(obj: Any) -> Any:
    """Plain JSON types from dicts, lists, NumPy values; NaN and infinities become ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str | bool | int):
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if hasattr(obj, "to_json"):
        return to_jsonable(obj.to_json())
    return str(obj)


def dumps_json(obj: Any) -> str:
    """Valid JSON (never ``NaN``), UTF-8 text kept as is."""
    return json.dumps(to_jsonable(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=dumps_json(obj), status=status, content_type="application/json", charset="utf-8", headers=headers
    )


class BadRequest(Exception):
    """A request parameter is wrong; answered with HTTP 400 and ``{"error", "hint"}``."""

    def __init__(self, error: str, hint: str = "", status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint
        self.status = status


def error_response(error: str, hint: str = "", status: int = 400, headers: dict[str, str] | None = None):
    return json_response({"error": error, "hint": hint}, status=status, headers=headers)


# -- parameter parsing --------------------------------------------------------------------------
def parse_int_param(
    query: Any, name: str, default: int | None, lo: int, hi: int, what: str, example: int | None = None
) -> int | None:
    """Integer query parameter ``name`` within ``lo..hi``; ``default`` when absent."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        sample = example if example is not None else max(lo, min(hi, 100))
        raise BadRequest(
            f"{name} must be an integer ({what}), got {raw[:40]!r}", f"for example {name}={sample}"
        ) from None
    if not lo <= value <= hi:
        raise BadRequest(
            f"{name} must be between {lo} and {hi} ({what}), got {value}", f"use {lo} <= {name} <= {hi}"
        )
    return value


def parse_tags(query: Any, name: str = "tags") -> list[str] | None:
    """Comma-separated tag paths; ``None`` when the parameter is absent."""
    raw = query.get(name)
    if raw is None or raw.strip() == "":
        return None
    tags = [t.strip() for t in raw.split(",") if t.strip()]
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"{name}: at most {MAX_TAGS} tags per request, got {len(tags)}", "split the request")
    for t in tags:
        if len(t) > 512 or any(ord(c) < 32 for c in t):
            raise BadRequest(
                f"{name}: {t[:60]!r} is not a tag path", "tags look like site/area/line/cell/asset/signal"
            )
    return list(dict.fromkeys(tags))


def _floats(a: np.ndarray) -> list:
    """Float array as a list with ``None`` for NaN / infinities."""
    a = np.asarray(a, dtype=np.float64)
    out = a.astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist()


def trend_tags(plant: dict) -> list[str]:
    """Tag paths marked ``"trend": true`` in a plant_json, in plant order."""
    out: list[str] = []
    for line in plant.get("lines", []):
        for asset in line.get("assets", []):
            out.extend(t["path"] for t in asset.get("tags", []) if t.get("trend") and "path" in t)
    return out


# -- bind check ---------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``."""
    h = host.strip().strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_bind(host: str, admin_password: str | None) -> None:
    """Refuse to serve the dashboard beyond loopback without an admin password (``ValueError``)."""
    if not isinstance(host, str) or not host.strip():
        raise ValueError(
            "host must be a non-empty address such as 127.0.0.1 / host는 127.0.0.1 같은 주소여야 합니다"
        )
    if admin_password is not None and not isinstance(admin_password, str):
        raise ValueError("admin_password must be a string or None")
    if admin_password:
        return
    if is_loopback(host):
        return
    raise ValueError(
        f"refusing to serve the dashboard on {host} without an admin password: set AXLINE_ADMIN_PASSWORD "
        "or --admin-password, or bind 127.0.0.1 / "
        f"관리자 비밀번호 없이 {host}에서 대시보드를 열 수 없습니다: AXLINE_ADMIN_PASSWORD 또는 "
        "--admin-password를 설정하거나 127.0.0.1에 바인딩하세요"
    )


# -- auth ---------------------------------------------------------------------------------------
class Sessions:
    """Random session tokens held in memory (a restart logs everyone out)."""

    def __init__(self, ttl_s: float = SESSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._tokens: dict[str, float] = {}

    def new(self) -> str:
        self._expire()
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + self.ttl_s
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        expiry = self._tokens.get(token)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            self._tokens.pop(token, None)
            return False
        return True

    def drop(self, token: str | None) -> None:
        if token:
            self._tokens.pop(token, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for t in [t for t, e in self._tokens.items() if e < now]:
            del self._tokens[t]


def _basic_password(header: str | None) -> str | None:
    """The password of an ``Authorization: Basic admin:...`` header, else ``None``."""
    if not header or not header[:6].lower() == "basic ":
        return None
    import base64
    import binascii

    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or user != "admin":
        return None
    return password


def _same_password(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _is_browser(request: web.Request) -> bool:
    # Browsers send Fetch Metadata headers; scripts and curl do not. A Basic challenge to a browser's
    # background fetch would pop up a password dialog, so browsers get a cookie-scheme challenge.
    return "Sec-Fetch-Mode" in request.headers


def _unauthorized(request: web.Request, message: str, hint: str) -> web.StreamResponse:
    challenge = 'Session realm="axline"' if _is_browser(request) else 'Basic realm="axline", charset="UTF-8"'
    headers = {"WWW-Authenticate": challenge}
    if request.path.startswith("/api/"):
        return error_response(message, hint, status=401, headers=headers)
    if request.method == "GET" and request.path in ("/", "/index.html"):
        raise web.HTTPFound("/login")
    return web.Response(text=f"{message}: {hint}", status=401, headers=headers)


# -- the app ------------------------------------------------------------------------------------
def create_app(service: ServiceView, admin_password: str | None = None) -> web.Application:
    """The dashboard + API app for ``service``; open when ``admin_password`` is None or empty."""
    missing = [
        name
        for name in (
            "historian",
            "plant_json",
            "status_json",
            "kpi_json",
            "now_ns",
            "health_json",
            "subscribe",
            "unsubscribe",
            "feedback",
        )
        if not hasattr(service, name)
    ]
    if missing:
        raise TypeError(f"service lacks {', '.join(missing)} (see axline.app.server.ServiceView)")
    if admin_password is not None and not isinstance(admin_password, str):
        raise TypeError("admin_password must be a string or None")

    app = web.Application(middlewares=[_error_middleware, _auth_middleware], client_max_size=64 * 1024)
    app[SERVICE_KEY] = service
    app[PASSWORD_KEY] = admin_password or None
    app[SESSIONS_KEY] = Sessions()
    app[FAILURES_KEY] = {}
    app[STREAMS_KEY] = set()
    app[STOPPING_KEY] = asyncio.Event()  # binds to the serving loop lazily (Python >= 3.10)
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_on_shutdown)

    r = app.router
    r.add_get("/", _index)
    r.add_get("/inspection", _inspection_page)
    r.add_get("/api/vision", _vision)
    r.add_get("/login", _login_page)
    r.add_post("/login", _login)
    r.add_post("/logout", _logout)
    r.add_get("/api/plant", _plant)
    r.add_get("/api/status", _status)
    r.add_get("/api/kpi", _kpi)
    r.add_get("/api/health", _health)
    r.add_get("/api/latest", _latest)
    r.add_get("/api/series", _series)
    r.add_get("/api/events", _events)
    r.add_post("/api/events/{id}/feedback", _feedback)
    r.add_post("/api/write", _write_tag)
    r.add_get("/api/stream", _stream)
    r.add_static("/static/", STATIC_DIR, show_index=False, append_version=False)
    from axline.app import operations  # alarms, history, quality, reports (imports this module)

    operations.register(app)
    from axline.app import optimize_routes  # setpoint advisor, approvals, what-if on the twin

    optimize_routes.register(app)
    return app


async def _on_shutdown(app: web.Application) -> None:
    # End live streams so that the server can stop without waiting for clients.
    app[STOPPING_KEY].set()
    for resp in list(app[STREAMS_KEY]):
        with contextlib.suppress(Exception):
            await resp.write_eof()


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")  # "no-referrer" makes form posts send Origin: null
    if request.app[PASSWORD_KEY] is not None:
        h.setdefault("X-Axline-Auth", "password")  # the page shows a log-out button
    if request.path.startswith(("/api/", "/login")) or request.path == "/":
        h.setdefault("Cache-Control", "no-store")
    elif request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-cache")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as e:
        return error_response(e.error, e.hint, status=e.status)
    except web.HTTPException as e:
        if request.path.startswith("/api/") and e.status >= 400 and e.content_type != "application/json":
            hint = "see the list of /api/ routes in docs" if e.status == 404 else "check the request"
            return error_response(f"{request.method} {request.path}: {e.reason}", hint, status=e.status)
        raise
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as e:
        if not request.path.startswith("/api/"):
            raise
        log.exception("%s %s failed", request.method, request.path)
        return error_response(
            f"internal error in {request.path}: {type(e).__name__}: {e}"[:500],
            "the server log has the details; report it if it repeats",
            status=500,
        )


@web.middleware
async def _auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    password = app[PASSWORD_KEY]
    path = request.path
    if request.method not in ("GET", "HEAD") and not _same_origin(request):
        return error_response(
            "cross-site request refused", "send the request from the dashboard's own origin", status=403
        )
    if password is None:
        request[USER_REQUEST_KEY] = User("local", "admin")
        return await handler(request)
    if path == "/login" or path in LOGIN_ASSETS:
        return await handler(request)
    if app[SESSIONS_KEY].valid(request.cookies.get(SESSION_COOKIE)):
        request[USER_REQUEST_KEY] = User("admin", "admin")
        return await handler(request)
    basic = _basic_password(request.headers.get("Authorization"))
    if basic is not None:
        if _same_password(basic, password):
            request[USER_REQUEST_KEY] = User("admin", "admin")
            return await handler(request)
        return _unauthorized(
            request, "wrong password for user admin", "check the admin password (HTTP Basic admin:<password>)"
        )
    return _unauthorized(
        request, "login required", "log in at /login, or send HTTP Basic credentials admin:<password>"
    )


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        # No Origin: not a cross-site browser request (browsers send Origin on cross-site POSTs).
        return origin is None
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()


# -- pages --------------------------------------------------------------------------------------
async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})


async def _inspection_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "inspection.html", headers={"Content-Type": "text/html; charset=utf-8"})


async def _vision(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    return json_response(svc.vision_json() if hasattr(svc, "vision_json") else {"cameras": {}})


def _login_html(error: bool) -> str:
    html = (STATIC_DIR / "login.html").read_text(encoding="utf-8")
    if error:
        html = html.replace('id="login-error" hidden', 'id="login-error"')
    return html


async def _login_page(request: web.Request) -> web.StreamResponse:
    if request.app[PASSWORD_KEY] is None:
        raise web.HTTPFound("/")
    return web.Response(text=_login_html(False), content_type="text/html", charset="utf-8")


async def _login(request: web.Request) -> web.StreamResponse:
    app = request.app
    password = app[PASSWORD_KEY]
    wants_json = request.content_type == "application/json"
    if password is None:
        return json_response({"ok": True, "hint": "no admin password is set; the dashboard is open"})
    peer = request.remote or "?"
    failures: dict[str, list[float]] = app[FAILURES_KEY]
    now = time.monotonic()
    recent = [t for t in failures.get(peer, []) if now - t < LOGIN_FAILURE_WINDOW_S]
    failures[peer] = recent
    if len(recent) >= LOGIN_FAILURES_ALLOWED:
        retry = int(LOGIN_FAILURE_WINDOW_S - (now - recent[0])) + 1
        return error_response(
            f"too many wrong passwords from {peer}",
            f"wait {retry} s and try again",
            status=429,
            headers={"Retry-After": str(retry)},
        )
    given: Any = None
    try:
        if wants_json:
            body = await request.json()
            given = body.get("password") if isinstance(body, dict) else None
        else:
            form = await request.post()
            given = form.get("password")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("login body is not valid JSON or form data", 'send {"password": "..."}') from None
    if not isinstance(given, str) or not given:
        raise BadRequest("password is missing", 'send the form field or JSON key "password"')
    if not _same_password(given, password):
        recent.append(now)
        if wants_json:
            return error_response("wrong password", "check the admin password and try again", status=401)
        return web.Response(text=_login_html(True), status=401, content_type="text/html", charset="utf-8")
    failures.pop(peer, None)
    token = app[SESSIONS_KEY].new()
    if wants_json:
        resp = json_response({"ok": True})
    else:
        resp = web.Response(status=303, headers={"Location": "/"})
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
        max_age=SESSION_TTL_S,
    )
    return resp


async def _logout(request: web.Request) -> web.StreamResponse:
    request.app[SESSIONS_KEY].drop(request.cookies.get(SESSION_COOKIE))
    resp = web.Response(status=303, headers={"Location": "/login"})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


# -- JSON API -----------------------------------------------------------------------------------
def _svc(request: web.Request) -> ServiceView:
    return request.app[SERVICE_KEY]


async def _plant(request: web.Request) -> web.StreamResponse:
    return json_response(_svc(request).plant_json())


async def _status(request: web.Request) -> web.StreamResponse:
    return json_response(_svc(request).status_json())


async def _kpi(request: web.Request) -> web.StreamResponse:
    return json_response(_svc(request).kpi_json())


async def _health(request: web.Request) -> web.StreamResponse:
    return json_response(_svc(request).health_json())


async def _latest(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    tags = parse_tags(request.query)
    latest = svc.historian.latest(tags)
    values = {p: [int(t), float(v), int(q)] for p, (t, v, q) in latest.items()}
    return json_response({"ts": int(svc.now_ns()), "values": values})


async def _series(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    q = request.query
    tags = parse_tags(q)
    raw_flag = q.get("raw", "0").strip().lower()
    if raw_flag not in ("0", "1", "true", "false", ""):
        raise BadRequest(f"raw must be 0 or 1, got {raw_flag[:20]!r}", "raw=1 returns raw readings")
    raw = raw_flag in ("1", "true")
    end = parse_int_param(q, "to", None, 1, NS_MAX, "ns since epoch", example=time.time_ns())
    start = parse_int_param(q, "from", None, 0, NS_MAX, "ns since epoch", example=time.time_ns())
    if end is None:
        end = int(svc.now_ns())
    if start is None:
        start = max(0, end - DEFAULT_WINDOW_NS)
    if start >= end:
        raise BadRequest(f"from must be before to (from={start}, to={end})", "swap them or widen the window")
    span = end - start
    step = parse_int_param(q, "step", None, 1, NS_MAX, "bucket width in ns", example=2_000_000_000)
    if step is None:
        step = max(1, -(-span // DEFAULT_BUCKETS))
    if -(-span // step) > MAX_BUCKETS:
        raise BadRequest(
            f"step is too small: (to - from) / step gives {-(-span // step)} buckets, at most {MAX_BUCKETS}",
            f"use step >= {-(-span // MAX_BUCKETS)} ns for this window",
        )
    if tags is None:
        tags = trend_tags(svc.plant_json())
    out: dict[str, dict[str, list]] = {}
    if raw:
        series = svc.historian.query(tags, start, end)
        total = sum(len(s) for s in series.values())
        if total > MAX_RAW_POINTS:
            raise BadRequest(
                f"raw=1 would return {total} readings, at most {MAX_RAW_POINTS}",
                "narrow from/to or drop raw=1 to get buckets",
            )
        for p in tags:
            s = series.get(p)
            if s is None or len(s) == 0:
                out[p] = {"t": [], "value": [], "quality": []}
                continue
            out[p] = {
                "t": (np.asarray(s.ts, dtype=np.int64) // 1_000_000).tolist(),
                "value": _floats(s.value),
                "quality": np.asarray(s.quality).astype(int).tolist(),
            }
    else:
        buckets = svc.historian.query_buckets(tags, start, end, step)
        for p in tags:
            b = buckets.get(p)
            if b is None or len(b) == 0:
                out[p] = {"t": [], "min": [], "max": [], "mean": [], "last": []}
                continue
            out[p] = {
                "t": (np.asarray(b.start, dtype=np.int64) // 1_000_000).tolist(),
                "min": _floats(b.min),
                "max": _floats(b.max),
                "mean": _floats(b.mean),
                "last": _floats(b.last),
            }
    return json_response({"from": start, "to": end, "step": step, "raw": raw, "tags": out})


async def _events(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    q = request.query
    limit = parse_int_param(q, "limit", 100, 1, MAX_EVENTS, "number of events")
    before = parse_int_param(
        q, "before", None, 1, NS_MAX, "ns since epoch; events with ts < before", time.time_ns()
    )
    since = parse_int_param(
        q, "since", None, 0, NS_MAX, "ns since epoch; events with ts >= since", time.time_ns()
    )
    kind_raw = q.get("kind", "").strip()
    kinds = [k.strip() for k in kind_raw.split(",") if k.strip()] or None
    if kinds and any(not k.replace("_", "").isalnum() or len(k) > 32 for k in kinds):
        raise BadRequest(
            f"kind: {kind_raw[:60]!r} is not a list of event kinds", "e.g. kind=alarm,inspection"
        )
    source = q.get("source", "").strip() or None
    events = svc.historian.events(start=since, end=before, kinds=kinds, source_prefix=source, limit=limit)
    return json_response({"events": [e.to_json() for e in events]})


async def _feedback(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    raw_id = request.match_info["id"]
    try:
        event_id = int(raw_id)
    except ValueError:
        raise BadRequest(
            f"event id must be an integer, got {raw_id[:40]!r}", "POST /api/events/<id>/feedback"
        ) from None
    body = await _json_body(request, '{"verdict": "confirmed", "user": "kim"}')
    verdict = body.get("verdict")
    if verdict not in VERDICTS:
        raise BadRequest(
            f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}", 'e.g. {"verdict": "confirmed"}'
        )
    user = body.get("user", "operator")
    if not isinstance(user, str) or not user.strip() or len(user) > 64:
        raise BadRequest("user must be a non-empty string of at most 64 characters", 'e.g. {"user": "kim"}')
    try:
        result = await svc.feedback(event_id, verdict, user.strip())
    except KeyError:
        raise BadRequest(
            f"event {event_id} does not exist", "list events with GET /api/events", status=404
        ) from None
    except ValueError as e:
        raise BadRequest(f"feedback refused: {e}", "check the event id and verdict") from None
    return json_response(result if result is not None else {"ok": True})


async def _json_body(request: web.Request, example: str) -> dict:
    """The request's JSON object, or a 400 that shows what to send."""
    if request.content_type != "application/json":
        raise BadRequest("the body must be sent as JSON", f"Content-Type: application/json, body {example}")
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON", example) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", example)
    return body


async def _write_tag(request: web.Request) -> web.StreamResponse:
    """Write a value to a writable tag (a setpoint, a reject signal); recorded in the audit log."""
    svc = _svc(request)
    if not hasattr(svc, "write_tag"):
        raise BadRequest("this server cannot write to machines", "", status=501)
    example = '{"path": "site/area/line/cell/asset/signal", "value": 1, "user": "kim"}'
    body = await _json_body(request, example)
    path, value, user = body.get("path"), body.get("value"), body.get("user", "operator")
    if not isinstance(path, str) or not path:
        raise BadRequest("path must be the tag path to write", example)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"value must be a number, got {value!r}", example)
    if not isinstance(user, str) or not user.strip() or len(user) > 64:
        raise BadRequest("user must be a non-empty string of at most 64 characters", example)
    try:
        result = await svc.write_tag(path, float(value), user.strip())
    except KeyError as e:
        raise BadRequest(str(e).strip("'\""), "list tags with GET /api/plant", status=404) from None
    except PermissionError as e:
        raise BadRequest(str(e), "only tags marked writable in the plant file can be written", status=403) from None
    except ValueError as e:
        raise BadRequest(str(e), "send a value inside the tag's range") from None
    except (ConnectionError, OSError, TimeoutError) as e:
        raise BadRequest(f"the machine did not take the write: {e}", "check the connection and retry",
                         status=502) from None
    return json_response(result)


# -- live stream --------------------------------------------------------------------------------
def sse_message(msg: dict) -> bytes:
    """One Server-Sent Event: the message type as event name, the message as JSON data."""
    kind = str(msg.get("type", "message")).replace("\n", " ")
    return f"event: {kind}\ndata: {dumps_json(msg)}\n\n".encode()


async def _stream(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    app = request.app
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",
        }
    )
    queue = svc.subscribe()
    app[STREAMS_KEY].add(resp)
    stopping: asyncio.Event = app[STOPPING_KEY]
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 3000\n\n")
        last_write = time.monotonic()
        while not stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            try:
                msg = await asyncio.wait_for(queue.get(), timeout=STREAM_POLL_S)
            except TimeoutError:
                if time.monotonic() - last_write >= KEEPALIVE_S:
                    await resp.write(b": keep-alive\n\n")
                    last_write = time.monotonic()
                continue
            chunks = [sse_message(msg)]
            while not queue.empty() and len(chunks) < 500:
                chunks.append(sse_message(queue.get_nowait()))
            await resp.write(b"".join(chunks))
            last_write = time.monotonic()
    except ConnectionError:
        pass  # the client went away
    finally:
        app[STREAMS_KEY].discard(resp)
        svc.unsubscribe(queue)
    return resp


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` (0 picks a free port); returns the runner and the bound port."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}")
    check_bind(host, app[PASSWORD_KEY])
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = site._server  # noqa: SLF001 - aiohttp exposes the bound port only here
    if server is not None and getattr(server, "sockets", None):
        bound = server.sockets[0].getsockname()[1]
    return runner, bound
