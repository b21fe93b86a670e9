"""Who is asking, and may they? The one role check every route makes.

Roles, lowest to highest: ``viewer`` (dashboards), ``operator`` (acknowledge alarms, review
inspections), ``engineer`` (plant file, models, writes to writable tags, cases), ``approver``
(everything an engineer may, and approving changes that *others* proposed), ``admin`` (users and
security settings). A route asks for the lowest role it needs; a higher role passes too.

The authentication middleware puts the caller on the request as a :class:`User` under
``USER_REQUEST_KEY``; handlers call :func:`require_role` and use the returned user's name in every
audit record, never a name taken from the request body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from axline.app.http import error_body

ROLES: tuple[str, ...] = ("viewer", "operator", "engineer", "approver", "admin")
RANK: dict[str, int] = {r: i for i, r in enumerate(ROLES)}
USER_REQUEST_KEY = "axline.user"


@dataclass(frozen=True)
class User:
    """An authenticated caller: a person or a service account, with one role."""

    name: str
    role: str
    authenticated: bool = True  # False only for the anonymous viewer of an open loopback dashboard

    def has(self, role: str) -> bool:
        """True when this user's role is ``role`` or ranks above it."""
        if role not in RANK:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        return RANK.get(self.role, -1) >= RANK[role]


ANONYMOUS = User("anonymous", "viewer", authenticated=False)


def current_user(request: web.Request) -> User | None:
    """The caller, or None for an anonymous request."""
    user = request.get(USER_REQUEST_KEY)
    return user if isinstance(user, User) else None


def require_role(request: web.Request, role: str) -> User:
    """The caller if they hold ``role`` (or higher); else 401 (not logged in) or 403 (too low)."""
    user = current_user(request)
    if user is None or (not user.authenticated and role != "viewer"):
        raise web.HTTPUnauthorized(text=json.dumps(error_body("err.login_required")), content_type="application/json")
    if not user.has(role):
        raise web.HTTPForbidden(text=json.dumps(error_body("err.role_required", role=role), ensure_ascii=False),
                                content_type="application/json")
    return user
