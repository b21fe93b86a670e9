"""Alarm routes: the operator's alarm list with acknowledge / shelve / note, and alarm performance.

``GET /alarms`` (page), ``GET /api/alarms?state=&line=&since=&limit=`` (viewer),
``POST /api/alarms/{id}/ack {"note", "case_id"}``, ``POST /api/alarms/{id}/note {"note"}``,
``POST /api/alarms/{id}/shelve {"minutes", "reason"}``, ``POST /api/alarms/{id}/unshelve`` (operator;
each one audited as an event of kind ``audit`` under the caller's name),
``GET /api/alarms/performance?from=&to=`` (viewer).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web

from axline.alarms import lifecycle as lc
from axline.alarms.performance import performance
from axline.app.http import NS_MAX, bad_request, bad_request_from, json_response, parse_int_param
from axline.app.ops_common import (
    aemit,
    aupdate,
    find_event,
    int_id,
    json_body,
    off_loop,
    page,
    positions,
    svc_of,
)
from axline.app.ops_pages import ops_page
from axline.app.roles import require_role

MAX_ALARMS = 5000
DEFAULT_PERF_WINDOW_NS = 24 * 3600 * 1_000_000_000
# one operator's action at a time: each action is read, computed and written from the stored alarm
ACTION_LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("alarm_action_lock", asyncio.Lock)
# the last fields written per alarm: the service's event writer may store them a little later than
# the next action reads the alarm, so they are laid over what is read (bounded)
WRITTEN_KEY: web.AppKey[OrderedDict] = web.AppKey("alarm_fields_written", OrderedDict)
MAX_WRITTEN = 1000


def register(app: web.Application) -> None:
    """Add the alarm pages (``/alarms``, ``/wall``) and the alarm API routes to ``app``."""
    app[ACTION_LOCK_KEY] = asyncio.Lock()
    app[WRITTEN_KEY] = OrderedDict()
    r = app.router
    r.add_get("/alarms", ops_page("alarms"))
    r.add_get("/wall", page("wall.html"))  # the wall screen (kiosk): KPIs, stations and open alarms
    r.add_get("/api/alarms", _list)
    r.add_get("/api/alarms/performance", _performance)
    r.add_post("/api/alarms/{id}/ack", _ack)
    r.add_post("/api/alarms/{id}/note", _note)
    r.add_post("/api/alarms/{id}/shelve", _shelve)
    r.add_post("/api/alarms/{id}/unshelve", _unshelve)


def load_alarms(svc: Any, since: int | None, until: int | None, line_prefix: str | None,
                limit: int) -> list[dict[str, Any]]:
    """The service's alarms (newest first) as alarm_json dicts at its current time."""
    return lc.load_alarms(svc.historian, int(svc.now_ns()), since, until, line_prefix, limit)


async def _list(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    svc = svc_of(request)
    q = request.query
    limit = parse_int_param(q, "limit", 200, 1, MAX_ALARMS, "number of alarms")
    since = parse_int_param(q, "since", None, 0, NS_MAX, "ns since epoch", time.time_ns())
    states = [s.strip() for s in q.get("state", "").split(",") if s.strip()]
    bad = [s for s in states if s not in lc.STATES]
    if bad:
        raise bad_request("err.alarm.bad_state", state=repr(bad[0][:30]), states=', '.join(lc.STATES))
    line = q.get("line", "").strip() or None
    prefix = None
    if line:
        lines = {lid: path for lid, path in positions(svc.plant_json())}
        if line not in lines:
            raise bad_request("err.line_unknown", line=repr(line[:40]), lines=', '.join(lines))
        prefix = lines[line]
    alarms = await off_loop(load_alarms, svc, since, None, prefix, limit)
    shown = lc.filter_states(alarms, states)
    counts = {s: 0 for s in lc.STATES}
    for a in alarms:
        counts[a["state"]] += 1
    return json_response({"now": int(svc.now_ns()), "alarms": shown, "counts": counts})


async def _performance(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    svc = svc_of(request)
    q = request.query
    end = parse_int_param(q, "to", None, 1, NS_MAX, "ns since epoch", time.time_ns())
    end = int(svc.now_ns()) if end is None else end
    start = parse_int_param(q, "from", None, 0, NS_MAX, "ns since epoch", time.time_ns())
    start = max(0, end - DEFAULT_PERF_WINDOW_NS) if start is None else start
    if start >= end:
        raise bad_request("err.from_after_to", start=start, end=end)
    # stale alarms may have been raised long before the period: read back a day more
    alarms = await off_loop(load_alarms, svc, max(0, start - lc.STATE_LOOKBACK_NS), end, None, MAX_ALARMS * 20)
    return json_response(performance(alarms, start, end, positions(svc.plant_json())))


async def _act(request: web.Request, action: str, example: str) -> web.StreamResponse:
    user = require_role(request, "operator")
    svc = svc_of(request)
    event_id = int_id(request)
    body = await json_body(request, example)
    async with request.app[ACTION_LOCK_KEY]:  # a second operator acts on what the first one wrote
        try:
            ev = await off_loop(find_event, svc.historian, event_id, ["alarm"])
        except KeyError:
            raise bad_request("err.alarm.missing", 404, event_id=event_id) from None
        written = request.app[WRITTEN_KEY]
        ev = _overlay(ev, written)
        now = int(svc.now_ns())
        try:
            if action == "ack":
                fields = lc.acknowledge(ev, user.name, now, body.get("note"), body.get("case_id"))
            elif action == "note":
                fields = lc.add_note(ev, user.name, now, body.get("note"))
            elif action == "shelve":
                fields = lc.shelve(ev, user.name, now, body.get("minutes"), body.get("reason"))
            else:
                fields = lc.unshelve(ev, user.name, now)
        except lc.AlarmActionError as e:
            conflict = getattr(e, "key", "") in ("alarm.already_acked", "alarm.not_shelved")
            raise bad_request_from(e, "err.alarm.refused", 409 if conflict else 400) from None
        await aupdate(svc, event_id, **fields)
        written[event_id] = fields
        written.move_to_end(event_id)
        while len(written) > MAX_WRITTEN:
            written.popitem(last=False)
    detail = {k: v for k, v in fields["data"].items() if k != "actions"}
    await aemit(svc, lc.audit_event(ev, action, user.name, now, detail))
    ev = _overlay(await off_loop(find_event, svc.historian, event_id, ["alarm"]), written)
    return json_response(lc.alarm_json(ev, now))


def _overlay(ev: Any, written: OrderedDict) -> Any:
    """``ev`` with the fields this app last wrote to it (they may not be stored yet)."""
    last = written.get(ev.id)
    if last is not None:
        ev.data = {**(ev.data if isinstance(ev.data, dict) else {}), **last["data"]}
        ev.ack = last.get("ack", ev.ack)
    return ev


async def _ack(request: web.Request) -> web.StreamResponse:
    return await _act(request, "ack", '{"note": "reset the coolant pump"}')


async def _note(request: web.Request) -> web.StreamResponse:
    return await _act(request, "note", '{"note": "changed the filter"}')


async def _shelve(request: web.Request) -> web.StreamResponse:
    return await _act(request, "shelve", '{"minutes": 30, "reason": "sensor being replaced"}')


async def _unshelve(request: web.Request) -> web.StreamResponse:
    return await _act(request, "unshelve", "{}")
