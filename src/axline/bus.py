"""Publish/subscribe of reading batches inside one process.

Subscribers are plain callables run in the order they subscribed; the historian subscribes
first, so a batch is stored before anything else sees it. A failing subscriber is logged and
counted; it never stops the others. (The MQTT bridge for several lines or sites builds on this.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from axline.batch import Batch

log = logging.getLogger(__name__)

Subscriber = Callable[[Batch], None]


class Bus:
    """In-process publish/subscribe of reading batches; a failing subscriber is counted, never stops the
    others."""
    def __init__(self) -> None:
        self._subs: list[tuple[str, Subscriber]] = []
        self.published = 0
        self.errors: dict[str, int] = {}

    def subscribe(self, name: str, fn: Subscriber) -> None:
        """Call ``fn`` with every published batch; ``name`` labels its errors."""
        self._subs.append((name, fn))

    def publish(self, batch: Batch) -> None:
        """Hand ``batch`` to every subscriber."""
        if not len(batch):
            return
        self.published += len(batch)
        for name, fn in self._subs:
            try:
                fn(batch)
            except Exception:
                self.errors[name] = self.errors.get(name, 0) + 1
                if self.errors[name] <= 3 or self.errors[name] % 1000 == 0:
                    log.exception("bus subscriber %s failed on %r (failure %d)", name, batch, self.errors[name])
