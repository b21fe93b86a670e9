"""The embedded historian's in-memory index of records, and reading readings out by it.

The index has one row per record and one per (record, tag group), as NumPy columns, so a query
selects records and tag groups without a Python loop per record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from axline.historian.base import Buckets, Series


class Column:
    """A growing 1-D NumPy array (amortised doubling); ``v`` is the filled part."""

    __slots__ = ("a", "n")

    def __init__(self, dtype: Any = np.int64) -> None:
        self.a = np.zeros(64, dtype)
        self.n = 0

    @property
    def v(self) -> np.ndarray:
        """The filled part."""
        return self.a[: self.n]

    def extend(self, values: Any) -> None:
        """Append ``values``."""
        values = np.asarray(values, self.a.dtype)
        m = self.n + len(values)
        if m > len(self.a):
            grown = np.zeros(max(m, 2 * len(self.a)), self.a.dtype)
            grown[: self.n] = self.a[: self.n]
            self.a = grown
        self.a[self.n : m] = values
        self.n = m

    def reset(self, values: np.ndarray) -> None:
        """Replace the content with ``values``."""
        self.a = np.array(values, self.a.dtype)
        self.n = len(values)


class RecordIndex:
    """In-memory index of records (one row per record) and of their tag directories (one row per
    record and tag), kept as NumPy columns so queries select records and tag groups vectorised."""

    REC = ("seg", "off", "count", "ntags", "tmin", "tmax", "row0")
    ROW = ("tag", "start", "cnt", "rec")

    def __init__(self) -> None:
        for name in self.REC + self.ROW:
            setattr(self, name, Column())

    @property
    def n(self) -> int:
        """Number of records."""
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

    def replace(self, r0: int, r1: int, new: RecordIndex) -> None:
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


def ragged_arange(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), without a Python loop."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    return np.repeat(np.asarray(starts, np.int64) - (ends - counts), counts) + np.arange(
        total, dtype=np.int64
    )



def gather(
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
            e = ragged_arange(ts_el, c)
            parts_ts.append(i64[e])
            parts_val.append(f64[e + np.repeat(count[a:b], c)])
            parts_q.append(u8[ragged_arange(q_byte, c)])
    if not parts_ts:
        return np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.uint8)
    return np.concatenate(parts_ts), np.concatenate(parts_val), np.concatenate(parts_q)


def empty_series() -> Series:
    """A series without readings."""
    return Series(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.uint8))


def sorted_series(ts: np.ndarray, val: np.ndarray, q: np.ndarray) -> Series:
    """Series sorted by ts; readings with equal ts keep their (arrival) order."""
    if len(ts) > 1 and bool((ts[1:] < ts[:-1]).any()):
        order = np.argsort(ts, kind="stable")
        ts, val, q = ts[order], val[order], q[order]
    return Series(ts, val, q)


def bucketize(ts: np.ndarray, val: np.ndarray, start: int, step: int) -> Buckets:
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
