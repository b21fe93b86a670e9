"""PostgreSQL binary COPY streams built and read with NumPy (no Python object per reading)."""

from __future__ import annotations

import numpy as np

# One reading as a row of a binary COPY: field count, then (length, value) per column, big-endian.
ROW = np.dtype(
    [
        ("nf", ">i2"),
        ("l_tag", ">i4"),
        ("tag", ">i4"),
        ("l_ts", ">i4"),
        ("ts", ">i8"),
        ("l_val", ">i4"),
        ("val", ">f8"),
        ("l_q", ">i4"),
        ("q", ">i2"),
    ]
)
# One bucket as a row of a binary COPY out of query_buckets.
BUCKET_ROW = np.dtype(
    [
        ("nf", ">i2"),
        ("l_tag", ">i4"),
        ("tag", ">i4"),
        ("l_b", ">i4"),
        ("b", ">i8"),
        ("l_min", ">i4"),
        ("min", ">f8"),
        ("l_max", ">i4"),
        ("max", ">f8"),
        ("l_mean", ">i4"),
        ("mean", ">f8"),
        ("l_last", ">i4"),
        ("last", ">f8"),
        ("l_n", ">i4"),
        ("n", ">i8"),
    ]
)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
COPY_TRAILER = b"\xff\xff"


def copy_payload(tag_id: np.ndarray, ts: np.ndarray, value: np.ndarray, quality: np.ndarray) -> bytes:
    """The binary COPY stream of rows (tag_id int4, ts int8, value float8, quality int2), built with NumPy."""
    rows = np.empty(len(ts), ROW)
    rows["nf"] = 4
    rows["l_tag"] = 4
    rows["l_ts"] = 8
    rows["l_val"] = 8
    rows["l_q"] = 2
    rows["tag"] = tag_id
    rows["ts"] = ts
    rows["val"] = value
    rows["q"] = quality
    return b"".join((COPY_HEADER, rows.tobytes(), COPY_TRAILER))


def parse_copy(data: bytes, dtype: np.dtype) -> np.ndarray:
    """Rows of a binary COPY TO stream whose rows all have the fixed layout ``dtype`` (no NULLs)."""
    if not data:
        return np.zeros(0, dtype)
    if data[:11] != COPY_HEADER[:11]:
        raise RuntimeError("historian PostgreSQL: unexpected COPY stream (bad signature)")
    ext = int.from_bytes(data[15:19], "big")
    body = len(data) - 19 - ext - 2
    if body < 0 or body % dtype.itemsize:
        raise RuntimeError("historian PostgreSQL: unexpected COPY stream length")
    return np.frombuffer(data, dtype, body // dtype.itemsize, 19 + ext)


def newest_per_group(key: np.ndarray, ts: np.ndarray, nkeys: int) -> tuple[np.ndarray, np.ndarray]:
    """For each key present: (key, position of its newest reading; the last arrival among equal ts)."""
    skey = key.astype(np.uint16) if nkeys <= 65536 else key
    order = np.argsort(skey, kind="stable")
    k, t = key[order], ts[order]
    starts = np.r_[0, np.flatnonzero(k[1:] != k[:-1]) + 1]
    bounds = np.r_[starts, len(k)]
    gmax = np.maximum.reduceat(t, starts)
    cand = np.where(t == np.repeat(gmax, np.diff(bounds)), np.arange(len(t)), -1)
    last = np.maximum.reduceat(cand, starts)
    return k[starts], order[last]

