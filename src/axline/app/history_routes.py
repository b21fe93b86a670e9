"""History explorer routes: the page and the Excel-friendly export of any tags over any period.

``GET /history`` (page; ``?tags=&from=&to=`` opens a view), ``GET /api/history/tags`` (every tag with
its name, unit and whether it has history), ``GET /api/history/export?tags=&from=&to=&step=&agg=&format=``
(``format=csv`` or ``xlsx``; without ``step`` raw readings; viewer; each export audited), and
``GET /api/history/series?tags=&from=&to=&step=`` (min / mean / max / last per bucket, so peaks survive
any zoom). History requests are sized by the readings they would read (from the tags' sampling
periods, at most ``MAX_READINGS``), read one tag at a time in a worker thread, and one at a time
per app, so a 30-day view neither blocks the event loop nor lets parallel requests exhaust memory.

For Excel or Power BI: *Data > From Web* with the export URL; on a server with accounts, add the
request header ``Authorization: Bearer axl_...`` with an API token of a service account that has the
viewer role (HTTP Basic is refused).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from axline.app.http import NS_MAX, bad_request, bad_request_from, json_response, parse_int_param, parse_tags
from axline.app.ops_common import aemit, off_loop, svc_of
from axline.app.ops_pages import ops_page
from axline.app.roles import require_role
from axline.historian.base import Event
from axline.history.export import (
    AGGREGATES,
    ExportError,
    bucket_series,
    check_size,
    history_table,
    to_csv,
    to_xlsx,
)

FORMATS = {"csv": ("text/csv; charset=utf-8", "csv"),
           "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")}


MAX_SERIES_TAGS = 12
MAX_SERIES_BUCKETS = 20_000
HEAVY_KEY: web.AppKey[asyncio.Semaphore] = web.AppKey("history_reads", asyncio.Semaphore)


def register(app: web.Application) -> None:
    """Add the history page and its tag, series and export routes to ``app``."""
    r = app.router
    r.add_get("/history", ops_page("history"))
    r.add_get("/api/history/tags", _tags)
    r.add_get("/api/history/series", _series)
    r.add_get("/api/history/export", _export)
    app[HEAVY_KEY] = asyncio.Semaphore(1)  # history reads one at a time: memory stays bounded


def _window(q) -> tuple[int, int]:
    end = parse_int_param(q, "to", None, 1, NS_MAX, "ns since epoch", time.time_ns())
    start = parse_int_param(q, "from", None, 0, NS_MAX, "ns since epoch", time.time_ns())
    if start is None or end is None:
        raise bad_request("err.history.no_period")
    if start >= end:
        raise bad_request("err.from_after_to", start=start, end=end)
    return start, end


def _known(plant: dict, tags: list[str]) -> None:
    known = set(_names(plant, "en"))
    unknown = [t for t in tags if t not in known]
    if unknown:
        raise bad_request("err.history.unknown_tag", 404, tag=repr(unknown[0][:80]))


async def _series(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    svc = svc_of(request)
    q = request.query
    tags = parse_tags(q)
    if not tags:
        raise bad_request("err.history.no_tags")
    if len(tags) > MAX_SERIES_TAGS:
        raise bad_request("err.history.too_many_tags", max=MAX_SERIES_TAGS, n=len(tags))
    start, end = _window(q)
    step = parse_int_param(q, "step", None, 1, NS_MAX, "bucket width in ns", 60_000_000_000)
    if step is None:
        step = max(1, -(-(end - start) // 1000))
    n_buckets = -(-(end - start) // step)
    if n_buckets > MAX_SERIES_BUCKETS:
        raise bad_request("err.history.too_many_buckets", n_buckets=n_buckets, max=MAX_SERIES_BUCKETS, min_step=-(-(end - start) // MAX_SERIES_BUCKETS))
    plant = svc.plant_json()
    _known(plant, tags)
    try:
        readings = check_size(plant, tags, start, end)
    except ExportError as e:
        raise bad_request_from(e, "err.history.view_too_large") from None
    async with request.app[HEAVY_KEY]:
        out = await off_loop(bucket_series, svc.historian, tags, start, end, step)
    return json_response({"from": start, "to": end, "step": step, "estimated_readings": readings, "tags": out})


def _names(plant: dict, lang: str) -> dict[str, str]:
    out = {}
    for ln in plant.get("lines", []):
        for a in ln.get("assets", []):
            for t in a.get("tags", []):
                name = (t.get("name") or {}).get(lang) or t.get("signal") or t["path"]
                asset = (a.get("name") or {}).get(lang) or a.get("id", "")
                unit = f" [{t['unit']}]" if t.get("unit") else ""
                out[t["path"]] = f"{asset} {name}{unit} ({t['path']})"
    return out


async def _tags(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    svc = svc_of(request)
    stored = set(await off_loop(svc.historian.tags))
    out = []
    for ln in svc.plant_json().get("lines", []):
        for a in ln.get("assets", []):
            for t in a.get("tags", []):
                out.append({"path": t["path"], "name": t.get("name"), "unit": t.get("unit", ""),
                            "asset": a["path"], "asset_name": a.get("name"), "line": ln["id"],
                            "stored": t["path"] in stored})
    return json_response({"tags": out})


async def _export(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "viewer")
    svc = svc_of(request)
    q = request.query
    tags = parse_tags(q)
    if not tags:
        raise bad_request("err.history.no_tags")
    start, end = _window(q)
    step = parse_int_param(q, "step", None, 1, NS_MAX, "bucket width in ns; leave out for raw readings",
                           60_000_000_000)
    agg = q.get("agg", "mean")
    if agg not in AGGREGATES:
        raise bad_request("err.history.bad_agg", aggregates=', '.join(AGGREGATES), agg=repr(agg[:20]))
    fmt = q.get("format", "csv")
    if fmt not in FORMATS:
        raise bad_request("err.history.bad_format", fmt=repr(fmt[:20]))
    lang = q.get("lang", "en") if q.get("lang") in ("en", "ko") else "en"
    plant = svc.plant_json()
    _known(plant, tags)
    try:
        check_size(plant, tags, start, end)
        async with request.app[HEAVY_KEY]:
            table = await off_loop(history_table, svc.historian, tags, start, end, step, agg,
                                   plant.get("timezone", "UTC"), _names(plant, lang))
        body = await off_loop(to_csv if fmt == "csv" else to_xlsx, table)
    except ExportError as e:
        raise bad_request_from(e, "err.history.export_too_large") from None
    await aemit(svc, Event(ts=int(svc.now_ns()), kind="audit", source=plant.get("site", "axline"), code="history.export",
                    severity="info", message=f"{user.name} exported {len(tags)} tag(s), {len(table)} rows as {fmt}",
                    data={"user": user.name, "tags": tags[:50], "from": start, "to": end, "step": step,
                          "agg": agg, "format": fmt, "rows": len(table)}))
    ctype, ext = FORMATS[fmt]
    name = f"axline-history-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(start / 1e9))}.{ext}"
    return web.Response(body=body, headers={"Content-Type": ctype,
                                            "Content-Disposition": f'attachment; filename="{name}"'})
