"""The TEP harness's advisor on a stand-in plant (no tep-studio needed): the stripper trips when the
reactor level is cut hard with a hot reactor, as the real plant's does, and the cheapest setpoints lie
close to that trip. The advisor must get most of the saving without a single shutdown."""

from __future__ import annotations

import math

import numpy as np
import pytest

import axline.bench.tep as tep

DEFAULT = {"reactor_pressure": 2705.0, "reactor_level": 75.0, "reactor_temperature": 120.4, "stripper_level": 50.0}


def stand_in(x: dict[str, float] | None, seed: int) -> dict:
    """Cost falls with pressure, a lower level and a hotter reactor; the stripper's peak level rises
    with the level cut and the temperature rise, and trips at 130.5 %."""
    x = x or DEFAULT
    p, lvl, t, s = (x[k] for k in DEFAULT)
    strip = 50.0 + 3.0 * max(0.0, 75.0 - lvl) + 8.0 * max(0.0, t - 120.4) + 0.5 * (s - 50.0)
    trip = strip > 130.5
    out = {"shutdown": trip, "shutdown_message": "High Stripper Liquid Level!!  Shutting down." if trip else "",
           "p_max": p + 10.0, "reactor_level_max": 77.0, "reactor_level_min": lvl - 3.0, "separator_level_max": 55.0,
           "separator_level_min": 45.0, "stripper_level_max": min(strip, 130.6), "stripper_level_min": 45.0,
           "default": dict(DEFAULT), "final_time_h": 1.0 if trip else 24.0}
    if trip:
        out.update(cost=math.nan, production=math.nan, pct_g=math.nan)
    else:
        out.update(cost=170.0 - 0.2 * (p - 2705.0) - 1.0 * (75.0 - lvl) - 3.0 * (t - 120.4) + 0.01 * (s - 40.0) ** 2,
                   production=22.95, pct_g=54.0)
    return out


@pytest.mark.slow
def test_advisor_saves_without_a_shutdown(monkeypatch):
    monkeypatch.setattr(tep, "evaluate", stand_in)
    r = tep._job(("axline", 1, 12))
    assert r["evaluations"] == 12 and r["shutdown_trials"] == 0 and r["infeasible_trials"] == 0
    base = r["baseline"]["cost"]
    assert r["final_cost"] < base - 40.0  # most of the way from 170 towards the trip (about 113)
    lo = np.array([d[1] for d in tep.DECISIONS])
    hi = np.array([d[2] for d in tep.DECISIONS])
    xs = np.array([t["x"] for t in r["trials"]])
    assert (xs >= lo - 1e-9).all() and (xs <= hi + 1e-9).all()
    # every trial a step from the best point so far, never more than each decision's maximum step
    best, x_best = base, np.array(r["baseline"]["x"])
    steps = np.array([d[3] for d in tep.DECISIONS])
    for t in r["trials"]:
        assert (np.abs(np.array(t["x"]) - x_best) <= steps + 1e-9).all(), (t["x"], x_best)
        if t["feasible"] and t["cost"] < best:
            best, x_best = t["cost"], np.array(t["x"])
    assert max(t["stripper_level_max"] for t in r["trials"]) <= tep.safe_limit("stripper_level_max") + 1.0


def test_a_shutdown_teaches_the_tripped_extreme():
    ev = stand_in({"reactor_pressure": 2850.0, "reactor_level": 50.0, "reactor_temperature": 125.0,
                   "stripper_level": 50.0}, 1)
    assert ev["shutdown"]
    y = tep._y(ev)
    assert y["stripper_level_max"] >= 130.5 and math.isnan(y["cost"])
    assert tep.safe_limit("stripper_level_max") == pytest.approx(50.0 + 0.85 * 80.5)
