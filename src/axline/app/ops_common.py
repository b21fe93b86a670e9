"""What the operations routes (alarms, history, quality, reports) share: the service, JSON bodies,
events written through the service so that live pages hear of them (``aemit``/``aupdate``: the write
itself in a worker thread), work off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from axline.app.http import SERVICE_KEY, STATIC_DIR, bad_request, json_object
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


WORKER_TASKS: web.AppKey[dict[str, asyncio.Task]] = web.AppKey("worker_tasks", dict)


def run_with_app(app: web.Application, key: web.AppKey[Any], name: str, make: Callable[[Any], Any]) -> None:
    """Run the background worker ``make(service)`` while ``app`` runs: it is made and started when the app
    starts (kept under ``key``, its failures shown in health as ``name``) and cancelled when it stops."""
    from axline.service_events import register_worker

    tasks = app.setdefault(WORKER_TASKS, {})

    async def start(app: web.Application) -> None:
        worker = make(app[SERVICE_KEY])
        app[key] = worker
        register_worker(app[SERVICE_KEY], name, worker)
        tasks[name] = asyncio.create_task(worker.run(), name=name)

    async def stop(app: web.Application) -> None:
        task = tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work (historian reads, rendering) in a worker thread."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


async def json_body(request: web.Request, example: str) -> dict:
    """The request's JSON object (an empty body counts as ``{}``), or a 400 that shows what to send."""
    return await json_object(request, example, empty_ok=True)


def int_id(request: web.Request, name: str = "id") -> int:
    """The integer path parameter ``name``; a 400 answer when it is not one."""
    raw = request.match_info[name]
    try:
        return int(raw)
    except ValueError:
        raise bad_request("err.bad_id", name=name, raw=repr(raw[:40])) from None


def find_event(historian: Any, event_id: int, kinds: list[str] | None = None) -> Event:
    """The stored event ``event_id`` of one of ``kinds`` (KeyError when there is none); blocking."""
    ev = historian.event(event_id)
    if ev is None or (kinds and ev.kind not in kinds):
        raise KeyError(event_id)
    return ev


def positions(plant: dict) -> list[tuple[str, str]]:
    """Operator positions: one per line (id, path)."""
    return [(ln["id"], ln.get("path", ln["id"])) for ln in plant.get("lines", [])]
