"""What wraps every request of the web app: a request id and errors as JSON (``error_middleware``), and
the security headers of every answer (``security_headers``, an ``on_response_prepare`` hook)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from axline import i18n
from axline.app.http import BadRequest, error_body, error_response, json_response, keyed_error
from axline.app.security import AUTH_KIND_KEY, REQUEST_ID_KEY, SECURITY_KEY

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every answer carries: content security policy, framing, caching, request id, HSTS over TLS."""
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")  # "no-referrer" makes form posts send Origin: null
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    rid = request.get(REQUEST_ID_KEY)
    if rid:
        h.setdefault("X-Request-Id", rid)
    sec = request.app.get(SECURITY_KEY)
    if sec is not None and sec.settings.tls:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.get(AUTH_KIND_KEY) == "session":
        h.setdefault("X-Axline-Auth", "password")  # the page shows a log-out button
    if request.path.startswith(("/api/", "/login", "/audit", "/metrics")) or request.path in ("/", "/inspection"):
        h.setdefault("Cache-Control", "no-store")
    elif request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-cache")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad requests as JSON ``{error, hint, code, params}`` (texts from the catalog); anything else as a 500
    naming the request id in the log."""
    rid = secrets.token_hex(8)
    request[REQUEST_ID_KEY] = rid
    try:
        return await handler(request)
    except BadRequest as e:
        return error_response(e.error, e.hint, status=e.status, key=e.key, params=e.params)
    except web.HTTPException as e:
        if request.path.startswith("/api/") and e.status >= 400 and e.content_type != "application/json":
            key = "err.route_missing" if e.status == 404 else "err.route_refused"
            return keyed_error(key, e.status, method=request.method, path=request.path, reason=e.reason)
        raise
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        # details stay in the server log, under the request id the caller sees
        log.exception("request %s: %s %s failed", rid, request.method, request.path)
        if not request.path.startswith("/api/"):
            return web.Response(text=i18n.pair("err.internal_page", request_id=rid), status=500,
                                content_type="text/plain")
        return json_response({**error_body("err.internal", request_id=rid), "request_id": rid}, status=500)
