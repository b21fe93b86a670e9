"""Sparkplug B payloads: a small hand-written protobuf wire codec (no protoc, no generated code).

The fields are those of ``sparkplug_b.proto`` beside this module (wire-compatible with the
Sparkplug B specification). ``decode_payload`` is a pure function: malformed bytes raise
``SparkplugDecodeError`` (a ``ValueError``) with a short reason and nothing else; unknown fields are
skipped as protobuf requires. ``encode_payload`` writes the same fields back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# Sparkplug B data types (Metric.datatype)
UNKNOWN = 0
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING = 9, 10, 11, 12
DATETIME, TEXT, UUID, DATASET, BYTES, FILE, TEMPLATE = 13, 14, 15, 16, 17, 18, 19

DATATYPE_NAMES = {
    UNKNOWN: "Unknown", INT8: "Int8", INT16: "Int16", INT32: "Int32", INT64: "Int64", UINT8: "UInt8",
    UINT16: "UInt16", UINT32: "UInt32", UINT64: "UInt64", FLOAT: "Float", DOUBLE: "Double",
    BOOLEAN: "Boolean", STRING: "String", DATETIME: "DateTime", TEXT: "Text", UUID: "UUID",
    DATASET: "DataSet", BYTES: "Bytes", FILE: "File", TEMPLATE: "Template",
}
# integer types: datatype -> (bits, signed)
INT_TYPES = {
    INT8: (8, True), INT16: (16, True), INT32: (32, True), INT64: (64, True),
    UINT8: (8, False), UINT16: (16, False), UINT32: (32, False), UINT64: (64, False), DATETIME: (64, False),
}
NUMERIC_TYPES = frozenset(INT_TYPES) | {FLOAT, DOUBLE, BOOLEAN}
STRING_TYPES = frozenset({STRING, TEXT, UUID})

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")

# which oneof field carried the metric's value
VALUE_NONE, VALUE_INT, VALUE_LONG, VALUE_FLOAT, VALUE_DOUBLE, VALUE_BOOL, VALUE_STRING, VALUE_BYTES = range(8)
VALUE_OTHER = 8  # dataset, template or extension: skipped


class SparkplugDecodeError(ValueError):
    """The bytes are not a valid Sparkplug B payload; the message says where and why."""


@dataclass(slots=True)
class Metric:
    """A Sparkplug B metric: name or alias, timestamp, data type and value."""
    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None  # ms since epoch, UTC
    datatype: int = UNKNOWN
    value: int | float | bool | str | bytes | None = None
    is_null: bool = False
    is_historical: bool = False
    is_transient: bool = False
    value_field: int = VALUE_NONE  # which oneof field carried the value (VALUE_*)


@dataclass(slots=True)
class Payload:
    """A Sparkplug B payload: timestamp, metrics, sequence number and UUID."""
    timestamp: int | None = None  # ms since epoch, UTC
    metrics: list[Metric] = field(default_factory=list)
    seq: int | None = None
    uuid: str | None = None
    body: bytes | None = None


# ---------------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------------
def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise SparkplugDecodeError(f"truncated varint at byte {pos}")
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise SparkplugDecodeError(f"truncated varint at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _U64, pos
        shift += 7
        if shift >= 70:
            raise SparkplugDecodeError(f"varint longer than 10 bytes ending at byte {pos}")


def _skip(buf: bytes, pos: int, end: int, wire: int, fnum: int) -> int:
    if wire == 0:
        return _varint(buf, pos, end)[1]
    if wire == 1:
        pos += 8
    elif wire == 2:
        n, pos = _varint(buf, pos, end)
        pos += n
    elif wire == 5:
        pos += 4
    else:
        raise SparkplugDecodeError(f"field {fnum} has unsupported wire type {wire}")
    if pos > end:
        raise SparkplugDecodeError(f"field {fnum} runs past the end of its message")
    return pos


def _text(buf: bytes, pos: int, end: int, what: str) -> str:
    try:
        return buf[pos:end].decode("utf-8")
    except UnicodeDecodeError:
        raise SparkplugDecodeError(f"{what} is not UTF-8 text") from None


def _expect(wire: int, want: int, what: str) -> None:
    if wire != want:
        raise SparkplugDecodeError(f"{what} has wire type {wire}, expected {want}")


def _decode_metric(buf: bytes, pos: int, end: int) -> Metric:
    m = Metric()
    raw = None
    kind = VALUE_NONE
    while pos < end:
        key, pos = _varint(buf, pos, end)
        fnum, wire = key >> 3, key & 7
        if fnum == 0:
            raise SparkplugDecodeError("metric field number 0 is invalid")
        if fnum == 1:
            _expect(wire, 2, "metric name")
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise SparkplugDecodeError("metric name runs past the end of the metric")
            m.name = _text(buf, pos, pos + n, "metric name")
            pos += n
        elif fnum in (2, 3, 4, 5, 6, 7):
            _expect(wire, 0, f"metric field {fnum}")
            v, pos = _varint(buf, pos, end)
            if fnum == 2:
                m.alias = v
            elif fnum == 3:
                m.timestamp = v
            elif fnum == 4:
                m.datatype = v & _U32
            elif fnum == 5:
                m.is_historical = v != 0
            elif fnum == 6:
                m.is_transient = v != 0
            else:
                m.is_null = v != 0
        elif fnum == 10 or fnum == 11 or fnum == 14:
            _expect(wire, 0, f"metric value field {fnum}")
            v, pos = _varint(buf, pos, end)
            if fnum == 10:
                raw, kind = v & _U32, VALUE_INT
            elif fnum == 11:
                raw, kind = v, VALUE_LONG
            else:
                raw, kind = v != 0, VALUE_BOOL
        elif fnum == 12:
            _expect(wire, 5, "metric float_value")
            if pos + 4 > end:
                raise SparkplugDecodeError("truncated float_value")
            raw, kind = _F32.unpack_from(buf, pos)[0], VALUE_FLOAT
            pos += 4
        elif fnum == 13:
            _expect(wire, 1, "metric double_value")
            if pos + 8 > end:
                raise SparkplugDecodeError("truncated double_value")
            raw, kind = _F64.unpack_from(buf, pos)[0], VALUE_DOUBLE
            pos += 8
        elif fnum == 15 or fnum == 16:
            _expect(wire, 2, f"metric value field {fnum}")
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise SparkplugDecodeError(f"metric value field {fnum} runs past the end of the metric")
            if fnum == 15:
                raw, kind = _text(buf, pos, pos + n, "metric string_value"), VALUE_STRING
            else:
                raw, kind = bytes(buf[pos:pos + n]), VALUE_BYTES
            pos += n
        else:
            if fnum in (17, 18, 19):
                raw, kind = None, VALUE_OTHER
            pos = _skip(buf, pos, end, wire, fnum)
    if kind == VALUE_INT or kind == VALUE_LONG:
        spec = INT_TYPES.get(m.datatype)
        if spec is not None:
            bits, signed = spec
            raw &= (1 << bits) - 1
            if signed and raw >> (bits - 1):
                raw -= 1 << bits
    m.value = raw
    m.value_field = kind
    return m


def decode_payload(data: bytes | bytearray | memoryview) -> Payload:
    """Parse a Sparkplug B payload. Raises ``SparkplugDecodeError`` on malformed input, nothing else."""
    buf = bytes(data)
    end = len(buf)
    p = Payload()
    pos = 0
    while pos < end:
        key, pos = _varint(buf, pos, end)
        fnum, wire = key >> 3, key & 7
        if fnum == 0:
            raise SparkplugDecodeError("payload field number 0 is invalid")
        if fnum == 2:
            _expect(wire, 2, "metrics")
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise SparkplugDecodeError(f"metric {len(p.metrics)} runs past the end of the payload")
            try:
                p.metrics.append(_decode_metric(buf, pos, pos + n))
            except SparkplugDecodeError as e:
                raise SparkplugDecodeError(f"metric {len(p.metrics)}: {e}") from None
            pos += n
        elif fnum == 1 or fnum == 3:
            _expect(wire, 0, "timestamp" if fnum == 1 else "seq")
            v, pos = _varint(buf, pos, end)
            if fnum == 1:
                p.timestamp = v
            else:
                p.seq = v
        elif fnum == 4 or fnum == 5:
            _expect(wire, 2, "uuid" if fnum == 4 else "body")
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise SparkplugDecodeError(f"field {fnum} runs past the end of the payload")
            if fnum == 4:
                p.uuid = _text(buf, pos, pos + n, "uuid")
            else:
                p.body = buf[pos:pos + n]
            pos += n
        else:
            pos = _skip(buf, pos, end, wire, fnum)
    return p


# ---------------------------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------------------------
def _put_varint(out: bytearray, v: int) -> None:
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _put_bytes(out: bytearray, fnum: int, data: bytes) -> None:
    _put_varint(out, (fnum << 3) | 2)
    _put_varint(out, len(data))
    out += data


def _check_uint(v: int | None, what: str) -> None:
    if v is not None and not (isinstance(v, int) and 0 <= v <= _U64):
        raise ValueError(f"{what} must be an integer in 0..2**64-1, got {v!r}")


def encode_value(metric: Metric, out: bytearray) -> None:
    """Append the value field of ``metric`` (chosen by its datatype) to ``out``."""
    dt, v = metric.datatype, metric.value
    if dt in INT_TYPES:
        bits, signed = INT_TYPES[dt]
        if isinstance(v, float):
            if not v.is_integer():
                raise ValueError(f"metric {metric.name!r}: {v!r} is not a whole number for {DATATYPE_NAMES[dt]}")
            v = int(v)
        if not isinstance(v, int):
            raise ValueError(f"metric {metric.name!r}: {DATATYPE_NAMES[dt]} needs an integer, got {v!r}")
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not lo <= v <= hi:
            raise ValueError(f"metric {metric.name!r}: {v} is outside the {DATATYPE_NAMES[dt]} range {lo}..{hi}")
        if bits <= 32:
            out.append(10 << 3)
            _put_varint(out, v & _U32)
        else:
            out.append(11 << 3)
            _put_varint(out, v & _U64)
    elif dt == FLOAT:
        out.append((12 << 3) | 5)
        out += _F32.pack(float(v))
    elif dt == DOUBLE:
        out.append((13 << 3) | 1)
        out += _F64.pack(float(v))
    elif dt == BOOLEAN:
        out.append(14 << 3)
        out.append(1 if v else 0)
    elif dt in STRING_TYPES:
        if not isinstance(v, str):
            raise ValueError(f"metric {metric.name!r}: {DATATYPE_NAMES[dt]} needs a str, got {v!r}")
        _put_bytes(out, 15, v.encode("utf-8"))
    elif dt in (BYTES, FILE):
        if not isinstance(v, bytes | bytearray):
            raise ValueError(f"metric {metric.name!r}: {DATATYPE_NAMES[dt]} needs bytes, got {v!r}")
        _put_bytes(out, 16, bytes(v))
    else:
        raise ValueError(f"metric {metric.name!r}: cannot encode a value of datatype {dt} "
                         f"({DATATYPE_NAMES.get(dt, 'unknown')}); use one of Int8..Text or Bytes")


def _encode_metric(m: Metric) -> bytes:
    out = bytearray()
    if m.name is not None:
        _put_bytes(out, 1, m.name.encode("utf-8"))
    for fnum, v, what in ((2, m.alias, "alias"), (3, m.timestamp, "timestamp")):
        if v is not None:
            _check_uint(v, f"metric {m.name!r} {what}")
            out.append(fnum << 3)
            _put_varint(out, v)
    if m.datatype:
        if not 0 <= m.datatype <= _U32:
            raise ValueError(f"metric {m.name!r}: datatype must be in 0..2**32-1, got {m.datatype}")
        out.append(4 << 3)
        _put_varint(out, m.datatype)
    for fnum, flag in ((5, m.is_historical), (6, m.is_transient), (7, m.is_null)):
        if flag:
            out.append(fnum << 3)
            out.append(1)
    if not m.is_null and m.value is not None:
        encode_value(m, out)
    return bytes(out)


def encode_payload(p: Payload) -> bytes:
    """Serialise ``p``. Raises ``ValueError`` naming the metric when a value does not fit its datatype."""
    out = bytearray()
    if p.timestamp is not None:
        _check_uint(p.timestamp, "payload timestamp")
        out.append(1 << 3)
        _put_varint(out, p.timestamp)
    for m in p.metrics:
        _put_bytes(out, 2, _encode_metric(m))
    if p.seq is not None:
        _check_uint(p.seq, "payload seq")
        out.append(3 << 3)
        _put_varint(out, p.seq)
    if p.uuid is not None:
        _put_bytes(out, 4, p.uuid.encode("utf-8"))
    if p.body is not None:
        _put_bytes(out, 5, bytes(p.body))
    return bytes(out)
