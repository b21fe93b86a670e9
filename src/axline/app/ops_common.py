"""What the operations routes (alarms, history, quality, reports) share: the service, JSON bodies,
events written through the service so that live pages hear of them (``aemit``/``aupdate``: the write
itself in a worker thread), work off the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from axline.app.http import SERVICE_KEY, STATIC_DIR, BadRequest
from axline.historian.base import Event
from axline.service_events import aemit, aupdate, emit, update  # noqa: F401 - re-exported for the route modules

T = TypeVar("T")


def svc_of(request: web.Request) -> Any:
    """The running service of ``request``'s app."""
    return request.app[SERVICE_KEY]


def page(name: str) -> Callable[[web.Request], Any]:
    """A handler that serves the static HTML page ``name``."""
    path: Path = STATIC_DIR / name

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Content-Type": "text/html; charset=utf-8"})

    return handler


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work (historian reads, rendering) in a worker thread."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


async def json_body(request: web.Request, example: str) -> dict:
    """The request's JSON object (an empty body counts as ``{}``), or a 400 that shows what to send."""
    if not request.can_read_body:
        return {}
    if request.content_type != "application/json":
        raise BadRequest("the body must be sent as JSON", f"Content-Type: application/json, body {example}")
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON", example) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", example)
    return body


def int_id(request: web.Request, name: str = "id") -> int:
    """The integer path parameter ``name``; a 400 answer when it is not one."""
    raw = request.match_info[name]
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw[:40]!r}", "take ids from the list") from None


def find_event(historian: Any, event_id: int, kinds: list[str] | None = None) -> Event:
    """The stored event ``event_id`` of one of ``kinds`` (KeyError when there is none); blocking."""
    ev = historian.event(event_id)
    if ev is None or (kinds and ev.kind not in kinds):
        raise KeyError(event_id)
    return ev


def positions(plant: dict) -> list[tuple[str, str]]:
    """Operator positions: one per line (id, path)."""
    return [(ln["id"], ln.get("path", ln["id"])) for ln in plant.get("lines", [])]
