"""The route registry: every route's method, path, least role and contract, in one place.

A module that adds a route also documents it::

    from axline.app.routes import document
    document("GET", "/api/alarms", role="viewer", summary="open alarms", query={"limit": INT})
    app.router.add_get("/api/alarms", handler)   # the handler still calls require_role itself

The authentication middleware enforces ``role`` before the handler runs (so a route that forgets its
``require_role`` call is still guarded), ``/api/openapi.json`` is generated from the registry, and a
test fails for any route in ``app.router`` that is not documented here. ``role="public"`` marks the
few routes anyone may reach (the login page and its assets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from axline.app.roles import ROLES

PUBLIC = "public"

INT = {"type": "integer"}
NS = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "description": "ns since the epoch, UTC"}
STR = {"type": "string"}
OBJ = {"type": "object"}
ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "string"}, "hint": {"type": "string"},
                        "code": {"type": "string", "description": "catalog key of the error (axline/i18n)"},
                        "params": {"type": "object", "description": "the values of the text's placeholders"},
                        "request_id": {"type": "string"}}}


@dataclass
class RouteSpec:
    """A route's contract: method, path, least role, summary, parameters, body and answer."""
    method: str
    path: str
    role: str
    summary: str
    query: dict[str, dict] = field(default_factory=dict)  # name -> JSON schema (+ "required": bool)
    body: dict | None = None  # JSON schema of a JSON body
    form: dict | None = None  # JSON schema of a form body (application/x-www-form-urlencoded)
    response: dict = field(default_factory=lambda: dict(OBJ))
    produces: str | tuple[str, ...] = "application/json"  # one media type, or the ones it may answer with
    stream: bool = False  # a never-ending response (Server-Sent Events)
    auth: str = "any"  # "any" (session or token), "token" (API token only)
    max_body: int | None = None  # bytes; None: the app's limit


ROUTES: dict[tuple[str, str], RouteSpec] = {}
# Static file prefixes ("/static", "/heatmaps", "/camera/cam1") -> least role
STATIC: dict[str, str] = {}


def document(method: str, path: str, *, role: str, summary: str, **kw: Any) -> RouteSpec:
    """Register (or replace) a route's contract. ``role`` is the least role that may call it."""
    if role != PUBLIC and role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)} or {PUBLIC!r}, got {role!r}")
    spec = RouteSpec(method.upper(), path, role, summary, **kw)
    ROUTES[(spec.method, path)] = spec
    return spec


def document_static(prefix: str, role: str) -> None:
    """Set the least role that may read static files under ``prefix``."""
    if role != PUBLIC and role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    STATIC[prefix.rstrip("/")] = role


def spec_for(request: web.Request) -> RouteSpec | None:
    """The contract of the route ``request`` matched, or ``None``."""
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    return ROUTES.get((method, resource.canonical))


def static_role(request: web.Request) -> str | None:
    """The least role for a static file request, or ``None`` when it is not one."""
    resource = request.match_info.route.resource
    if isinstance(resource, web.StaticResource):
        return STATIC.get(request.path) or STATIC.get(resource.canonical.rstrip("/"), "viewer")
    return None


def undocumented(app: web.Application) -> list[str]:
    """Routes of ``app`` that the registry does not describe (a test keeps this empty)."""
    out = []
    for route in app.router.routes():
        res = route.resource
        if res is None or route.method in ("HEAD", "OPTIONS"):
            continue
        if isinstance(res, web.StaticResource):
            continue  # static prefixes default to viewer; see STATIC
        if (route.method, res.canonical) not in ROUTES:
            out.append(f"{route.method} {res.canonical}")
    return out


def _params(path: str, spec: RouteSpec) -> list[dict]:
    import re

    out = []
    for name in re.findall(r"\{(\w+)(?::[^}]*)?\}", path):
        out.append({"name": name, "in": "path", "required": True, "schema": dict(STR)})
    for name, schema in spec.query.items():
        s = dict(schema)
        required = bool(s.pop("required", False))
        desc = s.pop("description", None)
        p = {"name": name, "in": "query", "required": required, "schema": s}
        if desc:
            p["description"] = desc
        out.append(p)
    return out


def _content(spec: RouteSpec) -> dict:
    kinds = (spec.produces,) if isinstance(spec.produces, str) else spec.produces
    return {k: {"schema": spec.response if k == "application/json" else dict(STR)} for k in kinds}


def openapi_document(app: web.Application, title: str = "axline", version: str = "") -> dict:
    """An OpenAPI 3.1 document of every documented route that ``app`` serves."""
    from axline import __version__

    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    paths: dict[str, dict] = {}
    for (method, path), spec in sorted(ROUTES.items()):
        if (method, path) not in served:
            continue
        op: dict[str, Any] = {
            "summary": spec.summary,
            "operationId": f"{method.lower()}{path.replace('/', '_').replace('{', '').replace('}', '')}",
            "x-axline-role": spec.role,
            "parameters": _params(path, spec),
            "responses": {
                "2XX": {"description": "done", "content": _content(spec)},
                "4XX": {"description": "refused: bad request, not logged in, role too low, rate limited",
                        "content": {"application/json": {"schema": ERROR}, "text/html": {"schema": dict(STR)},
                                    "text/plain": {"schema": dict(STR)}}},
            },
        }
        if method == "POST" and "text/html" in _content(spec):
            op["responses"]["303"] = {"description": "redirect"}
        if spec.stream:
            op["x-axline-stream"] = True
        if spec.role == PUBLIC:
            op["security"] = []
        elif spec.auth == "token":
            op["security"] = [{"token": []}]
        if spec.body is not None or spec.form is not None:
            content = {}
            if spec.body is not None:
                content["application/json"] = {"schema": spec.body}
            if spec.form is not None:
                content["application/x-www-form-urlencoded"] = {"schema": spec.form}
            op["requestBody"] = {"required": True, "content": content}
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version or __version__,
                 "description": "axline HTTP API. Each operation's x-axline-role is the least role that may "
                                "call it (viewer < operator < engineer < approver < admin)."},
        "paths": paths,
        "components": {"securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "axline_session"},
            "token": {"type": "http", "scheme": "bearer", "description": "an API token: axl_<id>.<secret>"},
        }},
        "security": [{"session": []}, {"token": []}],
    }
