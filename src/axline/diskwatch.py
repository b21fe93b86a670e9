"""Free space of every data folder, watched: warnings before the disk is full, not after.

Each folder's file system is measured with ``statvfs`` (in a worker thread: a network share can
hang). When the used share crosses a threshold (default 80 % and 90 %) a system event is raised
once, and again when it falls back below; health shows every folder's level at all times. At the
last threshold ``on_critical`` is called (the service applies the historian's retention there,
by data time, when that is allowed), so space is freed before anything has to be refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)


class DiskWatch:
    """Watches the free space of the data folders: events at the warning levels, a callback when full."""
    def __init__(self, folders: dict[str, str], warn_percent: list[float] | None = None,
                 on_event: Callable[[str, str, str, dict], None] | None = None,
                 on_critical: Callable[[str, dict], None] | None = None,
                 after_check: Callable[[], None] | None = None) -> None:
        self.folders = dict(folders)
        self.warn_percent = list(warn_percent or [80.0, 90.0])
        self.on_event = on_event
        self.on_critical = on_critical
        self.after_check = after_check
        self.levels: dict[str, int] = {name: 0 for name in self.folders}
        self.usage: dict[str, dict] = {}
        self.errors = 0
        self.checks = 0

    @staticmethod
    def measure(path: str) -> dict:
        """Total, free and used percent of the disk that holds ``path``."""
        p = path
        while not os.path.exists(p) and os.path.dirname(p) != p:
            p = os.path.dirname(p)  # a folder not created yet: measure the disk it will land on
        st = os.statvfs(p)
        total = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize
        used_pct = 100.0 * (1 - free / total) if total else 100.0
        return {"path": path, "total_bytes": total, "free_bytes": free, "used_percent": round(used_pct, 2)}

    def check(self) -> dict[str, dict]:
        """Measure every folder (blocking: call it off the event loop); raise events on level changes."""
        self.checks += 1
        for name, path in self.folders.items():
            try:
                u = self.measure(path)
            except OSError as e:
                self.errors += 1
                self.usage[name] = {"path": path, "error": f"{type(e).__name__}: {e}"}
                if self.errors == 1 or self.errors % 100 == 0:
                    self._event("system.disk_unreadable", "warning",
                                f"cannot measure free space of {path} ({e})", {"folder": name})
                continue
            level = sum(u["used_percent"] >= w for w in self.warn_percent)
            u["level"] = level
            u["warn_percent"] = self.warn_percent
            self.usage[name] = u
            old = self.levels.get(name, 0)
            self.levels[name] = level
            if level > old:
                last = level == len(self.warn_percent)
                self._event("system.disk_full" if last else "system.disk_filling", "alarm" if last else "warning",
                            f"the disk of {path} ({name}) is {u['used_percent']:.1f}% full "
                            f"({u['free_bytes'] / 2**20:.0f} MiB free); "
                            + ("readings that cannot be stored durably will be refused: free space now"
                               if last else "free space or move the data folder to a larger disk"),
                            {"folder": name, **u})
            elif level < old:
                self._event("system.disk_ok", "info",
                            f"the disk of {path} ({name}) is back to {u['used_percent']:.1f}% full",
                            {"folder": name, **u})
            if level == len(self.warn_percent) and self.on_critical is not None:
                try:
                    self.on_critical(name, u)
                except Exception as e:  # noqa: BLE001 - counted and reported, the watch goes on
                    self.errors += 1
                    self._event("system.disk_relief_failed", "warning",
                                f"freeing space on {path} failed: {type(e).__name__}: {e}", {"folder": name})
        if self.after_check is not None:
            self.after_check()
        return self.usage

    def _event(self, code: str, severity: str, message: str, data: dict) -> None:
        log.log(logging.WARNING if severity != "info" else logging.INFO, "%s", message)
        if self.on_event is not None:
            self.on_event(code, severity, message, data)

    async def run(self, interval_s: float = 5.0) -> None:
        """Check the disks every ``interval_s`` seconds off the loop; failures are counted."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.check)
            except Exception:  # noqa: BLE001 - never let the watch die
                self.errors += 1
                log.exception("disk watch failed")
            await asyncio.sleep(interval_s)

    def status(self) -> dict:
        """The worst level, the warning levels, each folder's use and the error count."""
        worst = max(self.levels.values(), default=0)
        return {"level": worst, "warn_percent": self.warn_percent, "folders": self.usage, "errors": self.errors}
