"""The embedded historian: a directory of append-only files, no server.

Layout of the directory::

    LOCK              flock-ed while a process has the historian open (holds its pid)
    tags.txt          one tag path per line; the line number (from 0) is the tag id; append-only
    seg-000001.dat    append-only segment files of records (a new one at about ``segment_bytes``)
    events.db         SQLite (WAL) table of events
    damaged.json      the quarantined regions of segment files (when there are any)

Durability (``fsync``):

- ``"batch"``: every ``append`` is fsync-ed before it returns: acknowledged data survives a crash
  of the process and a power cut or OS crash.
- ``"interval"``: ``append`` returns once the data is written to the OS; a background thread
  fsyncs at most once a second. Acknowledged data survives ``kill -9``; a power cut may lose about
  the last second.
- ``"none"``: data is written to the OS on every ``append`` and fsync-ed only on ``flush()``,
  segment roll and ``close()``. Survives ``kill -9``; a power cut may lose what the OS had not yet
  written back (typically up to ~30 s).

A record holds one appended batch, so a batch becomes visible (and survives a crash) whole or not
at all. A new tag id is written to ``tags.txt`` (and synced) before the first record that uses it.
On open, a torn record at the end of the newest segment (the unacknowledged tail of a crash) is cut
off; damage anywhere else is quarantined: kept out of every query and reported.

The parts live in their own modules: the record format (``record.py``), the in-memory index
(``index.py``), the segment files (``segments.py``), damage handling (``damage.py``), compaction
and retention (``compaction.py``) and the event log (``sqlite_events.py``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from axline.batch import GOOD, Batch
from axline.historian import files
from axline.historian.base import Buckets, Event, Historian, Series, appendable, check_retention_days
from axline.historian.compaction import Compaction
from axline.historian.damage import DamageGuard
from axline.historian.events import as_int
from axline.historian.files import (
    DEFAULT_SEGMENT_BYTES,
    INT64_MIN,
    HistorianCorruptError,
    HistorianLockedError,
)
from axline.historian.index import bucketize, empty_series, gather, ragged_arange, sorted_series
from axline.historian.record import FORMAT_VERSION, HEADER_SIZE, MAGIC, encode_record, group_newest
from axline.historian.segments import SegmentStore
from axline.historian.sqlite_events import EventDatabaseError, SqliteEvents

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "FORMAT_VERSION",
    "FSYNC_MODES",
    "HEADER_SIZE",
    "MAGIC",
    "EmbeddedHistorian",
    "HistorianCorruptError",
    "HistorianLockedError",
]

log = logging.getLogger(__name__)

FSYNC_MODES = ("batch", "interval", "none")
_FSYNC_INTERVAL_S = 1.0


class EmbeddedHistorian(SegmentStore, DamageGuard, Compaction, Historian):
    """Historian kept in a directory of append-only files (see the module docstring for the format).

    ``fsync`` is ``"batch"`` (power-safe), ``"interval"`` (fsync at most once a second) or
    ``"none"``; all three keep acknowledged data across ``kill -9``. ``segment_bytes`` is the size at
    which a new segment file is started. ``retention_days`` (optional) drops whole segments whose
    newest reading is older than that many days, on open and whenever a segment is started.
    """

    def __init__(
        self,
        path: str,
        fsync: str = "batch",
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        retention_days: float | None = None,
        scrub_mb_s: float | None = 8.0,
    ) -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"historian fsync: {fsync!r} is not known (allowed: {', '.join(FSYNC_MODES)})")
        if isinstance(segment_bytes, bool) or not isinstance(segment_bytes, int) or segment_bytes < 4096:
            raise ValueError(f"historian segment_bytes must be an integer >= 4096, got {segment_bytes!r}")
        check_retention_days(retention_days)
        self.path = str(path)
        self.fsync_mode = fsync
        self.segment_bytes = segment_bytes
        self.retention_days = retention_days
        self._lock = threading.RLock()  # readings: index, files, latest
        self._sync_lock = threading.Lock()  # fsync vs closing the segment fd
        self._closed = True
        self._lock_fd: int | None = None
        self._seg_fd: int | None = None
        self._tags_fd: int | None = None
        self._maps: dict[int, tuple[int, np.ndarray]] = {}  # segment -> (mapped size, bytes)
        self.compact_min_records = 64  # compact a closed segment holding at least this many records
        self._compactor: threading.Thread | None = None
        self._compact_queue: queue.Queue[int | None] = queue.Queue()
        self._no_more_compaction = False
        self._events: SqliteEvents | None = None
        self._sync_thread: threading.Thread | None = None
        self._stop_sync = threading.Event()
        self._dirty = False
        self.on_damage: Callable[[dict], None] | None = None  # told of every quarantined record
        self.damaged_found = 0
        self.roll_errors = 0
        self.scrub_mb_s = scrub_mb_s
        self.scrub_passes = 0
        self._scrub_pos = 0
        self._scrub_thread: threading.Thread | None = None

        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise NotADirectoryError(
                f"historian {self.path} is a file, not a directory; point the historian at a directory"
            )
        os.makedirs(self.path, exist_ok=True)
        self._acquire_lock()
        try:
            self._open_tags()
            self._load_damaged()
            self._open_segments()
            if self._tags_torn:
                log.warning(
                    "historian %s: cutting a torn tail of %d bytes off tags.txt", self.path, self._tags_torn
                )
                os.ftruncate(self._tags_fd, self._tags_size)
            self._open_events()
            self._closed = False
            if self.retention_days is not None:
                self._apply_retention()
        except BaseException:
            self._closed = True
            self._release_everything()
            raise
        if fsync == "interval":
            self._sync_thread = threading.Thread(target=self._sync_loop, name="historian-fsync", daemon=True)
            self._sync_thread.start()
        if scrub_mb_s:
            self._scrub_thread = threading.Thread(target=self._scrub_loop, name="historian-scrub", daemon=True)
            self._scrub_thread.start()

    # -- opening --------------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        lock_path = os.path.join(self.path, "LOCK")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise HistorianLockedError(
                f"historian {self.path} is already open in another process (pid {pid}); "
                "stop it first or point this one at another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _open_tags(self) -> None:
        tags_path = os.path.join(self.path, "tags.txt")
        new_file = not os.path.exists(tags_path)
        with open(tags_path, "ab+") as f:
            f.seek(0)
            raw = f.read()
        good_len = raw.rfind(b"\n") + 1  # a line without its newline is a torn write: cut it off
        nul = raw.find(b"\0", 0, good_len)
        if nul >= 0:  # zero-filled tail after a power cut: cut from the line holding the first NUL
            good_len = raw.rfind(b"\n", 0, nul) + 1
        self._tags_torn = len(raw) - good_len  # cut off once the segments proved they do not need it
        self._tag_paths: list[str] = []
        self._tag_ids: dict[str, int] = {}
        for lineno, line in enumerate(raw[:good_len].split(b"\n")[:-1]):
            try:
                p = line.decode("utf-8")
            except UnicodeDecodeError:
                raise HistorianCorruptError(
                    f"historian {tags_path}: line {lineno + 1} is not UTF-8 text; the tag list is damaged. "
                    "Restore tags.txt from a backup, or move the historian directory aside and start a new one"
                ) from None
            if not p or p in self._tag_ids:
                raise HistorianCorruptError(
                    f"historian {tags_path}: line {lineno + 1} is {'empty' if not p else 'a duplicate'}; "
                    "the tag list is damaged. Restore tags.txt from a backup, or move the historian "
                    "directory aside and start a new one"
                )
            self._tag_ids[p] = lineno
            self._tag_paths.append(p)
        self._tags_size = good_len
        self._tags_fd = os.open(tags_path, os.O_WRONLY | os.O_APPEND)
        if new_file:
            files.fsync_dir(self.path)
        n = len(self._tag_paths)
        self._latest_ts = np.full(max(n, 16), INT64_MIN, np.int64)
        self._latest_val = np.zeros(max(n, 16), np.float64)
        self._latest_q = np.zeros(max(n, 16), np.uint8)
        self._latest_has = np.zeros(max(n, 16), bool)


    def _rebuild_latest(self) -> None:
        """Newest reading per tag: scan records by descending tmax until no older record can win."""
        ix = self._index
        n = len(self._tag_paths)
        want = self._present[:n]
        if ix.n == 0 or not want.any():
            return
        best_ts = np.full(n, INT64_MIN, np.int64)
        best_rec = np.full(n, -1, np.int64)
        found = np.zeros(n, bool)
        tmax_all = ix.tmax.v
        order = np.lexsort((-np.arange(ix.n), -tmax_all))
        for r in order.tolist():
            if bool((found[want] & (best_ts[want] > tmax_all[r])).all()):
                break
            ts, val, q = self._record_columns(r)
            a, k = int(ix.row0.v[r]), int(ix.ntags.v[r])
            ids = ix.tag.v[a : a + k]
            bounds = np.append(ix.start.v[a : a + k], len(ts))
            gmax, lastpos = group_newest(ts, bounds)
            better = ~found[ids] | (gmax > best_ts[ids]) | ((gmax == best_ts[ids]) & (r > best_rec[ids]))
            sel = ids[better]
            best_ts[sel] = gmax[better]
            best_rec[sel] = r
            found[sel] = True
            self._latest_ts[sel] = gmax[better]
            self._latest_val[sel] = val[lastpos[better]]
            self._latest_q[sel] = q[lastpos[better]]
            self._latest_has[sel] = True

    def _open_events(self) -> None:
        """Open (or create) ``events.db``."""
        db_path = os.path.join(self.path, "events.db")
        try:
            self._events = SqliteEvents(db_path, durable=self.fsync_mode == "batch", check_open=self._check_open)
        except EventDatabaseError as e:
            raise HistorianCorruptError(
                f"historian {db_path}: the event database cannot be opened ({e}); "
                "move events.db aside (readings are not affected) and start again"
            ) from e

    # -- readings -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"historian {self.path} is closed; open it again to use it")

    def _ids_for(self, paths: tuple[str, ...]) -> np.ndarray:
        """Tag id per batch path; new paths are written (and synced as configured) to tags.txt first."""
        ids = np.empty(len(paths), np.uint32)
        new: list[str] = []
        known = self._tag_ids
        for i, p in enumerate(paths):
            t = known.get(p)
            if t is None:
                if not isinstance(p, str) or not p or "\n" in p or "\r" in p or "\0" in p:
                    raise ValueError(
                        f"tag path {p!r} is not valid: it must be a non-empty string without line breaks "
                        "or NUL characters (e.g. 'site/area/line/cell/asset/signal')"
                    )
                t = len(self._tag_paths) + len(new)
                new.append(p)
            ids[i] = t
        if new:
            data = "".join(p + "\n" for p in new).encode("utf-8")
            try:
                files.write_all(self._tags_fd, memoryview(data))
                # in every mode: a record must never reach the disk before the tag line it names
                # (new tags are rare, so this costs little); a power cut then leaves a prefix that opens
                files.fsync(self._tags_fd)
            except BaseException:
                os.ftruncate(self._tags_fd, self._tags_size)
                raise
            self._tags_size += len(data)
            for p in new:
                self._tag_ids[p] = len(self._tag_paths)
                self._tag_paths.append(p)
            self._grow_tag_arrays(len(self._tag_paths))
            self._dirty = True
        return ids

    def _grow_tag_arrays(self, n: int) -> None:
        if n <= len(self._latest_ts) and n <= len(self._present):
            return
        cap = max(n, 2 * len(self._latest_ts))

        def grow(a: np.ndarray, fill: Any) -> np.ndarray:
            b = np.full(cap, fill, a.dtype)
            b[: len(a)] = a
            return b

        self._latest_ts = grow(self._latest_ts, INT64_MIN)
        self._latest_val = grow(self._latest_val, 0.0)
        self._latest_q = grow(self._latest_q, 0)
        self._latest_has = grow(self._latest_has, False)
        self._present = grow(self._present, False)

    def append(self, batch: Batch) -> int:
        """Store ``batch`` as one record; durable against ``kill -9`` on return (see ``fsync``)."""
        batch = appendable(batch)
        n = len(batch)
        if n == 0:
            return 0
        with self._lock:
            self._check_open()
            rec = encode_record(batch.idx, len(batch.paths), None, batch.ts, batch.value, batch.quality)
            rec.tag_ids = self._ids_for(batch.paths)[rec.local_ids]
            rec.finish()
            if self._seg_size > 0 and self._seg_size + len(rec.buf) > self.segment_bytes:
                self._roll()
            off = self._seg_size
            try:
                files.write_all(self._seg_fd, memoryview(rec.buf.data))
                if self.fsync_mode == "batch":
                    files.fsync(self._seg_fd)
            except BaseException:
                os.ftruncate(self._seg_fd, off)  # never leave a partial record behind
                raise
            self._seg_size += len(rec.buf)
            self._dirty = True

            tag_ids = rec.tag_ids.astype(np.int64)
            self._index.add(
                self._seg, [off], [n], [len(tag_ids)], [rec.tmin], [rec.tmax], tag_ids, rec.counts
            )
            self._present[tag_ids] = True
            self._count += n
            gmax, lastpos = group_newest(rec.ts, rec.bounds)
            better = ~self._latest_has[tag_ids] | (gmax >= self._latest_ts[tag_ids])
            sel = tag_ids[better]
            self._latest_ts[sel] = gmax[better]
            self._latest_val[sel] = rec.value[lastpos[better]]
            self._latest_q[sel] = rec.quality[lastpos[better]]
            self._latest_has[sel] = True
        return n


    def tags(self) -> list[str]:
        """Every tag path that has readings, sorted."""
        with self._lock:
            self._check_open()
            n = len(self._tag_paths)
            return sorted(self._tag_paths[i] for i in np.flatnonzero(self._latest_has[:n]).tolist())

    def count(self) -> int:
        """Total readings stored."""
        with self._lock:
            self._check_open()
            return self._count

    def latest(self, paths: Iterable[str] | None = None) -> dict[str, tuple[int, float, int]]:
        """Newest (ts, value, quality) per tag; paths without readings are left out."""
        if isinstance(paths, str):
            raise TypeError("latest(paths): pass a list of tag paths, not a single string")
        with self._lock:
            self._check_open()
            if paths is None:
                ids = np.flatnonzero(self._latest_has[: len(self._tag_paths)])
            else:
                got = [self._tag_ids.get(p) for p in paths]
                ids = np.array([t for t in got if t is not None], np.int64)
                ids = ids[self._latest_has[ids]] if len(ids) else ids
            ts = self._latest_ts[ids].tolist()
            val = self._latest_val[ids].tolist()
            q = self._latest_q[ids].tolist()
            names = [self._tag_paths[i] for i in ids.tolist()]
            return {p: (t, v, qq) for p, t, v, qq in zip(names, ts, val, q, strict=True)}

    def _gather_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ts, value, quality of the tag groups ``rows`` (ascending), concatenated in row order."""
        return gather(self._row_layout(rows), self._map)

    def _row_layout(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Where the readings of tag groups ``rows`` lie: segment, ts column byte offset of their
        record, record count, start and length of the group (fresh arrays)."""
        ix = self._index
        rec = ix.rec.v[rows]
        col = ix.off.v[rec] + HEADER_SIZE + 8 * ix.ntags.v[rec]
        return ix.seg.v[rec], col, ix.count.v[rec], ix.start.v[rows], ix.cnt.v[rows]

    def query(self, paths: Sequence[str], start: int, end: int) -> dict[str, Series]:
        """Raw readings with start <= ts < end per path, sorted by ts (arrival order kept for equal ts)."""
        if isinstance(paths, str):
            raise TypeError("query(paths, ...): pass a list of tag paths, not a single string")
        start, end = as_int("start", start), as_int("end", end)
        paths = list(paths)
        with self._lock:
            self._check_open()
            wanted = {p: self._tag_ids[p] for p in paths if p in self._tag_ids}
            want_ids = np.array(sorted(set(wanted.values())), np.int64)
            ix = self._index
            by_tag: dict[int, Series] = {}
            if len(want_ids) and end > start and ix.n:
                recs = np.flatnonzero((ix.tmin.v < end) & (ix.tmax.v >= start))
                rows = ragged_arange(ix.row0.v[recs], ix.ntags.v[recs])
                rows = rows[np.isin(ix.tag.v[rows], want_ids)]
                if len(rows):
                    inside = int(ix.tmin.v[recs].min()) >= start and int(ix.tmax.v[recs].max()) < end
                    by_tag = self._split_by_tag(rows, len(want_ids) > 1, None if inside else (start, end))
        return {p: by_tag.get(wanted.get(p, -1)) or empty_series() for p in paths}

    def _split_by_tag(
        self, rows: np.ndarray, several: bool, window: tuple[int, int] | None
    ) -> dict[int, Series]:
        """Readings of ``rows`` as one sorted Series per tag id, optionally cut to ``window``."""
        ix = self._index
        ts, val, q = self._gather_rows(rows)  # arrival order
        tags_r, cnt_r = ix.tag.v[rows], ix.cnt.v[rows]
        if several:  # group the rows by tag (stable: arrival order inside a tag), move readings along
            perm = np.argsort(tags_r, kind="stable")
            first = np.cumsum(cnt_r) - cnt_r
            order = ragged_arange(first[perm], cnt_r[perm])
            ts, val, q = ts[order], val[order], q[order]
            tags_r, cnt_r = tags_r[perm], cnt_r[perm]
        row_starts = np.r_[0, np.flatnonzero(tags_r[1:] != tags_r[:-1]) + 1]
        bounds = np.r_[0, np.cumsum(cnt_r)][np.r_[row_starts, len(tags_r)]]
        out: dict[int, Series] = {}
        for g, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
            t, v, qq = ts[a:b], val[a:b], q[a:b]
            if window is not None:
                m = (t >= window[0]) & (t < window[1])
                t, v, qq = t[m], v[m], qq[m]
            if len(t):
                out[int(tags_r[row_starts[g]])] = sorted_series(t, v, qq)
        return out

    def query_buckets(self, paths: Sequence[str], start: int, end: int, step: int) -> dict[str, Buckets]:
        """min / max / mean / last / count of good readings per ``step`` ns bucket aligned to ``start``."""
        step = as_int("step", step)
        if step <= 0:
            raise ValueError(f"query_buckets step must be > 0 ns, got {step}")
        raw = self.query(paths, start, end)
        out: dict[str, Buckets] = {}
        for p, s in raw.items():
            good = s.quality == GOOD
            ts, val = (s.ts, s.value) if good.all() else (s.ts[good], s.value[good])
            out[p] = bucketize(ts, val, int(start), step)
        return out

    # -- events ---------------------------------------------------------------------------------
    def add_event(self, event: Event) -> int:
        """Store an event; return its id (also set on ``event.id``)."""
        return self._events.add(event)

    def update_event(self, event_id: int, **fields: Any) -> None:
        """Set ``end_ts``, ``ack``, ``severity``, ``message``; ``data`` keys are merged into the stored data."""
        self._events.update(event_id, **fields)

    def event(self, event_id: int) -> Event | None:
        """The stored event ``event_id``, or None."""
        return self._events.get(event_id)

    def events(
        self,
        start: int | None = None,
        end: int | None = None,
        kinds: Sequence[str] | None = None,
        source_prefix: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Events with start <= ts < end, newest first (ties: newest id first)."""
        return self._events.list(start, end, kinds, source_prefix, limit)

    def event_counts(self) -> dict[str, int]:
        """Number of events per kind."""
        return self._events.counts()

    # -- durability and life cycle --------------------------------------------------------------
    def _sync_now(self) -> None:
        with self._sync_lock:
            self._dirty = False
            if self._tags_fd is not None:
                files.fsync(self._tags_fd)
            if self._seg_fd is not None:
                files.fsync(self._seg_fd)

    def _sync_loop(self) -> None:
        while not self._stop_sync.wait(_FSYNC_INTERVAL_S):
            if self._dirty:
                try:
                    self._sync_now()
                except OSError as e:  # pragma: no cover - disk failure
                    log.error("historian %s: background fsync failed: %s", self.path, e)

    def flush(self) -> None:
        """fsync everything appended so far (power-safe from here on)."""
        with self._lock:
            self._check_open()
            self._sync_now()
        self._events.checkpoint()

    def close(self) -> None:
        """Flush, close the files and release the directory lock. Closing twice is harmless.

        Waits for a compaction in progress to finish."""
        with self._lock:
            if self._closed:
                return
            self._no_more_compaction = True
            worker = self._compactor
        if worker is not None:
            self._compact_queue.put(None)
            worker.join()
        self._stop_sync.set()
        if self._scrub_thread is not None and self._scrub_thread is not threading.current_thread():
            self._scrub_thread.join()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop_sync.set()
            if self._sync_thread is not None:
                self._sync_thread.join()
            try:
                self._sync_now()
            finally:
                self._release_everything()

    def _release_everything(self) -> None:
        self._stop_sync.set()
        if self._events is not None:
            self._events.close()
        for attr in ("_seg_fd", "_tags_fd"):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)
        self._maps.clear()  # the mappings close when the last view is gone
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> EmbeddedHistorian:
        return self

    def __del__(self) -> None:  # pragma: no cover - best effort if the user forgot close()
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._count} readings"
        return f"EmbeddedHistorian({self.path!r}, fsync={self.fsync_mode!r}, {state})"
