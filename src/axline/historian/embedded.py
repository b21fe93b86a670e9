"""The embedded historian: a directory of append-only files, no server.

Layout of the directory::

    LOCK              flock-ed while a process has the historian open (holds its pid)
    tags.txt          one tag path per line; the line number (from 0) is the tag id; append-only
    seg-000001.dat    append-only segment files of records (a new one at about ``segment_bytes``)
    events.db         SQLite (WAL) table of events

A record holds one appended batch, so a batch becomes visible (and survives a crash) whole or not
at all. When a segment is full and holds many small records, it is compacted: rewritten aside as a
few large records (same readings, same arrival order per tag), fsync-ed, then renamed over the
original, so a crash leaves either the old or the new file. Record = 48-byte header + payload::

    header  magic b"AXR1", version u16, flags u16, count u32, ntags u32, tmin i64, tmax i64,
            payload length u64, CRC32 of payload u32, CRC32 of the preceding 44 header bytes u32
    payload tag directory: ntags x uint32 tag id, ntags x uint32 count (readings grouped by tag,
            arrival order kept inside a group); then ts int64[count], value float64[count],
            quality uint8[count]; zero padding to a multiple of 8 bytes

All integers little-endian. A new tag id is written to ``tags.txt`` (and synced as the fsync mode
says) before the first record that uses it.

Durability (``fsync``):

- ``"batch"``: every ``append`` is fsync-ed before it returns: acknowledged data survives a crash
  of the process and a power cut or OS crash.
- ``"interval"``: ``append`` returns once the data is written to the OS; a background thread
  fsyncs at most once a second. Acknowledged data survives ``kill -9``; a power cut may lose about
  the last second.
- ``"none"``: data is written to the OS on every ``append`` and fsync-ed only on ``flush()``,
  segment roll and ``close()``. Survives ``kill -9``; a power cut may lose what the OS had not yet
  written back (typically up to ~30 s).

On open, a torn record at the end of the newest segment (the unacknowledged tail of a crash) is cut
off; damage anywhere else raises :class:`HistorianCorruptError` naming the file and offset.
"""

from __future__ import annotations

import fcntl
import json
import logging
import mmap
import os
import queue
import re
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from axline.batch import GOOD, Batch
from axline.historian.base import (
    EVENT_COLUMNS,
    EVENT_UPDATABLE,
    Buckets,
    Event,
    Historian,
    Series,
    _as_int,
    _check_ack,
    _check_events_query,
    _check_severity,
    _checked_event,
    _dump_data,
    _event_from_row,
)

log = logging.getLogger(__name__)

FSYNC_MODES = ("batch", "interval", "none")

MAGIC = b"AXR1"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<4sHHIIqqQI")  # everything but the header CRC (44 bytes)
_HEAD_CRC = struct.Struct("<I")
HEADER_SIZE = _HEAD.size + _HEAD_CRC.size  # 48
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
_SEG_RE = re.compile(r"^seg-(\d{6,})\.dat$")
_INT64_MIN = np.iinfo(np.int64).min
_FSYNC_INTERVAL_S = 1.0
_COMPACT_READINGS = 1_000_000  # readings per record after compaction


class HistorianLockedError(RuntimeError):
    """The historian directory is already open in another process."""


class HistorianCorruptError(RuntimeError):
    """A historian file is damaged somewhere other than a torn tail."""


def _fsync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, buf: memoryview) -> None:
    while len(buf):
        n = os.write(fd, buf)
        buf = buf[n:]


def _pad8(n: int) -> int:
    return (n + 7) & ~7


class _Column:
    """A growing 1-D NumPy array (amortised doubling); ``v`` is the filled part."""

    __slots__ = ("a", "n")

    def __init__(self, dtype: Any = np.int64) -> None:
        self.a = np.zeros(64, dtype)
        self.n = 0

    @property
    def v(self) -> np.ndarray:
        return self.a[: self.n]

    def extend(self, values: Any) -> None:
        values = np.asarray(values, self.a.dtype)
        m = self.n + len(values)
        if m > len(self.a):
            grown = np.zeros(max(m, 2 * len(self.a)), self.a.dtype)
            grown[: self.n] = self.a[: self.n]
            self.a = grown
        self.a[self.n : m] = values
        self.n = m

    def reset(self, values: np.ndarray) -> None:
        self.a = np.array(values, self.a.dtype)
        self.n = len(values)


class _RecordIndex:
    """In-memory index of records (one row per record) and of their tag directories (one row per
    record and tag), kept as NumPy columns so queries select records and tag groups vectorised."""

    REC = ("seg", "off", "count", "ntags", "tmin", "tmax", "row0")
    ROW = ("tag", "start", "cnt", "rec")

    def __init__(self) -> None:
        for name in self.REC + self.ROW:
            setattr(self, name, _Column())

    @property
    def n(self) -> int:
        return self.seg.n

    def add(
        self,
        seg: int,
        offs: Any,
        counts: Any,
        ntags: Any,
        tmins: Any,
        tmaxs: Any,
        tags: np.ndarray,
        cnts: np.ndarray,
    ) -> None:
        """Add records of segment ``seg``; ``tags``/``cnts`` are their tag directories, concatenated."""
        ntags = np.asarray(ntags, np.int64)
        cnts = np.asarray(cnts, np.int64)
        k = len(ntags)
        r0, rows0 = self.n, self.tag.n
        first_row = np.cumsum(ntags) - ntags
        excl = np.cumsum(cnts) - cnts
        self.seg.extend(np.full(k, seg))
        self.off.extend(offs)
        self.count.extend(counts)
        self.ntags.extend(ntags)
        self.tmin.extend(tmins)
        self.tmax.extend(tmaxs)
        self.row0.extend(rows0 + first_row)
        self.tag.extend(tags)
        self.cnt.extend(cnts)
        self.start.extend(excl - np.repeat(excl[first_row], ntags))
        self.rec.extend(np.repeat(np.arange(r0, r0 + k), ntags))

    def replace(self, r0: int, r1: int, new: _RecordIndex) -> None:
        """Put the records of ``new`` in place of records r0 .. r1 - 1 (a compacted segment)."""
        a = int(self.row0.v[r0])
        b = int(self.row0.v[r1]) if r1 < self.n else self.tag.n
        shift = new.n - (r1 - r0)
        for name in ("seg", "off", "count", "ntags", "tmin", "tmax"):
            old, add = getattr(self, name).v, getattr(new, name).v
            getattr(self, name).reset(np.concatenate((old[:r0], add, old[r1:])))
        for name in ("tag", "start", "cnt"):
            old, add = getattr(self, name).v, getattr(new, name).v
            getattr(self, name).reset(np.concatenate((old[:a], add, old[b:])))
        old = self.rec.v
        self.rec.reset(np.concatenate((old[:a], new.rec.v + r0, old[b:] + shift)))
        ntags = self.ntags.v
        self.row0.reset(np.cumsum(ntags) - ntags)

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the records where ``mask`` is true (used by retention)."""
        row_mask = np.repeat(mask, self.ntags.v)
        new_no = np.cumsum(mask) - 1
        rec = new_no[self.rec.v[row_mask]]
        for name in ("tag", "start", "cnt"):
            col = getattr(self, name)
            col.reset(col.v[row_mask])
        self.rec.reset(rec)
        for name in ("seg", "off", "count", "ntags", "tmin", "tmax"):
            col = getattr(self, name)
            col.reset(col.v[mask])
        ntags = self.ntags.v
        self.row0.reset(np.cumsum(ntags) - ntags)


def _ragged_arange(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), without a Python loop."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    return np.repeat(np.asarray(starts, np.int64) - (ends - counts), counts) + np.arange(
        total, dtype=np.int64
    )


class EmbeddedHistorian(Historian):
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
        if retention_days is not None and not (
            isinstance(retention_days, int | float)
            and not isinstance(retention_days, bool)
            and retention_days > 0
        ):
            raise ValueError(f"historian retention_days must be a number > 0 or None, got {retention_days!r}")
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
        self._db: sqlite3.Connection | None = None
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
            _fsync_dir(self.path)
        n = len(self._tag_paths)
        self._latest_ts = np.full(max(n, 16), _INT64_MIN, np.int64)
        self._latest_val = np.zeros(max(n, 16), np.float64)
        self._latest_q = np.zeros(max(n, 16), np.uint8)
        self._latest_has = np.zeros(max(n, 16), bool)

    def _segment_path(self, seg: int) -> str:
        return os.path.join(self.path, f"seg-{seg:06d}.dat")

    def _open_segments(self) -> None:
        names = os.listdir(self.path)
        for name in names:  # a compaction that a crash interrupted: the original segment is intact
            if name.startswith("seg-") and name.endswith(".compact"):
                os.remove(os.path.join(self.path, name))
        segs = sorted(int(m.group(1)) for name in names if (m := _SEG_RE.match(name)))
        self._index = _RecordIndex()
        self._count = 0
        self._present = np.zeros(len(self._tag_paths), bool)  # tag ids that some record uses
        for k, seg in enumerate(segs):
            self._scan_segment(seg, last=(k == len(segs) - 1))
        self._seg = segs[-1] if segs else 1
        seg_path = self._segment_path(self._seg)
        created = not os.path.exists(seg_path)
        self._seg_fd = os.open(seg_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._seg_size = os.fstat(self._seg_fd).st_size
        if created:
            _fsync_dir(self.path)
        self._rebuild_latest()

    def _map(self, seg: int) -> np.ndarray:
        """The committed bytes of segment ``seg`` as a read-only uint8 array (memory-mapped)."""
        cached = self._maps.get(seg)
        if seg == self._seg:
            size = self._seg_size
        elif cached is not None:
            return cached[1]
        else:
            size = os.path.getsize(self._segment_path(seg))
        if cached is not None and cached[0] == size:
            return cached[1]
        if size == 0:
            arr = np.zeros(0, np.uint8)
        else:
            with open(self._segment_path(seg), "rb") as f:
                mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
            arr = np.frombuffer(mm, np.uint8)
        self._maps[seg] = (size, arr)
        return arr

    @staticmethod
    def _parse_header(buf: Any, off: int) -> tuple[int, int, int, int, int, int] | None:
        """(count, ntags, tmin, tmax, payload_len, payload_crc) of a valid header at ``off``, else None."""
        if len(buf) - off < HEADER_SIZE or buf[off : off + 4] != MAGIC:
            return None
        (crc,) = _HEAD_CRC.unpack_from(buf, off + _HEAD.size)
        if zlib.crc32(buf[off : off + _HEAD.size]) != crc:
            return None
        _magic, version, _flags, count, ntags, tmin, tmax, plen, pcrc = _HEAD.unpack_from(buf, off)
        if version != FORMAT_VERSION or plen != _pad8(8 * ntags + 17 * count) or not 1 <= ntags <= count:
            return None
        return count, ntags, tmin, tmax, plen, pcrc

    def _valid_record_at(self, buf: Any, off: int) -> bool:
        h = self._parse_header(buf, off)
        if h is None or off + HEADER_SIZE + h[4] > len(buf):
            return False
        return zlib.crc32(buf[off + HEADER_SIZE : off + HEADER_SIZE + h[4]]) == h[5]

    def _scan_segment(self, seg: int, last: bool) -> None:
        """Index the records of one segment. A torn tail of the newest one is cut off (it was never
        acknowledged); damage anywhere else is quarantined: left in the file as it is, listed in
        ``damaged.json``, reported, and kept out of every query. Nothing damaged is served as good."""
        path = self._segment_path(seg)
        size = os.path.getsize(path)
        if size == 0:
            return
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        offs, counts, ntags, tmins, tmaxs = [], [], [], [], []
        cut = None
        known_bad = {off for (sg, off) in self._damaged if sg == seg}
        try:
            off = 0
            while off < size:
                h = self._parse_header(mm, off)
                end = off + HEADER_SIZE + (h[4] if h else 0)
                ok = h is not None and end <= size
                if ok and end == size:  # the newest record of a segment: check its payload too
                    ok = zlib.crc32(mm[off + HEADER_SIZE : end]) == h[5]
                if not ok:
                    nxt = self._next_valid(mm, off)
                    if nxt < 0 and last:
                        log.warning("historian %s: cutting a torn record (%d bytes, never acknowledged) off the "
                                    "end at offset %d", path, size - off, off)
                        cut = off
                        break
                    stop = nxt if nxt >= 0 else size
                    self._quarantine(seg, off, stop - off, "damaged record (header or length fails its check)")
                    if nxt < 0:
                        break
                    off = nxt
                    continue
                if off in known_bad:  # quarantined before (its payload failed the CRC check)
                    off = end
                    continue
                offs.append(off)
                counts.append(h[0])
                ntags.append(h[1])
                tmins.append(h[2])
                tmaxs.append(h[3])
                off = end
            if offs:
                offs_a, ntags_a = np.array(offs, np.int64), np.array(ntags, np.int64)
                u32 = np.frombuffer(mm, np.uint32, size // 4)
                base = (offs_a + HEADER_SIZE) // 4
                tags = u32[_ragged_arange(base, ntags_a)].astype(np.int64)
                cnts = u32[_ragged_arange(base + ntags_a, ntags_a)].astype(np.int64)
                del u32
        finally:
            mm.close()
        if cut is not None:
            os.truncate(path, cut)
        if not offs:
            return
        first_row = np.cumsum(ntags_a) - ntags_a
        rec_of_row = np.repeat(np.arange(len(offs)), ntags_a)
        bad = np.zeros(len(offs), bool)
        bad[np.add.reduceat(cnts, first_row) != np.array(counts, np.int64)] = True
        bad[np.unique(rec_of_row[tags >= len(self._tag_paths)])] = True
        if bad.any():
            # a record naming tags that tags.txt does not hold (tags.txt damaged or replaced; a power cut
            # cannot cause it: a tag line is fsync-ed before the first record that names it): quarantined
            for i in np.flatnonzero(bad).tolist():
                length = HEADER_SIZE + _pad8(8 * ntags[i] + 17 * counts[i])
                self._quarantine(seg, offs[i], length, "tag directory does not match tags.txt "
                                 f"({len(self._tag_paths)} tags known)")
            keep = ~bad
            row_keep = np.repeat(keep, ntags_a)
            offs = [o for o, kk in zip(offs, keep.tolist(), strict=True) if kk]
            counts = [c for c, kk in zip(counts, keep.tolist(), strict=True) if kk]
            tmins = [t for t, kk in zip(tmins, keep.tolist(), strict=True) if kk]
            tmaxs = [t for t, kk in zip(tmaxs, keep.tolist(), strict=True) if kk]
            ntags_a, tags, cnts = ntags_a[keep], tags[row_keep], cnts[row_keep]
            if not offs:
                return
        self._index.add(seg, offs, counts, ntags_a, tmins, tmaxs, tags, cnts)
        self._present[tags] = True
        self._count += int(sum(counts))

    def _next_valid(self, mm: Any, off: int) -> int:
        """Offset of the next valid record after ``off`` (header and payload check), or -1."""
        pos = mm.find(MAGIC, off + 1)
        while pos >= 0:
            if self._valid_record_at(mm, pos):
                return pos
            pos = mm.find(MAGIC, pos + 1)
        return -1

    # -- damage: quarantine, verify, scrub ---------------------------------------------------------
    def _load_damaged(self) -> None:
        self._damaged: dict[tuple[int, int], dict] = {}
        p = os.path.join(self.path, "damaged.json")
        if os.path.exists(p):
            try:
                with open(p, encoding="utf-8") as f:
                    for d in json.load(f):
                        self._damaged[(int(d["segment"]), int(d["offset"]))] = d
            except (ValueError, KeyError, TypeError) as e:
                raise HistorianCorruptError(
                    f"historian {p}: the list of quarantined records is not valid JSON ({e}); move it aside "
                    "and open again (damage is found again by `axline historian verify`)") from None

    def _quarantine(self, seg: int, off: int, length: int, reason: str) -> None:
        """Remember a damaged region (never rewritten, never served) and tell ``on_damage``."""
        key = (seg, off)
        if key in self._damaged:
            return
        d = {"segment": seg, "file": os.path.basename(self._segment_path(seg)), "offset": off, "length": length,
             "reason": reason, "found_ns": time.time_ns()}
        self._damaged[key] = d
        self.damaged_found += 1
        log.error("historian %s: %s at offset %d (%d bytes): %s; quarantined, kept out of queries",
                  self.path, d["file"], off, length, reason)
        tmp = os.path.join(self.path, ".damaged.json.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(list(self._damaged.values()), f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(self.path, "damaged.json"))
        except OSError as e:  # a full disk: the damage is still kept out of queries in this process
            log.error("historian %s: cannot write damaged.json: %s", self.path, e)
        cb = self.on_damage
        if cb is not None:
            try:
                cb(dict(d))
            except Exception:  # noqa: BLE001 - reporting must not break reading
                log.exception("historian %s: on_damage callback failed", self.path)

    def damaged(self) -> list[dict]:
        """Quarantined regions: segment file, offset, length, reason."""
        return [dict(d) for d in self._damaged.values()]

    def _check_records(self, recs: np.ndarray) -> list[int]:
        """Verify the payload CRC of records ``recs`` (index rows); return those that fail."""
        ix = self._index
        bad = []
        for r in recs.tolist():
            seg, off = int(ix.seg.v[r]), int(ix.off.v[r])
            buf = self._map(seg)
            h = self._parse_header(buf[off : off + HEADER_SIZE].tobytes(), 0)
            end = off + HEADER_SIZE + (h[4] if h else 0)
            if h is None or end > len(buf) or zlib.crc32(buf[off + HEADER_SIZE : end]) != h[5]:
                bad.append(r)
        return bad

    def _drop_records(self, recs: list[int], reason: str) -> None:
        """Quarantine records ``recs`` (under the lock): out of the index, listed in damaged.json."""
        ix = self._index
        mask = np.ones(ix.n, bool)
        for r in recs:
            seg, off = int(ix.seg.v[r]), int(ix.off.v[r])
            length = HEADER_SIZE + _pad8(8 * int(ix.ntags.v[r]) + 17 * int(ix.count.v[r]))
            self._quarantine(seg, off, length, reason)
            mask[r] = False
        self._count -= int(ix.count.v[~mask].sum())
        ix.keep(mask)
        self._present[:] = False
        self._present[ix.tag.v] = True
        self._latest_has[:] = False
        self._latest_ts[:] = _INT64_MIN
        self._rebuild_latest()

    def scrub(self, max_bytes: int | None = None) -> int:
        """Verify the CRC of records from where the last call stopped, at most ``max_bytes`` of them;
        quarantine what fails. Returns the bytes checked. The background scrub calls this at a bounded
        rate (``scrub_mb_s``), so every record is checked within ``size / rate`` seconds."""
        checked = 0
        with self._lock:
            self._check_open()
            ix = self._index
            if ix.n == 0:
                return 0
            r = self._scrub_pos % ix.n
            batch_recs = []
            while checked < (max_bytes or 1 << 62) and len(batch_recs) < ix.n:
                batch_recs.append(r)
                checked += HEADER_SIZE + 17 * int(ix.count.v[r])
                r = (r + 1) % ix.n
                if r == 0:
                    self.scrub_passes += 1
            bad = self._check_records(np.array(batch_recs, np.int64))
            self._scrub_pos = r
            if bad:
                self._drop_records(bad, "payload fails its CRC check (found by the background scrub)")
        return checked

    def _scrub_loop(self) -> None:
        rate = self.scrub_mb_s * 2**20
        while not self._stop_sync.wait(1.0):
            try:
                self.scrub(int(rate))
            except RuntimeError:
                return  # closed
            except Exception:  # noqa: BLE001 - keep scrubbing later
                log.exception("historian %s: scrub failed", self.path)

    def _record_columns(self, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ts, value, quality of record ``r`` (grouped by tag as stored); views into the mapping."""
        ix = self._index
        count, ntags, off = int(ix.count.v[r]), int(ix.ntags.v[r]), int(ix.off.v[r])
        u8 = self._map(int(ix.seg.v[r]))
        base = off + HEADER_SIZE + 8 * ntags
        ts = u8[base : base + 8 * count].view(np.int64)
        val = u8[base + 8 * count : base + 16 * count].view(np.float64)
        return ts, val, u8[base + 16 * count : base + 17 * count]

    def _rebuild_latest(self) -> None:
        """Newest reading per tag: scan records by descending tmax until no older record can win."""
        ix = self._index
        n = len(self._tag_paths)
        want = self._present[:n]
        if ix.n == 0 or not want.any():
            return
        best_ts = np.full(n, _INT64_MIN, np.int64)
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
            gmax, lastpos = _group_newest(ts, bounds)
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
        db_path = os.path.join(self.path, "events.db")
        try:
            db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "PRAGMA synchronous=FULL" if self.fsync_mode == "batch" else "PRAGMA synchronous=NORMAL"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, "
                "end_ts INTEGER, kind TEXT NOT NULL, source TEXT NOT NULL, code TEXT NOT NULL, "
                "message TEXT NOT NULL DEFAULT '', severity TEXT NOT NULL DEFAULT 'info', "
                "data TEXT NOT NULL DEFAULT '{}', ack TEXT)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS events_ts ON events(ts)")
            db.execute("CREATE INDEX IF NOT EXISTS events_kind_ts ON events(kind, ts)")
        except sqlite3.DatabaseError as e:
            raise HistorianCorruptError(
                f"historian {db_path}: the event database cannot be opened ({e}); "
                "move events.db aside (readings are not affected) and start again"
            ) from e
        self._db = db
        self._db_lock = threading.Lock()

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
                _write_all(self._tags_fd, memoryview(data))
                # in every mode: a record must never reach the disk before the tag line it names
                # (new tags are rare, so this costs little); a power cut then leaves a prefix that opens
                _fsync(self._tags_fd)
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

        self._latest_ts = grow(self._latest_ts, _INT64_MIN)
        self._latest_val = grow(self._latest_val, 0.0)
        self._latest_q = grow(self._latest_q, 0)
        self._latest_has = grow(self._latest_has, False)
        self._present = grow(self._present, False)

    def append(self, batch: Batch) -> int:
        """Store ``batch`` as one record; durable against ``kill -9`` on return (see ``fsync``)."""
        if not isinstance(batch, Batch):
            raise TypeError(f"append expects an axline.batch.Batch, got {type(batch).__name__}")
        n = len(batch)
        if n == 0:
            return 0
        with self._lock:
            self._check_open()
            rec = _encode_record(batch.idx, len(batch.paths), None, batch.ts, batch.value, batch.quality)
            rec.tag_ids = self._ids_for(batch.paths)[rec.local_ids]
            rec.finish()
            if self._seg_size > 0 and self._seg_size + len(rec.buf) > self.segment_bytes:
                self._roll()
            off = self._seg_size
            try:
                _write_all(self._seg_fd, memoryview(rec.buf.data))
                if self.fsync_mode == "batch":
                    _fsync(self._seg_fd)
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
            gmax, lastpos = _group_newest(rec.ts, rec.bounds)
            better = ~self._latest_has[tag_ids] | (gmax >= self._latest_ts[tag_ids])
            sel = tag_ids[better]
            self._latest_ts[sel] = gmax[better]
            self._latest_val[sel] = rec.value[lastpos[better]]
            self._latest_q[sel] = rec.quality[lastpos[better]]
            self._latest_has[sel] = True
        return n

    def _roll(self) -> None:
        """Close the current segment (fsync-ed), start the next one, compact the closed one."""
        closed = self._seg
        with self._sync_lock:
            try:
                _fsync(self._tags_fd)
                _fsync(self._seg_fd)
                # open the next segment before letting go of this one: a failure (disk full, too many
                # open files) leaves the current segment in use, and the roll is tried again next append
                new_fd = os.open(
                    self._segment_path(self._seg + 1), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
                )
            except OSError as e:
                self.roll_errors += 1
                log.error("historian %s: starting segment %d failed (%s); still writing segment %d, will retry",
                          self.path, self._seg + 1, e, self._seg)
                return
            os.close(self._seg_fd)
            self._seg_fd = new_fd
            self._seg += 1
            self._seg_size = 0
        try:
            _fsync_dir(self.path)
        except OSError as e:
            log.error("historian %s: fsync of the directory failed: %s", self.path, e)
        self._maps.pop(closed, None)
        if not self._no_more_compaction:
            if self._compactor is None:
                self._compactor = threading.Thread(
                    target=self._compact_loop, name="historian-compact", daemon=True
                )
                self._compactor.start()
            self._compact_queue.put(closed)
        if self.retention_days is not None:
            self._apply_retention()

    def _compact_loop(self) -> None:
        while True:
            seg = self._compact_queue.get()
            try:
                if seg is None:
                    return
                self._compact_segment(seg)
            except Exception as e:  # the original segment is untouched; compaction is only an optimisation
                log.error(
                    "historian %s: compacting segment %s failed (%s); keeping it as it is", self.path, seg, e
                )
            finally:
                self._compact_queue.task_done()

    def wait_for_compaction(self) -> None:
        """Block until the background compaction of closed segments has caught up."""
        if self._compactor is not None and self._compactor.is_alive():
            self._compact_queue.join()

    def _compact_segment(self, seg: int) -> None:
        """Rewrite a closed segment of many small records as a few large ones (same readings, same
        arrival order per tag), so that queries, opening and the in-memory index stay small.

        Runs in the background thread: reads under the lock, writes the new file aside without it
        (fsync-ed), then renames it over the old one and swaps the index under the lock. A crash
        leaves either the old or the new file (a stray ``.compact`` file is removed on open)."""
        with self._lock:
            if self._closed or self._no_more_compaction:
                return
            ix = self._index
            recs = np.flatnonzero(ix.seg.v == seg)
            if len(recs) < self.compact_min_records:
                return
            if any(sg == seg for (sg, _o) in self._damaged):
                return  # never rewrite a segment holding quarantined records: the damage stays as found
            bad = self._check_records(recs)
            if bad:  # verified before compaction: damage is quarantined, never rewritten under a fresh CRC
                self._drop_records(bad, "payload fails its CRC check (found before compaction)")
                return
            r0, r1 = int(recs[0]), int(recs[-1]) + 1
            rows = np.arange(int(ix.row0.v[r0]), int(ix.row0.v[r1 - 1] + ix.ntags.v[r1 - 1]))
            layout = self._row_layout(rows)
            tag = np.repeat(ix.tag.v[rows], ix.cnt.v[rows])
            ends = np.cumsum(ix.count.v[r0:r1])
            mapped = {seg: self._map(seg)}  # a closed segment does not change: read it without the lock
        ts, val, q = _gather(layout, mapped.__getitem__)
        del mapped
        # chunk at record boundaries, about ``_COMPACT_READINGS`` readings per new record
        cuts = [0]
        while cuts[-1] < len(ts):
            k = int(np.searchsorted(ends, cuts[-1] + _COMPACT_READINGS, "left"))
            cuts.append(int(ends[min(k, len(ends) - 1)]))
        path = self._segment_path(seg)
        tmp = path + ".compact"
        new = _RecordIndex()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            off = 0
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                local, inverse = np.unique(tag[a:b], return_inverse=True)
                rec = _encode_record(inverse.astype(np.int64), len(local), local, ts[a:b], val[a:b], q[a:b])
                rec.finish()
                _write_all(fd, memoryview(rec.buf.data))
                k = len(rec.tag_ids)
                new.add(
                    seg, [off], [b - a], [k], [rec.tmin], [rec.tmax], rec.tag_ids.astype(np.int64), rec.counts
                )
                off += len(rec.buf)
            _fsync(fd)
        except BaseException:
            os.close(fd)
            os.remove(tmp)
            raise
        os.close(fd)
        with self._lock:
            now = np.flatnonzero(self._index.seg.v == seg)
            if self._closed or len(now) != r1 - r0:  # closed, or retention dropped the segment meanwhile
                os.remove(tmp)
                return
            os.replace(tmp, path)
            _fsync_dir(self.path)
            self._maps.pop(seg, None)
            self._index.replace(int(now[0]), int(now[-1]) + 1, new)
        log.info("historian %s: compacted segment %d from %d records to %d", self.path, seg, r1 - r0, new.n)

    def _apply_retention(self) -> int:
        return self.apply_retention()

    def apply_retention(self) -> int:
        """Drop whole segments older than ``retention_days`` before the newest reading (data time, not the
        wall clock: a line that was off for a month keeps its history). A reading stamped in the future
        counts only up to one day past the wall clock. Returns readings dropped."""
        if self.retention_days is None:
            return 0
        with self._lock:
            self._check_open()
            ix = self._index
            if ix.n == 0:
                return 0
            newest = min(int(ix.tmax.v.max()), time.time_ns() + 86400 * 10**9)
        return self.drop_before(newest - int(self.retention_days * 86400 * 1e9))

    def drop_before(self, ts: int) -> int:
        """Delete whole older segments whose newest reading is before ``ts``; return readings dropped.

        The segment being written is never dropped."""
        ts = _as_int("ts", ts)
        with self._lock:
            self._check_open()
            ix = self._index
            segs = ix.seg.v
            doomed = []
            for seg in np.unique(segs).tolist():
                if seg != self._seg and int(ix.tmax.v[segs == seg].max()) < ts:
                    doomed.append(seg)
            if not doomed:
                return 0
            drop = np.isin(segs, doomed)
            dropped = int(ix.count.v[drop].sum())
            ix.keep(~drop)
            for seg in doomed:
                self._maps.pop(seg, None)
                os.remove(self._segment_path(seg))
            _fsync_dir(self.path)
            self._count -= dropped
            self._present[:] = False
            self._present[ix.tag.v] = True
            self._latest_has[:] = False
            self._latest_ts[:] = _INT64_MIN
            self._rebuild_latest()
            log.info(
                "historian %s: retention dropped %d segment(s), %d readings", self.path, len(doomed), dropped
            )
            return dropped

    def tags(self) -> list[str]:
        """Every tag path that has readings, sorted."""
        with self._lock:
            self._check_open()
            n = len(self._tag_paths)
            return sorted(self._tag_paths[i] for i in np.flatnonzero(self._latest_has[:n]).tolist())

    def count(self) -> int:
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
        return _gather(self._row_layout(rows), self._map)

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
        start, end = _as_int("start", start), _as_int("end", end)
        paths = list(paths)
        with self._lock:
            self._check_open()
            wanted = {p: self._tag_ids[p] for p in paths if p in self._tag_ids}
            want_ids = np.array(sorted(set(wanted.values())), np.int64)
            ix = self._index
            by_tag: dict[int, Series] = {}
            if len(want_ids) and end > start and ix.n:
                recs = np.flatnonzero((ix.tmin.v < end) & (ix.tmax.v >= start))
                rows = _ragged_arange(ix.row0.v[recs], ix.ntags.v[recs])
                rows = rows[np.isin(ix.tag.v[rows], want_ids)]
                if len(rows):
                    inside = int(ix.tmin.v[recs].min()) >= start and int(ix.tmax.v[recs].max()) < end
                    by_tag = self._split_by_tag(rows, len(want_ids) > 1, None if inside else (start, end))
        return {p: by_tag.get(wanted.get(p, -1)) or _empty_series() for p in paths}

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
            order = _ragged_arange(first[perm], cnt_r[perm])
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
                out[int(tags_r[row_starts[g]])] = _sorted_series(t, v, qq)
        return out

    def query_buckets(self, paths: Sequence[str], start: int, end: int, step: int) -> dict[str, Buckets]:
        """min / max / mean / last / count of good readings per ``step`` ns bucket aligned to ``start``."""
        step = _as_int("step", step)
        if step <= 0:
            raise ValueError(f"query_buckets step must be > 0 ns, got {step}")
        raw = self.query(paths, start, end)
        out: dict[str, Buckets] = {}
        for p, s in raw.items():
            good = s.quality == GOOD
            ts, val = (s.ts, s.value) if good.all() else (s.ts[good], s.value[good])
            out[p] = _bucketize(ts, val, int(start), step)
        return out

    # -- events ---------------------------------------------------------------------------------
    def add_event(self, event: Event) -> int:
        ts, end_ts, data = _checked_event(event)
        with self._db_lock:
            self._check_open()
            cur = self._db.execute(
                "INSERT INTO events (ts, end_ts, kind, source, code, message, severity, data, ack) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ts,
                    end_ts,
                    event.kind,
                    event.source,
                    event.code,
                    event.message or "",
                    event.severity,
                    data,
                    event.ack,
                ),
            )
            event.id = int(cur.lastrowid)
        return event.id

    def update_event(self, event_id: int, **fields: Any) -> None:
        """Set ``end_ts``, ``ack``, ``severity``, ``message``; ``data`` keys are merged into the stored data."""
        event_id = _as_int("event_id", event_id)
        unknown = sorted(set(fields) - set(EVENT_UPDATABLE))
        if unknown:
            raise ValueError(
                f"update_event: cannot change {', '.join(unknown)} (allowed: {', '.join(EVENT_UPDATABLE)})"
            )
        sets: dict[str, Any] = {}
        if "end_ts" in fields:
            sets["end_ts"] = None if fields["end_ts"] is None else _as_int("end_ts", fields["end_ts"])
        if "ack" in fields:
            _check_ack(fields["ack"])
            sets["ack"] = fields["ack"]
        if "severity" in fields:
            _check_severity(fields["severity"])
            sets["severity"] = fields["severity"]
        if "message" in fields:
            if not isinstance(fields["message"], str):
                raise ValueError(f"update_event message must be a string, got {fields['message']!r}")
            sets["message"] = fields["message"]
        if "data" in fields and not isinstance(fields["data"], dict):
            raise ValueError(
                f"update_event data must be a dict of keys to merge, got {type(fields['data']).__name__}"
            )
        with self._db_lock:
            self._check_open()
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT data FROM events WHERE id = ?", (event_id,)).fetchone()
                if row is None:
                    raise KeyError(f"update_event: no event with id {event_id}")
                if "data" in fields:
                    merged = json.loads(row[0])
                    merged.update(fields["data"])
                    sets["data"] = _dump_data(merged)
                if sets:
                    cols = ", ".join(f"{k} = ?" for k in sets)
                    db.execute(f"UPDATE events SET {cols} WHERE id = ?", (*sets.values(), event_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def event(self, event_id: int) -> Event | None:
        event_id = _as_int("event_id", event_id)
        if not 0 < event_id < 2**63:
            return None
        with self._db_lock:
            self._check_open()
            row = self._db.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else _event_from_row(row)

    def events(
        self,
        start: int | None = None,
        end: int | None = None,
        kinds: Sequence[str] | None = None,
        source_prefix: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Events with start <= ts < end, newest first (ties: newest id first)."""
        kinds = _check_events_query(limit, kinds)
        where, args = [], []
        if start is not None:
            where.append("ts >= ?")
            args.append(_as_int("start", start))
        if end is not None:
            where.append("ts < ?")
            args.append(_as_int("end", end))
        if kinds is not None:
            if not kinds:
                return []
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args.extend(kinds)
        if source_prefix:
            where.append("substr(source, 1, ?) = ?")
            args.extend([len(source_prefix), source_prefix])
        sql = f"SELECT {EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC, id DESC LIMIT ?"
        args.append(limit)
        with self._db_lock:
            self._check_open()
            rows = self._db.execute(sql, args).fetchall()
        return [_event_from_row(r) for r in rows]

    def event_counts(self) -> dict[str, int]:
        with self._db_lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT kind, COUNT(*) FROM events GROUP BY kind ORDER BY kind"
            ).fetchall()
        return {k: int(n) for k, n in rows}

    # -- durability and life cycle --------------------------------------------------------------
    def verify(self) -> list[str]:
        """Check the CRC of every record (slow: reads everything); quarantine and return what fails,
        and list what was quarantined before."""
        with self._lock:
            self._check_open()
            bad = self._check_records(np.arange(self._index.n))
            if bad:
                self._drop_records(bad, "payload fails its CRC check (found by verify)")
            return [f"{self.path}/{d['file']}: offset {d['offset']} ({d['length']} bytes): {d['reason']}"
                    for d in self._damaged.values()]

    def _sync_now(self) -> None:
        with self._sync_lock:
            self._dirty = False
            if self._tags_fd is not None:
                _fsync(self._tags_fd)
            if self._seg_fd is not None:
                _fsync(self._seg_fd)

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
        with self._db_lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

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
        if self._db is not None:
            self._db.close()
            self._db = None
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


# -- helpers ------------------------------------------------------------------------------------
def _group_newest(ts: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group [bounds[g], bounds[g+1]): the max ts and the position of its last occurrence."""
    starts = bounds[:-1]
    gmax = np.maximum.reduceat(ts, starts)
    rep = np.repeat(gmax, np.diff(bounds))
    cand = np.where(ts == rep, np.arange(len(ts), dtype=np.int64), -1)
    lastpos = np.maximum.reduceat(cand, starts)
    return gmax, lastpos


def _gather(
    layout: tuple[np.ndarray, ...], segment_bytes: Callable[[int], np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copy out ts, value, quality of tag groups laid out as ``_row_layout`` says, in row order."""
    segs, col, count, start, cnt = layout
    parts_ts, parts_val, parts_q = [], [], []
    cuts = np.flatnonzero(segs[1:] != segs[:-1]) + 1
    for a, b in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(segs)].tolist(), strict=True):
        u8 = segment_bytes(int(segs[a]))
        i64, f64 = u8.view(np.int64), u8.view(np.float64)
        ts_el = col[a:b] // 8 + start[a:b]  # element index of the first ts of each group
        val_el = ts_el + count[a:b]
        q_byte = col[a:b] + 16 * count[a:b] + start[a:b]
        c = cnt[a:b]
        if int(c.sum()) >= 128 * (b - a):  # few large groups: copy slices
            for t0, v0, q0, k in zip(
                ts_el.tolist(), val_el.tolist(), q_byte.tolist(), c.tolist(), strict=True
            ):
                parts_ts.append(i64[t0 : t0 + k])
                parts_val.append(f64[v0 : v0 + k])
                parts_q.append(u8[q0 : q0 + k])
        else:  # many small groups: one vectorised gather
            e = _ragged_arange(ts_el, c)
            parts_ts.append(i64[e])
            parts_val.append(f64[e + np.repeat(count[a:b], c)])
            parts_q.append(u8[_ragged_arange(q_byte, c)])
    if not parts_ts:
        return np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.uint8)
    return np.concatenate(parts_ts), np.concatenate(parts_val), np.concatenate(parts_q)


def _empty_series() -> Series:
    return Series(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.uint8))


def _sorted_series(ts: np.ndarray, val: np.ndarray, q: np.ndarray) -> Series:
    """Series sorted by ts; readings with equal ts keep their (arrival) order."""
    if len(ts) > 1 and bool((ts[1:] < ts[:-1]).any()):
        order = np.argsort(ts, kind="stable")
        ts, val, q = ts[order], val[order], q[order]
    return Series(ts, val, q)


class _EncodedRecord:
    """One record being built: readings grouped by tag (stable), header and CRCs by ``finish``."""

    __slots__ = ("buf", "local_ids", "tag_ids", "counts", "bounds", "ts", "value", "quality", "tmin", "tmax")

    def finish(self) -> None:
        ntags, n = len(self.counts), len(self.ts)
        p = HEADER_SIZE
        self.buf[p : p + 4 * ntags].view(np.uint32)[:] = self.tag_ids
        self.buf[p + 4 * ntags : p + 8 * ntags].view(np.uint32)[:] = self.counts
        plen = len(self.buf) - HEADER_SIZE
        pcrc = zlib.crc32(self.buf[HEADER_SIZE:].data)
        head = _HEAD.pack(MAGIC, FORMAT_VERSION, 0, n, ntags, self.tmin, self.tmax, plen, pcrc)
        self.buf[: _HEAD.size] = np.frombuffer(head, np.uint8)
        self.buf[_HEAD.size : HEADER_SIZE] = np.frombuffer(_HEAD_CRC.pack(zlib.crc32(head)), np.uint8)


def _encode_record(
    local: np.ndarray,
    nlocal: int,
    local_to_tag: np.ndarray | None,
    ts: np.ndarray,
    value: np.ndarray,
    quality: np.ndarray,
) -> _EncodedRecord:
    """Lay out readings as one record; ``local`` is a small index per reading (< ``nlocal``)."""
    n = len(local)
    if nlocal > 1 and bool((local[1:] < local[:-1]).any()):
        key = local.astype(np.uint16) if nlocal <= 65536 else local
        order = np.argsort(key, kind="stable")  # radix sort for uint16
        sidx = local[order]
    else:
        order = None
        sidx = local
    starts = np.flatnonzero(sidx[1:] != sidx[:-1]) + 1
    bounds = np.concatenate(([0], starts, [n])).astype(np.int64)
    ntags = len(bounds) - 1
    rec = _EncodedRecord()
    rec.buf = np.zeros(HEADER_SIZE + _pad8(8 * ntags + 17 * n), np.uint8)
    p = HEADER_SIZE + 8 * ntags
    rec.ts = rec.buf[p : p + 8 * n].view(np.int64)
    rec.value = rec.buf[p + 8 * n : p + 16 * n].view(np.float64)
    rec.quality = rec.buf[p + 16 * n : p + 17 * n]
    if order is None:
        rec.ts[:], rec.value[:], rec.quality[:] = ts, value, quality
    else:
        np.take(ts, order, out=rec.ts)
        np.take(value, order, out=rec.value)
        np.take(quality, order, out=rec.quality)
    rec.bounds = bounds
    rec.counts = np.diff(bounds)
    rec.local_ids = sidx[bounds[:-1]]
    rec.tag_ids = None if local_to_tag is None else local_to_tag[rec.local_ids]
    rec.tmin, rec.tmax = int(rec.ts.min()), int(rec.ts.max())
    return rec


def _bucketize(ts: np.ndarray, val: np.ndarray, start: int, step: int) -> Buckets:
    """Aggregate sorted (ts, val) into buckets of ``step`` ns aligned to ``start``."""
    if not len(ts):
        z = np.zeros(0)
        return Buckets(z.astype(np.int64), z, z, z, z, z.astype(np.int64))
    b = (ts - start) // step
    cuts = np.flatnonzero(b[1:] != b[:-1]) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.append(cuts, len(ts))
    count = (ends - starts).astype(np.int64)
    return Buckets(
        start=start + b[starts] * step,
        min=np.minimum.reduceat(val, starts),
        max=np.maximum.reduceat(val, starts),
        mean=np.add.reduceat(val, starts) / count,
        last=val[ends - 1],
        count=count,
    )
