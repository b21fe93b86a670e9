"""Routes of the security layer: login, logout, the caller, users, API tokens, the audit trail,
the OpenAPI document and Prometheus metrics. ``install(app)`` adds and documents them."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from axline.app import route_docs  # noqa: F401 - registers the operations routes
from axline.app.accounts import AccountError
from axline.app.audit import audit
from axline.app.http import bad_request, error_body, json_object
from axline.app.ops_pages import ops_page
from axline.app.roles import ROLES, User, current_user, require_role
from axline.app.routes import INT, OBJ, PUBLIC, STR, document, openapi_document
from axline.app.security import (
    SECURITY_KEY,
    SESSION_KEY,
    Security,
    _json_error,
    login_user,
    session_cookie,
    set_session_cookie,
)

STATIC_DIR = Path(__file__).with_name("static")
NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[\w.@-]{1,64}$"}
ROLE = {"type": "string", "enum": list(ROLES)}
T = TypeVar("T")
PASSWORD = {"type": "string", "minLength": 1, "maxLength": 1024}


def _sec(request: web.Request) -> Security:
    return request.app[SECURITY_KEY]


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(obj, ensure_ascii=False, default=str), status=status,
                        content_type="application/json", charset="utf-8", headers=headers)


async def _body(request: web.Request, example: str) -> dict:
    """The request's JSON object; a body not sent as JSON answers 415."""
    return await json_object(request, example, not_json_status=415)


def _bad(key: str, status: int = 400, /, **params: Any) -> web.Response:
    return _json_error(key, status, **params)


async def _account_op(request: web.Request, user: User, action: str, target: str, refused: str,
                      fn: Callable[..., T], *args: Any, new: Any = None) -> T:
    """Run the account store's ``fn(*args)`` off the loop; a refusal (``AccountError``) is audited as
    ``action`` on ``target`` and answered with catalog key ``refused``."""
    try:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
    except AccountError as e:
        await audit(request, user, action, target, new=new, result=f"refused: {e}")
        raise bad_request(refused, error=str(e)) from None


# -- login ----------------------------------------------------------------------------------------
EXPORT_CHUNK_LINES = 500


@functools.lru_cache(maxsize=1)
def _login_template() -> str:
    """The login page, read once (the first time at install, off any request)."""
    return (STATIC_DIR / "login.html").read_text(encoding="utf-8")


def _login_html(error: str | None = None) -> str:
    html = _login_template()
    if error == "locked":
        html = html.replace('id="login-locked" hidden', 'id="login-locked"')
    elif error:
        html = html.replace('id="login-error" hidden', 'id="login-error"')
    return html


async def login_page(request: web.Request) -> web.StreamResponse:
    """``GET /login``: the login page."""
    return web.Response(text=_login_html(), content_type="text/html", charset="utf-8")


async def login(request: web.Request) -> web.StreamResponse:
    """``POST /login``: check the password (form or JSON), start a session, audit the attempt."""
    wants_json = request.content_type == "application/json"
    try:
        if wants_json:
            body = await request.json()
            body = body if isinstance(body, dict) else {}
        else:
            body = dict(await request.post())
    except (ValueError, UnicodeDecodeError):
        return _bad("err.login.bad_body")
    name, password = body.get("username"), body.get("password")
    if not isinstance(name, str) or not name or len(name) > 64:
        return _bad("err.login.no_username")
    if not isinstance(password, str) or not password or len(password) > 1024:
        return _bad("err.login.no_password")
    status, reply, token = await login_user(request, name, password)
    sec = _sec(request)
    if wants_json:
        headers = {"Retry-After": str(reply["retry_after"])} if "retry_after" in reply else None
        resp: web.StreamResponse = _json(reply, status=status, headers=headers)
    elif token is None:
        resp = web.Response(text=_login_html("locked" if status in (423, 429) else "bad"), status=status,
                            content_type="text/html", charset="utf-8")
    else:
        resp = web.Response(status=303, headers={"Location": "/"})
    if token is not None:
        set_session_cookie(resp, sec, token)
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /logout``: end the session and audit it."""
    sec = _sec(request)
    token = request.get(SESSION_KEY)
    user = current_user(request)
    sec.sessions.drop(token)
    if user is not None and user.authenticated:
        await audit(request, user, "logout", user.name)
    if request.content_type == "application/json":
        resp: web.StreamResponse = _json({"ok": True})
    else:
        resp = web.Response(status=303, headers={"Location": "/login"})
    resp.del_cookie(session_cookie(sec), path="/")
    return resp


async def me(request: web.Request) -> web.StreamResponse:
    """``GET /api/me``: who is logged in, their role and whether anonymous viewing is on."""
    user = require_role(request, "viewer")
    sec = _sec(request)
    return _json({"name": user.name, "role": user.role, "authenticated": user.authenticated,
                  "anonymous_view": sec.anonymous_view(), "roles": list(ROLES)})


async def change_password(request: web.Request) -> web.StreamResponse:
    """``POST /api/me/password``: change one's own password (the old one is checked)."""
    user = require_role(request, "viewer")
    body = await _body(request, '{"old": "...", "new": "..."}')
    old, new = body.get("old"), body.get("new")
    if not isinstance(old, str) or not isinstance(new, str):
        return _bad("err.password.both_required")
    sec = _sec(request)
    loop = asyncio.get_running_loop()
    res = await loop.run_in_executor(None, sec.accounts.authenticate, user.name, old)
    if not res.ok:
        await audit(request, user, "password.change", user.name, result=f"refused: {res.reason}")
        return _bad("err.password.wrong_current", 403)
    try:
        await loop.run_in_executor(None, sec.accounts.reset_password, user.name, new)
    except AccountError as e:
        await audit(request, user, "password.change", user.name, result="refused: policy")
        return _bad("err.password.rejected", error=str(e))
    sec.sessions.drop_user(user.name)
    await audit(request, user, "password.change", user.name)
    acc = sec.accounts.get(user.name)
    resp = _json({"ok": True})
    if acc is not None:
        set_session_cookie(resp, sec, sec.sessions.new(acc.name, acc.generation))
    return resp


# -- users ----------------------------------------------------------------------------------------
async def users_list(request: web.Request) -> web.StreamResponse:
    """``GET /api/users``: every account (admins only)."""
    require_role(request, "admin")
    now = time.time()
    return _json({"users": [a.public(now) for a in _sec(request).accounts.accounts()]})


async def users_add(request: web.Request) -> web.StreamResponse:
    """``POST /api/users``: add an account (admins only, audited)."""
    user = require_role(request, "admin")
    body = await _body(request, '{"name": "kim", "role": "operator", "password": "..."}')
    name, role, password = body.get("name"), body.get("role"), body.get("password")
    acc = await _account_op(request, user, "user.add", str(name)[:64], "err.user.add_refused",
                            _sec(request).accounts.add, name, role, password, new=role)
    await audit(request, user, "user.add", acc.name, new=acc.role)
    return _json(acc.public())


async def users_change(request: web.Request) -> web.StreamResponse:
    """``POST /api/users/{name}``: change role, disable, reset the password or unlock (audited)."""
    user = require_role(request, "admin")
    name = request.match_info["name"]
    body = await _body(request, '{"role": "engineer"} or {"disabled": true} or {"password": "..."} or '
                                '{"unlock": true}')
    sec = _sec(request)
    acc = sec.accounts.get(name)
    if acc is None:
        return _bad("err.user_missing", 404, name=repr(name))
    known = {"role", "disabled", "password", "unlock"}
    if not body or set(body) - known:
        return _bad("err.user.change_what", fields=', '.join(sorted(known)))
    loop = asyncio.get_running_loop()
    try:
        if "role" in body:
            old, new = await loop.run_in_executor(None, sec.accounts.set_role, name, body["role"])
            await audit(request, user, "user.role", name, old=old, new=new)
        if "disabled" in body:
            if not isinstance(body["disabled"], bool):
                return _bad("err.user.bad_disabled")
            await loop.run_in_executor(None, sec.accounts.set_disabled, name, body["disabled"])
            await audit(request, user, "user.disable" if body["disabled"] else "user.enable", name,
                        old=acc.disabled, new=body["disabled"])
        if "password" in body:
            await loop.run_in_executor(None, sec.accounts.reset_password, name, body["password"])
            await audit(request, user, "user.reset", name)
        if body.get("unlock") is True:
            await loop.run_in_executor(None, sec.accounts.unlock, name)
            await audit(request, user, "user.unlock", name)
    except AccountError as e:
        await audit(request, user, "user.change", name, new=sorted(body), result=f"refused: {e}")
        return _bad("err.user.change_refused", error=str(e))
    if any(k in body for k in ("role", "disabled", "password")):
        sec.sessions.drop_user(name)
    return _json(sec.accounts.get(name).public())  # type: ignore[union-attr]


async def users_remove(request: web.Request) -> web.StreamResponse:
    """``DELETE /api/users/{name}``: remove an account (audited)."""
    user = require_role(request, "admin")
    name = request.match_info["name"]
    sec = _sec(request)
    acc = sec.accounts.get(name)
    if acc is None:
        return _bad("err.user_missing", 404, name=repr(name))
    await _account_op(request, user, "user.remove", name, "err.user.remove_refused", sec.accounts.remove, name)
    sec.sessions.drop_user(name)
    await audit(request, user, "user.remove", name, old=acc.role)
    return _json({"ok": True})


# -- tokens ---------------------------------------------------------------------------------------
async def tokens_list(request: web.Request) -> web.StreamResponse:
    """``GET /api/tokens``: every API token, without secrets (admins only)."""
    require_role(request, "admin")
    now = time.time()
    return _json({"tokens": [t.public(now) for t in _sec(request).accounts.tokens()]})


async def tokens_add(request: web.Request) -> web.StreamResponse:
    """``POST /api/tokens``: make an API token for a service account; the secret is shown once."""
    user = require_role(request, "admin")
    body = await _body(request, '{"account": "line1-scripts", "role": "viewer", "days": 90}')
    account, role, days = body.get("account"), body.get("role"), body.get("days", 90)
    if isinstance(days, bool) or not isinstance(days, int | float):
        return _bad("err.token.bad_days")
    text, tok = await _account_op(request, user, "token.add", str(account)[:64], "err.token.add_refused",
                                  _sec(request).accounts.token_add, account, role, float(days), user.name, new=role)
    await audit(request, user, "token.add", f"{tok.account}/{tok.id}", new=tok.role,
                detail={"creator": user.name, "account": tok.account, "expires": tok.expires})
    return _json({"token": text, "shown_once": True, **tok.public()})


async def tokens_revoke(request: web.Request) -> web.StreamResponse:
    """``DELETE /api/tokens/{id}``: revoke an API token (audited)."""
    user = require_role(request, "admin")
    tid = request.match_info["id"]
    sec = _sec(request)
    try:
        tok = await asyncio.get_running_loop().run_in_executor(None, sec.accounts.token_revoke, tid)
    except AccountError as e:
        return _bad("err.token.revoke_refused", 404, error=str(e))
    await audit(request, user, "token.revoke", f"{tok.account}/{tok.id}")
    return _json(tok.public())


# -- audit ----------------------------------------------------------------------------------------
def _int(q: Any, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps(error_body("err.param.not_integer_short", name=name, lo=lo)),
                                 content_type="application/json") from None
    if not lo <= v <= hi:
        raise web.HTTPBadRequest(text=json.dumps(error_body("err.param.range_short", name=name, lo=lo, hi=hi)),
                                 content_type="application/json")
    return v


async def audit_list(request: web.Request) -> web.StreamResponse:
    """``GET /api/audit``: audit entries, newest first, filtered by action and user."""
    require_role(request, "admin")
    q = request.query
    limit = _int(q, "limit", 100, 1, 1000)
    before = _int(q, "before", None, 1, 2**62)
    action = q.get("action", "")[:64] or None
    who = q.get("who", "")[:64] or None
    sec = _sec(request)
    entries = await asyncio.get_running_loop().run_in_executor(
        None, lambda: sec.audit.tail(limit or 100, before, action, who))
    return _json({"entries": entries, "status": sec.audit.status()})


async def audit_verify(request: web.Request) -> web.StreamResponse:
    """``GET /api/audit/verify``: check the hash chain of the audit trail."""
    require_role(request, "admin")
    res = await asyncio.get_running_loop().run_in_executor(None, _sec(request).audit.verify)
    return _json(res.to_json())


async def audit_export(request: web.Request) -> web.StreamResponse:
    """``GET /api/audit/export``: the audit trail as JSON lines or syslog (audited)."""
    user = require_role(request, "admin")
    fmt = request.query.get("format", "jsonl")
    if fmt not in ("jsonl", "syslog"):
        return _bad("err.audit.bad_format")
    sec = _sec(request)
    await audit(request, user, "audit.export", fmt)

    # streamed in chunks read in a worker: memory stays bounded however long the trail is
    lines = sec.audit.export_lines(fmt)

    def chunk() -> bytes:
        return "".join(itertools.islice(lines, EXPORT_CHUNK_LINES)).encode("utf-8")

    resp = web.StreamResponse(headers={
        "Content-Type": ("application/x-ndjson" if fmt == "jsonl" else "text/plain") + "; charset=utf-8",
        "Content-Disposition": f'attachment; filename="axline-audit.{fmt}"'})
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    try:
        while data := await loop.run_in_executor(None, chunk):
            await resp.write(data)
    finally:
        lines.close()
    await resp.write_eof()
    return resp


async def openapi(request: web.Request) -> web.StreamResponse:
    """``GET /api/openapi.json``: the OpenAPI document of every route."""
    require_role(request, "viewer")
    return _json(openapi_document(request.app))


async def metrics(request: web.Request) -> web.StreamResponse:
    """``GET /metrics``: Prometheus metrics of the service."""
    require_role(request, "viewer")
    from axline.app.metrics import prometheus_text

    return web.Response(text=prometheus_text(request.app), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def install(app: web.Application) -> None:
    """Add the login, account, user, token, audit, OpenAPI and metrics routes to ``app``."""
    _login_template()  # read the login page now, not on the loop during a request
    r = app.router
    r.add_get("/login", login_page)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/api/me", me)
    r.add_post("/api/me/password", change_password)
    r.add_get("/api/users", users_list)
    r.add_post("/api/users", users_add)
    r.add_post("/api/users/{name}", users_change)
    r.add_delete("/api/users/{name}", users_remove)
    r.add_get("/api/tokens", tokens_list)
    r.add_post("/api/tokens", tokens_add)
    r.add_delete("/api/tokens/{id}", tokens_revoke)
    r.add_get("/api/audit", audit_list)
    r.add_get("/api/audit/verify", audit_verify)
    r.add_get("/api/audit/export", audit_export)
    r.add_get("/audit", ops_page("audit", role="admin"))  # the audit trail page
    r.add_get("/account", ops_page("account", role="viewer"))  # one's own account (and users, for admins)
    r.add_get("/api/openapi.json", openapi)
    r.add_get("/metrics", metrics)


cred = {"type": "object", "required": ["username", "password"],
        "properties": {"username": NAME, "password": PASSWORD}}
document("GET", "/login", role=PUBLIC, summary="the login page", produces="text/html")
document("POST", "/login", role=PUBLIC, summary="log in; sets the session cookie", body=cred, form=cred,
         produces=("application/json", "text/html"))
document("POST", "/logout", role="viewer", summary="end this session", produces=("application/json", "text/html"))
document("GET", "/api/me", role="viewer", summary="who is calling, with which role")
document("POST", "/api/me/password", role="viewer", auth="login", summary="change one's own password",
         body={"type": "object", "required": ["old", "new"], "properties": {"old": PASSWORD, "new": PASSWORD}})
document("GET", "/api/users", role="admin", summary="every account")
document("POST", "/api/users", role="admin", summary="add a person's account",
         body={"type": "object", "required": ["name", "role", "password"],
               "properties": {"name": NAME, "role": ROLE, "password": PASSWORD}})
document("POST", "/api/users/{name}", role="admin", summary="change role, disable/enable, reset password, unlock",
         body={"type": "object", "minProperties": 1, "additionalProperties": False,
               "properties": {"role": ROLE, "disabled": {"type": "boolean"}, "password": PASSWORD,
                              "unlock": {"type": "boolean"}}})
document("DELETE", "/api/users/{name}", role="admin", summary="remove an account and its tokens")
document("GET", "/api/tokens", role="admin", summary="API tokens (never their secrets)")
document("POST", "/api/tokens", role="admin", summary="make an API token for a service account (shown once)",
         body={"type": "object", "required": ["account"],
               "properties": {"account": NAME, "role": ROLE, "days": {"type": "number", "minimum": 1,
                                                                      "maximum": 3660}}})
document("DELETE", "/api/tokens/{id}", role="admin", summary="revoke an API token")
document("GET", "/api/audit", role="admin", summary="the newest audit entries",
         query={"limit": {**INT, "minimum": 1, "maximum": 1000}, "before": {**INT, "minimum": 1},
                "action": STR, "who": STR})
document("GET", "/api/audit/verify", role="admin", summary="check the audit trail's hash chain")
document("GET", "/api/audit/export", role="admin", summary="the audit trail as JSON lines or syslog (RFC 5424)",
         query={"format": {"type": "string", "enum": ["jsonl", "syslog"]}},
         produces=("application/x-ndjson", "text/plain"))
document("GET", "/audit", role="admin", summary="the audit page", produces="text/html")
document("GET", "/account", role="viewer", auth="login", summary="one's own account (and users, for admins)",
         produces="text/html")
document("GET", "/api/openapi.json", role="viewer", auth="login", summary="this document", response=OBJ)
document("GET", "/metrics", role="viewer", auth="token", summary="Prometheus metrics (API token)",
         produces="text/plain")
