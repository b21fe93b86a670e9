"""MQTT connector for JSON payloads, and the unified-namespace (UNS) payload codec.

Address grammar (a tag's ``source.address``)::

    address  := topic [ "#" selector ] { ";" option }
    topic    := an MQTT topic filter: "+" matches one level, a final "#" all remaining levels
    selector := "$" { "." key | "[" index "]" | "['" key "']" }      dotted path from the payload root
              | "/" JSON pointer (RFC 6901), e.g. "/sensors/0/temp"
    option   := "ts=" selector [ ":" unit ]     where the reading's time is; unit auto|s|ms|us|ns|iso
              | "q=" selector                   where a quality code (0..255, axline.batch codes) is
              | "write=" topic                  the topic a write to this tag publishes to

The selector starts at the first ``#`` that is followed by ``$`` or ``/`` and does not begin a topic
level; a ``#`` that begins a level is the wildcard, so a wildcard with a selector is written ``a/##$.x``.
Examples::

    plant/line1/press/temp                       payload 21.5, or {"value": 21.5, "ts": 1767225600000}
    sensors/+/data#$.temperature                 {"temperature": 21.5, ...} from any sensor
    press1/status#$.axes[2].load;ts=$.time:iso    {"time": "2026-01-01T00:00:00Z", "axes": [...]}

The value the selector points at may be a number (or true/false), ``null`` (stored as NaN with
quality BAD), an object ``{"value": v, "ts": t, "q": code}`` (``timestamp``/``quality`` also
accepted), or the batch form ``{"ts": [t, ...], "value": [v, ...], "q": [code, ...]}``. Timestamps
without a ``ts=`` option come from the object's ``ts``; without any, the receive time is used. The
unit ``auto`` (default) reads numbers by magnitude (>= 1e17 ns, >= 1e14 us, >= 1e11 ms, else s;
right for times after 1973) and strings as ISO 8601 (UTC when no offset is given).

Writes (only to tags marked ``writable``) publish ``{"ts": ns, "value": v}`` (or the plain number,
option ``write_format``) with QoS 1 to the address's ``write=`` topic, else to ``write_topic``
(default ``{topic}/set``), and wait for the broker's acknowledgement.

The unified namespace is the trivial case: a tag's default address is its path, so a topic equal
to the tag path with payload ``{"ts": ns, "value": v, "q": 0}`` maps without configuration.
``encode_uns_batch`` / ``decode_uns`` are that format's codec (the edge -> central bridge).

Malformed input never raises out of the parser: ``parse_json_payload`` returns readings (a value
of the wrong type becomes a NaN reading with quality BAD) and ``DeadLetter`` records with the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import numpy as np

from axline.batch import BAD, BAD_OUT_OF_RANGE, GOOD, Batch
from axline.connect.base import CONNECTED, Connector, Sink
from axline.connect.deadletter import DeadLetter, DeadLetterStore
from axline.connect.registry import Option, Schema
from axline.plant import Tag

log = logging.getLogger(__name__)

TS_UNITS = ("auto", "s", "ms", "us", "ns", "iso")
_SCALE = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT64_MAX = 2**63 - 1
_MISSING = object()
_NUMBER = (int, float)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class PayloadError(ValueError):
    """A payload that cannot become readings; the message is the dead letter's reason."""


# ---------------------------------------------------------------------------------------------
# addresses and selectors
# ---------------------------------------------------------------------------------------------
_DOT_RE = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def compile_selector(text: str) -> tuple[str, ...]:
    """``$.a.b[0]`` or ``/a/b/0`` -> ("a", "b", "0"). Raises ValueError with the grammar on a typo."""
    if text.startswith("$"):
        steps, pos = [], 1
        while pos < len(text):
            m = _DOT_RE.match(text, pos)
            if not m:
                raise ValueError(f"selector {text!r}: cannot read {text[pos:]!r}; write it as "
                                 f"$.key.key[index] or ['key with spaces']")
            steps.append(next(g for g in m.groups() if g is not None))
            pos = m.end()
        return tuple(steps)
    if text.startswith("/"):
        return tuple(s.replace("~1", "/").replace("~0", "~") for s in text[1:].split("/"))
    if text == "":
        return ()
    raise ValueError(f"selector {text!r} must start with '$' (dotted path) or '/' (JSON pointer)")


def select(node: Any, steps: tuple[str, ...]) -> Any:
    """The part of a parsed JSON document that ``steps`` names, or ``_MISSING``."""
    for s in steps:
        t = type(node)
        if t is dict:
            node = node.get(s, _MISSING)
            if node is _MISSING:
                return node
        elif t is list and s.isascii() and s.isdigit():
            i = int(s)
            if i >= len(node):
                return _MISSING
            node = node[i]
        else:
            return _MISSING
    return node


def _check_topic_filter(topic: str, what: str, wildcards: bool = True) -> None:
    if not topic:
        raise ValueError(f"{what}: the topic is empty")
    if "\0" in topic:
        raise ValueError(f"{what}: the topic contains a NUL character")
    levels = topic.split("/")
    for i, lv in enumerate(levels):
        if ("+" in lv or "#" in lv) and not wildcards:
            raise ValueError(f"{what}: {topic!r} has a wildcard; a topic to publish to cannot have '+' or '#'")
        if "+" in lv and lv != "+":
            raise ValueError(f"{what}: in {topic!r} '+' must fill a whole level, e.g. 'a/+/b'")
        if "#" in lv and (lv != "#" or i != len(levels) - 1):
            raise ValueError(f"{what}: in {topic!r} '#' must be the whole last level, e.g. 'a/b/#' "
                             f"(a '#' wildcard followed by a selector is written 'a/b/##$.key')")


def _filter_regex(topic: str) -> re.Pattern | None:
    """A regex for a wildcard filter; None when the filter is an exact topic."""
    if "+" not in topic and "#" not in topic:
        return None
    parts = []
    for lv in topic.split("/"):
        if lv == "+":
            parts.append("[^/]*")
        elif lv == "#":
            # 'a/#' also matches 'a' itself
            return re.compile("/".join(parts) + ("(?:/.*)?" if parts else ".*"), re.S)
        else:
            parts.append(re.escape(lv))
    return re.compile("/".join(parts), re.S)


_SEL_RE = re.compile(r"#(?=[$/])")


@dataclass(frozen=True)
class JsonAddress:
    """A parsed tag address: which topic, where in the payload, and the options."""

    topic: str
    selector: tuple[str, ...] = ()
    selector_text: str = "$"
    ts_selector: tuple[str, ...] | None = None
    ts_text: str = ""
    ts_unit: str | None = None  # None: the connector's timestamp_unit
    q_selector: tuple[str, ...] | None = None
    write_topic: str | None = None


def parse_address(address: str) -> JsonAddress:
    """Parse a tag address (grammar in the module docstring). Raises ValueError saying what is wrong."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError("the address is empty; give a topic, e.g. 'plant/line1/press/temp#$.value'")
    head, *opts = address.split(";")
    cut = next((m.start() for m in _SEL_RE.finditer(head) if m.start() > 0 and head[m.start() - 1] != "/"), -1)
    if cut >= 0:
        topic, sel_text = head[:cut], head[cut + 1:]
    else:
        topic, sel_text = head, "$"
    _check_topic_filter(topic, f"address {address!r}")
    selector = compile_selector(sel_text)
    ts_sel = q_sel = write = unit = None
    ts_text = ""
    for opt in opts:
        key, eq, val = opt.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"address {address!r}: option {opt!r} needs a value, e.g. 'ts=$.time:ms'")
        if key == "ts":
            if ":" in val and val.rpartition(":")[2] in TS_UNITS:
                val, _, unit = val.rpartition(":")
            ts_text = val or "$.ts"
            ts_sel = compile_selector(ts_text)
        elif key == "q":
            q_sel = compile_selector(val)
        elif key == "write":
            _check_topic_filter(val, f"address {address!r} write=", wildcards=False)
            write = val
        else:
            raise ValueError(f"address {address!r}: unknown option {key!r}; allowed: ts, q, write")
    return JsonAddress(topic, selector, sel_text, ts_sel, ts_text, unit, q_sel, write)


@dataclass(frozen=True)
class _Rule:
    slot: int  # index into JsonMapping.paths
    addr: JsonAddress
    unit: str
    lo: float
    hi: float


@dataclass
class JsonMapping:
    """Topic (+ selector) -> tag rules, built once per connector. ``unmapped`` says what happens to a
    message on a topic no rule covers: ``ignore`` (counted), ``deadletter``, or ``uns`` (the topic is
    taken as the tag path and the payload read in the UNS form)."""

    paths: list[str] = field(default_factory=list)
    exact: dict[str, list[_Rule]] = field(default_factory=dict)
    wild: list[tuple[re.Pattern, _Rule]] = field(default_factory=list)
    unmapped: str = "ignore"
    timestamp_unit: str = "auto"
    unmapped_count: int = 0
    _cache: dict[str, list[_Rule]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_tags(cls, tags: Iterable[Tag], timestamp_unit: str = "auto", unmapped: str = "ignore") -> JsonMapping:
        """Rules from plant tags: each tag's ``source.address`` (default: its path) and its range."""
        entries = []
        for t in tags:
            addr = t.source.address if t.source else t.path
            entries.append((t.path, addr, t.lo, t.hi))
        return cls.from_addresses(entries, timestamp_unit, unmapped)

    @classmethod
    def from_addresses(cls, entries: Iterable[tuple[str, str, float, float] | tuple[str, str]],
                       timestamp_unit: str = "auto", unmapped: str = "ignore") -> JsonMapping:
        """Rules from ``(tag_path, address[, lo, hi])`` entries."""
        if timestamp_unit not in TS_UNITS:
            raise ValueError(f"timestamp_unit {timestamp_unit!r} is not allowed; choose one of {', '.join(TS_UNITS)}")
        if unmapped not in ("ignore", "deadletter", "uns"):
            raise ValueError(f"unmapped {unmapped!r} is not allowed; choose ignore, deadletter or uns")
        m = cls(unmapped=unmapped, timestamp_unit=timestamp_unit)
        for e in entries:
            path, address = e[0], e[1]
            lo, hi = (e[2], e[3]) if len(e) == 4 else (-math.inf, math.inf)
            try:
                addr = parse_address(address)
            except ValueError as err:
                raise ValueError(f"tag {path}: {err}") from None
            rule = _Rule(len(m.paths), addr, addr.ts_unit or timestamp_unit, float(lo), float(hi))
            m.paths.append(path)
            rx = _filter_regex(addr.topic)
            if rx is None:
                m.exact.setdefault(addr.topic, []).append(rule)
            else:
                m.wild.append((rx, rule))
        return m

    def topic_filters(self) -> list[str]:
        """The distinct topic filters to subscribe to."""
        seen = dict.fromkeys(list(self.exact) + [r.addr.topic for _, r in self.wild])
        return list(seen)

    def rules_for(self, topic: str) -> list[_Rule]:
        rules = self.exact.get(topic)
        if not self.wild:
            return rules or []
        hit = self._cache.get(topic)
        if hit is None:
            hit = list(rules or []) + [r for rx, r in self.wild if rx.fullmatch(topic)]
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[topic] = hit
        return hit


# ---------------------------------------------------------------------------------------------
# the pure parsers
# ---------------------------------------------------------------------------------------------
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


def _extract(root: Any, addr: JsonAddress, unit: str, now_ns: int
             ) -> tuple[np.ndarray | int, np.ndarray | float, np.ndarray | int, str | None]:
    """(ts, value, quality, soft_error) of one rule. A hard problem raises PayloadError; a value of the
    wrong type gives NaN with quality BAD and ``soft_error`` set."""
    node = select(root, addr.selector)
    if node is _MISSING:
        raise PayloadError(f"{addr.selector_text} not found in the payload")
    ts_node = q_node = _MISSING
    if addr.ts_selector is not None:
        ts_node = select(root, addr.ts_selector)
        if ts_node is _MISSING:
            raise PayloadError(f"timestamp {addr.ts_text} not found in the payload")
    if addr.q_selector is not None:
        q_node = select(root, addr.q_selector)
    if type(node) is dict:
        if "value" not in node:
            raise PayloadError(f"the object at {addr.selector_text} has no 'value' key; point the address at "
                               f"the number, e.g. '<topic>#$.temperature'")
        v = node["value"]
        if ts_node is _MISSING:
            ts_node = node.get("ts", node.get("timestamp", _MISSING))
        if q_node is _MISSING:
            q_node = node.get("q", node.get("quality", _MISSING))
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
        if q_node is _MISSING:
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
    ts = now_ns if ts_node is _MISSING else timestamp_ns(ts_node, unit)
    q = GOOD
    if q_node is not _MISSING:
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


def _load(payload: bytes) -> Any:
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
    try:
        return _parse(topic, bytes(payload), mapping, now_ns)
    except Exception as e:  # noqa: BLE001 - the last guard: a parser bug must not kill the network thread
        log.exception("MQTT JSON parser failed on topic %r", topic)
        return Batch.empty(), [DeadLetter(f"internal parser error: {type(e).__name__}: {e}", topic,
                                          bytes(payload), now_ns)]


def _parse(topic: str, payload: bytes, mapping: JsonMapping, now_ns: int) -> tuple[Batch, list[DeadLetter]]:
    rules = mapping.rules_for(topic)
    paths: list[str] = mapping.paths
    if not rules:
        if mapping.unmapped == "ignore":
            mapping.unmapped_count += 1
            return Batch.empty(), []
        if mapping.unmapped == "deadletter":
            return Batch.empty(), [DeadLetter("no tag is mapped to this topic", topic, payload, now_ns)]
        if "+" in topic or "#" in topic or not topic:
            return Batch.empty(), [DeadLetter("topic is not a tag path", topic, payload, now_ns)]
        rules = [_Rule(0, JsonAddress(topic), mapping.timestamp_unit, -math.inf, math.inf)]
        paths = [topic]
    try:
        root = _load(payload)
    except PayloadError as e:
        return Batch.empty(), [DeadLetter(str(e), topic, payload, now_ns)]
    dead: list[DeadLetter] = []
    parts: list[tuple[int, Any, Any, Any, _Rule]] = []
    for rule in rules:
        try:
            ts, val, q, soft = _extract(root, rule.addr, rule.unit, now_ns)
        except PayloadError as e:
            dead.append(DeadLetter(f"{paths[rule.slot]}: {e}", topic, payload, now_ns))
            continue
        if soft:
            dead.append(DeadLetter(f"{paths[rule.slot]}: {soft}", topic, payload, now_ns))
        parts.append((rule.slot, ts, val, q, rule))
    if not parts:
        return Batch.empty(), dead
    if len(parts) == 1 and isinstance(parts[0][1], np.ndarray):
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


def _apply_limits(val: np.ndarray, q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    q = np.array(q, dtype=np.uint8, copy=True)
    ok = q < BAD
    finite = np.isfinite(val)
    q[ok & ~finite] = BAD
    if lo > -math.inf or hi < math.inf:
        with np.errstate(invalid="ignore"):
            q[ok & finite & ((val < lo) | (val > hi))] = BAD_OUT_OF_RANGE
    return q


# ---------------------------------------------------------------------------------------------
# the unified-namespace codec
# ---------------------------------------------------------------------------------------------
def _num(v: float) -> str:
    if v != v:
        return "null"
    if v == math.inf:
        return "1e999"
    if v == -math.inf:
        return "-1e999"
    return repr(v)


def encode_uns_batch(batch: Batch, prefix: str = "") -> list[tuple[str, bytes]]:
    """One message per tag path: topic = ``prefix`` + path, payload ``{"ts": ns, "value": v[, "q": q]}``
    or the batch form ``{"ts": [...], "value": [...][, "q": [...]]}``. ``q`` is left out when all GOOD.

    Standard JSON: NaN is written as ``null``, +-infinity as ``1e999``/``-1e999`` (which parse back
    to infinity), so ``decode_uns`` gives back exactly the same timestamps, values and qualities.
    """
    n = len(batch)
    if not n:
        return []
    idx = batch.idx
    if len(batch.paths) == 1:
        groups = [np.arange(n)]
    else:
        order = np.argsort(idx, kind="stable")
        cuts = np.flatnonzero(np.diff(idx[order])) + 1
        groups = np.split(order, cuts)
    ts_all, val_all, q_all = batch.ts, batch.value, batch.quality
    out = []
    dumps = json.dumps
    for g in groups:
        topic = prefix + batch.paths[int(idx[g[0]])]
        if len(g) == 1:
            i = int(g[0])
            q = int(q_all[i])
            qs = f',"q":{q}' if q else ""
            body = f'{{"ts":{int(ts_all[i])},"value":{_num(float(val_all[i]))}{qs}}}'
        else:
            vals = val_all[g]
            if np.isfinite(vals).all():
                vs = dumps(vals.tolist(), separators=(",", ":"))
            else:
                vs = "[" + ",".join(_num(v) for v in vals.tolist()) + "]"
            qv = q_all[g]
            qs = f',"q":{dumps(qv.tolist(), separators=(",", ":"))}' if qv.any() else ""
            body = f'{{"ts":{dumps(ts_all[g].tolist(), separators=(",", ":"))},"value":{vs}{qs}}}'
        out.append((topic, body.encode()))
    return out


def decode_uns(topic: str, payload: bytes, prefix: str = "") -> Batch:
    """The inverse of ``encode_uns_batch`` for one message: tag path = topic without ``prefix``.

    Timestamps are integer ns. Raises ``PayloadError`` (a ValueError) saying what is wrong.
    """
    if prefix:
        if not topic.startswith(prefix):
            raise PayloadError(f"topic {topic!r} does not start with the prefix {prefix!r}")
        topic = topic[len(prefix):]
    if not topic:
        raise PayloadError("empty topic: no tag path")
    root = _load(payload)
    ts, val, q, soft = _extract(root, _UNS_ADDR, "ns", 0)
    if soft:
        raise PayloadError(soft)
    if not isinstance(ts, np.ndarray):
        if type(root) is not dict or not any(k in root for k in ("ts", "timestamp")):
            raise PayloadError("the UNS form needs 'ts' (ns since epoch), e.g. {\"ts\": 1767225600000000000, "
                               "\"value\": 1.5}")
        return Batch((topic,), np.zeros(1, dtype=np.int32), np.array([ts], dtype=np.int64),
                      np.array([val], dtype=np.float64), np.array([q], dtype=np.uint8))
    return Batch((topic,), np.zeros(len(ts), dtype=np.int32), ts, val, q)


_UNS_ADDR = JsonAddress("#")


# ---------------------------------------------------------------------------------------------
# the broker client shared by the MQTT and Sparkplug connectors
# ---------------------------------------------------------------------------------------------
BROKER_OPTIONS: dict[str, Option] = {
    "host": Option(str, "127.0.0.1", help="broker host name or IP address"),
    "port": Option(int, 1883, min=1, max=65535, help="broker TCP port (8883 is usual with TLS)"),
    "client_id": Option((str, type(None)), None, help="MQTT client id; default axline-<connector>-<random>"),
    "username": Option((str, type(None)), None, help="user name, if the broker asks for one"),
    "password": Option((str, type(None)), None, help="password for username"),
    "tls": Option(bool, False, help="connect with TLS"),
    "ca_file": Option((str, type(None)), None, help="CA certificate file for TLS; default: the system's"),
    "keepalive_s": Option(int, 30, min=5, max=3600, help="MQTT keep-alive interval"),
    "connect_timeout_s": Option(float, 5.0, min=0.5, max=120, help="time allowed to connect and subscribe"),
    "batch_interval_ms": Option(float, 50.0, min=1, max=5000,
                                help="messages arriving within this interval are delivered as one batch"),
    "dead_letter_dir": Option((str, type(None)), None,
                              help="folder for dead letters (JSON lines); default: the last 200 kept in memory"),
    "dead_letter_max_mb": Option(float, 10.0, min=0.01, max=100000, help="disk space the dead letters may use"),
}

_SUBSCRIBE_CHUNK = 100
MAX_PENDING_READINGS = 500_000  # readings received but not yet handed to the service; then backpressure


class BrokerConnector(Connector):
    """A connector that talks to an MQTT broker through paho-mqtt.

    paho runs its network loop in a thread. Each message is parsed there by ``handle_message``
    (which must not raise); readings are gathered under a lock and handed to the asyncio loop with
    ``loop.call_soon_threadsafe``, which delivers one batch per ``batch_interval_ms``. A lost
    connection ends the session with ConnectionError so that ``Connector.run`` reconnects with backoff.
    """

    schema: ClassVar[Schema]

    def __init__(self, name: str, options: dict[str, Any], tags: list[Tag]) -> None:
        options = self.schema.validate(options) if _needs_defaults(self.schema, options) else options
        super().__init__(name, options, tags)
        max_bytes = max(4096, int(options["dead_letter_max_mb"] * 2**20))
        self.dead_letters = DeadLetterStore(options["dead_letter_dir"], max_bytes=max_bytes,
                                            max_payload_bytes=min(4096, max_bytes // 4))
        self.messages = 0
        self._client = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: list[Batch] = []
        self._pending_readings = 0
        self._drained = threading.Event()  # set whenever the pending list is below its bound
        self._drained.set()
        self.backpressure_waits = 0
        self._wake: asyncio.Event | None = None
        self._failure: str | None = None
        self._ready = False
        self._closing = False
        self._sub_mids: set[int] = set()
        self._last_warn = 0.0
        self._unwarned = 0

    # -- hooks ----------------------------------------------------------------------------------
    def topic_filters(self) -> list[str]:
        """What to subscribe to."""
        raise NotImplementedError

    def handle_message(self, topic: str, payload: bytes, now_ns: int) -> tuple[Batch | None, list[DeadLetter]]:
        """Runs in paho's network thread; must not raise."""
        raise NotImplementedError

    def configure_client(self, client) -> None:
        """Called before connecting (e.g. to set a will)."""

    def on_connected(self, client) -> None:
        """Called in the network thread once the broker accepted the connection."""

    def subscribe_qos(self) -> int:
        return 1

    # -- the session ----------------------------------------------------------------------------
    def _make_client(self):
        import paho.mqtt.client as mqtt

        o = self.options
        cid = o["client_id"] or f"axline-{self.name}-{secrets.token_hex(4)}"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311,
                             clean_session=True, reconnect_on_failure=False)
        client.connect_timeout = o["connect_timeout_s"]
        if o["username"]:
            client.username_pw_set(o["username"], o["password"])
        if o["tls"]:
            client.tls_set(ca_certs=o["ca_file"])
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.configure_client(client)
        return client

    def _signal(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop is closed: the session is over
                pass

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._failure = f"the broker refused the connection: {reason_code}"
            self._signal()
            return
        try:
            self.on_connected(client)
            filters = list(dict.fromkeys(self.topic_filters()))
            qos = self.subscribe_qos()
            for i in range(0, len(filters), _SUBSCRIBE_CHUNK):
                rc, mid = client.subscribe([(f, qos) for f in filters[i:i + _SUBSCRIBE_CHUNK]])
                if rc != 0:
                    raise ConnectionError(f"subscribe failed (paho error {rc})")
                self._sub_mids.add(mid)
            if not self._sub_mids:
                self._ready = True
        except Exception as e:  # noqa: BLE001 - reported to the session, which raises it
            self._failure = f"{type(e).__name__}: {e}"
        self._signal()

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        refused = [str(rc) for rc in reason_code_list if rc.is_failure]
        if refused:
            self._failure = f"the broker refused a subscription ({', '.join(refused)}); check its ACL"
        self._sub_mids.discard(mid)
        if not self._sub_mids:
            self._ready = True
        self._signal()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._closing:
            if self._failure is None:
                self._failure = f"connection to the broker lost ({reason_code})"
            self._signal()

    def _on_message(self, client, userdata, msg) -> None:
        now = time.time_ns()
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            self._dead([DeadLetter("topic is not UTF-8", repr(msg._topic)[:200], bytes(msg.payload), now)])
            return
        self.messages += 1
        try:
            batch, dead = self.handle_message(topic, msg.payload, now)
        except Exception as e:  # noqa: BLE001 - never let a parser bug stop paho's thread
            log.exception("connector %s: handler failed on topic %r", self.name, topic)
            batch, dead = None, [DeadLetter(f"internal error: {type(e).__name__}: {e}", topic, bytes(msg.payload), now)]
        if dead:
            self._dead(dead)
        if batch is not None and len(batch):
            with self._lock:
                self._pending.append(batch)
                self._pending_readings += len(batch)
                first = len(self._pending) == 1
                full = self._pending_readings >= MAX_PENDING_READINGS
                if full:
                    self._drained.clear()
            if first or full:
                self._signal()
            if full:
                # bounded: stop reading from the broker until the service took what waits (QoS 1
                # messages stay with the broker meanwhile); never drop, never grow without limit
                self.backpressure_waits += 1
                while not self._drained.wait(1.0) and not self._closing and not self._stopping.is_set():
                    self._signal()

    def _dead(self, letters: list[DeadLetter]) -> None:
        try:
            self.dead_letters.add_many(letters, self.name)
        except OSError as e:
            log.error("connector %s: cannot write dead letters: %s", self.name, e)
        now = time.monotonic()
        self._unwarned += len(letters)
        if now - self._last_warn > 10:
            log.warning("connector %s: %d message(s) sent to the dead-letter store; latest: %s (topic %s)",
                        self.name, self._unwarned, letters[-1].reason, letters[-1].topic)
            self._last_warn, self._unwarned = now, 0

    def _flush(self, sink: Sink) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._pending_readings = 0
            self._drained.set()
        if pending:
            batch = Batch.concat(pending)
            self.readings += len(batch)
            sink(batch)

    async def session(self, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        o = self.options
        self._loop, self._wake = loop, asyncio.Event()
        self._failure, self._ready, self._closing = None, False, False
        self._sub_mids = set()
        client = self._make_client()
        started = False
        try:
            await loop.run_in_executor(None, client.connect, o["host"], o["port"], o["keepalive_s"])
            client.loop_start()
            started = True
            deadline = loop.time() + o["connect_timeout_s"]
            while not self._ready and self._failure is None and not self._stopping.is_set():
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise TimeoutError(f"broker {o['host']}:{o['port']} did not acknowledge the connection and "
                                       f"subscriptions within {o['connect_timeout_s']} s") from None
                self._wake.clear()
            if self._failure is not None:
                raise ConnectionError(self._failure)
            if self._stopping.is_set():
                return
            self._client = client
            self.connects += 1
            self._set_state(CONNECTED)
            self._wake.set()  # messages may have arrived while subscribing
            interval = o["batch_interval_ms"] / 1000
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._pending and self._failure is None and not self._stopping.is_set():
                    await asyncio.sleep(interval)  # gather what arrives within the interval
                self._flush(sink)
                if self._failure is not None:
                    raise ConnectionError(self._failure)
                if self._stopping.is_set():
                    return
        finally:
            self._closing = True
            self._client = None
            try:
                self.before_disconnect(client)
                client.disconnect()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                pass
            if started:
                await loop.run_in_executor(None, client.loop_stop)
            self._flush(sink)

    def before_disconnect(self, client) -> None:
        """Called before a clean disconnect (e.g. to publish a death certificate)."""

    def stop(self) -> None:
        super().stop()
        if self._wake is not None:
            self._wake.set()

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      timeout_s: float = 5.0) -> None:
        """Publish and wait until the broker acknowledged it (QoS 1/2) or it was sent (QoS 0)."""
        client = self._client
        if client is None or self.state != CONNECTED:
            raise ConnectionError(f"connector {self.name!r} is not connected to the broker; nothing was published")
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != 0:
            raise ConnectionError(f"connector {self.name!r}: publish to {topic!r} failed (paho error {info.rc})")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, info.wait_for_publish, timeout_s)
        except (RuntimeError, ValueError) as e:
            raise ConnectionError(f"connector {self.name!r}: publish to {topic!r} failed: {e}") from None
        if not info.is_published():
            raise ConnectionError(f"connector {self.name!r}: the broker did not acknowledge the publish to "
                                  f"{topic!r} within {timeout_s} s")


def _needs_defaults(schema: Schema, options: dict[str, Any]) -> bool:
    """Options from the plant loader are complete; hand-made ones (tests, scripts) get defaults."""
    return any(k not in options for k in schema.options)


def check_write(tag: Tag, value: float) -> float:
    """The value to write, after the checks every connector makes: writable, a finite number, in range."""
    if not tag.writable:
        raise PermissionError(f"tag {tag.path} is not writable; mark it 'writable: true' in the plant file")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"write to {tag.path}: {value!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"write to {tag.path}: {value!r} is not a finite number")
    if not tag.lo <= v <= tag.hi:
        raise ValueError(f"write to {tag.path}: {v:g} is outside the tag's range [{tag.lo:g}, {tag.hi:g}]")
    return v


def _format_number(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


# ---------------------------------------------------------------------------------------------
# the MQTT JSON connector
# ---------------------------------------------------------------------------------------------
class MqttConnector(BrokerConnector):
    """Subscribes to the topics of its tags' addresses and maps JSON payloads to tags."""

    schema = Schema({
        **BROKER_OPTIONS,
        "qos": Option(int, 1, min=0, max=2, help="subscription QoS"),
        "subscribe": Option((list, type(None)), None,
                            help="topic filters to subscribe to instead of the tags' topics, e.g. ['plant/#']"),
        "timestamp_unit": Option(str, "auto", choices=TS_UNITS,
                                 help="unit of numeric timestamps in payloads (auto reads the magnitude)"),
        "unmapped": Option(str, "ignore", choices=("ignore", "deadletter", "uns"),
                           help="messages on topics no tag maps: ignore (counted), deadletter, or uns "
                                "(topic taken as the tag path)"),
        "write_topic": Option(str, "{topic}/set",
                              help="where writes go unless the address has ';write=': {topic} is the tag's "
                                   "topic, {path} its path"),
        "write_format": Option(str, "json", choices=("json", "plain"),
                               help='write payload: json {"ts": ns, "value": v} or plain (the number as text)'),
    })

    def __init__(self, name: str, options: dict[str, Any], tags: list[Tag]) -> None:
        super().__init__(name, options, tags)
        sub = self.options["subscribe"]
        if sub is not None:
            if not sub or not all(isinstance(s, str) for s in sub):
                raise ValueError(f"connector {name!r}: 'subscribe' must be a non-empty list of topic filters")
            for s in sub:
                _check_topic_filter(s, f"connector {name!r} subscribe")
        self.mapping = JsonMapping.from_tags(tags, self.options["timestamp_unit"], self.options["unmapped"])
        self._addr = {t.path: parse_address(t.source.address if t.source else t.path) for t in tags}
        try:
            self.options["write_topic"].format(topic="t", path="p")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"connector {name!r}: write_topic {self.options['write_topic']!r} may only use "
                             f"{{topic}} and {{path}} ({e})") from None

    def topic_filters(self) -> list[str]:
        return list(self.options["subscribe"] or self.mapping.topic_filters())

    def subscribe_qos(self) -> int:
        return self.options["qos"]

    def handle_message(self, topic: str, payload: bytes, now_ns: int) -> tuple[Batch | None, list[DeadLetter]]:
        return parse_json_payload(topic, payload, self.mapping, now_ns)

    def write_topic_of(self, tag: Tag) -> str:
        addr = self._addr.get(tag.path)
        if addr is None:
            raise ValueError(f"tag {tag.path} does not belong to connector {self.name!r}")
        if addr.write_topic:
            return addr.write_topic
        topic = self.options["write_topic"].format(topic=addr.topic, path=tag.path)
        try:
            _check_topic_filter(topic, f"write topic of {tag.path}", wildcards=False)
        except ValueError:
            raise ValueError(f"tag {tag.path} reads from {addr.topic!r}, which has a wildcard; give it a write "
                             f"topic in its address, e.g. '{addr.topic.replace('#', 'x').replace('+', 'x')}"
                             f";write=<topic>'") from None
        return topic

    async def write(self, tag: Tag, value: float) -> None:
        """Publish ``value`` to the tag's write topic with QoS 1 and wait for the broker's PUBACK."""
        v = check_write(tag, value)
        topic = self.write_topic_of(tag)
        if self.options["write_format"] == "plain":
            payload = _format_number(v)
        else:
            payload = f'{{"ts":{time.time_ns()},"value":{_format_number(v)}}}'
        await self.publish(topic, payload.encode(), qos=1)

