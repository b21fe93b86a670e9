"""Quality routes: control charts with run-rule violations and capability per shift and per lot.

``GET /quality`` (page), ``GET /api/quality/tags`` (tags with spec limits),
``GET /api/quality/chart?tag=&from=&to=&baseline_from=&baseline_to=&chart=imr|xbar_r&n=&rules=nelson|western_electric``,
``GET /api/quality/status`` (the live SPC watcher: limits learnt, violations raised, failures); all viewer.
The live watcher starts with the app and raises each new rule violation as an alarm event
(``spc.rule<k>``, low priority).
"""

from __future__ import annotations

import time

from aiohttp import web

from axline.app.http import NS_MAX, bad_request, bad_request_from, json_response, parse_int_param
from axline.app.ops_common import off_loop, run_with_app, svc_of
from axline.app.ops_pages import ops_page
from axline.app.roles import require_role
from axline.quality import QualityError, SpcWatcher, chart_report, quality_tags

WATCHER_KEY: web.AppKey[SpcWatcher] = web.AppKey("spc_watcher", SpcWatcher)
DEFAULT_WINDOW_NS = 8 * 3600 * 1_000_000_000


def register(app: web.Application) -> None:
    """Add the quality page and its tag, control-chart and status routes to ``app``."""
    r = app.router
    r.add_get("/quality", ops_page("quality"))
    r.add_get("/api/quality/tags", _tags)
    r.add_get("/api/quality/chart", _chart)
    r.add_get("/api/quality/status", _status)
    run_with_app(app, WATCHER_KEY, "spc", SpcWatcher)


async def _tags(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    return json_response({"tags": quality_tags(svc_of(request).plant_json())})


async def _status(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    w = request.app.get(WATCHER_KEY)
    return json_response(w.status() if w is not None else {"running": False})


async def _chart(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    svc = svc_of(request)
    q = request.query
    tag = q.get("tag", "").strip()
    if not tag:
        raise bad_request("err.quality.no_tag")
    end = parse_int_param(q, "to", None, 1, NS_MAX, "ns since epoch", time.time_ns())
    end = int(svc.now_ns()) + 1 if end is None else end
    start = parse_int_param(q, "from", None, 0, NS_MAX, "ns since epoch", time.time_ns())
    start = max(0, end - DEFAULT_WINDOW_NS) if start is None else start
    if start >= end:
        raise bad_request("err.from_after_to", start=start, end=end)
    b0 = parse_int_param(q, "baseline_from", None, 0, NS_MAX, "ns since epoch", time.time_ns())
    b1 = parse_int_param(q, "baseline_to", None, 1, NS_MAX, "ns since epoch", time.time_ns())
    if (b0 is None) != (b1 is None):
        raise bad_request("err.quality.baseline_pair")
    n = parse_int_param(q, "n", 5, 2, 10, "subgroup size of an X-bar / R chart")
    chart = q.get("chart", "imr")
    rules = q.get("rules", "nelson")
    try:
        rep = await off_loop(chart_report, svc.historian, svc.plant_json(), tag, start, end,
                             (b0, b1) if b0 is not None else None, chart, n, rules)
    except QualityError as e:
        raise bad_request_from(e, "err.quality.refused") from None
    return json_response(rep)
