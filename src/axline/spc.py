"""Statistical process control for measured quality characteristics (a bore diameter, a weight).

- Control charts: individuals / moving range (I-MR) and X-bar / R over subgroups of ``n``.
  Control limits come from a *baseline* (phase I) period and are then applied to later data
  (phase II), so a drift never widens its own limits.
- Run rules: the eight Nelson rules, or the four Western Electric rules, on the chart's points.
- Capability: Cp / Cpk (within-subgroup sigma, from the moving range or R-bar) and Pp / Ppk (overall
  standard deviation) against the specification limits of the plant file, per shift and per lot.

Measurements held by a PLC between parts repeat the last part's value; :func:`measurements`
keeps one value per part by dropping immediate repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# X-bar / R chart constants by subgroup size (ASTM / Montgomery)
A2 = {2: 1.880, 3: 1.023, 4: 0.729, 5: 0.577, 6: 0.483, 7: 0.419, 8: 0.373, 9: 0.337, 10: 0.308}
D3 = {2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0, 7: 0.076, 8: 0.136, 9: 0.184, 10: 0.223}
D4 = {2: 3.267, 3: 2.574, 4: 2.282, 5: 2.114, 6: 2.004, 7: 1.924, 8: 1.864, 9: 1.816, 10: 1.777}
D2 = {2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326, 6: 2.534, 7: 2.704, 8: 2.847, 9: 2.970, 10: 3.078}
CHARTS = ("imr", "xbar_r")
RULESETS = ("nelson", "western_electric")
MIN_BASELINE_POINTS = 20
# points each rule's pattern spans
RULE_SPAN = {"nelson": {1: 1, 2: 9, 3: 6, 4: 14, 5: 3, 6: 5, 7: 15, 8: 8},
             "western_electric": {1: 1, 2: 8, 5: 3, 6: 5}}

RULE_TEXT = {
    1: "one point beyond 3 sigma",
    2: "points in a row on one side of the centre line",
    3: "six points in a row steadily rising or falling",
    4: "fourteen points in a row alternating up and down",
    5: "two of three points beyond 2 sigma on one side",
    6: "four of five points beyond 1 sigma on one side",
    7: "fifteen points in a row within 1 sigma",
    8: "eight points in a row outside 1 sigma",
}


@dataclass(frozen=True)
class Limits:
    """Control limits of one chart: the plotted statistic's centre, sigma and 3-sigma limits, plus
    the range chart's (moving range for I-MR, R for X-bar / R)."""

    chart: str
    n: int
    center: float
    sigma: float  # of the plotted statistic (individuals, or subgroup means)
    ucl: float
    lcl: float
    r_center: float
    r_ucl: float
    r_lcl: float
    sigma_within: float  # of individual measurements, for Cp / Cpk
    points: int

    def to_json(self) -> dict[str, Any]:
        """The limits as plain values."""
        return asdict(self)


@dataclass(frozen=True)
class Violation:
    """A Western Electric / Nelson rule broken: the rule, the point that completed it and the first one."""
    rule: int
    index: int  # the point that completed the pattern
    first: int  # the first point of the pattern

    def to_json(self) -> dict[str, Any]:
        """The violation with the rule's text."""
        return {"rule": self.rule, "index": self.index, "first": self.first, "text": RULE_TEXT[self.rule]}


def measurements(ts: np.ndarray, values: np.ndarray, quality: np.ndarray | None = None,
                 dedupe: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Good, finite readings; with ``dedupe`` an immediate repeat of the same value is dropped (a PLC
    holding the last part's measurement until the next part)."""
    ts = np.asarray(ts, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if quality is not None:
        ok &= np.asarray(quality) == 0
    ts, v = ts[ok], v[ok]
    if dedupe and len(v) > 1:
        keep = np.concatenate(([True], v[1:] != v[:-1]))
        ts, v = ts[keep], v[keep]
    return ts, v


def _check_n(chart: str, n: int) -> int:
    if chart not in CHARTS:
        raise ValueError(f"chart must be one of {', '.join(CHARTS)}, got {chart!r}")
    if chart == "imr":
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or n not in A2:
        raise ValueError(f"subgroup size n must be an integer from 2 to 10 for an X-bar / R chart, got {n!r}")
    return n


def subgroups(values: np.ndarray, n: int) -> np.ndarray:
    """Consecutive subgroups of ``n`` measurements as rows (an incomplete last group is left out)."""
    k = len(values) // n
    return np.asarray(values[: k * n], dtype=np.float64).reshape(k, n)


def plotted(values: np.ndarray, chart: str, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(statistic, range) per chart point: individuals and moving ranges, or subgroup means and ranges."""
    n = _check_n(chart, n)
    v = np.asarray(values, dtype=np.float64)
    if chart == "imr":
        mr = np.concatenate(([np.nan], np.abs(np.diff(v)))) if len(v) else np.zeros(0)
        return v, mr
    g = subgroups(v, n)
    return g.mean(axis=1), np.ptp(g, axis=1) if len(g) else np.zeros(0)


def fit_limits(baseline: np.ndarray, chart: str = "imr", n: int = 5) -> Limits:
    """Control limits from baseline (phase I) measurements."""
    n = _check_n(chart, n)
    x, r = plotted(baseline, chart, n)
    pts = int(len(x))
    if pts < MIN_BASELINE_POINTS:
        raise ValueError(f"the baseline has {pts} chart points; at least {MIN_BASELINE_POINTS} are needed "
                         "for control limits: choose a longer baseline period")
    center = float(np.mean(x))
    if chart == "imr":
        mr_bar = float(np.nanmean(r))
        sigma = mr_bar / D2[2]
        return Limits(chart, 1, center, sigma, center + 3 * sigma, center - 3 * sigma,
                      mr_bar, D4[2] * mr_bar, 0.0, sigma, pts)
    r_bar = float(np.mean(r))
    sigma_within = r_bar / D2[n]
    return Limits(chart, n, center, sigma_within / np.sqrt(n), center + A2[n] * r_bar, center - A2[n] * r_bar,
                  r_bar, D4[n] * r_bar, D3[n] * r_bar, sigma_within, pts)


def _runs(mask: np.ndarray, length: int) -> np.ndarray:
    """Indices i where mask[i-length+1 .. i] are all true."""
    if len(mask) < length:
        return np.zeros(0, dtype=np.int64)
    c = np.convolve(mask.astype(np.int64), np.ones(length, dtype=np.int64), mode="valid")
    return np.flatnonzero(c == length) + length - 1


def _k_of_m(mask: np.ndarray, k: int, m: int) -> np.ndarray:
    """Indices i where at least k of mask[i-m+1 .. i] are true and mask[i] itself is true."""
    if len(mask) < m:
        return np.zeros(0, dtype=np.int64)
    c = np.convolve(mask.astype(np.int64), np.ones(m, dtype=np.int64), mode="valid")
    idx = np.flatnonzero(c >= k) + m - 1
    return idx[mask[idx]]


def rule_hits(x: np.ndarray, center: float, sigma: float, ruleset: str = "nelson") -> dict[int, np.ndarray]:
    """Per rule, every point that completes its pattern (a pattern that goes on marks each point)."""
    if ruleset not in RULESETS:
        raise ValueError(f"rules must be one of {', '.join(RULESETS)}, got {ruleset!r}")
    if not sigma > 0:
        return {}
    z = (np.asarray(x, dtype=np.float64) - center) / sigma
    finite = np.isfinite(z)
    z = np.where(finite, z, 0.0)
    hi, lo = z > 0, z < 0
    found: dict[int, np.ndarray] = {1: np.flatnonzero(finite & (np.abs(z) > 3))}
    found[2] = np.union1d(_runs(hi & finite, RULE_SPAN[ruleset][2]), _runs(lo & finite, RULE_SPAN[ruleset][2]))
    found[5] = np.union1d(_k_of_m(finite & (z > 2), 2, 3), _k_of_m(finite & (z < -2), 2, 3))
    found[6] = np.union1d(_k_of_m(finite & (z > 1), 4, 5), _k_of_m(finite & (z < -1), 4, 5))
    if ruleset == "nelson":
        d = np.diff(z)
        up, down = np.concatenate(([False], d > 0)), np.concatenate(([False], d < 0))
        found[3] = np.union1d(_runs(up, 5), _runs(down, 5))  # six points: five steps
        alt = np.concatenate(([False, False], (d[1:] * d[:-1]) < 0)) if len(d) > 1 else np.zeros(len(z), bool)
        found[4] = _runs(alt, 12)  # fourteen points: twelve changes of direction
        found[7] = _runs(finite & (np.abs(z) < 1), 15)
        found[8] = _runs(finite & (np.abs(z) > 1), 8)
    return {r: found[r] for r in sorted(found)}


def rule_violations(x: np.ndarray, center: float, sigma: float, ruleset: str = "nelson") -> list[Violation]:
    """Run-rule violations of chart points ``x`` against ``center`` and ``sigma`` (of the points).

    Each pattern is reported once, at the point that completed it; a pattern that goes on is not
    reported again until it has ended."""
    out: list[Violation] = []
    for rule, hits in rule_hits(x, center, sigma, ruleset).items():
        prev = -2
        for i in hits.tolist():
            if i != prev + 1:
                out.append(Violation(rule, int(i), int(max(0, i - RULE_SPAN[ruleset][rule] + 1))))
            prev = i
    out.sort(key=lambda v: (v.index, v.rule))
    return out


def capability(values: np.ndarray, spec: dict[str, float], sigma_within: float | None = None) -> dict[str, Any]:
    """Cp / Cpk (within sigma) and Pp / Ppk (overall sigma) of ``values`` against ``spec``
    (``lsl`` and/or ``usl``; one-sided specs give only the *k* indices)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    out: dict[str, Any] = {"n": int(len(v)), "mean": None, "sigma_within": None, "sigma_overall": None,
                           "cp": None, "cpk": None, "pp": None, "ppk": None, "out_of_spec": 0}
    if len(v) < 2:
        return out
    mean = float(v.mean())
    s_all = float(v.std(ddof=1))
    if sigma_within is None:
        mr = np.abs(np.diff(v))
        sigma_within = float(mr.mean() / D2[2]) if len(mr) else None
    lsl, usl = spec.get("lsl"), spec.get("usl")
    out.update(mean=mean, sigma_within=sigma_within, sigma_overall=s_all,
               out_of_spec=int((np.count_nonzero(v < lsl) if lsl is not None else 0)
                               + (np.count_nonzero(v > usl) if usl is not None else 0)))

    def indices(s: float | None) -> tuple[float | None, float | None]:
        if not s or s <= 0:
            return None, None
        both = (usl - lsl) / (6 * s) if lsl is not None and usl is not None else None
        sides = [x for x in ((usl - mean) / (3 * s) if usl is not None else None,
                             (mean - lsl) / (3 * s) if lsl is not None else None) if x is not None]
        return both, min(sides) if sides else None

    out["cp"], out["cpk"] = indices(sigma_within)
    out["pp"], out["ppk"] = indices(s_all)
    return out


def lot_bounds(state_ts: np.ndarray, state_values: np.ndarray, changeover: int = 4) -> np.ndarray:
    """Start times of lots: a lot begins each time the asset leaves a changeover."""
    ts = np.asarray(state_ts, dtype=np.int64)
    s = np.asarray(state_values, dtype=np.float64)
    if not len(ts):
        return np.zeros(0, dtype=np.int64)
    inco = s == changeover
    ends = np.flatnonzero(inco[:-1] & ~inco[1:]) + 1
    return ts[ends]


def group_capability(ts: np.ndarray, values: np.ndarray, spec: dict[str, float], keys: Sequence[Any],
                     sigma_within: float | None = None) -> list[dict[str, Any]]:
    """Capability per group (shift, lot): ``keys[i]`` is the group of measurement ``i``; groups in
    order of first appearance. The within sigma of each group is its own moving range's."""
    order: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        order.setdefault(k, []).append(i)
    out = []
    for k, idx in order.items():
        sel = np.asarray(idx)
        cap = capability(values[sel], spec)
        cap.update(group=k, first_ts=int(ts[sel[0]]), last_ts=int(ts[sel[-1]]))
        out.append(cap)
    return out
