"""The record format of the embedded historian's segment files, and its codec.

A record holds one appended batch (or, after compaction, many): a 48-byte header and a payload::

    header  magic b"AXR1", version u16, flags u16, count u32, ntags u32, tmin i64, tmax i64,
            payload length u64, CRC32 of payload u32, CRC32 of the preceding 44 header bytes u32
    payload tag directory: ntags x uint32 tag id, ntags x uint32 count (readings grouped by tag,
            arrival order kept inside a group); then ts int64[count], value float64[count],
            quality uint8[count]; zero padding to a multiple of 8 bytes

All integers little-endian.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

MAGIC = b"AXR1"
FORMAT_VERSION = 1
HEAD = struct.Struct("<4sHHIIqqQI")  # everything but the header CRC (44 bytes)
HEAD_CRC = struct.Struct("<I")
HEADER_SIZE = HEAD.size + HEAD_CRC.size  # 48


def pad8(n: int) -> int:
    """``n`` rounded up to a multiple of 8."""
    return (n + 7) & ~7


def record_length(ntags: int, count: int) -> int:
    """Bytes of a record with ``ntags`` tag groups and ``count`` readings, header included."""
    return HEADER_SIZE + pad8(8 * ntags + 17 * count)


def parse_header(buf: Any, off: int) -> tuple[int, int, int, int, int, int] | None:
    """(count, ntags, tmin, tmax, payload_len, payload_crc) of a valid header at ``off``, else None."""
    if len(buf) - off < HEADER_SIZE or buf[off : off + 4] != MAGIC:
        return None
    (crc,) = HEAD_CRC.unpack_from(buf, off + HEAD.size)
    if zlib.crc32(buf[off : off + HEAD.size]) != crc:
        return None
    _magic, version, _flags, count, ntags, tmin, tmax, plen, pcrc = HEAD.unpack_from(buf, off)
    if version != FORMAT_VERSION or plen != pad8(8 * ntags + 17 * count) or not 1 <= ntags <= count:
        return None
    return count, ntags, tmin, tmax, plen, pcrc


def valid_record_at(buf: Any, off: int) -> bool:
    """Whether a whole record (header and payload CRC) starts at ``off``."""
    h = parse_header(buf, off)
    if h is None or off + HEADER_SIZE + h[4] > len(buf):
        return False
    return zlib.crc32(buf[off + HEADER_SIZE : off + HEADER_SIZE + h[4]]) == h[5]


def next_valid(mm: Any, off: int) -> int:
    """Offset of the next valid record after ``off`` (header and payload check), or -1."""
    pos = mm.find(MAGIC, off + 1)
    while pos >= 0:
        if valid_record_at(mm, pos):
            return pos
        pos = mm.find(MAGIC, pos + 1)
    return -1


def group_newest(ts: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group [bounds[g], bounds[g+1]): the max ts and the position of its last occurrence."""
    starts = bounds[:-1]
    gmax = np.maximum.reduceat(ts, starts)
    rep = np.repeat(gmax, np.diff(bounds))
    cand = np.where(ts == rep, np.arange(len(ts), dtype=np.int64), -1)
    lastpos = np.maximum.reduceat(cand, starts)
    return gmax, lastpos



class EncodedRecord:
    """One record being built: readings grouped by tag (stable), header and CRCs by ``finish``."""

    __slots__ = ("buf", "local_ids", "tag_ids", "counts", "bounds", "ts", "value", "quality", "tmin", "tmax")

    def finish(self) -> None:
        """Write the tag directory, then the header with both CRCs."""
        ntags, n = len(self.counts), len(self.ts)
        p = HEADER_SIZE
        self.buf[p : p + 4 * ntags].view(np.uint32)[:] = self.tag_ids
        self.buf[p + 4 * ntags : p + 8 * ntags].view(np.uint32)[:] = self.counts
        plen = len(self.buf) - HEADER_SIZE
        pcrc = zlib.crc32(self.buf[HEADER_SIZE:].data)
        head = HEAD.pack(MAGIC, FORMAT_VERSION, 0, n, ntags, self.tmin, self.tmax, plen, pcrc)
        self.buf[: HEAD.size] = np.frombuffer(head, np.uint8)
        self.buf[HEAD.size : HEADER_SIZE] = np.frombuffer(HEAD_CRC.pack(zlib.crc32(head)), np.uint8)


def encode_record(
    local: np.ndarray,
    nlocal: int,
    local_to_tag: np.ndarray | None,
    ts: np.ndarray,
    value: np.ndarray,
    quality: np.ndarray,
) -> EncodedRecord:
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
    rec = EncodedRecord()
    rec.buf = np.zeros(record_length(ntags, n), np.uint8)
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
