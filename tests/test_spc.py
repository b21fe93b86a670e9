"""Control charts, Nelson / Western Electric rules and capability indices."""

from __future__ import annotations

import numpy as np
import pytest

from axline import spc


def _rules(x, ruleset="nelson", center=0.0, sigma=1.0):
    return [(v.rule, v.index) for v in spc.rule_violations(np.asarray(x, float), center, sigma, ruleset)]


def test_each_nelson_rule_fires_on_its_pattern_and_not_on_noise():
    assert _rules([0, 0.5, -3.5, 0.2]) == [(1, 2)]
    nine_above = [0.5] * 9
    assert (2, 8) in _rules(nine_above)
    assert (2, 8) not in _rules([0.5] * 8)
    assert (2, 7) in _rules([0.5] * 8, "western_electric")  # Western Electric: eight in a row
    assert (3, 5) in _rules([-1.2, -0.8, -0.4, 0.0, 0.4, 0.8])
    alternating = [0.3 * (-1) ** i for i in range(14)]
    assert (4, 13) in _rules(alternating) and (4, 12) not in _rules(alternating[:13])
    assert (5, 2) in _rules([2.5, 0.0, 2.2])
    assert (6, 4) in _rules([1.5, 1.2, 0.2, 1.1, 1.3])
    assert (7, 14) in _rules([0.1 * (-1) ** i for i in range(15)])
    assert (8, 7) in _rules([1.5, -1.5] * 4)
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, 200)
    fired = {r for r, _ in _rules(noise)}
    assert not fired & {1, 2, 3, 4}, fired  # in-control noise: no gross rule fires (seeded)


def test_a_pattern_that_goes_on_is_reported_once():
    assert [r for r in _rules([0.5] * 20) if r[0] == 2] == [(2, 8)]


def test_imr_limits_and_phase_ii_drift_fires_a_rule():
    rng = np.random.default_rng(7)
    base = 25.0 + rng.normal(0, 0.004, 100)
    lim = spc.fit_limits(base, "imr")
    assert lim.sigma == pytest.approx(0.004, rel=0.2)
    assert lim.ucl == pytest.approx(lim.center + 3 * lim.sigma)
    assert lim.r_ucl == pytest.approx(3.267 * lim.r_center)
    drift = 25.0 - 0.0008 * np.arange(60) + rng.normal(0, 0.004, 60)  # the tool wears the bore down
    x = np.concatenate([base, drift])
    v = spc.rule_violations(x, lim.center, lim.sigma)
    after = [w for w in v if w.index >= 100]
    assert after and after[0].index < 100 + 40
    with pytest.raises(ValueError, match="at least 20"):
        spc.fit_limits(base[:10], "imr")


def test_xbar_r_limits_use_the_textbook_constants():
    g = np.tile([24.99, 25.0, 25.01, 25.0, 25.0], 25)  # each subgroup: range 0.02, mean 25.0
    lim = spc.fit_limits(g, "xbar_r", 5)
    assert lim.center == pytest.approx(25.0)
    assert lim.r_center == pytest.approx(0.02)
    assert lim.ucl == pytest.approx(25.0 + 0.577 * 0.02)
    assert lim.r_ucl == pytest.approx(2.114 * 0.02)
    assert lim.sigma_within == pytest.approx(0.02 / 2.326)
    with pytest.raises(ValueError, match="from 2 to 10"):
        spc.fit_limits(g, "xbar_r", 11)


def test_capability_against_spec_limits():
    rng = np.random.default_rng(3)
    v = 25.005 + rng.normal(0, 0.004, 2000)
    cap = spc.capability(v, {"lsl": 24.98, "usl": 25.02})
    assert cap["cp"] == pytest.approx(0.04 / (6 * 0.004), rel=0.08)
    assert cap["cpk"] == pytest.approx(0.015 / (3 * 0.004), rel=0.08)
    assert cap["pp"] == pytest.approx(cap["cp"], rel=0.08)
    one_sided = spc.capability(v, {"usl": 25.02})
    assert one_sided["cp"] is None and one_sided["cpk"] == pytest.approx(cap["cpk"], rel=0.01)
    assert spc.capability(v[:1], {"usl": 1})["cpk"] is None


def test_measurements_drop_held_repeats_and_bad_quality():
    ts = np.arange(6)
    ts2, v = spc.measurements(ts, np.array([1.0, 1.0, 1.0, 2.0, np.nan, 2.0]), np.array([0, 0, 0, 0, 0, 5]))
    assert v.tolist() == [1.0, 2.0] and ts2.tolist() == [0, 3]


def test_lots_split_at_changeovers_and_groups_get_their_own_capability():
    bounds = spc.lot_bounds(np.array([0, 10, 20, 30, 40]), np.array([1, 4, 1, 4, 1]))
    assert bounds.tolist() == [20, 40]
    ts = np.arange(8)
    v = np.array([1.0, 1.1, 0.9, 1.0, 2.0, 2.1, 1.9, 2.0])
    caps = spc.group_capability(ts, v, {"lsl": 0.0, "usl": 3.0}, ["a"] * 4 + ["b"] * 4)
    assert [c["group"] for c in caps] == ["a", "b"]
    assert caps[0]["mean"] == pytest.approx(1.0) and caps[1]["mean"] == pytest.approx(2.0)
