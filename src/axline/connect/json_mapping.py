"""The MQTT connector's address grammar and the mapping of topics to tags that it compiles to.

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
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from axline.plant import Tag

TS_UNITS = ("auto", "s", "ms", "us", "ns", "iso")
MISSING = object()  # what ``select`` returns where the payload has nothing


class PayloadError(ValueError):
    """A payload that cannot become readings; the message is the dead letter's reason."""


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
    """The part of a parsed JSON document that ``steps`` names, or ``MISSING``."""
    for s in steps:
        t = type(node)
        if t is dict:
            node = node.get(s, MISSING)
            if node is MISSING:
                return node
        elif t is list and s.isascii() and s.isdigit():
            i = int(s)
            if i >= len(node):
                return MISSING
            node = node[i]
        else:
            return MISSING
    return node


def check_topic_filter(topic: str, what: str, wildcards: bool = True) -> None:
    """Refuse an empty topic, a NUL, or a misplaced wildcard (any wildcard when ``wildcards`` is false)."""
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
    check_topic_filter(topic, f"address {address!r}")
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
            check_topic_filter(val, f"address {address!r} write=", wildcards=False)
            write = val
        else:
            raise ValueError(f"address {address!r}: unknown option {key!r}; allowed: ts, q, write")
    return JsonAddress(topic, selector, sel_text, ts_sel, ts_text, unit, q_sel, write)


@dataclass(frozen=True)
class Rule:
    """One tag of a mapping: its slot, address, timestamp unit and range."""

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
    exact: dict[str, list[Rule]] = field(default_factory=dict)
    wild: list[tuple[re.Pattern, Rule]] = field(default_factory=list)
    unmapped: str = "ignore"
    timestamp_unit: str = "auto"
    unmapped_count: int = 0
    _cache: dict[str, list[Rule]] = field(default_factory=dict, repr=False)

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
            rule = Rule(len(m.paths), addr, addr.ts_unit or timestamp_unit, float(lo), float(hi))
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

    def rules_for(self, topic: str) -> list[Rule]:
        """The rules whose topic filter matches ``topic`` (wildcard matches cached, bounded)."""
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
