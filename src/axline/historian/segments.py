"""The segment store of the embedded historian: opening, scanning, mapping and rolling segment files.

A segment ``seg-NNNNNN.dat`` is an append-only file of records (``record.py``). On open every
segment is scanned into the index (``index.py``): a torn record at the end of the newest segment
(the unacknowledged tail of a crash) is cut off; damage anywhere else is quarantined
(``damage.py``). Part of :class:`~axline.historian.embedded.EmbeddedHistorian`.
"""

from __future__ import annotations

import logging
import mmap
import os
import zlib

import numpy as np

from axline.historian import files
from axline.historian.files import SEG_RE
from axline.historian.index import RecordIndex, ragged_arange
from axline.historian.record import HEADER_SIZE, next_valid, parse_header, record_length

log = logging.getLogger("axline.historian.embedded")


class SegmentStore:
    """Segment files of one historian directory (a part of ``EmbeddedHistorian``; uses its state)."""

    def _segment_path(self, seg: int) -> str:
        """Path of segment file number ``seg``."""
        return os.path.join(self.path, f"seg-{seg:06d}.dat")

    def _open_segments(self) -> None:
        """Scan every segment into a fresh index and open the newest one for appending."""
        names = os.listdir(self.path)
        for name in names:  # a compaction that a crash interrupted: the original segment is intact
            if name.startswith("seg-") and name.endswith(".compact"):
                os.remove(os.path.join(self.path, name))
        segs = sorted(int(m.group(1)) for name in names if (m := SEG_RE.match(name)))
        self._index = RecordIndex()
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
            files.fsync_dir(self.path)
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
                h = parse_header(mm, off)
                end = off + HEADER_SIZE + (h[4] if h else 0)
                ok = h is not None and end <= size
                if ok and end == size:  # the newest record of a segment: check its payload too
                    ok = zlib.crc32(mm[off + HEADER_SIZE : end]) == h[5]
                if not ok:
                    nxt = next_valid(mm, off)
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
                tags = u32[ragged_arange(base, ntags_a)].astype(np.int64)
                cnts = u32[ragged_arange(base + ntags_a, ntags_a)].astype(np.int64)
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
                length = record_length(ntags[i], counts[i])
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

    def _record_columns(self, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ts, value, quality of record ``r`` (grouped by tag as stored); views into the mapping."""
        ix = self._index
        count, ntags, off = int(ix.count.v[r]), int(ix.ntags.v[r]), int(ix.off.v[r])
        u8 = self._map(int(ix.seg.v[r]))
        base = off + HEADER_SIZE + 8 * ntags
        ts = u8[base : base + 8 * count].view(np.int64)
        val = u8[base + 8 * count : base + 16 * count].view(np.float64)
        return ts, val, u8[base + 16 * count : base + 17 * count]

    def _roll(self) -> None:
        """Close the current segment (fsync-ed), start the next one, compact the closed one."""
        closed = self._seg
        with self._sync_lock:
            try:
                files.fsync(self._tags_fd)
                files.fsync(self._seg_fd)
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
            files.fsync_dir(self.path)
        except OSError as e:
            log.error("historian %s: fsync of the directory failed: %s", self.path, e)
        self._maps.pop(closed, None)
        self._start_compaction(closed)
        if self.retention_days is not None:
            self._apply_retention()
