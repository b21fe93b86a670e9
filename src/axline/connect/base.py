"""What every connector is: a small plugin with a declared schema and one job, reading (and,
for writable tags, writing) the values of a machine."""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

from axline.batch import Batch
from axline.connect.registry import Schema
from axline.plant import Tag

log = logging.getLogger(__name__)

Sink = Callable[[Batch], None]

# Connection states, also published as the tag `<connector>/state` of the service.
DISCONNECTED, CONNECTING, CONNECTED = "disconnected", "connecting", "connected"


class Connector(abc.ABC):
    """Reads the tags of one machine (or server) and hands batches to ``sink``.

    ``run`` keeps the connection alive: it reconnects with exponential backoff until ``stop``.
    """

    schema: ClassVar[Schema]

    def __init__(self, name: str, options: dict[str, Any], tags: list[Tag]) -> None:
        self.name = name
        self.options = options
        self.tags = tags
        self.state = DISCONNECTED
        self.last_error: str | None = None
        self.readings = 0
        self.connects = 0
        self._stopping = asyncio.Event()
        self.on_state: Callable[[Connector], None] | None = None

    def _set_state(self, state: str, error: str | None = None) -> None:
        if state != self.state or error != self.last_error:
            self.state = state
            self.last_error = error
            if self.on_state:
                self.on_state(self)

    async def run(self, sink: Sink) -> None:
        """Connect, read until stopped, reconnect on failure (backoff 0.5 s doubling to 30 s)."""
        backoff = 0.5
        while not self._stopping.is_set():
            self._set_state(CONNECTING)
            started = time.monotonic()
            try:
                await self.session(sink)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure of the peer means reconnect
                log.warning("connector %s: %s: %s; reconnecting in %.1f s", self.name, type(e).__name__, e, backoff)
                self._set_state(DISCONNECTED, f"{type(e).__name__}: {e}")
            else:
                self._set_state(DISCONNECTED)
            if self._stopping.is_set():
                break
            if time.monotonic() - started > 30:
                backoff = 0.5
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, 30.0)
        self._set_state(DISCONNECTED)

    @abc.abstractmethod
    async def session(self, sink: Sink) -> None:
        """One connection's life: connect, set state CONNECTED, deliver batches until stopped or failed."""

    async def write(self, tag: Tag, value: float) -> None:
        """Write ``value`` to a writable tag of this connector (audited by the caller)."""
        raise NotImplementedError(f"connector {self.name!r} ({type(self).__name__}) cannot write")

    def stop(self) -> None:
        """End ``run`` (and the session in progress) as soon as it can."""
        self._stopping.set()


def check_write(tag: Tag, value: float) -> float:
    """The value to write after the checks a broker connector makes: writable, a finite number, in
    range (the PLC connectors check with ``codec.check_write_target``)."""
    if not tag.writable:
        raise PermissionError(f"tag {tag.path} is not writable; mark it 'writable: true' in the plant file")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"write to {tag.path}: {value!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"write to {tag.path}: {value!r} is not a finite number")
    if not tag.lo <= v <= tag.hi:
        raise ValueError(f"write to {tag.path}: {v:g} is outside the tag's range [{tag.lo:g}, {tag.hi:g}]")
    return v
