"""What an MQTT payload carries: its kind and the numeric fields, addressed in the MQTT
connector's grammar (``topic#$.field``)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from axline.discover.signal import ident

_TS_KEYS = ("ts", "time", "timestamp")
_VALUE_FORM_KEYS = frozenset({"value", "ts", "timestamp", "q", "quality"})
_PLAIN_KEY = re.compile(r"[^.\[\]'\"\s;#$]+")
_MAX_LEAVES = 500
_MAX_DEPTH = 8


def _selector(path: tuple) -> str | None:
    """A JSON path -> the MQTT connector's dotted selector; None when a key cannot be written in it."""
    out = "$"
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _PLAIN_KEY.fullmatch(p):
            out += "." + p
        elif "'" not in p and ";" not in p and p:
            out += f"['{p}']"
        else:
            return None
    return out


def _is_number(x) -> bool:
    return isinstance(x, int | float) and (isinstance(x, bool) or math.isfinite(x))


def _is_value_form(d: dict) -> bool:
    """``{"value": v, "ts": t, "q": c}`` or the batch form ``{"ts": [...], "value": [...]}``."""
    if "value" not in d or not set(d) <= _VALUE_FORM_KEYS:
        return False
    v = d["value"]
    return _is_number(v) or v is None or (isinstance(v, list) and bool(v) and all(_is_number(x) for x in v))


def _leaves(node, path: tuple, out: list, depth: int = 0) -> None:
    if len(out) >= _MAX_LEAVES or depth > _MAX_DEPTH:
        return
    if _is_number(node):
        out.append((path, node))
    elif isinstance(node, dict):
        if path and _is_value_form(node):
            v = node["value"]
            out.append((path, v[-1] if isinstance(v, list) else v))
            return
        for k, v in node.items():
            _leaves(v, (*path, str(k)), out, depth + 1)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _leaves(v, (*path, i), out, depth + 1)


def _looks_like_time(x) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, int | float):
        return x >= 1e9  # seconds (or ms/us/ns) since 1970 after 2001
    return isinstance(x, str) and re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", x) is not None


@dataclass
class PayloadInfo:
    """What one message carries: its kind and the numeric values found (selector, name, value)."""

    kind: str  # number, json, json (no numbers), text, binary, empty
    fields: list[tuple[str, str, float | bool]] = field(default_factory=list)
    ts_selector: str | None = None  # where the message's own timestamp is
    skipped: int = 0  # numeric fields whose key cannot be addressed


def classify_payload(topic: str, payload: bytes) -> PayloadInfo:
    """Kind of an MQTT payload and its numeric fields as the MQTT connector would address them."""
    last = topic.rsplit("/", 1)[-1] or "value"
    if not payload:
        return PayloadInfo("empty")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        return PayloadInfo("binary")
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return PayloadInfo("binary")
    try:
        root = json.loads(text)
    except (ValueError, RecursionError):
        return PayloadInfo("text")
    if _is_number(root):
        return PayloadInfo("number", [("$", ident(last), root)])
    if isinstance(root, dict) and _is_value_form(root):
        v = root["value"]
        v = v[-1] if isinstance(v, list) else v
        if v is None:
            return PayloadInfo("json (no numbers)")
        return PayloadInfo("json", [("$", ident(last), v)])
    if not isinstance(root, dict | list):
        return PayloadInfo("text")
    ts_sel = None
    if isinstance(root, dict):
        for k in _TS_KEYS:
            if k in root and _looks_like_time(root[k]):
                ts_sel = f"$.{k}"
                break
    found: list = []
    _leaves(root, (), found)
    fields, skipped = [], 0
    for path, value in found:
        sel = _selector(path)
        if sel is None:
            skipped += 1
            continue
        if sel == ts_sel:
            continue
        fields.append((sel, ident("_".join(str(p) for p in path)), value))
    if not fields:
        return PayloadInfo("json (no numbers)", [], None, skipped)
    return PayloadInfo("json", fields, ts_sel, skipped)
