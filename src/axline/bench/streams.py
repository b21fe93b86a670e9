"""Long drifting streams with injected step faults, and the alarm statistics of a monitor on them.

Used by `axline bench alarms` (which reports on ``SEEDS``) and by `axline bench skab`, which checks
the candidates for the product default on streams of other seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from axline.monitor.defaults import MonitorConfig, OnlineMonitor, fit_monitor

BUDGET_PER_HOUR = 6.0
FLOOD = 10
FAMILIES = ("temperature", "pressure", "vibration", "flow")
STEP_S = 10.0
DAYS = 3
FIT_H = 2.0
SEEDS = (1, 2, 3)
FAULTS_PER_STREAM = 6
FAULT_SIGMA = 8.0
GRACE_S = 600.0


def drifting_stream(family: str, seed: int, days: float = DAYS, step_s: float = STEP_S
                    ) -> tuple[np.ndarray, np.ndarray, float]:
    """(times in s, values, noise sigma) of one normal stream of ``family``."""
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    n = int(days * 86400 / step_s)
    t = np.arange(n) * step_s
    h = t / 3600.0

    def ar1(sigma: float, phi: float = 0.9) -> np.ndarray:
        e = rng.normal(0.0, sigma * np.sqrt(1 - phi**2), n)
        out = np.empty(n)
        acc = 0.0
        for i in range(n):
            acc = phi * acc + e[i]
            out[i] = acc
        return out

    def shifts(every_h: float, size: float) -> np.ndarray:
        out = np.zeros(n)
        k = 0.0
        while True:
            k += rng.exponential(every_h)
            if k >= days * 24:
                return out
            out[h >= k] += rng.normal(0.0, size)

    if family == "temperature":
        sigma = 0.3
        x = (60 + 3 * np.sin(2 * np.pi * (h - rng.uniform(0, 24)) / 24) + np.cumsum(rng.normal(0, 0.01, n))
             + shifts(8.0, 1.5) + ar1(sigma))
    elif family == "pressure":
        sigma = 0.05
        x = 5 + 0.1 * np.sin(2 * np.pi * h / 24) + shifts(6.0, 0.3) + ar1(sigma, 0.7)
    elif family == "vibration":
        sigma = 0.1
        x = 2 + 0.3 * h / (days * 24) + 0.1 * np.sin(2 * np.pi * h / 24) + np.abs(ar1(sigma, 0.5)) * 1.5
    elif family == "flow":
        sigma = 1.0
        x = (100 + 10 * np.sin(2 * np.pi * (h - rng.uniform(0, 24)) / 24) + 3 * np.sin(2 * np.pi * h / 8)
             + ar1(sigma, 0.8))
    else:
        raise ValueError(f"unknown family {family!r}; choose one of {FAMILIES}")
    return t, x, sigma


def add_faults(t: np.ndarray, x: np.ndarray, sigma: float, seed: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Step faults on the second and third day: ``FAULTS_PER_STREAM`` of them, 20-40 minutes, up or
    down by ``FAULT_SIGMA`` noise sigmas, at least 2 hours apart. Returns (x, [(start_s, end_s)])."""
    rng = np.random.default_rng([seed, 99])
    x = x.copy()
    span0, span1 = 86400.0, t[-1] - 3600.0
    starts = np.sort(rng.uniform(span0, span1, FAULTS_PER_STREAM))
    for i in range(1, len(starts)):
        starts[i] = max(starts[i], starts[i - 1] + 7200.0)
    out = []
    for s in starts:
        if s > span1:
            break
        e = s + rng.uniform(1200.0, 2400.0)
        x[(t >= s) & (t < e)] += FAULT_SIGMA * sigma * rng.choice([-1.0, 1.0])
        out.append((float(s), float(e)))
    return x, out


def alarm_stats(mask: np.ndarray, t: np.ndarray, faults: list[tuple[float, float]] = ()) -> dict[str, Any]:
    """Onsets per hour (all and outside faults), the most onsets in any 10 minutes, share of time
    in alarm outside faults, and which faults an onset caught."""
    m = np.asarray(mask, dtype=np.int8)
    on = np.flatnonzero(np.diff(np.r_[0, m]) == 1)
    ts = t[on]
    hours = (t[-1] - t[0] + (t[1] - t[0] if len(t) > 1 else 0)) / 3600.0
    in_fault = np.zeros(len(t), dtype=bool)
    caught = 0
    false_on = np.ones(len(on), dtype=bool)
    for s, e in faults:
        in_fault |= (t >= s) & (t < e + GRACE_S)
        hit = (ts >= s) & (ts < e + GRACE_S)
        caught += bool(hit.any())
        false_on &= ~hit
    flood = max((int(np.sum((ts >= a) & (ts < a + 600.0))) for a in ts), default=0)
    normal = ~in_fault
    return {"hours": round(hours, 2), "onsets": int(len(on)), "per_hour": round(len(on) / hours, 3),
            "false_onsets": int(false_on.sum()), "false_per_hour": round(float(false_on.sum()) / hours, 3),
            "max_in_10_min": flood,
            "in_alarm_normal": round(float(m[normal].mean()) if normal.any() else 0.0, 4),
            "faults": len(faults), "faults_caught": caught}


def run_monitor(config: MonitorConfig, X: np.ndarray, n_fit: int, columns: list[str]) -> np.ndarray:
    """Fit the monitor on the first ``n_fit`` rows of ``X`` and return its alarm states on the rest."""
    mon = OnlineMonitor(fit_monitor(X[:n_fit], columns, config), config)
    return mon.run(X[n_fit:])[1]


def family_row(name: str, stats: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the page for a family of streams: hours, alarm onsets per hour, false ones and faults
    caught."""
    hours = sum(s["hours"] for s in stats)
    onsets = sum(s["onsets"] for s in stats)
    faults = sum(s["faults"] for s in stats)
    return {"family": name, "streams": len(stats), "hours": round(hours, 2),
            "per_hour": round(onsets / hours, 3),
            "false_per_hour": round(sum(s["false_onsets"] for s in stats) / hours, 3),
            "max_in_10_min": max(s["max_in_10_min"] for s in stats),
            "in_alarm_normal": round(float(np.mean([s["in_alarm_normal"] for s in stats])), 4),
            "faults": faults, "faults_caught": sum(s["faults_caught"] for s in stats),
            "within_budget": bool(onsets / hours <= BUDGET_PER_HOUR
                                  and max(s["max_in_10_min"] for s in stats) <= FLOOD)}


def drifting_rows(config: MonitorConfig, seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """Per family rows of ``config`` on the drifting streams (with their step faults) of ``seeds``."""
    rows = []
    n_fit = int(FIT_H * 3600 / STEP_S)
    for fam in FAMILIES:
        stats = []
        for seed in seeds:
            t, x, sigma = drifting_stream(fam, seed)
            xf, faults = add_faults(t, x, sigma, seed)
            mask = run_monitor(config, xf[:, None], n_fit, [fam])
            stats.append(alarm_stats(mask, t[n_fit:], faults))
        rows.append(family_row(f"drifting {fam}", stats))
    return rows
