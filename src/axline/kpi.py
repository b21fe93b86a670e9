"""Line KPIs: OEE (availability x performance x quality), cycle time against takt, first-pass yield,
energy per good part, per line and shift.

Definitions (the usual ones, stated so nobody has to guess):

- planned time: time of the shift observed so far;
- run time: planned time minus time in *stopped*, *changeover* or *down* state (idle and
  micro-stops stay in run time and show up as lost performance);
- availability = run time / planned time;
- performance = ideal cycle time x parts made / run time (capped at 1);
- quality = first-pass yield = good parts / parts made;
- cycle time = run time / parts made; energy per good part = energy used / good parts.

The state codes are the virtual factory's (and a common PLC convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from axline.batch import NS_PER_S, Batch
from axline.plant import Line, Shift

STATE_STOPPED, STATE_RUNNING, STATE_IDLE, STATE_MICROSTOP, STATE_CHANGEOVER, STATE_DOWN = range(6)
STATE_NAMES = {0: "stopped", 1: "running", 2: "idle", 3: "microstop", 4: "changeover", 5: "down"}
RUN_STATES = (STATE_RUNNING, STATE_IDLE, STATE_MICROSTOP)


def current_shift(ts_ns: int, tz: str, shifts: list[Shift]) -> tuple[str, int]:
    """The shift that ``ts_ns`` falls in: (name, start in ns). Outside every shift: ("-", start of day)."""
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(ts_ns / NS_PER_S, tz=zone)
    for day_offset in (0, -1):
        day = (local + timedelta(days=day_offset)).date()
        for s in shifts:
            hh, mm = map(int, s.start.split(":"))
            start = datetime(day.year, day.month, day.day, hh, mm, tzinfo=zone)
            if start <= local < start + timedelta(hours=s.hours):
                return s.name, int(start.timestamp()) * NS_PER_S
    start = datetime(local.year, local.month, local.day, tzinfo=zone)
    return "-", int(start.timestamp()) * NS_PER_S


def state_durations(ts: np.ndarray, states: np.ndarray, t_end: int) -> dict[int, int]:
    """Time (ns) spent in each state, each reading holding until the next one (the last until t_end)."""
    if len(ts) == 0:
        return {}
    order = np.argsort(ts, kind="stable")
    ts, states = ts[order], states[order]
    ends = np.append(ts[1:], max(t_end, int(ts[-1])))
    dur = ends - ts
    out: dict[int, int] = {}
    for s in np.unique(states[~np.isnan(states)]).astype(int):
        out[int(s)] = int(dur[states == s].sum())
    return out


@dataclass
class KpiValues:
    """OEE and its factors, cycle time, first-pass yield, energy per good part and part counts of a line."""
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    cycle_time_s: float | None
    fpy: float | None
    energy_per_good_kwh: float | None
    parts_total: int
    parts_good: int
    parts_rejected: int
    run_s: float
    planned_s: float


def compute_kpis(planned_ns: int, durations: dict[int, int], parts_total: float, parts_good: float,
                 parts_rejected: float, energy_kwh: float | None, ideal_cycle_s: float) -> KpiValues:
    """OEE and friends from time in each state and counter increments over the same period."""
    planned_s = planned_ns / NS_PER_S
    if durations:
        run_s = sum(durations.get(s, 0) for s in RUN_STATES) / NS_PER_S
    else:
        run_s = planned_s  # no state signal: assume the line ran
    total = max(0, int(round(parts_total)))
    good = max(0, int(round(parts_good)))
    rejected = max(0, int(round(parts_rejected)))
    availability = run_s / planned_s if planned_s > 0 else None
    performance = min(1.0, ideal_cycle_s * total / run_s) if run_s > 0 else None
    quality = good / total if total > 0 else None
    oee = availability * performance * quality if None not in (availability, performance, quality) else None
    return KpiValues(
        availability=availability, performance=performance, quality=quality, oee=oee,
        cycle_time_s=run_s / total if total > 0 else None, fpy=quality,
        energy_per_good_kwh=(energy_kwh / good) if energy_kwh is not None and good > 0 else None,
        parts_total=total, parts_good=good, parts_rejected=rejected, run_s=run_s, planned_s=planned_s,
    )


class _Counter:
    """Increase of a cumulative counter over a period, surviving counter resets (a PLC restart)."""

    __slots__ = ("first", "last", "carried")

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self.carried = 0.0

    def update(self, values: np.ndarray) -> None:
        values = values[~np.isnan(values)]
        if not len(values):
            return
        if self.first is None:
            self.first = self.last = float(values[0])
        prev = np.concatenate(([self.last], values[:-1]))
        resets = values < prev
        if resets.any():
            # at a reset the counter restarted from 0: bank what was counted before it
            self.carried += float((prev[resets]).sum())
        self.last = float(values[-1])

    def delta(self) -> float:
        if self.first is None:
            return 0.0
        return self.last - self.first + self.carried


class LineKpiTracker:
    """Keeps one line's KPIs for the current shift up to date from the stream of readings."""

    def __init__(self, line: Line, timezone: str) -> None:
        self.line = line
        self.tz = timezone
        self.shift_name = "-"
        self.shift_start: int | None = None
        self.t_first: int | None = None
        self.t_last: int | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self.counters = {k: _Counter() for k in ("parts_total", "parts_good", "parts_rejected", "energy")}
        self.durations: dict[int, int] = {}
        self.state: int | None = None
        self.state_since: int | None = None
        self.t_first = None

    def update(self, batch: Batch) -> None:
        """Take in the line's KPI tags (state, counters, energy) from ``batch``."""
        kpi = self.line.kpi
        if not kpi or not len(batch):
            return
        wanted = {p: k for k, p in kpi.items()}
        for j, path in enumerate(batch.paths):
            key = wanted.get(path)
            if key is None:
                continue
            sel = batch.idx == j
            if not sel.any():
                continue
            ts = batch.ts[sel]
            vals = np.where(batch.quality[sel] < 2, batch.value[sel], np.nan)
            order = np.argsort(ts, kind="stable")
            ts, vals = ts[order], vals[order]
            self._roll_shift(int(ts[0]))
            if key == "state":
                self._update_state(ts, vals)
            else:
                self.counters[key].update(vals)
            if self.t_first is None or ts[0] < self.t_first:
                self.t_first = int(ts[0])
            self.t_last = max(self.t_last or 0, int(ts[-1]))

    def _roll_shift(self, ts: int) -> None:
        name, start = current_shift(ts, self.tz, self.line.shifts)
        if self.shift_start is None or start > self.shift_start:
            if self.shift_start is not None:
                last_state = self.state
                self._reset_state()
                # the new shift has been observed since it began: plan and state both count from there
                self.state, self.state_since, self.t_first = last_state, start, start
            self.shift_name, self.shift_start = name, start

    def _update_state(self, ts: np.ndarray, vals: np.ndarray) -> None:
        for t, v in zip(ts.tolist(), vals.tolist(), strict=True):
            if v != v:  # NaN: unknown state, keep the last one
                continue
            s = int(v)
            if self.state is not None and self.state_since is not None and t > self.state_since:
                self.durations[self.state] = self.durations.get(self.state, 0) + (t - self.state_since)
            if self.state_since is None or t >= self.state_since:
                self.state, self.state_since = s, t

    def values(self) -> KpiValues:
        """The KPIs from the readings seen so far."""
        durations = dict(self.durations)
        if self.state is not None and self.state_since is not None and self.t_last is not None:
            durations[self.state] = durations.get(self.state, 0) + max(0, self.t_last - self.state_since)
        planned = (self.t_last - self.t_first) if self.t_first is not None and self.t_last is not None else 0
        c = self.counters
        energy = c["energy"].delta() if c["energy"].first is not None else None
        total = c["parts_total"].delta()
        good = c["parts_good"].delta() if c["parts_good"].first is not None else total - c["parts_rejected"].delta()
        return compute_kpis(planned, durations, total, good, c["parts_rejected"].delta(), energy,
                            self.line.ideal_cycle_s)

    def to_json(self) -> dict:
        """The KPIs as the dashboard reads them (``/api/kpi``)."""
        v = self.values()
        return {
            "oee": v.oee, "availability": v.availability, "performance": v.performance, "quality": v.quality,
            "cycle_time_s": v.cycle_time_s, "takt_s": self.line.takt_s, "fpy": v.fpy,
            "energy_per_good_kwh": v.energy_per_good_kwh, "parts_total": v.parts_total,
            "parts_good": v.parts_good, "parts_rejected": v.parts_rejected,
            "shift": self.shift_name, "shift_start": self.shift_start,
            "state": STATE_NAMES.get(self.state, "unknown") if self.state is not None else "unknown",
        }
