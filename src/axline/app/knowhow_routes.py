"""Know-how routes: record what you did, review, find cases again, feedback, gaps, privacy.

``GET /knowhow`` (page; ``?event=ID`` opens the form pre-filled from that event);
``GET /api/knowhow/status`` (viewer: aggregate figures only, and the caller's role);
``GET /api/knowhow/cases?q=&asset=&top=&state=`` (viewer; a logged-in user's text search records a gap
when nothing fits);
``GET /api/knowhow/cases/{id}`` (viewer; text masked, real name only for admins with consent);
``GET /api/knowhow/prefill?event_id=`` (operator); ``POST /api/knowhow/cases`` (operator: a new draft
under the caller's pseudonym); ``POST /api/knowhow/cases/{id}`` (operator: edit, a new version;
operators edit their own cases, engineers any); ``POST /api/knowhow/cases/{id}/approve`` (approver,
not the author); ``POST /api/knowhow/cases/{id}/feedback {"helpful", "event_id", "query"}`` (operator);
``POST /api/knowhow/cases/{id}/photos`` (operator on their own case, engineers any; the body is a
JPEG/PNG/WebP image);
``GET /api/knowhow/photos/{pid}`` (viewer); ``GET /api/knowhow/alarms`` (viewer: recent alarms with
their suggestions); ``GET /api/knowhow/suggestions?event_id=`` (viewer); ``GET /api/knowhow/gaps``
(engineer); ``GET /api/knowhow/operating?asset=`` (operator: how experienced people would move the
setpoints now, with the past episodes it comes from; no person named);
``POST /api/knowhow/consent {"given"}`` (operator, for themself);
``GET /api/knowhow/authors/{who}/export`` and ``POST /api/knowhow/authors/{who}/delete`` (admin).
Every write is audited under the caller's name in the admin-only hash-chained audit trail (export
and delete before they happen: no trail, no export or delete) and, under pseudonyms, in the
know-how base's own audit table. The event log, which every viewer reads, hears only that a case was
approved (``knowhow.approved``) or helped someone (``knowhow.helped``): the case's id and its masked
title, never who (the proof-of-value report lists them among what changed).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from axline import i18n
from axline.app.audit import AuditError, audit
from axline.app.http import (
    BadRequest,
    bad_request,
    bad_request_from,
    error_body,
    json_response,
    parse_int_param,
)
from axline.app.ops_common import aemit, find_event, json_body, off_loop, svc_of
from axline.app.ops_pages import ops_page
from axline.app.roles import User, require_role
from axline.app.routes import INT, OBJ, STR, document
from axline.historian.base import Event
from axline.knowhow.store import MAX_PHOTO_BYTES, CaseError

EDITABLE = ("title", "symptom", "cause", "action", "outcome", "parts", "repair_min", "asset", "tags", "language",
            "links")
RECENT_ALARMS = 20
log = logging.getLogger(__name__)


def register(app: web.Application) -> None:
    """Add the know-how page and its case, review, search and suggestion routes to ``app``."""
    r = app.router
    r.add_get("/knowhow", ops_page("knowhow"))
    r.add_get("/api/knowhow/status", _status)
    r.add_get("/api/knowhow/cases", _list)
    r.add_post("/api/knowhow/cases", _create)
    r.add_get("/api/knowhow/cases/{id}", _get)
    r.add_post("/api/knowhow/cases/{id}", _edit)
    r.add_post("/api/knowhow/cases/{id}/approve", _approve)
    r.add_post("/api/knowhow/cases/{id}/feedback", _feedback)
    r.add_post("/api/knowhow/cases/{id}/photos", _add_photo)
    r.add_get("/api/knowhow/photos/{pid}", _photo)
    r.add_get("/api/knowhow/prefill", _prefill)
    r.add_get("/api/knowhow/alarms", _alarms)
    r.add_get("/api/knowhow/suggestions", _suggestions)
    r.add_get("/api/knowhow/gaps", _gaps)
    r.add_get("/api/knowhow/operating", _operating)
    r.add_post("/api/knowhow/consent", _consent)
    r.add_get("/api/knowhow/authors/{who}/export", _export)
    r.add_post("/api/knowhow/authors/{who}/delete", _delete)


def _live(request: web.Request) -> Any:
    live = getattr(svc_of(request), "knowhow", None)
    if live is None or not live.ready.is_set():
        why = getattr(live, "last_error", None) if live is not None else None
        if why:
            raise bad_request("err.knowhow.not_open_why", 503, why=why)
        raise bad_request("err.knowhow.not_open", 503)
    return live



def _refused(exc: Exception, key: str, status: int = 400) -> BadRequest:
    """The answer to a refused case operation: the exception's own catalog text (both languages travel as
    its code and params) with the hint of ``key``; an exception without one is told through ``key``."""
    own = getattr(exc, "key", None)
    if not isinstance(own, str) or not i18n.has(own):
        return bad_request(key, status, error=str(exc))
    body, hint = error_body(own, **getattr(exc, "params", {})), error_body(key, error="")["hint"]
    return BadRequest(body["error"], body["hint"] or hint, status, key=own, params=body["params"])

async def _audit(request: web.Request, user: User, action: str, target: str, detail: dict[str, Any]) -> None:
    """Into the admin-only, hash-chained audit trail under the caller (never into the event log,
    which every viewer reads: it would tie a pseudonym to a real name). A trail that cannot be
    written answers 503."""
    try:
        await audit(request, user, f"knowhow.{action}", target, detail=detail)
    except AuditError as e:
        raise bad_request_from(e, "err.knowhow.audit_unavailable", 503) from None


async def _case_event(request: web.Request, kh: Any, code: str, case: dict[str, Any]) -> None:
    """Tell the event log that a case was approved or helped: its id and masked title, no person. The case
    change itself is already stored and audited, so a failing event log is logged, not answered."""
    svc = svc_of(request)
    try:
        title = (await off_loop(kh.shared, case))["title"][:200]
        await aemit(svc, Event(ts=int(svc.now_ns()), kind="knowhow", source="axline/knowhow", code=code,
                               message=f"know-how case {case['id']}: {title}",
                               data={"case_id": case["id"], "title": title, "version": case.get("version"),
                                     "state": case.get("state")}))
    except Exception:  # noqa: BLE001 - see above; the log keeps the failure
        log.exception("know-how: the %s event of case %s could not be stored", code, case.get("id"))


def _case_id(request: web.Request) -> str:
    cid = request.match_info["id"]
    if not cid or len(cid) > 128:
        raise bad_request("err.knowhow.bad_case_id")
    return cid


def _public(kh: Any, case: dict[str, Any], user: User) -> dict[str, Any]:
    out = kh.shared(case, admin=user.has("admin"))
    out.pop("snapshot", None)
    snap = case.get("snapshot") or {}
    out["signals"] = {k: {kk: vv for kk, vv in v.items()} for k, v in (snap.get("signals") or {}).items()}
    out["photos"] = kh.store.photos(case["id"])
    return out


async def _status(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "viewer")
    live = getattr(svc_of(request), "knowhow", None)
    if live is None:
        return json_response({"enabled": False, "role": user.role})
    out = {"enabled": True, "role": user.role, **live.status()}
    if live.ready.is_set():
        out["stats"] = await off_loop(live.kh.store.stats)
    return json_response(out)


async def _list(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "viewer")
    kh = _live(request).kh
    q = request.query
    text = q.get("q", "").strip()[:500]
    asset = q.get("asset", "").strip()[:512]
    top = parse_int_param(q, "top", 10, 1, 50, "number of cases")
    state = q.get("state", "").strip()
    if state and state not in ("draft", "approved", "retired"):
        raise bad_request("err.knowhow.bad_state", state=repr(state[:20]))

    def run() -> dict[str, Any]:
        if text or asset:
            # a search that finds nothing good is a gap, but only a logged-in user's: this GET is open to
            # the anonymous loopback viewer, and the gap list is bounded (store.MAX_GAPS)
            res = kh.search(text, asset=asset, top=top, states=(state,) if state else None,
                            record_gap=user.authenticated)
            cases = []
            for r in res:
                c = _public(kh, kh.store.get(r["id"]), user)
                cases.append({**r, "case": c})
            return {"results": cases}
        cases = [c for c in kh.store.all_cases() if not state or c["state"] == state]
        cases.sort(key=lambda c: -c["updated_ts"])
        return {"results": [{"id": c["id"], "case": _public(kh, c, user)} for c in cases[:top]]}

    return json_response(await off_loop(run))


async def _get(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "viewer")
    kh = _live(request).kh
    cid = _case_id(request)

    def run() -> dict[str, Any]:
        case = kh.store.get(cid)
        out = _public(kh, case, user)
        out["versions"] = [{"version": v["version"], "ts": v["ts"], "state": v["state"], "editor": v["editor"]}
                           for v in kh.store.versions(cid)]
        return out

    try:
        return json_response(await off_loop(run))
    except KeyError:
        raise bad_request("err.case_missing", 404, cid=cid) from None


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - set(EDITABLE) - {"event_id"})
    if unknown:
        raise bad_request("err.knowhow.unknown_fields", fields=', '.join(unknown)[:200], editable=', '.join(EDITABLE))
    return {k: body[k] for k in EDITABLE if k in body}


async def _event_json(request: web.Request, event_id: int) -> dict[str, Any]:
    svc = svc_of(request)
    try:
        ev = await off_loop(find_event, svc.historian, event_id)
    except KeyError:
        raise bad_request("err.event_missing", 404, event_id=event_id) from None
    return ev.to_json()


async def _prefill(request: web.Request) -> web.StreamResponse:
    require_role(request, "operator")
    kh = _live(request).kh
    event_id = parse_int_param(request.query, "event_id", None, 0, 2**62, "event id")
    if event_id is None:
        raise bad_request("err.knowhow.no_event_id")
    ev = await _event_json(request, event_id)
    fields = await off_loop(kh.prefill, ev, svc_of(request).historian)
    return json_response({"event": ev, "fields": fields})


async def _create(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "operator")
    kh = _live(request).kh
    body = await json_body(request, '{"symptom": "...", "cause": "...", "action": "...", "event_id": 12}')
    fields = _fields(body)
    event_id = body.get("event_id")
    if event_id is not None:
        if isinstance(event_id, bool) or not isinstance(event_id, int):
            raise bad_request("err.knowhow.bad_event_id", event_id=repr(event_id))
        ev = await _event_json(request, event_id)
        pre = await off_loop(kh.prefill, ev, svc_of(request).historian)
        fields = {"asset": pre["asset"], "tags": pre["tags"], **fields, "snapshot": pre["snapshot"],
                  "event_id": event_id}
    try:
        case = await off_loop(kh.record, fields, user.name)
    except CaseError as e:
        raise _refused(e, "err.knowhow.bad_case") from None
    await _audit(request, user, "create", case["id"], {"event_id": event_id})
    return json_response(await off_loop(_public, kh, case, user), status=201)


async def _edit(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "operator")
    kh = _live(request).kh
    cid = _case_id(request)
    body = await json_body(request, '{"action": "..."}')
    fields = _fields(body)
    await _check_owner(kh, cid, user, "operators edit only their own cases")
    try:
        case = await off_loop(kh.edit, cid, fields, user.name)
    except CaseError as e:
        raise _refused(e, "err.knowhow.bad_field") from None
    await _audit(request, user, "edit", cid, {"version": case["version"]})
    return json_response(await off_loop(_public, kh, case, user))


async def _check_owner(kh: Any, cid: str, user: User, refusal: str) -> None:
    """Operators change only their own cases; engineers and above any case."""
    try:
        cur = await off_loop(kh.store.get, cid)
    except KeyError:
        raise bad_request("err.case_missing", 404, cid=cid) from None
    if not user.has("engineer") and cur["author"] != await off_loop(kh.store.pseudonym, user.name):
        raise bad_request("err.knowhow.edit_refused", 403, refusal=refusal)


async def _approve(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "approver")
    kh = _live(request).kh
    cid = _case_id(request)
    try:
        case = await off_loop(kh.approve, cid, user.name)
    except KeyError:
        raise bad_request("err.case_missing", 404, cid=cid) from None
    except PermissionError as e:
        raise _refused(e, "err.knowhow.approve_refused", 403) from None
    except CaseError as e:
        raise _refused(e, "err.knowhow.approve_nothing", 409) from None
    await _audit(request, user, "approve", cid, {"version": case["version"]})
    await _case_event(request, kh, "knowhow.approved", case)
    return json_response(await off_loop(_public, kh, case, user))


async def _feedback(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "operator")
    kh = _live(request).kh
    cid = _case_id(request)
    body = await json_body(request, '{"helpful": true, "event_id": 12}')
    helpful = body.get("helpful")
    if not isinstance(helpful, bool):
        raise bad_request("err.knowhow.bad_helpful", helpful=repr(helpful))
    ctx = {k: body[k] for k in ("event_id", "query", "asset") if k in body}
    try:
        out = await off_loop(kh.feedback, cid, helpful, ctx)
    except KeyError:
        raise bad_request("err.case_missing", 404, cid=cid) from None
    await _audit(request, user, "feedback", cid, {"helpful": helpful})
    if helpful:
        await _case_event(request, kh, "knowhow.helped", await off_loop(kh.store.get, cid))
    return json_response(out)


async def _add_photo(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "operator")
    kh = _live(request).kh
    cid = _case_id(request)
    await _check_owner(kh, cid, user, "operators add photos only to their own cases")
    mime = request.content_type
    if mime not in ("image/jpeg", "image/png", "image/webp"):
        raise bad_request("err.knowhow.photo_type", mime=mime)
    data = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        data.extend(chunk)
        if len(data) > MAX_PHOTO_BYTES:
            raise bad_request("err.knowhow.photo_large", 413, mb=MAX_PHOTO_BYTES // 2**20)
    name = request.query.get("name", "photo")[:120]
    try:
        pid = await off_loop(kh.store.add_photo, cid, name, mime, bytes(data))
    except KeyError:
        raise bad_request("err.case_missing", 404, cid=cid) from None
    except CaseError as e:
        raise _refused(e, "err.knowhow.photo_refused") from None
    await _audit(request, user, "photo", cid, {"photo": pid})
    return json_response({"id": pid, "case_id": cid}, status=201)


async def _photo(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    kh = _live(request).kh
    try:
        mime, data, _ = await off_loop(kh.store.photo, request.match_info["pid"][:64])
    except KeyError:
        raise bad_request("err.knowhow.photo_missing", 404) from None
    return web.Response(body=data, content_type=mime, headers={"Cache-Control": "private, max-age=3600"})


async def _alarms(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    live = _live(request)
    svc = svc_of(request)

    def run() -> dict[str, Any]:
        events = svc.historian.events(kinds=["alarm"], limit=RECENT_ALARMS)
        out = []
        for ev in events:
            j = ev.to_json()
            res = live.suggestions_for(j)
            out.append({"event": j, "suggestions": _with_titles(live.kh, res)})
        return {"alarms": out}

    return json_response(await off_loop(run))


def _with_titles(kh: Any, res: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in res:
        try:
            c = kh.shared(kh.store.get(r["id"]))
        except KeyError:
            continue  # deleted since
        out.append({**r, "title": c["title"] or c["symptom"][:80], "action": c["action"][:200],
                    "cause": c["cause"][:200]})
    return out


async def _suggestions(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    live = _live(request)
    event_id = parse_int_param(request.query, "event_id", None, 0, 2**62, "event id")
    if event_id is None:
        raise bad_request("err.knowhow.suggest_no_event_id")
    ev = await _event_json(request, event_id)
    res = await off_loop(live.suggestions_for, ev)
    return json_response({"event_id": event_id, "suggestions": await off_loop(_with_titles, live.kh, res)})


async def _operating(request: web.Request) -> web.StreamResponse:
    require_role(request, "operator")
    op = getattr(svc_of(request), "operating", None)
    if op is None:
        return json_response({"configured": False, "assets": []})
    asset = request.query.get("asset") or None
    if asset is not None and len(asset) > 512:
        raise bad_request("err.knowhow.bad_asset")
    try:
        out = await off_loop(op.advice, asset)
    except Exception as e:  # counted in the advisor's status (health); the caller is told why
        log.exception("operating advice failed")
        raise bad_request("err.knowhow.operating_failed", 503, error=f"{type(e).__name__}: {e}") from None
    return json_response(out)


async def _gaps(request: web.Request) -> web.StreamResponse:
    require_role(request, "engineer")
    kh = _live(request).kh
    return json_response({"gaps": await off_loop(kh.store.gaps, 200)})


async def _consent(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "operator")
    kh = _live(request).kh
    body = await json_body(request, '{"given": true}')
    given = body.get("given")
    if not isinstance(given, bool):
        raise bad_request("err.knowhow.bad_given", given=repr(given))
    out = await off_loop(kh.set_consent, user.name, given)
    await _audit(request, user, "consent", out["pseudonym"], {"given": given})
    return json_response(out)


async def _author_of(kh: Any, request: web.Request) -> tuple[str, int]:
    """The pseudonym named in the path (a pseudonym or a user name) and how many cases it has."""
    who = request.match_info["who"][:128]

    def run() -> tuple[str, int]:
        pseudo = kh.store.resolve_author(who)
        return pseudo, len(kh.store.author_cases(pseudo))

    try:
        return await off_loop(run)
    except CaseError as e:
        raise _refused(e, "err.knowhow.bad_author") from None


async def _export(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "admin")
    kh = _live(request).kh
    pseudo, n = await _author_of(kh, request)
    # audited before anything leaves: no audit trail, no export (503)
    await _audit(request, user, "export", pseudo, {"cases": n})
    return json_response(await off_loop(kh.export_author, pseudo, user.name))


async def _delete(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "admin")
    live = _live(request)
    pseudo, n = await _author_of(live.kh, request)
    # audited before anything is wiped: no audit trail, no deletion (503)
    await _audit(request, user, "delete", pseudo, {"cases": n})
    ids_before = {c["id"] for c in await off_loop(live.kh.store.all_cases)}
    out = await off_loop(live.kh.delete_author, pseudo, user.name)
    ids_after = {c["id"] for c in await off_loop(live.kh.store.all_cases)}
    live.forget_cases(ids_before - ids_after)
    return json_response(out)


_CASE = {"type": "object", "properties": {
    "title": STR, "symptom": STR, "cause": STR, "action": STR,
    "outcome": {"type": "string", "enum": ["fixed", "not_fixed", "escalated", ""]},
    "parts": {"type": ["array", "string"]}, "repair_min": {"type": ["number", "null"]}, "asset": STR,
    "tags": {"type": ["array", "string"]}, "language": STR, "links": {"type": ["array", "string"]},
    "event_id": {"type": ["integer", "null"]}}}
document("GET", "/knowhow", role="viewer", summary="the know-how page (record, find, review)", produces="text/html")
document("GET", "/api/knowhow/status", role="viewer", summary="know-how base: ready, aggregate figures, your role")
document("GET", "/api/knowhow/cases", role="viewer", summary="find cases (Korean or English) or list them",
         query={"q": STR, "asset": STR, "top": {**INT, "minimum": 1, "maximum": 50}, "state": STR})
document("POST", "/api/knowhow/cases", role="operator", summary="record what you did: a new draft case (audited)",
         body=_CASE)
document("GET", "/api/knowhow/cases/{id}", role="viewer", summary="one case (text masked) and its versions")
document("POST", "/api/knowhow/cases/{id}", role="operator", summary="edit a case: a new version (audited)",
         body=_CASE)
document("POST", "/api/knowhow/cases/{id}/approve", role="approver",
         summary="approve a draft; not by its author (audited)", body=OBJ)
document("POST", "/api/knowhow/cases/{id}/feedback", role="operator", summary='"did this help?" (audited)',
         body={"type": "object", "properties": {"helpful": {"type": "boolean"}, "event_id": INT, "query": STR}})
document("POST", "/api/knowhow/cases/{id}/photos", role="operator",
         summary="add a photo (the body is a JPEG, PNG or WebP image; audited)", max_body=MAX_PHOTO_BYTES)
document("GET", "/api/knowhow/photos/{pid}", role="viewer", summary="a case photo", produces="image/*")
document("GET", "/api/knowhow/prefill", role="operator", summary="a new case's fields from an event",
         query={"event_id": {**INT, "required": True}})
document("GET", "/api/knowhow/alarms", role="viewer", summary="recent alarms with the cases suggested for each")
document("GET", "/api/knowhow/suggestions", role="viewer", summary="cases suggested for an alarm",
         query={"event_id": {**INT, "required": True}})
document("GET", "/api/knowhow/gaps", role="engineer", summary="searches that found no good case")
document("GET", "/api/knowhow/operating", role="operator",
         summary="operating advice learnt from experienced people's audited setpoint changes, with evidence",
         query={"asset": STR})
document("POST", "/api/knowhow/consent", role="operator",
         summary="give or withdraw consent to show your real name to admins (audited)",
         body={"type": "object", "properties": {"given": {"type": "boolean"}}})
document("GET", "/api/knowhow/authors/{who}/export", role="admin", summary="all cases of one author (audited)")
document("POST", "/api/knowhow/authors/{who}/delete", role="admin",
         summary="wipe one author's cases, photos, embeddings and index entries (audited)", body=OBJ)
