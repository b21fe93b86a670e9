"""The symptom snapshot of an alarm and how alike two of them are.

A snapshot keeps, for the alarm's asset, what the monitor said (event code, each signal's
contribution) and the shape of each signal in the historian window around the alarm: a short
downsampled trace, and its move (last quarter minus first quarter, in units of the first quarter's
spread). Two snapshots are alike when the same kind of alarm names the same signals moving the same
way on the same asset.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

TRACE_POINTS = 48
MAX_SIGNALS = 24


def snapshot_from_event(event: dict[str, Any], window: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                        ) -> dict[str, Any]:
    """A snapshot from an alarm event (``Event.to_json()``) and, optionally, its window: tag path ->
    (ts ns, values) of the readings in it."""
    data = event.get("data") or {}
    contrib = data.get("contributions") or {}
    signals: dict[str, dict[str, Any]] = {}
    for name, z in list(contrib.items())[:MAX_SIGNALS]:
        try:
            zf = float(z)
        except (TypeError, ValueError):
            continue
        if math.isfinite(zf):
            signals[str(name)] = {"z": round(zf, 3)}
    asset = event.get("source") or ""
    for path, (ts, vals) in (window or {}).items():
        name = path.rsplit("/", 1)[-1]
        if name not in signals and len(signals) >= MAX_SIGNALS:
            continue
        shape = _shape(np.asarray(ts, dtype=np.int64), np.asarray(vals, dtype=np.float64))
        if shape is not None:
            signals.setdefault(name, {"z": 0.0}).update(shape)
    win = data.get("window")
    return {"asset": asset, "code": event.get("code") or "", "event_id": event.get("id"),
            "ts": event.get("ts"), "window": win if isinstance(win, list) else None, "signals": signals}


def _shape(ts: np.ndarray, vals: np.ndarray) -> dict[str, Any] | None:
    ok = np.isfinite(vals)
    ts, vals = ts[ok], vals[ok]
    if len(vals) < 4:
        return None
    q = max(1, len(vals) // 4)
    first, last = vals[:q], vals[-q:]
    spread = float(np.std(first))
    scale = max(spread, 1e-3 * max(1.0, abs(float(np.mean(first)))), 1e-9)
    move = (float(np.mean(last)) - float(np.mean(first))) / scale
    # a short trace for the page: TRACE_POINTS means over equal time slices
    edges = np.linspace(ts[0], ts[-1] + 1, TRACE_POINTS + 1)
    pos = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, TRACE_POINTS - 1)
    sums = np.bincount(pos, vals, TRACE_POINTS)
    counts = np.bincount(pos, None, TRACE_POINTS)
    trace = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return {"move": round(float(np.clip(move, -50, 50)), 3),
            "trace": [None if not math.isfinite(v) else round(float(v), 4) for v in trace]}


def _vector(snap: dict[str, Any]) -> dict[str, float]:
    """Signal -> signed strength: the contribution (or 1) with the direction of the window's move."""
    out: dict[str, float] = {}
    for name, s in (snap.get("signals") or {}).items():
        z = abs(float(s.get("z") or 0.0))
        move = s.get("move")
        strength = z if z > 0 else (min(abs(float(move)), 10.0) / 3 if move is not None else 0.0)
        if strength <= 0:
            continue
        sign = -1.0 if (move is not None and float(move) < -0.5) else 1.0
        out[name] = sign * math.log1p(strength)
    return out


def similarity(a: dict[str, Any] | None, b: dict[str, Any] | None) -> tuple[float, list[str]]:
    """How alike two snapshots are (0..1) and the signals they share with the same direction."""
    if not a or not b:
        return 0.0, []
    va, vb = _vector(a), _vector(b)
    if not va or not vb:
        return 0.0, []
    keys = sorted(set(va) | set(vb))
    x = np.array([va.get(k, 0.0) for k in keys])
    y = np.array([vb.get(k, 0.0) for k in keys])
    cos = float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12))
    shared = [k for k in keys if k in va and k in vb and va[k] * vb[k] > 0]
    shared.sort(key=lambda k: -abs(va[k] * vb[k]))
    score = max(0.0, cos)
    if (a.get("code") or "") != (b.get("code") or ""):
        score *= 0.5
    if a.get("asset") and b.get("asset") and not same_asset(a["asset"], b["asset"]):
        score *= 0.5
    return score, shared


def same_asset(a: str, b: str) -> bool:
    """The same asset: equal paths, or one is the tail of the other (``cnc1`` and ``.../cnc/cnc1``)."""
    a, b = a.strip("/"), b.strip("/")
    return bool(a and b) and (a == b or a.endswith("/" + b) or b.endswith("/" + a))
