"""Waiting for the operator's stop (Ctrl-C or SIGTERM) in a long-running command."""

from __future__ import annotations

import asyncio
import signal


async def wait_for_stop(timeout: float | None = None) -> None:
    """Return on SIGINT or SIGTERM, or after ``timeout`` seconds (``None``: no limit).

    >>> import asyncio
    >>> asyncio.run(wait_for_stop(0.01))
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
            pass
    try:
        await asyncio.wait_for(stop.wait(), timeout)
    except TimeoutError:
        pass
