"""Alarm system performance against the ISA-18.2 / EEMUA 191 benchmarks.

Per operator position (here: a line, the usual scope of one operator's console):

- alarms per hour on average: about 6 per hour is *very likely acceptable*, 12 per hour the
  *maximum manageable* (ISA-18.2, table 5 / EEMUA 191);
- alarms per 10 minutes: about 1 very likely acceptable, 2 maximum manageable; *more than 10 in
  10 minutes is a flood*; the share of time spent in floods should stay below about 1 %;
- the top 10 most frequent alarms (they usually make up far more than their share of the load);
- chattering alarms: the same alarm raised 3 or more times within one minute;
- stale alarms: active (unreturned) for more than 24 hours;
- the priority mix (about 80 % low, 15 % medium, 5 % high is the usual target).

Alarms suppressed by design are counted separately and not in the operator's load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

NS = 1_000_000_000
ACCEPTABLE_PER_H = 6.0
MANAGEABLE_PER_H = 12.0
ACCEPTABLE_PER_10MIN = 1
MANAGEABLE_PER_10MIN = 2
FLOOD_WINDOW_NS = 600 * NS
FLOOD_COUNT = 10  # more than this many in FLOOD_WINDOW is a flood
CHATTER_WINDOW_NS = 60 * NS
CHATTER_COUNT = 3
STALE_NS = 24 * 3600 * NS
TOP_N = 10
PRIORITY_TARGET = {"low": 0.80, "medium": 0.15, "high": 0.05}


def rate_rating(per_hour: float) -> str:
    """``acceptable`` (<= 6/h), ``manageable`` (<= 12/h) or ``overloaded``."""
    if per_hour <= ACCEPTABLE_PER_H:
        return "acceptable"
    if per_hour <= MANAGEABLE_PER_H:
        return "manageable"
    return "overloaded"


def flood_periods(ts: np.ndarray, start: int, end: int) -> list[tuple[int, int, int]]:
    """Floods as (start, end, alarms): merged 10-minute windows opened by an alarm and holding more
    than FLOOD_COUNT alarms. ``ts`` are alarm times in ns."""
    t = np.sort(np.asarray(ts, dtype=np.int64))
    if len(t) <= FLOOD_COUNT:
        return []
    # alarms in [t_i, t_i + window) for each alarm i
    n_in = np.searchsorted(t, t + FLOOD_WINDOW_NS, side="left") - np.arange(len(t))
    out: list[list[int]] = []
    for i in np.flatnonzero(n_in > FLOOD_COUNT).tolist():
        w0, w1 = int(t[i]), min(int(t[i]) + FLOOD_WINDOW_NS, end)
        if out and w0 <= out[-1][1]:
            out[-1][1] = max(out[-1][1], w1)
        else:
            out.append([w0, w1, 0])
    for f in out:
        f[2] = int(np.count_nonzero((t >= f[0]) & (t < f[1])))
    return [(a, b, n) for a, b, n in out]


def chattering(ts: np.ndarray) -> int:
    """How many times the alarm chattered: raised CHATTER_COUNT or more times within a minute."""
    t = np.sort(np.asarray(ts, dtype=np.int64))
    if len(t) < CHATTER_COUNT:
        return 0
    n_in = np.searchsorted(t, t + CHATTER_WINDOW_NS, side="left") - np.arange(len(t))
    hits = np.flatnonzero(n_in >= CHATTER_COUNT)
    # count distinct bursts: a new burst starts once the previous window has passed
    bursts, last = 0, -(2**62)
    for i in hits.tolist():
        if t[i] >= last + CHATTER_WINDOW_NS:
            bursts += 1
            last = int(t[i])
    return bursts


def performance(alarms: Sequence[dict[str, Any]], start: int, end: int,
                positions: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The performance report of ``alarms`` (alarm_json dicts) raised in [start, end).

    ``positions`` are (id, path prefix) pairs; an alarm belongs to the first whose prefix its
    source starts with, else to ``"other"``."""
    if end <= start:
        raise ValueError(f"the period must end after it starts (from={start}, to={end})")
    hours = (end - start) / 3600 / NS
    counted = [a for a in alarms if start <= a["ts"] < end and a.get("state") != "suppressed"]
    suppressed = sum(1 for a in alarms if start <= a["ts"] < end and a.get("state") == "suppressed")

    def position_of(source: str) -> str:
        for pid, prefix in positions:
            if source == prefix or source.startswith(prefix + "/"):
                return pid
        return "other"

    groups: dict[str, list[dict[str, Any]]] = {pid: [] for pid, _ in positions}
    for a in counted:
        groups.setdefault(position_of(a["source"]), []).append(a)
    pos_out = []
    for pid, items in groups.items():
        ts = np.array([a["ts"] for a in items], dtype=np.int64)
        per_h = len(items) / hours if hours > 0 else 0.0
        floods = flood_periods(ts, start, end)
        flood_ns = sum(b - a for a, b, _ in floods)
        # the busiest 10 minutes, counted over windows opened by each alarm
        peak10 = int((np.searchsorted(np.sort(ts), np.sort(ts) + FLOOD_WINDOW_NS) - np.arange(len(ts))).max()) \
            if len(ts) else 0
        pos_out.append({
            "position": pid, "alarms": len(items), "per_hour": per_h, "rating": rate_rating(per_h),
            "peak_10min": peak10, "floods": [{"from": a, "to": b, "alarms": n} for a, b, n in floods],
            "flood_time_pct": 100.0 * flood_ns / (end - start),
        })

    by_alarm: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in counted:
        by_alarm.setdefault((a["source"], a["code"]), []).append(a)
    total = max(1, len(counted))
    freq = sorted(by_alarm.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    top = [{"source": s, "code": c, "count": len(v), "share_pct": 100.0 * len(v) / total,
            "message": v[0].get("message", ""), "chatter": chattering(np.array([a["ts"] for a in v]))}
           for (s, c), v in freq[:TOP_N]]
    chatter = [{"source": s, "code": c, "count": len(v), "bursts": b}
               for (s, c), v in freq if (b := chattering(np.array([a["ts"] for a in v]))) > 0]
    chatter.sort(key=lambda r: (-r["bursts"], -r["count"]))
    stale = [{"id": a["id"], "source": a["source"], "code": a["code"], "ts": a["ts"],
              "active_h": (end - a["ts"]) / 3600 / NS, "state": a["state"]}
             for a in alarms if a.get("state") in ("active", "acknowledged", "shelved")
             and a["ts"] < end - STALE_NS and (a.get("end_ts") is None or a["end_ts"] > end)]
    prio = {p: 0 for p in PRIORITY_TARGET}
    for a in counted:
        prio[a.get("priority", "low")] = prio.get(a.get("priority", "low"), 0) + 1
    return {
        "from": start, "to": end, "hours": hours, "alarms": len(counted), "suppressed": suppressed,
        "per_hour": len(counted) / hours if hours > 0 else 0.0,
        "benchmarks": {"acceptable_per_hour": ACCEPTABLE_PER_H, "manageable_per_hour": MANAGEABLE_PER_H,
                       "acceptable_per_10min": ACCEPTABLE_PER_10MIN, "manageable_per_10min": MANAGEABLE_PER_10MIN,
                       "flood_per_10min": FLOOD_COUNT, "chatter": f"{CHATTER_COUNT} in 60 s",
                       "stale_hours": STALE_NS / 3600 / NS, "priority_target": PRIORITY_TARGET},
        "positions": pos_out, "top": top, "chattering": chatter[:TOP_N], "stale": stale,
        "priorities": {p: {"count": n, "share_pct": 100.0 * n / total} for p, n in prio.items()},
    }
