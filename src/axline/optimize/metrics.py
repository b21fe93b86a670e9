"""A unit's metrics over a time window, from raw readings (historian series or simulator batches)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from axline.optimize.spec import Metric, UnitSpec

NS = 1_000_000_000
Series = tuple[np.ndarray, np.ndarray]  # (ts ns, value), sorted by time, good quality only


PRODUCING = (1.0, 2.0, 3.0)  # running, idle, micro-stop: the line is producing (not stopped, changeover, down)
NOT_PRODUCING = 0.0  # a line state outside PRODUCING: masks readings out of a window


def _window(s: Series | None, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    if s is None:
        return np.zeros(0, np.int64), np.zeros(0)
    ts, v = s
    m = (ts >= start) & (ts < end) & np.isfinite(v)
    return ts[m], v[m]


def producing_mask(state: Series | None, ts: np.ndarray) -> np.ndarray:
    """True at the instants ``ts`` when the last state reading says the line was producing."""
    if state is None or len(state[0]) == 0:
        return np.ones(len(ts), dtype=bool)
    sts, sv = state
    k = np.searchsorted(sts, ts, side="right") - 1
    ok = np.isin(sv, PRODUCING)
    return np.where(k >= 0, ok[k.clip(0)], True)


def _increase(ts: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Increase of a counter (ignoring resets) and the hours it covers, counting only the
    intervals that end where ``mask`` is true."""
    if len(v) < 2:
        return math.nan, 0.0
    d = np.diff(v)
    dt = np.diff(ts) / NS / 3600.0
    keep = d >= 0
    if mask is not None:
        keep &= mask[1:]
    return float(d[keep].sum()), float(dt[keep].sum())


def metric_value(m: Metric, series: Mapping[str, Series], start: int, end: int,
                 state: Series | None = None) -> float:
    """The metric over [start, end), counting only the time the line produced when ``state`` (the
    line's state readings) is given; NaN when the window holds too little data."""
    ts, v = _window(series.get(m.tag), start, end)
    mask = producing_mask(state, ts) if state is not None else None
    if m.kind in ("mean", "p95", "min", "max"):
        if mask is not None:
            v = v[mask]
        if len(v) == 0:
            return math.nan
        if m.kind == "mean":
            return float(v.mean())
        if m.kind == "p95":
            return float(np.percentile(v, 95))
        return float(v.min() if m.kind == "min" else v.max())
    inc, hours = _increase(ts, v, mask)
    if m.kind == "rate":
        return inc / hours if hours > 0 else math.nan
    # ratio of two counters' increases
    tsd, vd = _window(series.get(m.per or ""), start, end)
    den, _ = _increase(tsd, vd, producing_mask(state, tsd) if state is not None else None)
    return inc / den if den > 0 and math.isfinite(inc) else math.nan


def unit_metrics(spec: UnitSpec, series: Mapping[str, Series], start: int, end: int) -> dict[str, float]:
    """Every metric of the unit over ``start`` .. ``end`` (only while running, when the unit has a state tag)."""
    state = series.get(spec.state_tag) if spec.state_tag else None
    return {m.name: metric_value(m, series, start, end, state) for m in spec.metrics}


def constraint_verdicts(spec: UnitSpec, after: Mapping[str, float],
                        before: Mapping[str, float] | None = None) -> list[dict]:
    """One verdict per constraint: held or not, with the value, the limit and why."""
    out = []
    for c in spec.constraints:
        v = after.get(c.metric, math.nan)
        if c.kind == "max":
            limit = c.limit
            ok = math.isfinite(v) and v <= limit
        elif c.kind == "min":
            limit = c.limit
            ok = math.isfinite(v) and v >= limit
        else:
            ref = (before or {}).get(c.metric, math.nan)
            limit = ref - c.tolerance * abs(ref) if math.isfinite(ref) else math.nan
            ok = math.isfinite(v) and math.isfinite(limit) and v >= limit
        out.append({"metric": c.metric, "kind": c.kind, "value": v, "limit": limit, "ok": bool(ok)})
    return out


def masked(spec: UnitSpec, series: dict, exclude: list | tuple) -> dict:
    """``series`` with the line state set to not producing over each span of ``exclude`` (so the
    metrics skip those readings); unchanged when the unit has no state tag."""
    if not exclude or not spec.state_tag:
        return series
    ts, v = series.get(spec.state_tag, (np.zeros(0, np.int64), np.zeros(0)))
    for a, b in exclude:
        k = np.searchsorted(ts, b, side="right") - 1
        at_b = float(v[k]) if 0 <= k < len(v) else 1.0
        keep = (ts < a) | (ts >= b)
        ts = np.concatenate([ts[keep], np.array([a, b], np.int64)])
        v = np.concatenate([v[keep], np.array([NOT_PRODUCING, at_b])])
        order = np.argsort(ts, kind="stable")
        ts, v = ts[order], v[order]
    return {**series, spec.state_tag: (ts, v)}
