"""KPI arithmetic against hand-computed cases, and the streaming tracker against the batch formula."""

from __future__ import annotations

import numpy as np
import pytest

from axline.batch import NS_PER_S, Batch
from axline.kpi import (
    STATE_CHANGEOVER,
    STATE_DOWN,
    STATE_MICROSTOP,
    STATE_RUNNING,
    LineKpiTracker,
    compute_kpis,
    current_shift,
    state_durations,
)
from axline.plant import Line, Shift

S = NS_PER_S
T0 = 1_767_225_600 * S  # 2026-01-01 00:00 UTC = 09:00 in Seoul


def test_oee_hand_computed():
    # 8 h planned, 1 h down, 0.5 h changeover -> run 6.5 h; 2000 parts at ideal 10 s; 1900 good
    planned = 8 * 3600 * S
    d = {STATE_RUNNING: int(6.0 * 3600 * S), STATE_MICROSTOP: int(0.5 * 3600 * S),
         STATE_DOWN: 3600 * S, STATE_CHANGEOVER: int(0.5 * 3600 * S)}
    k = compute_kpis(planned, d, 2000, 1900, 100, 950.0, 10.0)
    assert k.availability == pytest.approx(6.5 / 8)
    assert k.performance == pytest.approx(2000 * 10 / (6.5 * 3600))
    assert k.quality == pytest.approx(0.95)
    assert k.oee == pytest.approx(k.availability * k.performance * k.quality)
    assert k.cycle_time_s == pytest.approx(6.5 * 3600 / 2000)
    assert k.energy_per_good_kwh == pytest.approx(0.5)


def test_no_parts_means_unknown_not_zero_division():
    k = compute_kpis(3600 * S, {STATE_RUNNING: 3600 * S}, 0, 0, 0, None, 10.0)
    assert k.quality is None and k.oee is None and k.cycle_time_s is None and k.availability == 1.0


def test_state_durations_hold_until_next_reading():
    ts = np.array([0, 10, 30]) * S
    d = state_durations(ts, np.array([1.0, 5.0, 1.0]), 60 * S)
    assert d == {1: 40 * S, 5: 20 * S}


def test_current_shift_in_plant_time_zone():
    shifts = [Shift("A", "06:00", 8), Shift("B", "14:00", 8), Shift("C", "22:00", 8)]
    name, start = current_shift(T0, "Asia/Seoul", shifts)  # 09:00 KST
    assert name == "A" and start == T0 - 3 * 3600 * S
    name, start = current_shift(T0 - 10 * 3600 * S, "Asia/Seoul", shifts)  # 23:00 KST the day before
    assert name == "C" and start == T0 - 11 * 3600 * S
    name, start = current_shift(T0 + 18 * 3600 * S, "Asia/Seoul", shifts)  # 03:00 KST, C began 22:00
    assert name == "C" and start == T0 + 13 * 3600 * S


def _line() -> Line:
    p = "s/a/l1/line/totals"
    return Line(id="l1", path="s/a/l1", name={}, takt_s=12, ideal_cycle_s=10,
                shifts=[Shift("A", "00:00", 24)], assets=[],
                kpi={"state": f"{p}/state", "parts_total": f"{p}/total", "parts_good": f"{p}/good",
                     "parts_rejected": f"{p}/rej", "energy": f"{p}/energy"})


def test_tracker_streams_to_the_same_answer_as_the_formula():
    line = _line()
    tr = LineKpiTracker(line, "UTC")
    rng = np.random.default_rng(3)
    p = "s/a/l1/line/totals"
    t = T0 + 3600 * S
    total = good = 0
    energy = 100.0
    states = []
    first = None
    for _k in range(600):  # 6000 s, one reading a second, in batches of 10
        rows = []
        for _ in range(10):
            st = STATE_DOWN if 200 <= (t - T0 - 3600 * S) // S < 260 else STATE_RUNNING
            states.append((t, st))
            if st == STATE_RUNNING and rng.random() < 0.09:
                total += 1
                good += rng.random() > 0.05
            energy += 0.01
            first = first or (total, good, energy)
            rows += [(f"{p}/state", t, st), (f"{p}/total", t, total), (f"{p}/good", t, good),
                     (f"{p}/rej", t, total - good), (f"{p}/energy", t, energy)]
            t += S
        tr.update(Batch.from_readings(rows))
    v = tr.values()
    ts = np.array([s[0] for s in states])
    d = state_durations(ts, np.array([s[1] for s in states], dtype=float), int(ts[-1]))
    n_total, n_good = total - first[0], good - first[1]
    ref = compute_kpis(int(ts[-1] - ts[0]), d, n_total, n_good, n_total - n_good, energy - first[2], 10.0)
    assert v.parts_total == n_total and v.parts_good == n_good
    assert v.availability == pytest.approx(ref.availability)
    assert v.oee == pytest.approx(ref.oee)
    assert v.availability == pytest.approx((5999 - 60) / 5999)
    assert v.energy_per_good_kwh == pytest.approx(ref.energy_per_good_kwh)


def test_counter_reset_is_not_a_negative_count():
    tr = LineKpiTracker(_line(), "UTC")
    p = "s/a/l1/line/totals/total"
    vals = [100, 101, 102, 0, 1, 2]  # PLC restarted after 102
    tr.update(Batch.from_readings([(p, T0 + i * S, v) for i, v in enumerate(vals)]))
    assert tr.values().parts_total == 4


def test_shift_change_restarts_the_kpis_and_availability_stays_at_most_one():
    line = _line()
    line.shifts = [Shift("A", "00:00", 12), Shift("B", "12:00", 12)]
    tr = LineKpiTracker(line, "UTC")
    p = "s/a/l1/line/totals"
    t = T0 + 11 * 3600 * S + 3000 * S  # 11:50 UTC, shift A
    n = 0
    for _ in range(120):  # 20 minutes across the 12:00 shift change, a reading every 10 s
        n += 1
        tr.update(Batch.from_readings([(f"{p}/state", t, STATE_RUNNING), (f"{p}/total", t, n),
                                       (f"{p}/good", t, n), (f"{p}/rej", t, 0)]))
        t += 10 * S
    v = tr.values()
    assert tr.shift_name == "B"
    assert v.availability == pytest.approx(1.0)
    assert 55 <= v.parts_total <= 61  # only the parts since 12:00
