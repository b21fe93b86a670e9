"""Compaction and retention of the embedded historian's segments.

When a segment is full and holds many small records, it is compacted: rewritten aside as a few
large records (same readings, same arrival order per tag), fsync-ed, then renamed over the
original, so a crash leaves either the old or the new file. Retention drops whole segments whose
newest reading is older than ``retention_days``. Part of
:class:`~axline.historian.embedded.EmbeddedHistorian`.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from axline.historian import files
from axline.historian.events import as_int
from axline.historian.files import INT64_MIN
from axline.historian.index import RecordIndex, gather
from axline.historian.record import encode_record

log = logging.getLogger("axline.historian.embedded")

COMPACT_READINGS = 1_000_000  # readings per record after compaction


class Compaction:
    """Background compaction and retention (a part of ``EmbeddedHistorian``; uses its state)."""

    def _start_compaction(self, seg: int) -> None:
        """Queue closed segment ``seg`` for compaction (starting the worker thread once)."""
        if self._no_more_compaction:
            return
        if self._compactor is None:
            self._compactor = threading.Thread(target=self._compact_loop, name="historian-compact", daemon=True)
            self._compactor.start()
        self._compact_queue.put(seg)

    def _compact_loop(self) -> None:
        """The worker: compact queued segments until told to stop (None)."""
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
        ts, val, q = gather(layout, mapped.__getitem__)
        del mapped
        # chunk at record boundaries, about ``COMPACT_READINGS`` readings per new record
        cuts = [0]
        while cuts[-1] < len(ts):
            k = int(np.searchsorted(ends, cuts[-1] + COMPACT_READINGS, "left"))
            cuts.append(int(ends[min(k, len(ends) - 1)]))
        path = self._segment_path(seg)
        tmp = path + ".compact"
        new = RecordIndex()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            off = 0
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                local, inverse = np.unique(tag[a:b], return_inverse=True)
                rec = encode_record(inverse.astype(np.int64), len(local), local, ts[a:b], val[a:b], q[a:b])
                rec.finish()
                files.write_all(fd, memoryview(rec.buf.data))
                k = len(rec.tag_ids)
                new.add(
                    seg, [off], [b - a], [k], [rec.tmin], [rec.tmax], rec.tag_ids.astype(np.int64), rec.counts
                )
                off += len(rec.buf)
            files.fsync(fd)
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
            files.fsync_dir(self.path)
            self._maps.pop(seg, None)
            self._index.replace(int(now[0]), int(now[-1]) + 1, new)
        log.info("historian %s: compacted segment %d from %d records to %d", self.path, seg, r1 - r0, new.n)

    def _apply_retention(self) -> int:
        """Apply ``retention_days`` (on open and at every segment roll)."""
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
        ts = as_int("ts", ts)
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
            files.fsync_dir(self.path)
            self._count -= dropped
            self._present[:] = False
            self._present[ix.tag.v] = True
            self._latest_has[:] = False
            self._latest_ts[:] = INT64_MIN
            self._rebuild_latest()
            log.info(
                "historian %s: retention dropped %d segment(s), %d readings", self.path, len(doomed), dropped
            )
            return dropped
