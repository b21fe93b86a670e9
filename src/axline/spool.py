"""Store-and-forward: a bounded on-disk FIFO of reading batches.

When the historian or the central broker cannot take a batch, it goes into the spool; a
background task delivers the spool in order once the destination is back. A batch in the spool
survives a crash of the process: each one is a file written under a temporary name, fsync-ed and
renamed. When the spool nears its bound a warning is logged (and reported in the status); at the
bound, new batches are refused with an error that says so, never dropped silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from axline.batch import Batch

log = logging.getLogger(__name__)
_MAGIC = b"AXSP1\n"


class SpoolFullError(RuntimeError):
    pass


def encode_batch(batch: Batch) -> bytes:
    head = json.dumps(list(batch.paths)).encode()
    body = b"".join((batch.idx.tobytes(), batch.ts.tobytes(), batch.value.tobytes(), batch.quality.tobytes()))
    payload = struct.pack("<II", len(head), len(batch)) + head + body
    return _MAGIC + struct.pack("<I", zlib.crc32(payload)) + payload


def decode_batch(data: bytes) -> Batch:
    if not data.startswith(_MAGIC):
        raise ValueError("not a spooled batch (bad magic)")
    (crc,) = struct.unpack_from("<I", data, len(_MAGIC))
    payload = data[len(_MAGIC) + 4:]
    if zlib.crc32(payload) != crc:
        raise ValueError("spooled batch is damaged (CRC mismatch)")
    hlen, n = struct.unpack_from("<II", payload, 0)
    paths = json.loads(payload[8:8 + hlen])
    off = 8 + hlen
    cols = []
    for dtype, size in ((np.int32, 4), (np.int64, 8), (np.float64, 8), (np.uint8, 1)):
        cols.append(np.frombuffer(payload, dtype=dtype, count=n, offset=off).copy())
        off += n * size
    return Batch(paths, *cols)


class DiskSpool:
    """FIFO of batches in a folder: one file per batch, named by a growing sequence number."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int = 1 << 30, warn_fraction: float = 0.8) -> None:
        if max_bytes < 1 << 16:
            raise ValueError(f"max_bytes must be >= 65536, got {max_bytes}")
        if not 0 < warn_fraction <= 1:
            raise ValueError(f"warn_fraction must be within (0, 1], got {warn_fraction}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.warn_fraction = warn_fraction
        self._lock = threading.Lock()
        for tmp in self.folder.glob(".*.tmp"):
            tmp.unlink()  # half-written by a crash: it was never acknowledged
        self._files = sorted(self.folder.glob("*.batch"))
        self._bytes = sum(f.stat().st_size for f in self._files)
        self._next = int(self._files[-1].stem) + 1 if self._files else 1
        self._warned = False

    def __len__(self) -> int:
        return len(self._files)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def fill(self) -> float:
        return self._bytes / self.max_bytes

    def put(self, batch: Batch) -> None:
        data = encode_batch(batch)
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFullError(
                    f"store-and-forward spool {self.folder} is full ({self._bytes / 2**20:.0f} MiB of "
                    f"{self.max_bytes / 2**20:.0f} MiB): the destination has been unreachable too long; "
                    f"restore it or raise the spool size")
            name = self.folder / f"{self._next:012d}.batch"
            tmp = self.folder / f".{name.name}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name)
            self._next += 1
            self._files.append(name)
            self._bytes += len(data)
            if self.fill >= self.warn_fraction and not self._warned:
                self._warned = True
                log.warning("store-and-forward spool %s is %.0f%% full (%d batches); the destination is still "
                            "unreachable", self.folder, 100 * self.fill, len(self._files))

    def peek(self) -> Batch | None:
        with self._lock:
            if not self._files:
                return None
            path = self._files[0]
        try:
            return decode_batch(path.read_bytes())
        except ValueError as e:
            bad = path.with_suffix(".damaged")
            os.replace(path, bad)
            with self._lock:
                self._files.pop(0)
            log.error("store-and-forward: %s: %s; moved aside to %s", path, e, bad.name)
            return self.peek()

    def pop(self) -> None:
        with self._lock:
            path = self._files.pop(0)
            self._bytes -= path.stat().st_size
            path.unlink()
            if self.fill < self.warn_fraction / 2:
                self._warned = False


class StoreAndForward:
    """Delivers batches to ``deliver`` in order; buffers them in a DiskSpool while it fails.

    ``deliver`` must raise on failure (ConnectionError, OSError, or the backend's own errors listed
    in ``retry_on``) and return normally once the batch is acknowledged.
    """

    def __init__(self, deliver: Callable[[Batch], object], spool: DiskSpool,
                 retry_on: tuple[type[BaseException], ...] = (ConnectionError, OSError),
                 retry_s: float = 1.0) -> None:
        self.deliver = deliver
        self.spool = spool
        self.retry_on = retry_on
        self.retry_s = retry_s
        self.delivered = 0
        self.spooled = 0
        self.online = True
        self.last_error: str | None = None
        self._wake = asyncio.Event()

    def put(self, batch: Batch) -> None:
        """Deliver now if nothing waits before it, else (or on failure) spool it."""
        if len(self.spool) == 0 and self.online:
            try:
                self.deliver(batch)
                self.delivered += len(batch)
                return
            except self.retry_on as e:
                self._went_offline(e)
        self.spool.put(batch)
        self.spooled += len(batch)
        self._wake.set()

    def _went_offline(self, e: BaseException) -> None:
        if self.online:
            log.warning("store-and-forward: destination unavailable (%s: %s); buffering on disk in %s",
                        type(e).__name__, e, self.spool.folder)
        self.online = False
        self.last_error = f"{type(e).__name__}: {e}"

    def drain_once(self) -> int:
        """Deliver spooled batches in order until the spool is empty or delivery fails."""
        n = 0
        while True:
            batch = self.spool.peek()
            if batch is None:
                if not self.online:
                    log.warning("store-and-forward: destination back; spool delivered")
                self.online = True
                self.last_error = None
                return n
            try:
                self.deliver(batch)
            except self.retry_on as e:
                self._went_offline(e)
                return n
            self.spool.pop()
            self.delivered += len(batch)
            n += len(batch)

    async def run(self) -> None:
        """Background task: retry the spool every ``retry_s`` while anything waits in it."""
        loop = asyncio.get_running_loop()
        while True:
            if len(self.spool):
                await loop.run_in_executor(None, self.drain_once)
            if not self.online:
                await asyncio.sleep(self.retry_s)  # do not hammer a destination that is down
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.retry_s)
            except TimeoutError:
                pass

    def status(self) -> dict:
        return {"online": self.online, "spooled_batches": len(self.spool), "spool_bytes": self.spool.bytes,
                "spool_fill": round(self.spool.fill, 4), "last_error": self.last_error}
