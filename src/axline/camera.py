"""Image sources: a folder an existing camera writes into, or an OpenCV camera.

A folder source picks up new files as they land (sorted by name, each file once), skipping
temporary names (starting with '.'). Corrupt or unreadable images are reported, not fatal.
An OpenCV source (a USB/GigE camera by index, an RTSP/HTTP stream or a video file) grabs a frame
when triggered — by a PLC tag going from 0 to 1, the usual part-present signal — or at a fixed
interval, and keeps each frame as a PNG so verdicts can show and review it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ImageHandler = Callable[[str, Path, np.ndarray | None, str | None], Awaitable[None] | None]


def read_image(path: Path) -> np.ndarray:
    """Load an image file as uint8 (grey HxW or colour HxWx3). Raises ValueError with the file name."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "RGB"):
                im = im.convert("RGB")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{path}: not a readable image ({e}); check the camera's output format") from None


class FolderSource:
    """Watches a folder for new images (polling: works on network shares and every OS)."""

    def __init__(self, camera_id: str, folder: str | os.PathLike, pattern: str = "*.png", poll_s: float = 0.1,
                 start_with_existing: bool = False) -> None:
        self.camera_id = camera_id
        self.folder = Path(folder)
        self.pattern = pattern
        self.poll_s = poll_s
        self._seen: set[str] = set()  # names handled that are still in the folder (bounded by the folder)
        self._dir_mtime: int | None = None
        self._primed = start_with_existing
        self.images = 0
        self.errors = 0
        self._stop = asyncio.Event()

    def changed(self) -> bool:
        """Whether the folder may have changed since the last scan (a cheap stat instead of a listing).
        A folder changed within the last second is always listed again: file systems keep the time of
        a change coarsely, so two files landing in the same tick leave the same mtime."""
        try:
            m = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            return False
        return m != self._dir_mtime or time.time_ns() - m < 2 * 10**9

    def prime(self) -> None:
        """Take the files already in the folder as history (blocking: run it off the loop). Called
        before the source is announced as started, so an image that lands right after start-up is a
        new part even if the first poll comes late."""
        if not self._primed:
            self.scan()

    def scan(self) -> list[Path]:
        """New matching files since the last scan, oldest name first (blocking: run it off the loop)."""
        try:
            m = os.stat(self.folder).st_mtime_ns
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        self._dir_mtime = m
        present = {n for n in names if not n.startswith(".") and fnmatch.fnmatch(n, self.pattern)}
        new = sorted(present - self._seen)
        self._seen &= present  # forget files that are gone: the set stays as small as the folder
        self._seen.update(new)
        if not self._primed:  # first scan: files already there are history, not new parts
            self._primed = True
            return []
        return [self.folder / n for n in new]

    async def run(self, handler: ImageHandler) -> None:
        """Hand each new image file in the folder to ``handler`` until stopped."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            paths = await loop.run_in_executor(None, self.scan) if self.changed() else []
            for path in paths:
                image, error = None, None
                try:
                    image = await loop.run_in_executor(None, read_image, path)
                    self.images += 1
                except ValueError as e:
                    self.errors += 1
                    error = str(e)
                    log.warning("camera %s: %s", self.camera_id, error)
                result = handler(self.camera_id, path, image, error)
                if asyncio.iscoroutine(result):
                    await result
            try:
                await asyncio.wait_for(self._stop.wait(), self.poll_s)
            except TimeoutError:
                pass

    def stop(self) -> None:
        """Stop watching the folder."""
        self._stop.set()


class OpenCVSource:
    """Frames from an OpenCV ``VideoCapture`` on a trigger (``trigger()``) or every ``interval_s``."""

    def __init__(self, camera_id: str, device: int | str, folder: str | os.PathLike,
                 interval_s: float | None = None, open_timeout_s: float = 10.0) -> None:
        try:
            import cv2  # noqa: F401
        except ImportError:
            raise RuntimeError(f"camera {camera_id}: source 'opencv' needs OpenCV; install it with "
                               f"`pip install opencv-python-headless`, or use source 'folder'") from None
        if interval_s is not None and not interval_s > 0:
            raise ValueError(f"camera {camera_id}: interval_s must be > 0 seconds, got {interval_s}")
        self.camera_id = camera_id
        self.device = device
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.interval_s = interval_s
        self.open_timeout_s = open_timeout_s
        self.images = 0
        self.errors = 0
        self._cap = None
        self._stop = asyncio.Event()
        self._trigger = asyncio.Event()

    def trigger(self) -> None:
        """Grab the next frame now (call from the event loop)."""
        self._trigger.set()

    def _open(self):
        import cv2

        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            raise OSError(f"camera {self.camera_id}: cannot open OpenCV device {self.device!r}; check the "
                          f"index or URL and that no other program holds the camera")
        return cap

    def grab(self) -> tuple[Path, np.ndarray]:
        """Read one frame (blocking; runs in a worker thread) and keep it as a PNG."""
        import time

        from PIL import Image

        if self._cap is None:
            self._cap = self._open()
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._cap.release()
            self._cap = None
            raise OSError(f"camera {self.camera_id}: no frame from {self.device!r} (camera unplugged or stream ended)")
        rgb = frame[:, :, ::-1].copy() if frame.ndim == 3 else frame
        path = self.folder / f"{self.camera_id}-{time.time_ns()}.png"
        tmp = path.with_name("." + path.name + ".tmp")
        Image.fromarray(rgb).save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, path)
        return path, rgb

    async def run(self, handler: ImageHandler) -> None:
        """Grab a frame on each trigger (or every ``interval_s``) and hand it to ``handler`` until stopped."""
        loop = asyncio.get_running_loop()
        try:
            while not self._stop.is_set():
                waiter = asyncio.ensure_future(self._trigger.wait())
                stopper = asyncio.ensure_future(self._stop.wait())
                done, pending = await asyncio.wait({waiter, stopper}, timeout=self.interval_s,
                                                   return_when=asyncio.FIRST_COMPLETED)
                for f in pending:
                    f.cancel()
                if self._stop.is_set():
                    break
                self._trigger.clear()
                try:
                    path, image = await loop.run_in_executor(None, self.grab)
                    self.images += 1
                    error = None
                except OSError as e:
                    self.errors += 1
                    log.warning("%s", e)
                    path, image, error = Path(str(self.device)), None, str(e)
                result = handler(self.camera_id, path, image, error)
                if asyncio.iscoroutine(result):
                    await result
        finally:
            if self._cap is not None:
                self._cap.release()

    def stop(self) -> None:
        """Stop grabbing frames."""
        self._stop.set()
