"""The know-how base inside `axline serve`: opened beside the plant's data in a worker thread, and
asked for suggestions whenever the service emits an alarm (also in a worker thread, never on the
event loop). Suggestions are pushed to live pages as ``{"type": "knowhow", "event_id", "suggestions"}``
and kept for the most recent alarms (bounded). Failures are counted, shown in health and raised as
system events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from axline.historian.base import Event

log = logging.getLogger(__name__)

MAX_CACHED = 500


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class KnowHowLive:
    """``opener()`` returns a :class:`~axline.knowhow.base.KnowHow`; ``push(msg)`` reaches live pages;
    ``emit(event)`` stores a system event; ``historian()`` gives the historian for symptom windows."""

    def __init__(self, opener: Callable[[], Any], push: Callable[[dict], None] | None = None,
                 emit: Callable[[Event], Any] | None = None, historian: Callable[[], Any] | None = None) -> None:
        self._opener = opener
        self._push = push or (lambda msg: None)
        self._emit = emit
        self._historian = historian or (lambda: None)
        self.kh: Any = None
        self.ready = threading.Event()
        self.errors = 0
        self.last_error: str | None = None
        self.suggested = 0
        self._cache: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @classmethod
    def for_service(cls, svc: Any) -> KnowHowLive:
        """The know-how watcher of a running service."""
        from axline.knowhow.base import KnowHow

        return cls(lambda: KnowHow.for_plant(svc.plant), push=svc._push, emit=svc.emit_event,
                   historian=lambda: svc.historian)

    # -- life cycle -----------------------------------------------------------------------------
    def open_now(self) -> None:
        """Open the base in this thread (blocking: the sentence model loads in about 2 s)."""
        try:
            kh = self._opener()
        except Exception as e:
            self._failed("open", e)
            return
        if self._closed:  # the service stopped while the base was opening
            kh.close()
            return
        self.kh = kh
        self.ready.set()

    async def start(self) -> None:
        """Open the case base off the loop."""
        self._loop = asyncio.get_running_loop()
        await self._loop.run_in_executor(None, self.open_now)

    def close(self) -> None:
        """Close the case base."""
        self._closed = True
        if self.kh is not None:
            self.kh.close()
            self.kh = None
        self.ready.clear()

    def _failed(self, what: str, e: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{what}: {type(e).__name__}: {e}"[:300]
        log.error("know-how %s failed: %s", what, e, exc_info=e)
        if self._emit is None:
            return
        ev = Event(ts=time.time_ns(), kind="info", source="axline/knowhow", code="knowhow.error",
                   severity="warning", message=f"know-how {what} failed: {e}"[:300], data={"error": self.last_error})
        loop = self._loop
        if loop is not None and loop.is_running() and not _on_loop(loop):
            # from a worker thread: the service's event queues belong to the loop
            try:
                loop.call_soon_threadsafe(self._emit_now, ev)
            except RuntimeError:  # the loop closed meanwhile
                self._emit_now(ev)
        else:
            self._emit_now(ev)

    def _emit_now(self, ev: Event) -> None:
        try:
            assert self._emit is not None
            self._emit(ev)
        except Exception:  # noqa: BLE001 - already counted and logged; the event log itself failed
            log.exception("know-how: the system event could not be stored")

    def status(self) -> dict[str, Any]:
        """Ready, errors, suggestions made and the number of cases for health."""
        out: dict[str, Any] = {"ready": self.ready.is_set(), "errors": self.errors, "last_error": self.last_error,
                               "suggested": self.suggested}
        if self.kh is not None:
            out["cases"] = len(self.kh.index)
        return out

    # -- suggestions ----------------------------------------------------------------------------
    def on_alarm(self, event_id: int, event: Event) -> None:
        """Called by the service for each new alarm: suggest cases in a worker thread."""
        if not self.ready.is_set():
            return
        ev = event.to_json()
        ev["id"] = event_id
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self._suggest(ev)
        else:
            if self._loop is None:  # opened with open_now(): the loop that hands us alarms is the one
                self._loop = loop
            loop.run_in_executor(None, self._suggest, ev)

    def _suggest(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            res = self.kh.suggest(ev, self._historian(), top=3)
        except Exception as e:
            self._failed("suggest", e)
            return []
        self.remember(int(ev["id"]), res)
        msg = {"type": "knowhow", "event_id": ev["id"], "suggestions": res}
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._push, msg)
        else:
            self._push(msg)
        return res

    def remember(self, event_id: int, res: list[dict[str, Any]]) -> None:
        """Keep the suggestions for alarm ``event_id`` (a bounded cache)."""
        with self._lock:
            self._cache[event_id] = res
            self._cache.move_to_end(event_id)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
            self.suggested += 1

    def cached(self, event_id: int) -> list[dict[str, Any]] | None:
        """The suggestions kept for alarm ``event_id``, or ``None``."""
        with self._lock:
            return self._cache.get(event_id)

    def suggestions_for(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        """Cached suggestions of an alarm, or new ones (blocking: call from a worker thread)."""
        hit = self.cached(int(ev["id"]))
        if hit is not None:
            return hit
        res = self.kh.suggest(ev, self._historian(), top=3)
        self.remember(int(ev["id"]), res)
        return res

    def forget_cases(self, ids: set[str]) -> None:
        """Drop deleted cases from cached suggestions."""
        with self._lock:
            for k, res in self._cache.items():
                self._cache[k] = [r for r in res if r["id"] not in ids]
