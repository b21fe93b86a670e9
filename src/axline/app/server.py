"""The web app: HTTP JSON API, live stream (Server-Sent Events), login, and the dashboard page.

The app only presents what a *service* owns (connectors, historian, detectors, KPIs); the service
is duck-typed by :class:`ServiceView`. ``create_app(service)`` returns an ``aiohttp`` application;
``check_bind`` refuses to expose an unprotected dashboard beyond the loopback interface.

Times in the API are integer nanoseconds since the epoch, UTC, except trend time axes (``t``),
which are milliseconds so that browsers can use them directly.

Around the routes: :mod:`axline.app.middleware` (request id, errors as JSON, security headers) and
:mod:`axline.app.stream` (the live stream); the operations, know-how and optimisation pages register
their own routes.

Who may call what is decided in :mod:`axline.app.security` (Host allow-list, sessions, API tokens,
cross-site check, least role per route from :mod:`axline.app.routes`); handlers call
:func:`axline.app.roles.require_role` and audit with :func:`axline.app.audit.audit`.

Routes: ``GET /`` (dashboard), ``/static/...``, ``GET|POST /login``, ``POST /logout``,
``GET /api/plant|status|kpi|health``, ``GET /api/latest?tags=``,
``GET /api/series?tags=&from=&to=&step=&raw=`` (tags default to the plant's trend tags),
``GET /api/events?limit=&kind=&source=&before=&since=``, ``POST /api/events/{id}/feedback``,
``GET /api/stream`` (Server-Sent Events; event name = message type). Bad parameters answer 400 with
``{"error", "hint"}``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
from aiohttp import web

from axline import i18n
from axline.app import security_routes
from axline.app.audit import AUDIT_KEY, AuditError, audit
from axline.app.event_access import visible_events
from axline.app.http import (  # shared with the route modules
    NS_MAX,
    SERVICE_KEY,
    STATIC_DIR,
    bad_request,
    bad_request_from,
    json_object,
    json_response,
    parse_int_param,
    parse_tags,
    to_jsonable,  # noqa: F401 - re-exported for callers of server.to_jsonable
)
from axline.app.http import dumps_json as dumps_json  # re-exported: callers encode JSON as the API does
from axline.app.metrics import LOOP_KEY, LoopMonitor, start_loop_monitor, stop_loop_monitor
from axline.app.middleware import error_middleware, security_headers
from axline.app.ops_pages import ops_page
from axline.app.roles import require_role
from axline.app.routes import INT, NS, PUBLIC, STR, document, document_static
from axline.app.security import (
    SECURITY_KEY,
    Security,
    SecuritySettings,
    guard_middleware,
)
from axline.app.security import (
    is_loopback as is_loopback,  # re-exported: callers check a bind address here
)
from axline.app.stream import STOPPING_KEY, STREAMS_KEY, close_streams, live_stream
from axline.app.stream import sse_message as sse_message  # re-exported: callers format events here
from axline.historian.base import Historian

DEFAULT_WINDOW_NS = 10 * 60 * 1_000_000_000
DEFAULT_BUCKETS = 300
MAX_BUCKETS = 20_000
MAX_EVENTS = 1000
MAX_RAW_POINTS = 200_000
# Caps checked before the historian reads anything: tags x window (tag-seconds)
MAX_RAW_TAG_SECONDS = 6 * 3600  # raw readings: e.g. 6 tags for an hour, or 1 tag for 6 hours
MAX_BUCKET_TAG_SECONDS = 20 * 86400  # buckets: e.g. 20 tags for a day
VERDICTS = ("confirmed", "overruled")


@runtime_checkable
class ServiceView(Protocol):
    """What the app needs from the running service (``axline serve`` provides it)."""

    historian: Historian

    def plant_json(self) -> dict:
        """The plant model (``/api/plant``)."""

    def status_json(self) -> dict:
        """Station states, connectors and store (``/api/status``)."""

    def kpi_json(self) -> dict:
        """OEE and counts per line (``/api/kpi``)."""

    def now_ns(self) -> int:
        """Plant time in ns since the epoch."""

    def health_json(self) -> dict:
        """Health of the service (``/api/health``)."""

    def subscribe(self) -> asyncio.Queue:
        """A bounded queue of live updates."""

    def unsubscribe(self, q: asyncio.Queue) -> None:
        """Stop the live updates into ``q``."""

    async def feedback(self, event_id: int, verdict: str, user: str) -> dict:
        """Record a review of an inspection."""


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


def check_bind(host: str, tls: bool = False, insecure_http: bool = False, security: Security | None = None) -> None:
    """Refuse plain HTTP beyond loopback unless forced, and a non-loopback dashboard without an admin
    (``ValueError`` saying what to do)."""
    sec = security or Security.in_memory()
    settings = sec.settings
    settings.bind_host, settings.tls, settings.insecure_http = host, tls, insecure_http
    sec.check_bind()


# -- the app ------------------------------------------------------------------------------------
def create_app(service: ServiceView, admin_password: str | None = None, *,
               security: Security | None = None) -> web.Application:
    """The dashboard + API app for ``service``, guarded by ``security`` (default: the service's own
    ``security``, else accounts and audit in memory on a loopback dashboard)."""
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
    if admin_password is not None:
        raise TypeError("the shared admin password is gone: add people with `axline users add NAME --role ROLE` "
                        "and pass security=Security(...)")
    if security is None:
        security = getattr(service, "security", None) or Security.in_memory(SecuritySettings())
    if not isinstance(security, Security):
        raise TypeError("security must be an axline.app.security.Security")

    app = web.Application(middlewares=[error_middleware, guard_middleware],
                          client_max_size=security.settings.max_body)
    app[SERVICE_KEY] = service
    app[SECURITY_KEY] = security
    app[AUDIT_KEY] = security.audit
    app[STREAMS_KEY] = set()
    app[STOPPING_KEY] = asyncio.Event()  # binds to the serving loop lazily (Python >= 3.10)
    app[LOOP_KEY] = LoopMonitor()
    app.on_response_prepare.append(security_headers)
    app.on_startup.append(start_loop_monitor)
    app.on_shutdown.append(close_streams)
    app.on_cleanup.append(stop_loop_monitor)

    r = app.router
    r.add_get("/", _index)
    r.add_get("/inspection", ops_page("inspection"))
    r.add_get("/i18n/catalog.js", _catalog)
    r.add_get("/api/vision", _vision)
    r.add_get("/api/plant", _plant)
    r.add_get("/api/status", _status)
    r.add_get("/api/kpi", _kpi)
    r.add_get("/api/health", _health)
    r.add_get("/api/latest", _latest)
    r.add_get("/api/series", _series)
    r.add_get("/api/events", _events)
    r.add_post("/api/events/{id}/feedback", _feedback)
    r.add_post("/api/write", _write_tag)
    r.add_get("/api/stream", live_stream)
    security_routes.install(app)
    r.add_static("/static/", STATIC_DIR, show_index=False, append_version=False)
    from axline.app import operations  # alarms, history, quality, reports (imports this module)

    operations.register(app)
    from axline.app import knowhow_routes  # record, review and find know-how cases

    knowhow_routes.register(app)
    from axline.app import optimize_routes  # setpoint advisor, approvals, what-if on the twin

    optimize_routes.register(app)
    from axline.app import vision_routes  # defect types named by operators

    vision_routes.register(app)
    return app


_TAGS_Q = {"type": "string", "maxLength": 100_000, "description": "comma-separated tag paths"}
document("GET", "/", role="viewer", summary="the dashboard page", produces="text/html")
document("GET", "/inspection", role="viewer", summary="the inspection review page", produces="text/html")
document("GET", "/i18n/catalog.js", role=PUBLIC, summary="the Korean and English text of every page",
         produces="text/javascript")
document("GET", "/api/vision", role="viewer", summary="vision stations: counts, latency, reviews")
document("GET", "/api/plant", role="viewer", summary="the plant: lines, assets, tags")
document("GET", "/api/status", role="viewer", summary="station states, connectors, store")
document("GET", "/api/kpi", role="viewer", summary="OEE and counts per line")
document("GET", "/api/health", role="viewer", summary="health of the service")
document("GET", "/api/latest", role="viewer", summary="latest reading per tag", query={"tags": _TAGS_Q})
document("GET", "/api/series", role="viewer", summary="trend data: buckets or raw readings",
         query={"tags": _TAGS_Q, "from": NS, "to": {**NS, "minimum": 1}, "step": {**INT, "minimum": 1},
                "raw": {"type": "string", "enum": ["0", "1", "true", "false"]}})
document("GET", "/api/events", role="viewer", summary="events, newest first",
         query={"limit": {**INT, "minimum": 1, "maximum": MAX_EVENTS}, "before": {**NS, "minimum": 1},
                "since": NS, "kind": STR, "source": STR})
document("POST", "/api/events/{id}/feedback", role="operator",
         summary="review an inspection (confirmed / overruled); 409 for an alarm: POST /api/alarms/{id}/ack",
         body={"type": "object", "required": ["verdict"],
               "properties": {"verdict": {"type": "string", "enum": list(VERDICTS)}}})
document("POST", "/api/write", role="engineer", summary="write a value to a writable tag (audited)",
         body={"type": "object", "required": ["path", "value"],
               "properties": {"path": {"type": "string", "minLength": 1}, "value": {"type": "number"}}})
document("GET", "/api/stream", role="viewer", summary="live updates (Server-Sent Events)",
         produces="text/event-stream", stream=True)
document_static("/static", "viewer")
for _asset in ("style.css", "i18n.js", "login.js", "favicon.svg"):
    document_static(f"/static/{_asset}", PUBLIC)


# -- pages --------------------------------------------------------------------------------------
async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})


async def _catalog(request: web.Request) -> web.StreamResponse:
    body, etag = i18n.catalog_js()
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    resp = web.Response(text=body, content_type="text/javascript", charset="utf-8", headers=headers)
    resp.enable_compression()  # ~110 kB of text, a third of it gzipped; browsers revalidate with the ETag
    return resp


async def _vision(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    return json_response(svc.vision_json() if hasattr(svc, "vision_json") else {"cameras": {}})


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


async def _off_loop(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Historian reads run in a worker thread: a slow disk or database never freezes the dashboard."""
    import functools

    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


async def _latest(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    tags = parse_tags(request.query)
    latest = await _off_loop(svc.historian.latest, tags)
    values = {p: [int(t), float(v), int(q)] for p, (t, v, q) in latest.items()}
    return json_response({"ts": int(svc.now_ns()), "values": values})


async def _series(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    q = request.query
    tags = parse_tags(q)
    raw_flag = q.get("raw", "0").strip().lower()
    if raw_flag not in ("0", "1", "true", "false", ""):
        raise bad_request("err.raw_flag", raw_flag=repr(raw_flag[:20]))
    raw = raw_flag in ("1", "true")
    end = parse_int_param(q, "to", None, 1, NS_MAX, "ns since epoch", example=time.time_ns())
    start = parse_int_param(q, "from", None, 0, NS_MAX, "ns since epoch", example=time.time_ns())
    if end is None:
        end = int(svc.now_ns())
    if start is None:
        start = max(0, end - DEFAULT_WINDOW_NS)
    if start >= end:
        raise bad_request("err.from_after_to", start=start, end=end)
    span = end - start
    step = parse_int_param(q, "step", None, 1, NS_MAX, "bucket width in ns", example=2_000_000_000)
    if step is None:
        step = max(1, -(-span // DEFAULT_BUCKETS))
    if -(-span // step) > MAX_BUCKETS:
        raise bad_request("err.series.too_many_buckets", buckets=-(-span // step), max=MAX_BUCKETS, min_step=-(-span // MAX_BUCKETS))
    if tags is None:
        tags = trend_tags(svc.plant_json())
    # cap what the historian would read before it reads anything
    tag_s = len(tags) * span / 1e9
    cap = MAX_RAW_TAG_SECONDS if raw else MAX_BUCKET_TAG_SECONDS
    if tag_s > cap:
        raise bad_request("err.series.too_many_tag_seconds_raw" if raw else "err.series.too_many_tag_seconds",
                          n=len(tags), seconds=f"{span / 1e9:.0f}", tag_s=f"{tag_s:.0f}", cap=cap)
    out: dict[str, dict[str, list]] = {}
    if raw:
        series = await _off_loop(svc.historian.query, tags, start, end)
        total = sum(len(s) for s in series.values())
        if total > MAX_RAW_POINTS:
            raise bad_request("err.series.too_many_raw", total=total, max=MAX_RAW_POINTS)
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
        buckets = await _off_loop(svc.historian.query_buckets, tags, start, end, step)
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
    user = require_role(request, "viewer")
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
        raise bad_request("err.events.bad_kind", kind_raw=repr(kind_raw[:60]))
    source = q.get("source", "").strip() or None
    # audit events (who did what) are for admins only
    events = await _off_loop(visible_events, svc.historian, admin=user.has("admin"), start=since, end=before,
                             kinds=kinds, source_prefix=source, limit=limit)
    return json_response({"events": [e.to_json() for e in events]})


async def _feedback(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    raw_id = request.match_info["id"]
    try:
        event_id = int(raw_id)
    except ValueError:
        raise bad_request("err.feedback.bad_id", raw_id=repr(raw_id[:40])) from None
    user = require_role(request, "operator")
    body = await json_object(request, '{"verdict": "confirmed"}')
    verdict = body.get("verdict")
    if verdict not in VERDICTS:
        raise bad_request("err.feedback.bad_verdict", verdicts=', '.join(VERDICTS), verdict=repr(verdict))
    # the reviewer is the logged-in user; a "user" in the body is ignored
    ev = await _off_loop(svc.historian.event, event_id)
    if ev is not None and ev.kind == "alarm":  # alarms are acknowledged through their life cycle (audited)
        await audit(request, user, "event.feedback", str(event_id), new=verdict, result="refused: an alarm")
        raise bad_request("err.feedback.alarm", 409, event_id=event_id)
    try:
        result = await svc.feedback(event_id, verdict, user.name)
    except KeyError:
        await audit(request, user, "event.feedback", str(event_id), new=verdict, result="refused: no such event")
        raise bad_request("err.event_missing", 404, event_id=event_id) from None
    except ValueError as e:
        await audit(request, user, "event.feedback", str(event_id), new=verdict, result=f"refused: {e}")
        raise bad_request("err.feedback.refused", error=e) from None
    await audit(request, user, "event.feedback", str(event_id), new=verdict,
                detail=(result or {}).get("model") if isinstance(result, dict) else None)
    return json_response(result if result is not None else {"ok": True})


async def _write_tag(request: web.Request) -> web.StreamResponse:
    """Write a value to a writable tag (a setpoint, a reject signal); recorded in the audit log."""
    svc = _svc(request)
    user = require_role(request, "engineer")
    if not hasattr(svc, "write_tag"):
        raise bad_request("err.write.unsupported", 501)
    example = '{"path": "site/area/line/cell/asset/signal", "value": 1}'
    body = await json_object(request, example)
    path, value = body.get("path"), body.get("value")
    if not isinstance(path, str) or not path or len(path) > 512:
        await audit(request, user, "tag.write", str(path)[:512], new=value, result="refused: no tag path")
        raise bad_request("err.write.no_path", example=example)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        await audit(request, user, "tag.write", path, new=str(value)[:64], result="refused: not a number")
        raise bad_request("err.write.not_number", value=repr(value), example=example)
    # the service audits the attempt and its result, with the logged-in user's name
    try:
        result = await svc.write_tag(path, float(value), user.name, source=request.remote or "")
    except KeyError as e:
        raise bad_request_from(e, "err.write.unknown_tag", 404) from None
    except PermissionError as e:
        raise bad_request_from(e, "err.write.not_writable", 403) from None
    except ValueError as e:
        raise bad_request_from(e, "err.write.out_of_range") from None
    except AuditError as e:
        raise bad_request_from(e, "err.audit_unavailable", 503) from None
    except (ConnectionError, OSError, TimeoutError) as e:
        raise bad_request("err.write.machine_refused", 502, error=e) from None
    return json_response(result)


async def start_site(app: web.Application, host: str, port: int, ssl_context: Any = None) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` (0 picks a free port; HTTPS with ``ssl_context``); returns the runner
    and the bound port."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}")
    sec: Security = app[SECURITY_KEY]
    if sec.settings.bind_host != host:
        raise ValueError(f"the app's security settings are for {sec.settings.bind_host}, not {host}")
    if (ssl_context is not None) != sec.settings.tls:
        raise ValueError(f"the app's security settings say tls={sec.settings.tls}; pass an ssl_context exactly then")
    sec.check_bind()
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = port
    server = site._server  # noqa: SLF001 - aiohttp exposes the bound port only here
    if server is not None and getattr(server, "sockets", None):
        bound = server.sockets[0].getsockname()[1]
    return runner, bound
