"""JSON payloads to readings, as the MQTT connector's address says: timestamps in any unit, the
value forms (number, ``{"value", "ts", "q"}`` object, batch form), qualities and the tag's range.

Malformed input never raises out of the parser: ``parse_json_payload`` returns readings (a value
of the wrong type becomes a NaN reading with quality BAD) and ``DeadLetter`` records with the reason.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from axline.batch import BAD, BAD_OUT_OF_RANGE, GOOD, Batch, Row
from axline.connect.deadletter import DeadLetter
from axline.connect.json_mapping import MISSING, JsonAddress, JsonMapping, PayloadError, Rule, select

log = logging.getLogger(__name__)

_SCALE = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT64_MAX = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _auto_unit(x: float) -> str:
    a = abs(x)
    return "ns" if a >= 1e17 else "us" if a >= 1e14 else "ms" if a >= 1e11 else "s"


def timestamp_ns(x: Any, unit: str) -> int:
    """One JSON timestamp -> int ns UTC. Raises PayloadError saying what is wrong."""
    t = type(x)
    if t is int or t is float:
        if t is float and not math.isfinite(x):
            raise PayloadError(f"timestamp {x!r} is not a finite number")
        u = _auto_unit(x) if unit == "auto" else unit
        if u == "iso":
            raise PayloadError(f"timestamp {x!r} is a number but the unit is iso; give an ISO 8601 string")
        if t is int:
            ns = x * _SCALE[u]
        else:  # whole and fractional parts apart, so that 1767225600.25 s is exact
            w = math.floor(x)
            ns = int(w) * _SCALE[u] + round((x - w) * _SCALE[u])
        if not 0 <= ns <= _INT64_MAX:
            raise PayloadError(f"timestamp {x!r} ({u}) is outside 1970..2262")
        return int(ns)
    if t is str:
        if unit not in ("auto", "iso"):
            raise PayloadError(f"timestamp {x[:40]!r} is text but the unit is {unit}; give a number")
        try:
            dt = datetime.fromisoformat(x)
        except ValueError:
            raise PayloadError(f"timestamp {x[:40]!r} is not ISO 8601 (e.g. 2026-01-01T08:00:00Z)") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        try:
            ns = ((dt - _EPOCH) // _US) * 1000
        except OverflowError:
            ns = -1
        if not 0 <= ns <= _INT64_MAX:
            raise PayloadError(f"timestamp {x[:40]!r} is outside 1970..2262")
        return ns
    raise PayloadError(f"timestamp is {_kind(x)}; expected a number or an ISO 8601 string")


def _ts_array(xs: list, unit: str) -> np.ndarray:
    if unit in ("ns", "us", "ms", "s") and all(type(x) is int for x in xs):
        lim = _INT64_MAX // _SCALE[unit]
        try:
            arr = np.array(xs, dtype=np.int64)
        except OverflowError:
            raise PayloadError(f"a timestamp in 'ts' is outside 1970..2262 ({unit})") from None
        if len(arr) and (arr.min() < 0 or arr.max() > lim):
            raise PayloadError(f"a timestamp in 'ts' is outside 1970..2262 ({unit})")
        return arr * _SCALE[unit] if unit != "ns" else arr
    out = np.empty(len(xs), dtype=np.int64)
    for i, x in enumerate(xs):
        try:
            out[i] = timestamp_ns(x, unit)
        except PayloadError as e:
            raise PayloadError(f"ts[{i}]: {e}") from None
    return out


def _kind(x: Any) -> str:
    if x is None:
        return "null"
    return {bool: "true/false", str: "text", list: "a list", dict: "an object", int: "a number",
            float: "a number"}.get(type(x), type(x).__name__)


def _quality(x: Any) -> int | None:
    return x if type(x) is int and 0 <= x <= 255 else None


def extract(root: Any, addr: JsonAddress, unit: str, now_ns: int
             ) -> tuple[np.ndarray | int, np.ndarray | float, np.ndarray | int, str | None]:
    """(ts, value, quality, soft_error) of one rule. A hard problem raises PayloadError; a value of the
    wrong type gives NaN with quality BAD and ``soft_error`` set."""
    node = select(root, addr.selector)
    if node is MISSING:
        raise PayloadError(f"{addr.selector_text} not found in the payload")
    ts_node = q_node = MISSING
    if addr.ts_selector is not None:
        ts_node = select(root, addr.ts_selector)
        if ts_node is MISSING:
            raise PayloadError(f"timestamp {addr.ts_text} not found in the payload")
    if addr.q_selector is not None:
        q_node = select(root, addr.q_selector)
    if type(node) is dict:
        if "value" not in node:
            raise PayloadError(f"the object at {addr.selector_text} has no 'value' key; point the address at "
                               f"the number, e.g. '<topic>#$.temperature'")
        v = node["value"]
        if ts_node is MISSING:
            ts_node = node.get("ts", node.get("timestamp", MISSING))
        if q_node is MISSING:
            q_node = node.get("q", node.get("quality", MISSING))
    else:
        v = node
    soft = None
    if type(v) is list:
        n = len(v)
        if n == 0:
            raise PayloadError("the batch form has an empty 'value' list")
        if type(ts_node) is not list or len(ts_node) != n:
            raise PayloadError(f"the batch form needs 'ts' as a list as long as 'value' ({n})")
        ts = _ts_array(ts_node, unit)
        if q_node is MISSING:
            q = np.zeros(n, dtype=np.uint8)
        elif type(q_node) is list and len(q_node) == n and all(_quality(x) is not None for x in q_node):
            q = np.array(q_node, dtype=np.uint8)
        elif _quality(q_node) is not None:
            q = np.full(n, q_node, dtype=np.uint8)
        else:
            q = np.full(n, BAD, dtype=np.uint8)
            soft = f"quality must be an integer 0..255 or a list of them as long as 'value' ({n})"
        if all(x is None or type(x) in (int, float, bool) for x in v):
            try:
                val = np.array(v, dtype=np.float64)
            except OverflowError:
                val = np.array([_to_float(x) for x in v], dtype=np.float64)
                huge = [i for i, x in enumerate(v) if type(x) is int and math.isnan(val[i])]
                q[huge] = np.maximum(q[huge], BAD)
                soft = f"value[{huge[0]}] is an integer too large for a float ({len(huge)} such values)"
        else:
            val = np.array([_to_float(x) for x in v], dtype=np.float64)
            bad = [i for i, x in enumerate(v) if not (x is None or type(x) in (int, float, bool))]
            q[bad] = np.maximum(q[bad], BAD)
            soft = f"value[{bad[0]}] is {_kind(v[bad[0]])}, expected a number ({len(bad)} such values)"
        return ts, val, q, soft
    ts = now_ns if ts_node is MISSING else timestamp_ns(ts_node, unit)
    q = GOOD
    if q_node is not MISSING:
        q = _quality(q_node)
        if q is None:
            q, soft = BAD, f"quality {str(q_node)[:40]!r} is not an integer 0..255"
    t = type(v)
    if t is float or t is int or t is bool or v is None:
        fv = _to_float(v)
        if t is int and math.isnan(fv):
            q, soft = max(q, BAD), f"value {str(v)[:40]}... does not fit a float"
        return ts, fv, q, soft
    return ts, math.nan, max(q, BAD), f"value at {addr.selector_text} is {_kind(v)}, expected a number"


def _to_float(x: Any) -> float:
    if x is None or not isinstance(x, int | float):
        return math.nan
    try:
        return float(x)
    except OverflowError:
        return math.nan


def load_json(payload: bytes) -> Any:
    """A payload parsed as JSON; PayloadError (empty, not UTF-8, not JSON, too deep) says why not."""
    if not payload:
        raise PayloadError("empty payload")
    try:
        return json.loads(payload.decode("utf-8"))
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None
    except UnicodeDecodeError as e:
        raise PayloadError(f"payload is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except ValueError as e:
        raise PayloadError(f"not valid JSON ({e})") from None


def parse_json_payload(topic: str, payload: bytes, mapping: JsonMapping, now_ns: int
                       ) -> tuple[Batch, list[DeadLetter]]:
    """One MQTT message -> (readings, dead letters). Pure; never raises on any input bytes.

    Readings get quality BAD when the value is NaN/null or of the wrong type (with a dead letter),
    BAD_OUT_OF_RANGE outside the tag's range, unless the payload already gave a worse code.
    """
    got, dead = parse_json_readings(topic, payload, mapping, now_ns)
    return (rows_to_batch(got) if type(got) is list else got), dead


def parse_json_readings(topic: str, payload: bytes, mapping: JsonMapping, now_ns: int
                        ) -> tuple[list[Row] | Batch, list[DeadLetter]]:
    """As ``parse_json_payload``, but a message of single readings comes back as a list of plain
    ``(path, ts, value, quality)`` rows (no arrays made per message); the batch form as a Batch."""
    try:
        return _parse(topic, bytes(payload), mapping, now_ns)
    except Exception as e:  # noqa: BLE001 - the last guard: a parser bug must not kill the network thread
        log.exception("MQTT JSON parser failed on topic %r", topic)
        return [], [DeadLetter(f"internal parser error: {type(e).__name__}: {e}", topic, bytes(payload), now_ns)]


def rows_to_batch(rows: list[Row]) -> Batch:
    """A Batch of ``(path, ts, value, quality)`` rows, in their order."""
    if not rows:
        return Batch.empty()
    lookup: dict[str, int] = {}
    idx = [lookup.setdefault(r[0], len(lookup)) for r in rows]
    return Batch(list(lookup), np.array(idx, dtype=np.int32), np.array([r[1] for r in rows], dtype=np.int64),
                 np.array([r[2] for r in rows], dtype=np.float64), np.array([r[3] for r in rows], dtype=np.uint8))


def _parse(topic: str, payload: bytes, mapping: JsonMapping, now_ns: int
           ) -> tuple[list[Row] | Batch, list[DeadLetter]]:
    rules = mapping.rules_for(topic)
    paths: list[str] = mapping.paths
    if not rules:
        if mapping.unmapped == "ignore":
            mapping.unmapped_count += 1
            return [], []
        if mapping.unmapped == "deadletter":
            return [], [DeadLetter("no tag is mapped to this topic", topic, payload, now_ns)]
        if "+" in topic or "#" in topic or not topic:
            return [], [DeadLetter("topic is not a tag path", topic, payload, now_ns)]
        rules = [Rule(0, JsonAddress(topic), mapping.timestamp_unit, -math.inf, math.inf)]
        paths = [topic]
    try:
        root = load_json(payload)
    except PayloadError as e:
        return [], [DeadLetter(str(e), topic, payload, now_ns)]
    dead: list[DeadLetter] = []
    parts: list[tuple[int, Any, Any, Any, Rule]] = []
    scalar = True
    for rule in rules:
        try:
            ts, val, q, soft = extract(root, rule.addr, rule.unit, now_ns)
        except PayloadError as e:
            dead.append(DeadLetter(f"{paths[rule.slot]}: {e}", topic, payload, now_ns))
            continue
        if soft:
            dead.append(DeadLetter(f"{paths[rule.slot]}: {soft}", topic, payload, now_ns))
        if isinstance(ts, np.ndarray):
            scalar = False
        parts.append((rule.slot, ts, val, q, rule))
    if scalar:  # single readings (the usual message): plain values, no arrays
        return [(paths[slot], ts, val, _limit_one(val, q, rule.lo, rule.hi))
                for slot, ts, val, q, rule in parts], dead
    if len(parts) == 1:
        slot, ts, val, q, rule = parts[0]
        q = _apply_limits(val, q, rule.lo, rule.hi)
        return Batch((paths[slot],), np.zeros(len(ts), dtype=np.int32), ts, val, q), dead
    used = {slot: i for i, slot in enumerate(dict.fromkeys(p[0] for p in parts))}
    idx_l, ts_l, val_l, q_l = [], [], [], []
    for slot, ts, val, q, rule in parts:
        ts_a = np.atleast_1d(np.asarray(ts, dtype=np.int64))
        val_a = np.atleast_1d(np.asarray(val, dtype=np.float64))
        q_a = _apply_limits(val_a, np.atleast_1d(np.asarray(q, dtype=np.uint8)), rule.lo, rule.hi)
        idx_l.append(np.full(len(ts_a), used[slot], dtype=np.int32))
        ts_l.append(ts_a)
        val_l.append(val_a)
        q_l.append(q_a)
    uniq = [paths[s] for s in used]
    return Batch(uniq, np.concatenate(idx_l), np.concatenate(ts_l), np.concatenate(val_l), np.concatenate(q_l)), dead


def _limit_one(val: float, q: int, lo: float, hi: float) -> int:
    """``_apply_limits`` for one reading."""
    if q >= BAD:
        return q
    if not math.isfinite(val):
        return BAD
    if val < lo or val > hi:
        return BAD_OUT_OF_RANGE
    return q


def _apply_limits(val: np.ndarray, q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    q = np.array(q, dtype=np.uint8, copy=True)
    ok = q < BAD
    finite = np.isfinite(val)
    q[ok & ~finite] = BAD
    if lo > -math.inf or hi < math.inf:
        with np.errstate(invalid="ignore"):
            q[ok & finite & ((val < lo) | (val > hi))] = BAD_OUT_OF_RANGE
    return q
