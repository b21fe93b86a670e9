"""Who may reach the web app, and how: Host allow-list, sessions, API tokens, CSRF, roles, limits.

Every request passes, in order: a request id and generic error text (details only in the server log),
the ``Host`` allow-list (DNS rebinding gets 421), a per-address rate limit, identification (an API
token in ``Authorization: Bearer``, else the session cookie, else anonymous), the cross-site check
for every state-changing request (``Sec-Fetch-Site`` and a strict ``Origin`` match; a cookie-borne
request without ``Origin`` is refused), and the least role the route registry names for the route
(:mod:`axline.app.routes`). Handlers then call :func:`axline.app.roles.require_role` themselves.

An anonymous caller is a read-only ``viewer`` only on a loopback dashboard that has no accounts yet
or that runs the demo; everywhere else every route but the login page needs a login.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from axline import i18n
from axline.app.accounts import AccountError, AccountStore, LockPolicy
from axline.app.audit import AuditLog
from axline.app.http import error_body
from axline.app.roles import ANONYMOUS, RANK, USER_REQUEST_KEY, User
from axline.app.routes import PUBLIC, spec_for, static_role

log = logging.getLogger(__name__)

SECURITY_KEY: web.AppKey[Any] = web.AppKey("security", object)
REQUEST_ID_KEY = "axline.request_id"
AUTH_KIND_KEY = "axline.auth"  # "session", "token" or "anonymous"
SESSION_KEY = "axline.session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``."""
    h = host.strip().strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    return host.strip().strip("[]") in ("0.0.0.0", "::", "")


@dataclass
class SecuritySettings:
    """The web app's security settings (``axline security-report`` prints them)."""

    bind_host: str = "127.0.0.1"
    hosts: list[str] = field(default_factory=list)  # extra names the dashboard is reached by
    tls: bool = False
    insecure_http: bool = False  # plain HTTP on a non-loopback address, explicitly forced
    demo: bool = False
    anonymous_view: bool | None = None  # None: on for loopback when there are no accounts, or the demo
    session_idle_s: float = 30 * 60
    session_max_s: float = 12 * 3600
    max_sessions: int = 5000
    streams_per_user: int = 4
    streams_total: int = 64
    rate_per_s: float = 50.0  # requests per address
    rate_burst: float = 500.0
    write_rate_per_s: float = 5.0  # state-changing requests per address
    write_burst: float = 50.0
    max_body: int = 64 * 1024
    lock: LockPolicy = field(default_factory=LockPolicy)
    audit_max_mb: float = 1024.0

    def to_json(self) -> dict:
        """The settings as plain values."""
        from dataclasses import asdict

        return asdict(self)


class Sessions:
    """Random 256-bit session tokens in memory (a restart logs everyone out), with idle and absolute
    timeouts and a bound on their number."""

    @dataclass
    class Session:
        """One login session: user, account generation, created and last used (monotonic seconds)."""
        name: str
        generation: int
        created: float
        last: float

    def __init__(self, idle_s: float, max_s: float, max_count: int = 5000) -> None:
        self.idle_s, self.max_s, self.max_count = idle_s, max_s, max_count
        self._by_token: collections.OrderedDict[str, Sessions.Session] = collections.OrderedDict()

    def new(self, name: str, generation: int) -> str:
        """Start a session for ``name`` and return its token (the oldest goes when full)."""
        now = time.monotonic()
        token = secrets.token_urlsafe(32)
        self._by_token[token] = Sessions.Session(name, generation, now, now)
        while len(self._by_token) > self.max_count:
            self._by_token.popitem(last=False)
        return token

    def get(self, token: str | None) -> Sessions.Session | None:
        """The live session of ``token``, or ``None`` when unknown, idle too long or too old."""
        if not token:
            return None
        s = self._by_token.get(token)
        if s is None:
            return None
        now = time.monotonic()
        if now - s.last > self.idle_s or now - s.created > self.max_s:
            del self._by_token[token]
            return None
        s.last = now
        return s

    def drop(self, token: str | None) -> None:
        """End the session of ``token``."""
        if token:
            self._by_token.pop(token, None)

    def drop_user(self, name: str) -> int:
        """End every session of ``name``; returns how many ended."""
        gone = [t for t, s in self._by_token.items() if s.name == name]
        for t in gone:
            del self._by_token[t]
        return len(gone)

    def __len__(self) -> int:
        return len(self._by_token)


class Buckets:
    """Token buckets per key (an address), bounded in number."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._b: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        tokens, last = self._b.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._b[key] = (tokens, now)
        while len(self._b) > self.max_keys:
            self._b.popitem(last=False)
        return wait


class Failures:
    """Failed logins per address within a window, bounded in number of addresses."""

    def __init__(self, window_s: float, max_keys: int = 10_000) -> None:
        self.window_s, self.max_keys = window_s, max_keys
        self._f: collections.OrderedDict[str, list[float]] = collections.OrderedDict()

    def recent(self, key: str, now: float) -> list[float]:
        """The failure times of ``key`` within the window."""
        return [t for t in self._f.get(key, []) if now - t < self.window_s]

    def add(self, key: str, now: float) -> None:
        """Count a failure of ``key`` at ``now`` (bounded per key and in keys)."""
        lst = self.recent(key, now) + [now]
        self._f.pop(key, None)
        self._f[key] = lst[-1000:]
        while len(self._f) > self.max_keys:
            self._f.popitem(last=False)


class Security:
    """Accounts, audit trail, sessions and limits of one web app."""

    def __init__(self, accounts: AccountStore, audit: AuditLog, settings: SecuritySettings | None = None) -> None:
        self.accounts = accounts
        self.audit = audit
        self.settings = settings or SecuritySettings()
        s = self.settings
        self.sessions = Sessions(s.session_idle_s, s.session_max_s, s.max_sessions)
        self.rate = Buckets(s.rate_per_s, s.rate_burst)
        self.write_rate = Buckets(s.write_rate_per_s, s.write_burst)
        self.address_failures = Failures(s.lock.window_s)
        self.streams: collections.Counter[str] = collections.Counter()
        self.counters: collections.Counter[str] = collections.Counter()
        self._hosts = allowed_hosts(s.bind_host, s.hosts)

    @classmethod
    def for_dir(cls, base_dir: str | os.PathLike, settings: SecuritySettings | None = None,
                on_audit_warning: Callable[[str], None] | None = None) -> Security:
        """Accounts in ``base_dir/data/security``, the audit trail in ``base_dir/data/audit``."""
        settings = settings or SecuritySettings()
        base = Path(base_dir)
        accounts = AccountStore(base / "data" / "security" / "accounts.json", settings.lock)
        audit = AuditLog(base / "data" / "audit" / "audit.jsonl", max_bytes=int(settings.audit_max_mb * 2**20),
                         on_warning=on_audit_warning)
        return cls(accounts, audit, settings)

    @classmethod
    def in_memory(cls, settings: SecuritySettings | None = None) -> Security:
        """Nothing on disk (tests and embedded apps)."""
        settings = settings or SecuritySettings()
        return cls(AccountStore(None, settings.lock), AuditLog(None), settings)

    # -- policy ------------------------------------------------------------------------------------
    def anonymous_view(self) -> bool:
        """Whether people who are not logged in may view the dashboard (loopback only)."""
        s = self.settings
        if s.anonymous_view is not None:
            return s.anonymous_view and is_loopback(s.bind_host)
        return is_loopback(s.bind_host) and (s.demo or not self.accounts.has_people())

    def host_allowed(self, host_header: str | None) -> bool:
        """Whether the ``Host`` header names this server (the Host allow-list)."""
        if not host_header:
            return False
        try:
            name = urlsplit("//" + host_header).hostname
        except ValueError:
            return False
        return bool(name) and name.lower() in self._hosts

    def check_bind(self) -> None:
        """Refuse plain HTTP beyond loopback unless forced; refuse a non-loopback dashboard without an admin."""
        s = self.settings
        host = s.bind_host
        if not isinstance(host, str) or not host.strip():
            raise ValueError(i18n.pair("serve.bad_host"))
        if is_loopback(host):
            return
        if not s.tls and not s.insecure_http:
            raise ValueError(i18n.pair("serve.plain_http", host=host))
        if not self.accounts.has_admin():
            raise ValueError(i18n.pair("serve.no_admin", host=host))

    def report(self) -> dict:
        """The current security settings, machine readable (IEC 62443-3-3 / 4-2 CR 7.6)."""
        s = self.settings
        accounts = self.accounts.accounts()
        now = time.time()
        return {
            "bind_host": s.bind_host,
            "allowed_hosts": sorted(self._hosts),
            "tls": s.tls,
            "plain_http_forced": s.insecure_http and not s.tls,
            "anonymous_view": self.anonymous_view(),
            "http_basic": False,
            "password_policy": {"min_length": 8, "max_length": 128, "common_password_list": True,
                                "composition_rules": False, "hash": "argon2id"},
            "lockout": {"max_failures": s.lock.max_failures, "window_s": s.lock.window_s,
                        "lockout_s": s.lock.lockout_s, "address_max_failures": s.lock.address_max_failures},
            "sessions": {"idle_s": s.session_idle_s, "absolute_s": s.session_max_s, "cookie_secure": s.tls,
                         "cookie_samesite": "Strict", "cookie_httponly": True, "active": len(self.sessions)},
            "limits": {"streams_per_user": s.streams_per_user, "streams_total": s.streams_total,
                       "rate_per_s": s.rate_per_s, "rate_burst": s.rate_burst,
                       "write_rate_per_s": s.write_rate_per_s, "max_body_bytes": s.max_body},
            "accounts": {"people": sum(1 for a in accounts if a.kind == "person"),
                         "service": sum(1 for a in accounts if a.kind == "service"),
                         "admins": sum(1 for a in accounts if a.role == "admin" and not a.disabled),
                         "disabled": sum(1 for a in accounts if a.disabled),
                         "locked": sum(1 for a in accounts if a.locked_until > now),
                         "by_role": {r: sum(1 for a in accounts if a.role == r) for r in RANK},
                         "reload_errors": self.accounts.reload_errors,
                         "last_reload_error": self.accounts.last_reload_error},
            "tokens": {"active": sum(1 for t in self.accounts.tokens() if not t.revoked and t.expires > now),
                       "revoked": sum(1 for t in self.accounts.tokens() if t.revoked)},
            "audit": self.audit.status(),
        }

    @contextlib.contextmanager
    def stream_slot(self, user: User, address: str = ""):
        """Hold one live-stream slot of ``user`` (429 when the user's or the server's cap is reached);
        anonymous viewers are counted per address."""
        s = self.settings
        key = user.name if user.authenticated else f"anonymous@{address}"
        total = sum(self.streams.values())
        if self.streams[key] >= s.streams_per_user or total >= s.streams_total:
            self.counters["streams_refused"] += 1
            raise web.HTTPTooManyRequests(
                text=json.dumps(error_body("err.too_many_streams")), content_type="application/json",
                headers={"Retry-After": "10"})
        self.streams[key] += 1
        try:
            yield
        finally:
            self.streams[key] -= 1
            if self.streams[key] <= 0:
                del self.streams[key]


def allowed_hosts(bind_host: str, extra: list[str] | None = None) -> set[str]:
    """Names a request's ``Host`` may carry: loopback names, the bind address, configured names, and when
    bound to every interface, this computer's name and addresses."""
    hosts = {"localhost", "127.0.0.1", "::1"}
    b = bind_host.strip().strip("[]").lower()
    if _is_wildcard(b):
        with contextlib.suppress(OSError):
            hosts.add(socket.gethostname().lower())
            hosts.add(socket.getfqdn().lower())
        with contextlib.suppress(Exception):
            import psutil

            for addrs in psutil.net_if_addrs().values():
                for a in addrs:
                    if a.family in (socket.AF_INET, socket.AF_INET6):
                        hosts.add(a.address.split("%")[0].lower())
    elif b:
        hosts.add(b)
    for h in extra or []:
        h = h.strip().strip("[]").lower()
        if h:
            hosts.add(h)
    return hosts


# -- responses ------------------------------------------------------------------------------------
def _json_error(key: str, status: int, /, headers: dict[str, str] | None = None, request: web.Request | None = None,
                **params: Any) -> web.Response:
    body: dict[str, Any] = error_body(key, **params)
    if request is not None and request.get(REQUEST_ID_KEY):
        body["request_id"] = request[REQUEST_ID_KEY]
    return web.Response(text=json.dumps(body, ensure_ascii=False), status=status, content_type="application/json",
                        charset="utf-8", headers=headers)


def _wants_page(request: web.Request) -> bool:
    return request.method == "GET" and not request.path.startswith(("/api/", "/static/", "/metrics"))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host allow-list, rate limits, identification, cross-site check and the route's least role."""
    sec: Security = request.app[SECURITY_KEY]
    peer = request.remote or "?"
    if not sec.host_allowed(request.headers.get("Host")):
        sec.counters["host_refused"] += 1
        return _json_error("err.unknown_host", 421, request=request)
    state_changing = request.method not in SAFE_METHODS
    wait = sec.rate.take(peer)
    if not wait and state_changing:
        wait = sec.write_rate.take(peer)
    if wait:
        sec.counters["rate_limited"] += 1
        return _json_error("err.rate_limited", 429, headers={"Retry-After": str(int(wait) + 1)}, request=request, wait=format(wait, ".1f"))
    spec = spec_for(request)
    max_body = spec.max_body if spec is not None and spec.max_body else sec.settings.max_body
    if request.content_length is not None and request.content_length > max_body:
        return _json_error("err.body_too_large", 413, request=request, max_body=max_body)

    # -- who is asking
    user: User | None = None
    kind = "anonymous"
    authz = request.headers.get("Authorization")
    if authz:
        scheme, _, cred = authz.partition(" ")
        if scheme.lower() != "bearer":
            return _json_error("err.token_only", 401, headers={"WWW-Authenticate": 'Bearer realm="axline"'}, request=request)
        user = sec.accounts.token_user(cred.strip())
        if user is None:
            sec.counters["token_refused"] += 1
            sec.address_failures.add(peer, time.time())
            return _json_error("err.token_invalid", 401, headers={"WWW-Authenticate": 'Bearer realm="axline"'}, request=request)
        kind = "token"
    else:
        token = request.cookies.get(session_cookie(sec))
        session = sec.sessions.get(token)
        if session is not None:
            user = sec.accounts.session_user(session.name, session.generation)
            if user is None:
                sec.sessions.drop(token)
            else:
                kind = "session"
                request[SESSION_KEY] = token
        if user is None and sec.anonymous_view():
            user = ANONYMOUS
    if user is not None:
        request[USER_REQUEST_KEY] = user
    request[AUTH_KIND_KEY] = kind

    # -- cross-site requests
    if state_changing:
        refused = cross_site_reason(request, sec, kind)
        if refused:
            sec.counters["cross_site_refused"] += 1
            await _audit_denied(request, sec, user, f"refused: {refused}")
            return _json_error("err.cross_site", 403, request=request, refused=refused)

    # -- the route's least role
    srole = static_role(request)
    role = spec.role if spec is not None else srole
    if role == PUBLIC:
        return await handler(request)
    if role is None:  # a route nobody documented: reads need a viewer, changes a logged-in user
        role = "viewer"
    needs_login = state_changing or (spec is not None and spec.auth in ("login", "token"))
    if spec is not None and spec.auth == "token" and kind != "token":
        return _json_error("err.token_required", 401, headers={"WWW-Authenticate": 'Bearer realm="axline"'}, request=request)
    if user is None or (not user.authenticated and (needs_login or role != "viewer")):
        if state_changing:
            await _audit_denied(request, sec, user, "refused: login required")
        if _wants_page(request):
            raise web.HTTPFound("/login")
        return _json_error("err.login_required", 401, headers={"WWW-Authenticate": 'Session realm="axline"'}, request=request)
    if not user.has(role):
        sec.counters["role_refused"] += 1
        await _audit_denied(request, sec, user, f"refused: role {role} required")  # reads too
        return _json_error("err.role_required", 403, request=request, role=role)
    return await handler(request)


def cross_site_reason(request: web.Request, sec: Security, kind: str) -> str | None:
    """Why a state-changing request looks cross-site, or None."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site}"
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if kind == "session":
            if not referer:
                return "a browser request without Origin; send it from the dashboard's own pages"
            origin = referer
        elif referer is not None:
            origin = referer
        else:
            return None  # a script (token, or a login without a browser)
    if origin == "null":
        return "Origin is null"
    try:
        parts = urlsplit(origin)
    except ValueError:
        return "Origin is not a URL"
    if not parts.netloc or parts.netloc.lower() != (request.host or "").lower():
        return "Origin does not match this server"
    if not sec.host_allowed(parts.netloc):
        return "Origin is not an allowed host"
    expected = "https" if sec.settings.tls else "http"
    if parts.scheme != expected:
        return f"Origin scheme is {parts.scheme}, expected {expected}"
    return None


async def _audit_denied(request: web.Request, sec: Security, user: User | None, result: str) -> None:
    try:
        await sec.audit.arecord(user.name if user else "anonymous", "http.denied", f"{request.method} {request.path}",
                                role=user.role if user else "", result=result, source=request.remote or "")
    except Exception:  # noqa: BLE001 - the refusal stands; a failing audit is counted and logged there
        log.error("audit: could not record a refused request")


def session_cookie(sec: Security) -> str:
    """The session cookie's name (``__Host-`` prefixed over TLS)."""
    return "__Host-axline_session" if sec.settings.tls else "axline_session"


def set_session_cookie(resp: web.StreamResponse, sec: Security, token: str) -> None:
    """Set the session cookie: HttpOnly, SameSite=Strict, Secure over TLS."""
    resp.set_cookie(session_cookie(sec), token, httponly=True, samesite="Strict", secure=sec.settings.tls, path="/",
                    max_age=int(sec.settings.session_max_s))


async def login_user(request: web.Request, name: str, password: str) -> tuple[int, dict, str | None]:
    """Check a login; returns (status, JSON body, session token or None). Audits every attempt."""
    sec: Security = request.app[SECURITY_KEY]
    peer = request.remote or "?"
    now = time.time()
    recent = sec.address_failures.recent(peer, now)
    if len(recent) >= sec.settings.lock.address_max_failures:
        retry = int(sec.settings.lock.window_s - (now - recent[0])) + 1
        await sec.audit.arecord(name[:64], "login", name[:64], result="throttled", source=peer)
        return 429, {"error": f"too many failed logins from {peer}", "hint": f"wait {retry} s and try again",
                     "retry_after": retry}, None
    loop = asyncio.get_running_loop()
    res = await loop.run_in_executor(None, sec.accounts.authenticate, name, password)
    await sec.audit.arecord(name[:64], "login", name[:64], role=res.user.role if res.user else "",
                            result=res.reason, source=peer)
    if not res.ok:
        sec.address_failures.add(peer, now)
        sec.counters["login_failed"] += 1
        if res.reason == "locked":
            return 423, {"error": "account locked after too many failed logins",
                         "hint": f"wait {res.retry_after} s or ask an admin to unlock it (axline users unlock)",
                         "retry_after": res.retry_after}, None
        if res.reason == "disabled":
            return 403, {"error": "account disabled", "hint": "ask an admin"}, None
        return 401, {"error": "wrong user name or password", "hint": "check both and try again"}, None
    sec.counters["login_ok"] += 1
    sec.sessions.drop(request.cookies.get(session_cookie(sec)))  # never reuse a session from before the login
    assert res.user is not None
    token = sec.sessions.new(res.user.name, res.generation)
    return 200, {"ok": True, "user": res.user.name, "role": res.user.role}, token


def account_error(e: AccountError) -> web.Response:
    """The HTTP 400 answer for an :class:`AccountError`."""
    return _json_error("err.account", 400, error=str(e))
