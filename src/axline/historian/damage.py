"""Damage found in the embedded historian: quarantine, scrub and verify.

A damaged record is never rewritten and never served: it stays in its file as found, is listed in
``damaged.json`` and reported (``on_damage``), and is kept out of every query. A background scrub
checks every record's CRC at a bounded rate. Part of
:class:`~axline.historian.embedded.EmbeddedHistorian`.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib

import numpy as np

from axline.historian.files import INT64_MIN, HistorianCorruptError
from axline.historian.record import HEADER_SIZE, parse_header, record_length

log = logging.getLogger("axline.historian.embedded")


class DamageGuard:
    """Quarantine, scrub and verify (a part of ``EmbeddedHistorian``; uses its state)."""

    def _load_damaged(self) -> None:
        """Read ``damaged.json`` (the regions quarantined before)."""
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
            h = parse_header(buf[off : off + HEADER_SIZE].tobytes(), 0)
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
            length = record_length(int(ix.ntags.v[r]), int(ix.count.v[r]))
            self._quarantine(seg, off, length, reason)
            mask[r] = False
        self._count -= int(ix.count.v[~mask].sum())
        ix.keep(mask)
        self._present[:] = False
        self._present[ix.tag.v] = True
        self._latest_has[:] = False
        self._latest_ts[:] = INT64_MIN
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
