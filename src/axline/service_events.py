"""Events written through the running service, so that live pages hear of them at once; without a
service (tests, tools) they go straight into the historian. Used by the web routes and by the
background keepers (SPC, shift reports) alike."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
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


class FailureReporter:
    """A background worker's failures: each one counted in the worker's ``errors`` and ``last_error`` (which
    health shows), logged with its traceback, and raised as a warning system event at most once per
    ``every_s`` so that a failing store is not flooded with reports of its own failure."""

    def __init__(self, svc: Any, worker: Any, *, source: str, code: str, log: logging.Logger,
                 every_s: float = 60.0) -> None:
        self.svc, self.worker, self.source, self.code, self.log = svc, worker, source, code, log
        self.every_s = every_s
        self._event_at = -math.inf

    def failed(self, e: BaseException, what: str) -> None:
        """Count and log failure ``e`` of the worker; ``what`` says in the log what failed."""
        self.worker.errors += 1
        self.worker.last_error = f"{type(e).__name__}: {e}"[:300]
        self.log.error("%s: %s", what, self.worker.last_error, exc_info=e)

    def raise_event(self, **data: Any) -> None:
        """The last failure as a system event (with the error count and ``data``), unless one was raised
        less than ``every_s`` ago."""
        now = time.monotonic()
        if now - self._event_at <= self.every_s:
            return
        self._event_at = now
        try:
            emit(self.svc, Event(ts=int(self.svc.now_ns()), kind="info", source=self.source, code=self.code,
                                 severity="warning", message=self.worker.last_error,
                                 data={"errors": self.worker.errors, **data}))
        except Exception:  # noqa: BLE001 - the historian itself may be failing; counted above
            self.log.exception("could not record a failure of %s as an event", self.source)

    async def run_forever(self, step: Callable[[], Awaitable[Any]], period_s: Callable[[], float],
                          what: str) -> None:
        """Await ``step()`` every ``period_s()`` seconds until cancelled; a failing step is counted, logged
        (``what``) and reported, and the next one runs on time."""
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - counted, logged and raised as a system event
                self.failed(e, what)
                self.raise_event()
            await asyncio.sleep(period_s())


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
