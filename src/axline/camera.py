"""Image sources: a folder an existing camera writes into, or an OpenCV camera.

A folder source picks up new files as they land (sorted by name, each file once), skipping
temporary names (starting with '.'). Corrupt or unreadable images are reported, not fatal.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
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
        self._seen: set[str] = set()
        self._primed = start_with_existing
        self.images = 0
        self.errors = 0
        self._stop = asyncio.Event()

    def scan(self) -> list[Path]:
        """New matching files since the last scan, oldest name first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        new = sorted(n for n in names if not n.startswith(".") and fnmatch.fnmatch(n, self.pattern)
                     and n not in self._seen)
        self._seen.update(new)
        if not self._primed:  # first scan: files already there are history, not new parts
            self._primed = True
            return []
        return [self.folder / n for n in new]

    async def run(self, handler: ImageHandler) -> None:
        while not self._stop.is_set():
            for path in self.scan():
                image, error = None, None
                try:
                    image = read_image(path)
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
        self._stop.set()
