"""An aiohttp app served from a background thread with its own event loop, for browser and fuzz tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Self


class AppInThread:
    """Runs ``_start()`` on a private loop in a daemon thread; subclasses set ``self.runner`` there and
    ``self.port`` when they serve on a port (``url``)."""

    cleanup_timeout_s = 60.0

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        if not self.ready.wait(120) or self.error:
            raise RuntimeError(f"app did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(self.cleanup_timeout_s)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(60)
        self._close()
        if not self.thread.is_alive():
            self.loop.close()

    @property
    def url(self) -> str:
        """The served app's base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def _stop(self) -> None:
        """Stop serving, on the app's loop (subclasses first stop what they started beside it)."""
        await self.runner.cleanup()

    def _close(self) -> None:
        """Release what ``_start`` opened, after the loop has stopped."""

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as e:  # reported to the test thread
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        raise NotImplementedError
