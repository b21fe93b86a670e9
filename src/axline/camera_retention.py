"""Camera folders do not grow for ever: images of passed parts are deleted after ``keep_pass_h``,
images of rejected parts (and their heat maps) after the longer ``keep_reject_h``.

Which image was rejected comes from the event log (``defect`` events name the image path), so the
rule survives a restart. The sweep runs in a worker thread every ``every_s``; each deletion pass
is counted and health shows it. A value of 0 keeps that kind of image for ever.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class CameraRetention:
    """Deletes old camera images: passed parts after ``keep_pass_h``, rejected ones after ``keep_reject_h``."""
    def __init__(self, folders: list[tuple[str, str]], keep_pass_h: float, keep_reject_h: float,
                 rejected: Callable[[int], set[str]], every_s: float = 600.0) -> None:
        """``folders``: (folder, file pattern); ``rejected(since_ns)``: image paths rejected since then."""
        self.folders = folders
        self.keep_pass_s = keep_pass_h * 3600
        self.keep_reject_s = keep_reject_h * 3600
        self.rejected = rejected
        self.every_s = every_s
        self.deleted = 0
        self.kept_rejects = 0
        self.errors = 0
        self.last_error: str | None = None

    def sweep(self, now: float | None = None) -> int:
        """Delete what is past its time (blocking: run it off the loop); return files deleted."""
        now = time.time() if now is None else now
        if not self.keep_pass_s and not self.keep_reject_s:
            return 0
        since = now - max(self.keep_reject_s, self.keep_pass_s)
        rejects = self.rejected(int(since * 1e9)) if self.keep_pass_s else set()
        rejects = {os.path.realpath(p) for p in rejects}
        n = 0
        kept = 0
        for folder, pattern in self.folders:
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith(".") or not fnmatch.fnmatch(name, pattern):
                    continue
                p = os.path.join(folder, name)
                try:
                    age = now - os.stat(p).st_mtime
                except FileNotFoundError:
                    continue
                is_reject = os.path.realpath(p) in rejects
                limit = self.keep_reject_s if is_reject else self.keep_pass_s
                if not limit or age <= limit:
                    kept += is_reject
                    continue
                try:
                    os.remove(p)
                    n += 1
                except OSError as e:
                    self.errors += 1
                    self.last_error = f"{p}: {e}"
        self.deleted += n
        self.kept_rejects = kept
        return n

    async def run(self) -> None:
        """Sweep the folders every ``every_s`` seconds off the loop; failures are counted."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                n = await loop.run_in_executor(None, self.sweep)
                if n:
                    log.info("camera retention: deleted %d old images", n)
            except Exception as e:  # noqa: BLE001 - counted, shown in health, tried again later
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("camera retention failed")
            await asyncio.sleep(self.every_s)

    def status(self) -> dict:
        """Deleted and kept images, errors and the keep times for health."""
        return {"deleted": self.deleted, "rejects_kept": self.kept_rejects, "errors": self.errors,
                "last_error": self.last_error, "keep_pass_h": self.keep_pass_s / 3600,
                "keep_reject_h": self.keep_reject_s / 3600}
