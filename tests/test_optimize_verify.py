"""How the loop judges a change: baselines without the trials rolled back, the twin's view of the
burner fouling, and refusals in both languages."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from axline import i18n
from axline.optimize.loop import OptimizeError, SimIO, UnitOptimizer
from axline.optimize.metrics import NS, masked, unit_metrics
from axline.optimize.spec import furnace_spec
from axline.optimize.twin import fouling_from_co, furnace_twin_factory
from axline.sim import furnace as fphys
from axline.sim.line import VirtualLine

P = "changwon/plant1/line1"
A = f"{P}/furnace/furnace1"
T = f"{P}/line/totals"
T0 = 1_767_225_600 * 1_000_000_000
TEMP, O2 = f"{A}/temp_setpoint", f"{A}/o2_setpoint"


def _spec(**kw):
    return dataclasses.replace(furnace_spec(A, T, settle_s=300.0, verify_s=600.0), **kw)


def test_masked_spans_leave_the_metrics():
    spec = _spec()
    ts = T0 + np.arange(0, 600) * NS
    hard = np.where((ts >= T0 + 200 * NS) & (ts < T0 + 300 * NS), 40.0, 61.0)  # a bad spell
    state = np.ones(len(ts))
    series = {f"{A}/hardness": (ts, hard), f"{T}/state": (ts, state)}
    whole = unit_metrics(spec, series, T0, T0 + 600 * NS)["hardness"]
    assert whole < 60.0
    cut = masked(spec, series, [(T0 + 200 * NS, T0 + 300 * NS)])
    assert unit_metrics(spec, cut, T0, T0 + 600 * NS)["hardness"] == pytest.approx(61.0)
    assert masked(spec, series, []) is series


def test_fouling_is_read_off_co_against_o2():
    rng = np.random.default_rng(0)
    fouling = 0.12
    o2 = 2.2 + 0.25 * rng.standard_normal(600)
    co = np.array([fphys.co_ppm(x, fouling) for x in o2]) * (1 + 0.05 * rng.standard_normal(600))
    got = fouling_from_co(o2 + 0.06 * rng.standard_normal(600), co)
    assert got == pytest.approx(fouling, abs=0.02)
    # far above the clean minimum CO sits on its floor and says nothing
    o2_far = 4.5 + 0.25 * rng.standard_normal(600)
    assert fouling_from_co(o2_far, np.array([fphys.co_ppm(x, fouling) for x in o2_far])) is None


def test_twin_reads_fouling_off_the_flue_near_the_clean_limit():
    io = SimIO(VirtualLine(seed=4, start_ns=T0, faults=None, render_images=False, changeover_interval_s=None))
    io.advance(600.0)
    f = io.line._furnace
    f.fouling = 0.3
    asyncio.run(io.write(O2, 2.3, "kim"))  # near the minimum for this fouling: CO tells
    io.advance(1500.0)
    twin = asyncio.run(furnace_twin_factory(io, A, T)())
    assert twin.fouling == pytest.approx(f.fouling, abs=0.03)


async def test_a_rolled_back_trial_is_not_in_the_next_baseline():
    io = SimIO(VirtualLine(seed=3, start_ns=T0, faults=None, render_images=False, changeover_interval_s=None))
    io.advance(1500.0)
    spec = _spec()
    opt = UnitOptimizer(spec, io)
    before = await opt.baseline()
    p = await opt.submit({TEMP: 830.0}, proposer="kim")  # under-hardens: rolled back
    opt.approve(p.id, "lee")
    while opt.tasks:
        await asyncio.gather(*list(opt.tasks))
    assert p.status == "rolled_back" and "hardness" in p.reason
    (a, b), = opt.excluded
    assert a == p.applied_ns and b == io.now_ns() + int(spec.settle_s * NS)
    assert opt.clean_until_ns() == io.now_ns()  # the readings before the trial are today's: no wait
    b0, b1, excl = opt._baseline_window()
    assert b0 < p.applied_ns and opt._clean_ns(b0, b1) == int(spec.verify_s * NS)
    after = await opt.baseline()
    whole = await opt.window_metrics(b0, b1)  # the same span with the trial in it
    assert after["hardness"] > spec.constraints[0].limit
    assert abs(after["hardness"] - before["hardness"]) < abs(whole["hardness"] - before["hardness"])


async def test_refusals_carry_their_catalog_text_in_both_languages():
    io = SimIO(VirtualLine(seed=3, start_ns=T0, faults=None, render_images=False, changeover_interval_s=None))
    io.advance(600.0)
    opt = UnitOptimizer(_spec(), io)
    p = await opt.submit({O2: 4.3}, proposer="kim")
    with pytest.raises(OptimizeError) as e:
        opt.approve(p.id, "kim")
    err = e.value
    assert err.key == "err.optimize.own_proposal" and err.status == 403
    assert "may not approve" in str(err)
    ko = i18n.text(err.key, "ko", **err.params)
    assert "kim" in ko and ko != i18n.text(err.key, "en", **err.params)
    with pytest.raises(OptimizeError) as e:
        await opt.submit({O2: 1.0}, proposer="kim")
    assert e.value.key == "err.optimize.unsafe" and "hard bounds" in str(e.value)
    assert not io.writes
