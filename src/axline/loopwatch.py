"""Event-loop stall monitor: how late does a timer that should fire every ``interval_s`` wake up?

Anything that blocks the asyncio loop (a synchronous database call, a broker publish waiting for
its acknowledgement, a big file scan) delays every timer by as long as it blocks. A heartbeat task
measures that delay; health reports the largest stall of the last minute and since start.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque


class LoopStallMonitor:
    """Measures how late the event loop wakes up: the longest stall of the last minute and since start."""
    def __init__(self, interval_s: float = 0.05, window_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self.window_s = window_s
        # (monotonic time, stall s) of each beat; bounded: one entry per beat of the window
        self._beats: deque[tuple[float, float]] = deque(maxlen=int(window_s / interval_s) + 8)
        self.max_stall_s = 0.0
        self.beats = 0
        self._task: asyncio.Task | None = None

    def start(self) -> asyncio.Task:
        """Start measuring on the running loop; returns the task."""
        self._task = asyncio.create_task(self.run(), name="loop-stall-monitor")
        return self._task

    async def run(self) -> None:
        """Sleep ``interval_s`` again and again and record how late each wake-up was."""
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.interval_s)
            late = max(0.0, loop.time() - t0 - self.interval_s)
            self.beats += 1
            self._beats.append((time.monotonic(), late))
            if late > self.max_stall_s:
                self.max_stall_s = late

    def max_stall_ms(self, window_s: float | None = None) -> float:
        """The largest stall (ms) of the last ``window_s`` (default: the monitor's window)."""
        since = time.monotonic() - (self.window_s if window_s is None else window_s)
        worst = max((s for t, s in self._beats if t >= since), default=0.0)
        return round(worst * 1000, 1)

    def reset(self) -> None:
        """Forget the stalls measured so far."""
        self._beats.clear()
        self.max_stall_s = 0.0

    def status(self) -> dict:
        """Longest stall of the last minute and since start (ms), and the beats counted."""
        return {"max_stall_ms_last_minute": self.max_stall_ms(), "max_stall_ms_since_start":
                round(self.max_stall_s * 1000, 1), "beats": self.beats}


async def warm_default_executor() -> None:
    """Start the loop's default executor's worker threads now (at start-up): a worker started later,
    while the service runs, makes the loop wait in Thread.start() until the OS first runs the new
    thread, which on a busy machine is a stall of its own."""
    loop = asyncio.get_running_loop()
    release = threading.Event()
    # as many as ThreadPoolExecutor's default size; each call finds every started worker busy
    futs = [loop.run_in_executor(None, release.wait, 30.0) for _ in range(min(32, (os.cpu_count() or 1) + 4))]
    release.set()
    await asyncio.gather(*futs)
