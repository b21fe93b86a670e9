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
import time
import zlib
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from axline.batch import Batch

log = logging.getLogger(__name__)
_MAGIC = b"AXSP1\n"


class SpoolFullError(RuntimeError):
    """The disk spool reached its size limit; the batch was not stored."""
    pass


def encode_batch(batch: Batch) -> bytes:
    """A batch as bytes for the spool: magic, CRC-32, paths and the four arrays."""
    head = json.dumps(list(batch.paths)).encode()
    body = b"".join((batch.idx.tobytes(), batch.ts.tobytes(), batch.value.tobytes(), batch.quality.tobytes()))
    payload = struct.pack("<II", len(head), len(batch)) + head + body
    return _MAGIC + struct.pack("<I", zlib.crc32(payload)) + payload


def decode_batch(data: bytes) -> Batch:
    """The batch in spooled ``data``; ``ValueError`` when damaged."""
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
        self.damaged = 0  # spool files that failed their CRC check (moved aside as .damaged)

    def __len__(self) -> int:
        return len(self._files)

    @property
    def bytes(self) -> int:
        """Bytes the spooled batches take on disk."""
        return self._bytes

    @property
    def fill(self) -> float:
        """How full the spool is, 0 to 1."""
        return self._bytes / self.max_bytes

    def put(self, batch: Batch) -> None:
        """Append ``batch``; ``SpoolFullError`` when it would pass the size limit."""
        data = encode_batch(batch)
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFullError(
                    f"store-and-forward spool {self.folder} is full ({self._bytes / 2**20:.0f} MiB of "
                    f"{self.max_bytes / 2**20:.0f} MiB): the destination has been unreachable too long; "
                    f"restore it or raise the spool size")
            name = self.folder / f"{self._next:012d}.batch"
            tmp = self.folder / f".{name.name}.tmp"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, name)
            except BaseException:
                # a full disk (ENOSPC) or an I/O error: never leave a half-written file behind
                try:
                    tmp.unlink()
                except FileNotFoundError:
                    pass
                raise
            self._next += 1
            self._files.append(name)
            self._bytes += len(data)
            if self.fill >= self.warn_fraction and not self._warned:
                self._warned = True
                log.warning("store-and-forward spool %s is %.0f%% full (%d batches); the destination is still "
                            "unreachable", self.folder, 100 * self.fill, len(self._files))

    def head_name(self) -> str:
        """The file name of the oldest spooled batch ("" when empty)."""
        with self._lock:
            return self._files[0].name if self._files else ""

    def peek(self) -> Batch | None:
        """The oldest spooled batch, or ``None``; a damaged file is moved aside and counted."""
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
                self._bytes -= bad.stat().st_size
                self.damaged += 1
            log.error("store-and-forward: %s: %s; moved aside to %s", path, e, bad.name)
            return self.peek()

    def pop(self) -> None:
        """Remove the oldest spooled batch (after it was delivered)."""
        with self._lock:
            path = self._files.pop(0)
            self._bytes -= path.stat().st_size
            path.unlink()
            if self.fill < self.warn_fraction / 2:
                self._warned = False


class StoreRefusedError(RuntimeError):
    """Neither the destination nor the disk spool can take more readings: the batch was refused."""


class StoreAndForward:
    """Delivers batches to ``deliver`` in order, off the caller's thread; never dies.

    ``put`` only queues the batch in memory and returns at once (it is called on the asyncio loop).
    A worker thread delivers the queue in order. While the destination fails with a retryable error
    (``retry_on``: connection lost, disk full, timeout) the worker backs off exponentially and a
    spill thread moves the queue into the on-disk ``spool``, so a crash loses nothing that was
    accepted durably; the spill also starts when one delivery hangs longer than ``spill_after_s``
    or the memory queue exceeds ``memory_readings``. A batch that fails ``poison_after`` times in a
    row with any other error is moved to ``<spool>/quarantine`` with the reason and the queue moves
    on: poison input never blocks good input. Only when the destination, the spool and the memory
    queue are all full is a batch refused (:class:`StoreRefusedError`, counted per tag).

    ``on_event(code, severity, message, data)`` is told of every outage, recovery, quarantine and
    refusal (called from the worker threads); the service turns them into system events.
    """

    def __init__(self, deliver: Callable[[Batch], object], spool: DiskSpool,
                 retry_on: tuple[type[BaseException], ...] = (ConnectionError, OSError),
                 retry_s: float = 1.0, max_retry_s: float = 30.0, poison_after: int = 3,
                 spill_after_s: float = 1.0, memory_readings: int = 2_000_000,
                 on_event: Callable[[str, str, str, dict], None] | None = None, name: str = "store") -> None:
        if poison_after < 1:
            raise ValueError(f"poison_after must be >= 1, got {poison_after}")
        self.deliver = deliver
        self.spool = spool
        self.retry_on = retry_on
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.poison_after = poison_after
        self.spill_after_s = spill_after_s
        self.memory_readings = memory_readings
        self.on_event = on_event
        self.on_delivered: Callable[[Batch], None] | None = None  # told after each acknowledged delivery
        self.name = name
        self.quarantine_dir = self.spool.folder / "quarantine"
        self.delivered = 0
        self.spooled = 0
        self.quarantined = 0  # batches
        self.quarantined_readings = 0
        self.refused = 0  # readings
        self.refused_by_tag: dict[str, int] = {}
        self.spill_errors = 0
        self.delivery_errors = 0
        self.online = True
        self._was_offline = False
        self.last_error: str | None = None
        self.last_quarantine: str | None = None
        self._inbox: deque[Batch] = deque()
        self._inbox_readings = 0
        self._count_lock = threading.Lock()
        self._order_lock = threading.Lock()  # which batch is next: the spool's head, then the inbox
        self._deliver_lock = threading.Lock()  # one delivery at a time (worker, drain_once)
        self._inflight: Batch | None = None  # a batch taken from the inbox, being delivered
        self._inflight_spilled = False
        self._busy_since: float | None = None
        self._fail_head: tuple[str, int] = ("", 0)  # (id of the head batch, non-retryable failures)
        self._backoff = retry_s
        self._wake = threading.Event()
        self._spill_wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the caller's side ----------------------------------------------------------------------
    def put(self, batch: Batch) -> None:
        """Queue ``batch`` for delivery (never blocks). Raises StoreRefusedError only when nothing
        can take it: the destination is away, the disk spool is full and the memory queue too."""
        n = len(batch)
        if not n:
            return
        with self._count_lock:
            refuse = self._inbox_readings + n > self.memory_readings
            if not refuse:
                self._inbox.append(batch)
                self._inbox_readings += n
            over = self._inbox_readings > self.memory_readings // 2
        if refuse:
            self._refuse(batch)
        if not self._threads:  # not started (tests, tools): deliver on the caller's thread
            self.drain_once()
            if not self.online:
                self.spill()
            return
        self._wake.set()
        if over or not self.online:
            self._spill_wake.set()

    def _refuse(self, batch: Batch) -> None:
        counts = np.bincount(batch.idx, minlength=len(batch.paths))
        for p, c in zip(batch.paths, counts.tolist(), strict=True):
            if c:
                self.refused_by_tag[p] = self.refused_by_tag.get(p, 0) + c
        self.refused += len(batch)
        msg = (f"{self.name}: refused {len(batch)} readings: the destination is unavailable "
               f"({self.last_error}) and the store-and-forward spool {self.spool.folder} cannot take more "
               f"(full or its disk is full); free disk space or restore the destination")
        if self.refused == len(batch) or self.refused // 100_000 != (self.refused - len(batch)) // 100_000:
            self._event("store.refused", "alarm", msg, {"readings": self.refused})
        raise StoreRefusedError(msg)

    @property
    def pending(self) -> int:
        """Batches not yet delivered (memory queue and disk spool)."""
        return len(self._inbox) + len(self.spool) + (1 if self._inflight is not None and not self._inflight_spilled
                                                     else 0)

    # -- delivery -------------------------------------------------------------------------------
    def _event(self, code: str, severity: str, message: str, data: dict) -> None:
        log.log(logging.ERROR if severity == "alarm" else logging.WARNING if severity == "warning" else logging.INFO,
                "%s", message)
        if self.on_event is not None:
            try:
                self.on_event(code, severity, message, {"store": self.name, **data})
            except Exception:  # noqa: BLE001 - the event sink failing must not stop delivery
                log.exception("%s: could not record the event %s", self.name, code)

    def _claim(self) -> tuple[str, Batch | None]:
        """The next batch in order: the spool's head (peeked), else the inbox's head (taken)."""
        with self._order_lock:
            if len(self.spool):
                batch = self.spool.peek()
                if batch is not None:
                    return "disk", batch
            try:
                batch = self._inbox.popleft()
            except IndexError:
                return "", None
            with self._count_lock:
                self._inbox_readings -= len(batch)
            self._inflight, self._inflight_spilled = batch, False
            return "mem", batch

    def _finish_mem(self, delivered: bool) -> None:
        with self._order_lock:
            batch, spilled = self._inflight, self._inflight_spilled
            self._inflight, self._inflight_spilled = None, False
            if spilled:
                if delivered:
                    self.spool.pop()  # the spill copied it to the spool's head: it is delivered now
            elif not delivered:
                self._inbox.appendleft(batch)
                with self._count_lock:
                    self._inbox_readings += len(batch)

    def _step(self) -> str:
        """One delivery attempt: 'idle' (nothing to do), 'ok', 'retry' (retryable error) or 'failed'."""
        with self._deliver_lock:
            src, batch = self._claim()
            if batch is None:
                if self._was_offline:
                    self._was_offline = False
                    self._event("store.recovered", "info",
                                f"{self.name}: destination back; everything buffered was delivered", {})
                self.online = True
                self.last_error = None
                self._backoff = self.retry_s
                return "idle"
            self._busy_since = time.monotonic()
            try:
                self.deliver(batch)
            except self.retry_on as e:
                self._busy_since = None
                if src == "mem":
                    self._finish_mem(False)
                self._went_offline(e)
                return "retry"
            except Exception as e:  # noqa: BLE001 - a poison batch: counted, retried, then quarantined
                self._busy_since = None
                return self._failed(src, batch, e)
            self._busy_since = None
            if src == "mem":
                self._finish_mem(True)
            else:
                self.spool.pop()
            self.delivered += len(batch)
            self._fail_head = ("", 0)
            self.online = True  # the destination answers (what waits on disk is delivered next)
            self.last_error = None
            if self.on_delivered is not None:
                self.on_delivered(batch)
            return "ok"

    def _failed(self, src: str, batch: Batch, e: BaseException) -> str:
        self.delivery_errors += 1
        key = f"mem:{id(batch)}" if src == "mem" else f"disk:{self.spool.head_name()}"
        tries = self._fail_head[1] + 1 if self._fail_head[0] == key else 1
        reason = f"{type(e).__name__}: {e}"
        if tries < self.poison_after:
            self._fail_head = (key, tries)
            if src == "mem":
                self._finish_mem(False)
            log.warning("%s: delivery failed (%s), attempt %d of %d", self.name, reason, tries, self.poison_after)
            return "failed"
        self._fail_head = ("", 0)
        where = self._quarantine(batch, reason, tries)
        if src == "mem":
            with self._order_lock:
                spilled = self._inflight_spilled
                self._inflight, self._inflight_spilled = None, False
                if spilled:
                    self.spool.pop()
        else:
            self.spool.pop()
        self.quarantined += 1
        self.quarantined_readings += len(batch)
        self.last_quarantine = reason
        self._event("store.quarantined", "alarm",
                    f"{self.name}: a batch of {len(batch)} readings failed {tries} times ({reason}); moved to "
                    f"{where} and the queue moved on. Inspect it; `axline` never deletes it",
                    {"reason": reason, "readings": len(batch), "file": str(where), "tags": list(batch.paths)[:20]})
        return "failed"

    def _quarantine(self, batch: Batch, reason: str, tries: int) -> Path:
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}"
        path = self.quarantine_dir / f"{name}.batch"
        try:
            tmp = self.quarantine_dir / f".{name}.tmp"
            tmp.write_bytes(encode_batch(batch))
            os.replace(tmp, path)
            (self.quarantine_dir / f"{name}.reason.json").write_text(json.dumps(
                {"reason": reason, "attempts": tries, "readings": len(batch), "paths": list(batch.paths),
                 "quarantined_ns": time.time_ns()}, indent=1))
        except OSError as e:
            # nowhere to keep it: say so loudly; the queue still moves on (a full disk must not wedge it)
            self._event("store.quarantine_failed", "alarm",
                        f"{self.name}: could not write the quarantined batch to {self.quarantine_dir}: {e}; "
                        f"its {len(batch)} readings are lost", {"reason": reason, "readings": len(batch)})
        return path

    def _went_offline(self, e: BaseException) -> None:
        self.last_error = f"{type(e).__name__}: {e}"
        self._was_offline = True
        if self.online:
            self._event("store.offline", "warning",
                        f"{self.name}: destination unavailable ({self.last_error}); buffering on disk in "
                        f"{self.spool.folder}", {"error": self.last_error})
        self.online = False
        self._spill_wake.set()

    def drain_once(self) -> int:
        """Deliver what waits, in order, until nothing is left or a delivery fails; return readings."""
        n = 0
        while True:
            before = self.delivered
            r = self._step()
            n += self.delivered - before
            if r != "ok":
                return n

    # -- spilling to disk -----------------------------------------------------------------------
    def spill(self, include_inflight: bool = False) -> int:
        """Move the memory queue (and a hung in-flight batch) into the disk spool, in order."""
        moved = 0
        with self._order_lock:
            if include_inflight and self._inflight is not None and not self._inflight_spilled:
                if len(self.spool) == 0:  # only while it is still the oldest undelivered batch
                    if not self._spool_put(self._inflight):
                        return 0
                    self._inflight_spilled = True
                    moved += 1
            elif self._inflight is not None and not self._inflight_spilled:
                return 0  # the inbox must stay behind the batch in flight
            while self._inbox:
                batch = self._inbox[0]
                if not self._spool_put(batch):
                    break
                self._inbox.popleft()
                with self._count_lock:
                    self._inbox_readings -= len(batch)
                moved += 1
        return moved

    def _spool_put(self, batch: Batch) -> bool:
        try:
            self.spool.put(batch)
        except (SpoolFullError, OSError) as e:
            self.spill_errors += 1
            if self.spill_errors == 1 or self.spill_errors % 1000 == 0:
                self._event("store.spool_failed", "alarm",
                            f"{self.name}: cannot buffer on disk ({type(e).__name__}: {e}); readings wait in "
                            f"memory and are refused once that is full", {"error": str(e)})
            return False
        if self.spill_errors:
            self.spill_errors = 0
        self.spooled += len(batch)
        return True

    def _spill_loop(self) -> None:
        while not self._stop.is_set():
            self._spill_wake.wait(0.2)
            self._spill_wake.clear()
            busy = self._busy_since
            crowded = self._inbox_readings > self.memory_readings // 2
            hung = crowded or (busy is not None and time.monotonic() - busy > self.spill_after_s)
            if not self.online or hung or self.spill_errors:
                try:
                    self.spill(include_inflight=hung)
                except Exception:  # noqa: BLE001 - keep spilling later; never let the thread die
                    log.exception("%s: spilling to disk failed", self.name)

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            try:
                r = self._step()
            except Exception:  # noqa: BLE001 - a bug here must not stop delivery for good
                log.exception("%s: delivery worker error", self.name)
                r = "failed"
            if r == "idle":
                self._wake.wait(0.5)
                self._wake.clear()
            elif r == "retry":
                self._stop.wait(self._backoff)
                self._backoff = min(self.max_retry_s, self._backoff * 2)
            elif r == "failed":
                self._stop.wait(min(self.max_retry_s, self.retry_s))

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the delivery and spill threads."""
        if self._threads:
            return
        self._stop.clear()
        for target, name in ((self._work_loop, "deliver"), (self._spill_loop, "spill")):
            t = threading.Thread(target=target, name=f"{self.name}-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the threads: deliver what can be delivered within ``timeout_s``, spool the rest."""
        deadline = time.monotonic() + timeout_s
        while self.pending and self.online and time.monotonic() < deadline and self._threads:
            self._wake.set()
            self._stop.wait(0.02)
        self._stop.set()
        self._wake.set()
        self._spill_wake.set()
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        self._threads = []
        self.spill(include_inflight=True)
        if self._inbox:
            log.error("%s: %d batches could not be delivered nor spooled at shutdown", self.name, len(self._inbox))

    async def run(self) -> None:
        """Runs the worker threads for as long as this task lives (cancel it to stop)."""
        self.start()
        try:
            await asyncio.Event().wait()
        finally:
            self._stop.set()
            self._wake.set()
            self._spill_wake.set()

    def status(self) -> dict:
        """Online state, queue and spool sizes, deliveries, quarantined and refused readings."""
        return {"online": self.online, "spooled_batches": len(self.spool), "spool_bytes": self.spool.bytes,
                "spool_fill": round(self.spool.fill, 4), "memory_batches": len(self._inbox),
                "memory_readings": self._inbox_readings, "delivered": self.delivered,
                "quarantined_batches": self.quarantined, "quarantined_readings": self.quarantined_readings,
                "last_quarantine": self.last_quarantine, "refused_readings": self.refused,
                "refused_by_tag": dict(sorted(self.refused_by_tag.items(), key=lambda kv: -kv[1])[:20]),
                "damaged_spool_files": self.spool.damaged, "last_error": self.last_error}
