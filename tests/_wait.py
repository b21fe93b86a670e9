"""Waiting in tests on a condition, not on the clock: poll ``cond`` until it holds, and fail naming what
was awaited after a deadline generous enough for a loaded machine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_for(cond: Callable[[], Any], timeout: float = 120.0, what: str = "the condition",
                   poll_s: float = 0.02) -> None:
    """Wait on the event loop until ``cond()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(poll_s)


def wait_until(cond: Callable[[], Any], timeout: float = 120.0, what: str = "the condition",
               poll_s: float = 0.05) -> None:
    """Wait (blocking this thread) until ``cond()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll_s)
