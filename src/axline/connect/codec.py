"""Shared helpers of the PLC connectors (Modbus, S7, MELSEC): word/byte decoding, scale and offset,
quality of read values, and grouping of addresses into few read requests.

Decoding works on whole columns: the registers (or bytes) of one poll cycle go in, one float64
value per tag comes out, without a Python object per reading.

Word order codes (the order of the bytes ``a b c d`` of a big-endian 32-bit value as they lie in
the device, two bytes per register):

- ``abcd``: big-endian words, big-endian bytes (Modbus default)
- ``cdab``: low word first, big-endian bytes (many PLCs, MELSEC)
- ``badc``: big-endian words, bytes swapped within each word
- ``dcba``: fully little-endian

For 64-bit values the same code says whether words are reversed (``cdab``, ``dcba``) and whether
bytes are swapped within each word (``badc``, ``dcba``). For 16-bit values ``ab`` (as is) and ``ba``
(bytes swapped) are accepted; ``abcd``/``cdab`` mean ``ab`` and ``badc``/``dcba`` mean ``ba``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from axline.batch import BAD_OUT_OF_RANGE, BAD_SENSOR, GOOD

# numeric type -> (16-bit words, big-endian numpy dtype)
WORD_TYPES: dict[str, tuple[int, str]] = {
    "int16": (1, ">i2"),
    "uint16": (1, ">u2"),
    "int32": (2, ">i4"),
    "uint32": (2, ">u4"),
    "float32": (2, ">f4"),
    "float64": (4, ">f8"),
}
ORDERS = ("abcd", "cdab", "badc", "dcba")
ORDERS_16 = ("ab", "ba")


def order_flags(order: str) -> tuple[bool, bool]:
    """``(word_swap, byte_swap)`` for a word order code."""
    if order in ORDERS_16:
        return False, order == "ba"
    if order not in ORDERS:
        raise ValueError(f"word order {order!r} is not known; use one of {', '.join(ORDERS + ORDERS_16)}")
    return order in ("cdab", "dcba"), order in ("badc", "dcba")


def decode_words(words: np.ndarray, starts: np.ndarray, type_name: str, order: str = "abcd") -> np.ndarray:
    """Values of ``type_name`` starting at each index of ``starts`` in the uint16 array ``words``."""
    n, dtype = WORD_TYPES[type_name]
    starts = np.asarray(starts, dtype=np.int64)
    if not len(starts):
        return np.zeros(0)
    w = np.asarray(words, dtype=np.uint16)[starts[:, None] + np.arange(n)]
    word_swap, byte_swap = order_flags(order)
    if word_swap and n > 1:
        w = w[:, ::-1]
    if byte_swap:
        w = ((w >> 8) | (w << 8)).astype(np.uint16)
    raw = np.ascontiguousarray(w.astype(">u2")).view(np.uint8).reshape(len(starts), 2 * n)
    return np.ascontiguousarray(raw).view(dtype).ravel().astype(np.float64)


def encode_words(raw: int | float, type_name: str, order: str = "abcd") -> list[int]:
    """The 16-bit words (device order) holding ``raw`` as ``type_name``; ``raw`` must fit the type."""
    n, dtype = WORD_TYPES[type_name]
    arr = np.array([raw], dtype=dtype)
    w = arr.view(np.uint8).reshape(n, 2)
    words = (w[:, 0].astype(np.uint16) << 8) | w[:, 1].astype(np.uint16)
    word_swap, byte_swap = order_flags(order)
    if byte_swap:
        words = ((words >> 8) | (words << 8)).astype(np.uint16)
    if word_swap:
        words = words[::-1]
    return [int(x) for x in words]


def decode_bytes(buf: np.ndarray | bytes, offsets: np.ndarray, dtype: str) -> np.ndarray:
    """Values of numpy ``dtype`` (e.g. ``'>f4'``) at each byte offset of ``buf``, as float64."""
    b = np.frombuffer(bytes(buf), dtype=np.uint8) if isinstance(buf, bytes | bytearray) else buf
    size = np.dtype(dtype).itemsize
    offsets = np.asarray(offsets, dtype=np.int64)
    if not len(offsets):
        return np.zeros(0)
    raw = np.ascontiguousarray(b[offsets[:, None] + np.arange(size)])
    return raw.view(dtype).ravel().astype(np.float64)


def raw_limits(dtype: str) -> tuple[float, float]:
    """Smallest and largest raw value of a numpy dtype (floats: the finite range)."""
    dt = np.dtype(dtype)
    info = np.finfo(dt) if dt.kind == "f" else np.iinfo(dt)
    return float(info.min), float(info.max)


def to_raw(value: float, scale: float, offset: float, dtype: str, what: str) -> int | float:
    """Engineering value -> raw device value (inverse of ``raw * scale + offset``), checked to fit."""
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what}: cannot write {value!r}; send a finite number")
    raw = (v - offset) / scale
    dt = np.dtype(dtype)
    lo, hi = raw_limits(dtype)
    if dt.kind == "f":
        if not lo <= raw <= hi:
            raise ValueError(f"{what}: {value!r} does not fit the device type ({dtype})")
        return raw
    r = round(raw)
    if not lo <= r <= hi:
        raise ValueError(
            f"{what}: {value!r} gives raw {r}, outside the device type's range "
            f"[{lo:g}, {hi:g}]; check the value, scale and offset"
        )
    return int(r)


def check_write_range(tag_path: str, value: float, lo: float, hi: float) -> None:
    """Refuse a write outside the tag's declared range (or not a finite number)."""
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise ValueError(f"tag {tag_path}: cannot write {value!r}; send a finite number")
    if not lo <= float(value) <= hi:
        raise ValueError(
            f"tag {tag_path}: {value!r} is outside its range [{lo:g}, {hi:g}]; nothing was written"
        )


def quality_of(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Quality per value: NaN -> BAD_SENSOR, infinite or outside [lo, hi] -> BAD_OUT_OF_RANGE."""
    q = np.full(len(values), GOOD, dtype=np.uint8)
    nan = np.isnan(values)
    with np.errstate(invalid="ignore"):
        out = ~nan & (np.isinf(values) | (values < lo) | (values > hi))
    q[out] = BAD_OUT_OF_RANGE
    q[nan] = BAD_SENSOR
    return q


@dataclass(frozen=True)
class Scaling:
    """Per-tag ``value = raw * scale + offset``."""

    scale: float = 1.0
    offset: float = 0.0


def split_options(address: str, tag_path: str, allowed: str) -> tuple[str, Scaling]:
    """Split ``"<address> scale=0.1 offset=-40"`` into the address and its scaling.

    ``allowed`` describes the address forms for the error message.
    """
    parts = address.split()
    if not parts:
        raise ValueError(f"tag {tag_path}: empty address; allowed forms: {allowed}")
    core, opts = parts[0], parts[1:]
    scale, offset = 1.0, 0.0
    for opt in opts:
        key, sep, val = opt.partition("=")
        if not sep or key not in ("scale", "offset"):
            raise ValueError(
                f"tag {tag_path}: address option {opt!r} is not known; after the address only "
                f"'scale=<number>' and 'offset=<number>' are allowed (value = raw * scale + offset)"
            )
        try:
            num = float(val)
        except ValueError:
            raise ValueError(f"tag {tag_path}: {key}={val!r} is not a number") from None
        if not math.isfinite(num):
            raise ValueError(f"tag {tag_path}: {key} must be a finite number, got {val!r}")
        if key == "scale":
            if num == 0:
                raise ValueError(f"tag {tag_path}: scale must not be 0")
            scale = num
        else:
            offset = num
    return core, Scaling(scale, offset)


def group_spans(
    items: Sequence[tuple[int, int]], max_gap: int, max_len: int
) -> list[tuple[int, int, list[int]]]:
    """Group ``(start, length)`` items into spans read with one request each.

    Items sorted by start are merged while the gap to the span's end is at most ``max_gap`` and the
    span stays within ``max_len`` units. Returns ``(span_start, span_length, item_indices)``.
    """
    if max_len < 1 or max_gap < 0:
        raise ValueError(f"max_len must be >= 1 and max_gap >= 0, got {max_len}, {max_gap}")
    order = sorted(range(len(items)), key=lambda i: items[i][0])
    spans: list[tuple[int, int, list[int]]] = []
    cur_start = cur_end = 0
    members: list[int] = []
    for i in order:
        start, length = items[i]
        if length > max_len:
            raise ValueError(f"an item of {length} units is longer than one request allows ({max_len})")
        end = start + length
        if members and start - cur_end <= max_gap and max(end, cur_end) - cur_start <= max_len:
            cur_end = max(cur_end, end)
            members.append(i)
            continue
        if members:
            spans.append((cur_start, cur_end - cur_start, members))
        cur_start, cur_end, members = start, end, [i]
    if members:
        spans.append((cur_start, cur_end - cur_start, members))
    return spans


def check_write_target(connector, tag, value: float, addresses: dict):
    """What every PLC write checks before anything is sent: the tag is writable, read by this
    connector, the value in its range, and the connector connected. Returns the tag's address."""
    from axline.connect.base import CONNECTED

    if not tag.writable:
        raise PermissionError(f"tag {tag.path} is not writable; mark it 'writable: true' in the plant file")
    addr = addresses.get(tag.path)
    if addr is None:
        raise ValueError(f"tag {tag.path} is not read by connector {connector.name!r}")
    check_write_range(tag.path, value, tag.lo, tag.hi)
    if connector._client is None or connector.state != CONNECTED:
        raise ConnectionError(f"connector {connector.name!r} is not connected; the write to {tag.path} was not sent")
    return addr
