"""PostgreSQL binary COPY streams built and read with NumPy (no Python object per reading).

``block_payload`` writes the rows of the backend's ``blocks`` table: one row per tag and batch,
its readings as three arrays. ``copy_payload`` writes one row per reading (the shape of a plain
readings table); ``parse_copy`` reads fixed-layout rows back (``ROW``, ``BUCKET_ROW``).
"""

from __future__ import annotations

from typing import Any

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
# A block row up to its first array's elements: field count, tag_id, tmin, tmax, then the length
# and header of the ts array (dimensions 1, no NULLs, element type, length, lower bound 1).
BLOCK_HEAD = np.dtype(
    [
        ("nf", ">i2"),
        ("l_tag", ">i4"),
        ("tag", ">i4"),
        ("l_tmin", ">i4"),
        ("tmin", ">i8"),
        ("l_tmax", ">i4"),
        ("tmax", ">i8"),
        ("l_arr", ">i4"),
        ("ndim", ">i4"),
        ("nulls", ">i4"),
        ("oid", ">i4"),
        ("dim", ">i4"),
        ("lbound", ">i4"),
    ]
)
# The length and header of the value and quality arrays.
ARRAY_HEAD = np.dtype(
    [("l_arr", ">i4"), ("ndim", ">i4"), ("nulls", ">i4"), ("oid", ">i4"), ("dim", ">i4"), ("lbound", ">i4")]
)
INT8_OID, FLOAT8_OID, INT2_OID = 20, 701, 21
_ELEM_TS = np.dtype([("l", ">i4"), ("v", ">i8")])
_ELEM_VAL = np.dtype([("l", ">i4"), ("v", ">f8")])
_ELEM_Q = np.dtype([("l", ">i4"), ("v", ">i2")])
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


def _array_heads(dtype: np.dtype, counts: np.ndarray, elem_size: int, oid: int) -> np.ndarray:
    heads = np.zeros(len(counts), dtype)
    heads["l_arr"] = 20 + (4 + elem_size) * counts
    heads["ndim"] = 1
    heads["oid"] = oid
    heads["dim"] = counts
    heads["lbound"] = 1
    return heads


def _elements(dtype: np.dtype, values: np.ndarray, size: int) -> np.ndarray:
    el = np.empty(len(values), dtype)
    el["l"] = size
    el["v"] = values
    return el


def block_payload(
    tag_id: np.ndarray, ts: np.ndarray, value: np.ndarray, quality: np.ndarray, key: np.ndarray | None = None
) -> tuple[bytes, int]:
    """The binary COPY stream of ``blocks`` rows (tag_id int4, tmin int8, tmax int8, ts int8[],
    value float8[], quality int2[]): one row per tag, readings in arrival order. Returns the stream
    and the number of rows. ``key`` (optional) is a small integer per reading that groups the
    readings exactly as ``tag_id`` does (a batch's tag index: sorting it is faster).

    >>> data, rows = block_payload(np.array([7, 3, 7]), np.array([30, 10, 20]), np.zeros(3), np.zeros(3))
    >>> rows, len(data) == 19 + 2 * 106 + 3 * 30 + 2
    (2, True)
    """
    tag_id = np.asarray(tag_id)
    n = len(tag_id)
    sort_key = tag_id if key is None else np.asarray(key)
    if n and 0 <= int(sort_key.min()) and int(sort_key.max()) < 65536:
        sort_key = sort_key.astype(np.uint16)  # a stable sort of 16-bit keys is a radix sort
    order = np.argsort(sort_key, kind="stable")
    t, s = tag_id[order], np.asarray(ts, np.int64)[order]
    starts = np.r_[0, np.flatnonzero(t[1:] != t[:-1]) + 1] if n else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, n])
    g = len(starts)
    head = np.zeros(g, BLOCK_HEAD)
    head["nf"] = 6
    head["l_tag"] = 4
    head["tag"] = t[starts]
    head["l_tmin"] = head["l_tmax"] = 8
    if g:
        head["tmin"] = np.minimum.reduceat(s, starts)
        head["tmax"] = np.maximum.reduceat(s, starts)
    head["l_arr"] = 20 + 12 * counts
    head["ndim"] = 1
    head["oid"] = INT8_OID
    head["dim"] = counts
    head["lbound"] = 1
    vheads = _array_heads(ARRAY_HEAD, counts, 8, FLOAT8_OID)
    qheads = _array_heads(ARRAY_HEAD, counts, 2, INT2_OID)
    ts_el = _elements(_ELEM_TS, s, 8)
    val_el = _elements(_ELEM_VAL, np.asarray(value)[order], 8)
    q_el = _elements(_ELEM_Q, np.asarray(quality)[order], 2)
    # rows may come in any order: the blocks of equal length are written together, as one 2-D array
    # of bytes whose column ranges are the row's parts
    parts: list[bytes | memoryview] = [COPY_HEADER]
    hs, ah = BLOCK_HEAD.itemsize, ARRAY_HEAD.itemsize
    for c in np.unique(counts).tolist():
        sel = np.flatnonzero(counts == c)
        m = len(sel)
        if m == g:  # every block has c readings: they already lie in block order
            at: Any = slice(None)
        else:
            at = (starts[sel][:, None] + np.arange(c)).ravel()
        rows = np.empty((m, hs + 2 * ah + 30 * c), np.uint8)
        cols = np.cumsum([0, hs, 12 * c, ah, 12 * c, ah, 6 * c])
        pieces = (head[sel], ts_el[at], vheads[sel], val_el[at], qheads[sel], q_el[at])
        for a0, a1, piece in zip(cols[:-1].tolist(), cols[1:].tolist(), pieces, strict=True):
            rows[:, a0:a1] = piece.view(np.uint8).reshape(m, a1 - a0)
        parts.append(rows.data)
    parts.append(COPY_TRAILER)
    return b"".join(parts), g


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


# -- NumPy arrays as binary array parameters (no Python object per element) ------------------------
class ArrayParam:
    """A NumPy array sent as a PostgreSQL array parameter in binary form (see ``register_array_dumpers``)."""

    __slots__ = ("values",)
    #: (array type oid, element type oid, element wire dtype)
    TYPE: tuple[int, int, str] = (0, 0, "")

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def to_binary(self) -> bytes:
        """The array in PostgreSQL's binary array format.

        >>> Int4Array(np.array([1, 2])).to_binary().hex()
        '000000010000000000000017000000020000000100000004000000010000000400000002'
        """
        _, elem_oid, wire = self.TYPE
        n = len(self.values)
        if n == 0:
            return np.array([0, 0, elem_oid], ">i4").tobytes()
        el = np.empty(n, [("l", ">i4"), ("v", wire)])
        el["l"] = np.dtype(wire).itemsize
        el["v"] = self.values
        return np.array([1, 0, elem_oid, n, 1], ">i4").tobytes() + el.tobytes()


class Int4Array(ArrayParam):
    """int4[] parameter."""

    TYPE = (1007, 23, ">i4")


class Int8Array(ArrayParam):
    """int8[] parameter."""

    TYPE = (1016, INT8_OID, ">i8")


class Float8Array(ArrayParam):
    """float8[] parameter."""

    TYPE = (1022, FLOAT8_OID, ">f8")


class Int2Array(ArrayParam):
    """int2[] parameter."""

    TYPE = (1005, INT2_OID, ">i2")


def register_array_dumpers(conn: Any) -> None:
    """Teach a psycopg connection to send ``ArrayParam`` values in binary form (use ``%b``)."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    for klass in (Int4Array, Int8Array, Float8Array, Int2Array):

        class _Dumper(Dumper):
            format = Format.BINARY
            oid = klass.TYPE[0]

            def dump(self, obj: ArrayParam) -> bytes:
                return obj.to_binary()

        conn.adapters.register_dumper(klass, _Dumper)
