"""Events written through the running service, so that live pages hear of them at once; without a
service (tests, tools) they go straight into the historian. Used by the web routes and by the
background keepers (SPC, shift reports) alike."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from axline.historian.base import Event


def emit(svc: Any, event: Event) -> int:
    """Store ``event`` through the service (live pages hear of it) or straight in the historian.
    An ``audit`` event also goes into the service's hash-chained audit trail."""
    if event.kind == "audit":
        to_audit_trail(svc, event)
    if hasattr(svc, "emit_event"):
        return int(svc.emit_event(event))
    return int(svc.historian.add_event(event))


def update(svc: Any, event_id: int, **fields: Any) -> None:
    """Update a stored event through the service (live pages hear of it) or straight in the historian."""
    if hasattr(svc, "update_event"):
        svc.update_event(event_id, **fields)
    else:
        svc.historian.update_event(event_id, **fields)


async def aemit(svc: Any, event: Event) -> int:
    """``emit`` from a coroutine: the store's write runs in a worker thread, never on the loop."""
    if event.kind == "audit":
        to_audit_trail(svc, event)
    if hasattr(svc, "aemit_event"):
        return int(await svc.aemit_event(event))
    loop = asyncio.get_running_loop()
    if hasattr(svc, "emit_event"):
        return int(await loop.run_in_executor(None, svc.emit_event, event))
    return int(await loop.run_in_executor(None, svc.historian.add_event, event))


async def aupdate(svc: Any, event_id: int, **fields: Any) -> None:
    """``update`` from a coroutine: the store's write runs in a worker thread, never on the loop."""
    if hasattr(svc, "aupdate_event"):
        await svc.aupdate_event(event_id, **fields)
        return
    fn = svc.update_event if hasattr(svc, "update_event") else svc.historian.update_event
    await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, event_id, **fields))


def register_worker(svc: Any, name: str, worker: Any) -> None:
    """Show a background worker's failures (its ``errors`` and ``last_error``) in the service's health."""
    workers = getattr(svc, "workers", None)
    if isinstance(workers, dict):
        workers[name] = worker


def to_audit_trail(svc: Any, event: Event) -> None:
    """Copy an ``audit`` event into the service's hash-chained audit trail (axline.app.audit), off the loop."""
    trail = getattr(getattr(svc, "security", None), "audit", None)
    if trail is None:
        return
    data = event.data if isinstance(event.data, dict) else {}
    detail = {k: v for k, v in data.items() if k not in ("user", "target")}
    kw = {"target": str(data.get("target") or event.source), "detail": detail or None,
          "result": str(data.get("result", "ok"))}
    record = functools.partial(trail.record, str(data.get("user", "?")), event.code, **kw)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a background thread: write it here
        record()
        return
    fut = loop.run_in_executor(None, record)
    # a failure is counted and logged by the trail itself (health and metrics show it)
    fut.add_done_callback(lambda f: f.exception())
