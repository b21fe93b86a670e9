"""Event writes off the event loop.

Monitors, cameras and the audit of machine writes record events from the asyncio loop, and they
need an id at once (an alarm is closed later by id). The writer thread inserts events in order.
``add`` waits for the id a short while (``wait_s``, default 50 ms: a local SQLite insert takes far
less); when the event log is slow (a PostgreSQL server that hangs, a disk that stalls) it returns a
provisional negative id instead and never blocks the loop longer. The event is written when the
log answers again, an update by provisional id is applied to the real row, and subscribers see the
event (with its real id) once it is stored. The queue is bounded; past the bound the oldest
pending event is dropped with a count and a log line rather than growing without limit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class EventWriter:
    """Writes events to the historian from one thread, so a slow disk never blocks the caller for long."""
    def __init__(self, historian_fn: Callable[[], Any], on_written: Callable[[Any], None] | None = None,
                 wait_s: float = 0.05, max_queue: int = 10_000) -> None:
        self._historian = historian_fn
        self.on_written = on_written
        self.wait_s = wait_s
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self._ids: dict[int, int] = {}  # provisional id -> real id (bounded: cleared once applied)
        self._next_provisional = -1
        self._lock = threading.Lock()
        self._slow = False  # the writer is behind: do not wait for ids at all until it catches up
        self.written = 0
        self.errors = 0
        self.dropped = 0
        self.provisional = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def _put(self, item: tuple) -> None:
        try:
            self._q.put_nowait(item)
        except queue.Full:
            try:
                self._q.get_nowait()
                self.dropped += 1
                log.error("event log is not answering: %d queued events dropped so far", self.dropped)
            except queue.Empty:
                pass
            self._q.put_nowait(item)

    def add(self, event: Any) -> int:
        """Store ``event``; its id, or a provisional id when the write takes longer than ``wait_s``."""
        done = threading.Event()
        box: dict[str, Any] = {}
        self._put(("add", event, done, box))
        if not self._slow and done.wait(self.wait_s):
            if "error" in box:
                raise box["error"]
            return box["id"]
        self._slow = True
        with self._lock:
            pid = self._next_provisional
            self._next_provisional -= 1
            box["provisional"] = pid
        self.provisional += 1
        return pid

    def update(self, event_id: int, **fields: Any) -> None:
        """Queue an update; wait for it a short while (``wait_s``) so that a read right after sees it
        and a bad request (an unknown id) raises here, as it would without the writer."""
        done = threading.Event()
        box: dict[str, Any] = {}
        self._put(("update", event_id, fields, done, box))
        if not self._slow and done.wait(self.wait_s):
            if "error" in box:
                raise box["error"]
        else:
            self._slow = True

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            try:
                self._do(item)
            except Exception as e:  # noqa: BLE001 - counted; the writer goes on
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                log.error("event log write failed: %s", self.last_error)
            if self._q.empty():
                self._slow = False

    def _do(self, item: tuple) -> None:
        if item[0] == "flush":
            item[1].set()
            return
        h = self._historian()
        if item[0] == "add":
            _, event, done, box = item
            try:
                eid = h.add_event(event)
            except Exception as e:
                box["error"] = e
                done.set()
                raise
            with self._lock:
                box["id"] = eid
                pid = box.get("provisional")
                if pid is not None:
                    self._ids[pid] = eid
                    while len(self._ids) > 10_000:  # bounded: the oldest open provisional ids go first
                        self._ids.pop(next(iter(self._ids)))
            done.set()
            self.written += 1
            if self.on_written is not None:
                self.on_written(event)
        else:
            _, event_id, fields, done, box = item
            try:
                if event_id < 0:
                    with self._lock:
                        real = self._ids.get(event_id)
                    if real is None:
                        raise KeyError(f"update_event: provisional event {event_id} was never stored")
                    if fields.get("end_ts") is not None:
                        with self._lock:
                            self._ids.pop(event_id, None)
                    event_id = real
                h.update_event(event_id, **fields)
            except Exception as e:
                box["error"] = e
                raise
            finally:
                done.set()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued event is written (at most ``timeout_s``)."""
        done = threading.Event()
        self._put(("flush", done))
        done.wait(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued and stop the writer thread."""
        self.flush(timeout_s)
        self._q.put(None)
        self._thread.join(timeout_s)

    def status(self) -> dict:
        """Written, queued, failed and dropped events for health."""
        return {"written": self.written, "queued": self._q.qsize(), "errors": self.errors, "dropped": self.dropped,
                "provisional_ids": self.provisional, "last_error": self.last_error}
