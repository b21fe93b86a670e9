"""Shift report routes.

``GET /reports`` (page), ``GET /api/reports?line=&limit=`` (reports kept in the event log; viewer),
``POST /api/reports/shift {"line", "at"}`` (build the report of the shift that ``at`` falls in, default
now, and keep it; operator; the caller is recorded), ``GET /reports/{id}.html`` and
``GET /reports/{id}.pdf`` (``?lang=ko|en``, default the plant's language; viewer). A report of each
shift is also kept by itself when the shift ends.

``GET /api/reports/value?baseline=FROM..TO&period=FROM..TO`` (engineer) builds the proof-of-value report
from the service's own historian, event log and plant, as ``axline report value`` does: the periods take the
command's forms (ISO dates or date-times, plant time unless they carry an offset), ``lang=ko|en`` (default
the plant's), ``format=html|pdf|json`` (default html), and the money options ``electricity_price``,
``gas_price`` (left out: no money shown), ``currency`` (default KRW) and ``investment`` (left out: no
payback). It needs an engineer: the report shows money and reads every hour of both periods.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time

from aiohttp import web

from axline.app.http import NS_MAX, bad_request, bad_request_from, json_response, parse_int_param
from axline.app.ops_common import (
    aemit,
    find_event,
    int_id,
    json_body,
    off_loop,
    positions,
    run_with_app,
    svc_of,
)
from axline.app.ops_pages import ops_page
from axline.app.roles import require_role
from axline.plant import Plant
from axline.report.keeper import ShiftReportKeeper
from axline.report.render import to_html, to_pdf
from axline.report.shift import ReportError, build_report, report_event, shift_window
from axline.report.value import (
    ValueReportError,
    build_value_report,
    parse_window,
    value_options,
    value_to_html,
    value_to_pdf,
)

KEEPER_KEY: web.AppKey[ShiftReportKeeper] = web.AppKey("shift_report_keeper", ShiftReportKeeper)


def register(app: web.Application) -> None:
    """Add the shift-report page and its routes to ``app`` and start the report keeper."""
    r = app.router
    r.add_get("/reports", ops_page("reports"))
    r.add_get("/api/reports", _list)
    r.add_post("/api/reports/shift", _make)
    r.add_get("/reports/{id}.html", _html)
    r.add_get("/reports/{id}.pdf", _pdf)
    r.add_get("/api/reports/value", _value)
    run_with_app(app, KEEPER_KEY, "shift_reports", ShiftReportKeeper)


async def _list(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    svc = svc_of(request)
    limit = parse_int_param(request.query, "limit", 50, 1, 500, "number of reports")
    line = request.query.get("line", "").strip()
    lines = dict(positions(svc.plant_json()))
    if line and line not in lines:
        raise bad_request("err.line_unknown", line=repr(line[:40]), value=', '.join(lines))
    events = await off_loop(svc.historian.events, kinds=["report"], source_prefix=lines.get(line) if line else None,
                            limit=limit)
    out = []
    for e in events:
        rep = e.data.get("report") or {}
        out.append({"id": e.id, "ts": e.ts, "line": e.data.get("line"), "shift": e.data.get("shift"),
                    "from": e.data.get("from"), "to": e.data.get("to"), "user": e.data.get("user"),
                    "complete": rep.get("complete"), "oee": (rep.get("kpi") or {}).get("oee"),
                    "alarms": (rep.get("alarms") or {}).get("total"), "open": rep.get("open_total")})
    return json_response({"reports": out, "language": svc.plant_json().get("language", "en")})


async def _make(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "operator")
    svc = svc_of(request)
    body = await json_body(request, '{"line": "line1"}')
    plant = svc.plant_json()
    line = body.get("line") or (positions(plant)[0][0] if positions(plant) else None)
    now = int(svc.now_ns())
    at = body.get("at", now)
    if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= NS_MAX:
        raise bad_request("err.report.bad_at")
    try:
        name, start, end = shift_window(plant, line, at)
        rep = await off_loop(build_report, svc.historian, plant, line, start, end, now, name, user.name)
    except ReportError as e:
        raise bad_request_from(e, "err.report.refused") from None
    path = dict(positions(plant)).get(line, line)
    eid = await aemit(svc, report_event(rep, path))
    return json_response({"id": eid, "line": line, "shift": name, "from": start, "to": end,
                          "html": f"/reports/{eid}.html", "pdf": f"/reports/{eid}.pdf"})


async def _report(request: web.Request) -> tuple[dict, str]:
    require_role(request, "viewer")
    svc = svc_of(request)
    eid = int_id(request)
    try:
        ev = await off_loop(find_event, svc.historian, eid, ["report"])
    except KeyError:
        raise bad_request("err.report.missing", 404, eid=eid) from None
    if ev.kind != "report" or "report" not in ev.data:
        raise bad_request("err.report.not_report", 404, eid=eid)
    lang = request.query.get("lang") or svc.plant_json().get("language", "en")
    if lang not in ("ko", "en"):
        raise bad_request("err.report.bad_lang", lang=repr(lang[:10]))
    return ev.data["report"], lang


async def _html(request: web.Request) -> web.StreamResponse:
    rep, lang = await _report(request)
    return web.Response(text=await off_loop(to_html, rep, lang), content_type="text/html", charset="utf-8")


async def _pdf(request: web.Request) -> web.StreamResponse:
    rep, lang = await _report(request)
    try:
        body = await off_loop(to_pdf, rep, lang)
    except FileNotFoundError as e:
        raise bad_request("err.report.no_font", 501, error=str(e)) from None
    name = f"shift-report-{rep['line']}-{rep.get('shift') or ''}-{time.strftime('%Y%m%d', time.gmtime(rep['from'] / 1e9))}.pdf"
    return web.Response(body=body, headers={"Content-Type": "application/pdf",
                                            "Content-Disposition": f'inline; filename="{name}"'})


VALUE_FORMATS = ("html", "pdf", "json")


async def _value(request: web.Request) -> web.StreamResponse:
    require_role(request, "engineer")
    svc = svc_of(request)
    q = request.query
    plant = getattr(svc, "plant", None)
    if not isinstance(plant, Plant):  # a service without a plant file has no KPI counters to compare
        raise bad_request("err.value.no_kpi")
    lang = q.get("lang") or svc.plant_json().get("language", "en")
    if lang not in ("ko", "en"):
        raise bad_request("err.report.bad_lang", lang=repr(lang[:10]))
    fmt = q.get("format") or "html"
    if fmt not in VALUE_FORMATS:
        raise bad_request("err.value.bad_format", got=repr(fmt[:10]))
    if not q.get("baseline") or not q.get("period"):
        raise bad_request("err.value.missing")
    try:
        baseline = parse_window(q["baseline"], plant.timezone)
        period = parse_window(q["period"], plant.timezone)
        tariffs, investment = value_options(q)
        rep = await off_loop(build_value_report, svc.historian, plant, baseline, period, tariffs, investment)
    except ValueReportError as e:
        raise bad_request_from(e, "err.report.refused") from None
    if fmt == "json":
        return json_response(rep)
    if fmt == "html":
        page = await off_loop(value_to_html, rep, lang)
        return web.Response(text=page, content_type="text/html", charset="utf-8", headers=_standalone_csp(page))
    try:
        body = await off_loop(value_to_pdf, rep, lang)
    except FileNotFoundError as e:
        raise bad_request("err.report.no_font", 501, error=str(e)) from None
    day = time.strftime("%Y%m%d", time.gmtime(period[0] / 1e9))
    return web.Response(body=body, headers={"Content-Type": "application/pdf",
                                            "Content-Disposition": f'inline; filename="value-report-{day}.pdf"'})


def _standalone_csp(page: str) -> dict[str, str]:
    """The value report is a standalone page with its own <style> (so that the command's file needs nothing
    else): allow exactly that style by its hash, and nothing else."""
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode() + "'"
                      for css in re.findall(r"<style>(.*?)</style>", page, re.S))
    styles = hashes or "'none'"
    return {"Content-Security-Policy": f"default-src 'none'; style-src {styles}; "
                                       "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"}
