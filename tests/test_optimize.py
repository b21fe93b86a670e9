"""The setpoint advisor's safety properties, each asserted on the virtual furnace (in process)."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import numpy as np
import pytest

from axline.optimize.advisor import TrustRegion, advise, candidates, check_safe, step_sizes, trust_box
from axline.optimize.loop import OptimizeError, SimIO, UnitOptimizer
from axline.optimize.spec import Constraint, SpecError, check_spec, furnace_spec
from axline.optimize.surrogate import Observation, Surrogate
from axline.optimize.twin import FurnaceTwin, furnace_twin_factory
from axline.sim.line import VirtualLine

P = "changwon/plant1/line1"
A = f"{P}/furnace/furnace1"
T = f"{P}/line/totals"
T0 = 1_767_225_600 * 1_000_000_000
TEMP, O2, BELT = f"{A}/temp_setpoint", f"{A}/o2_setpoint", f"{A}/belt_speed"


def _spec(**kw):
    return dataclasses.replace(furnace_spec(A, T, settle_s=300.0, verify_s=600.0), **kw)


def _plant(seed: int = 3, warm_s: float = 1200.0) -> SimIO:
    io = SimIO(VirtualLine(seed=seed, start_ns=T0, faults=None, render_images=False, changeover_interval_s=None))
    io.advance(warm_s)
    return io


async def _finish(opt: UnitOptimizer) -> None:
    while opt.tasks:
        await asyncio.gather(*list(opt.tasks))


def _events(io: SimIO, code: str) -> list:
    return [e for e in io.events if e.code == code]


# -- bounds, maximum step, trust region ------------------------------------------------------------
def test_check_safe_names_every_breach():
    spec = _spec()
    x0 = np.array([850.0, 4.5, 100.0])
    assert check_safe(spec, x0, x0) == []
    why = check_safe(spec, x0, np.array([950.0, 4.5, 100.0]))  # above the hard bound and a huge step
    assert any("outside the hard bounds" in w for w in why) and any("maximum step" in w for w in why)
    step = step_sizes(spec)
    assert step[1] < spec.decisions[1].max_step  # the trust region is tighter than the step for O2
    why = check_safe(spec, x0, np.array([850.0, 4.5 - (step[1] + spec.decisions[1].max_step) / 2, 100.0]))
    assert why and "trust region" in why[0]
    assert check_safe(spec, x0, np.array([math.nan, 4.5, 100.0]))


def test_candidates_and_proposals_never_leave_bounds_or_trust_region():
    spec = _spec()
    rng = np.random.default_rng(0)
    lo = np.array([d.lo for d in spec.decisions])
    hi = np.array([d.hi for d in spec.decisions])
    for _ in range(8):
        x0 = lo + (hi - lo) * rng.random(3)
        blo, bhi = trust_box(spec, x0)
        xs = candidates(spec, x0, rng, n=200)
        assert (xs >= blo - 1e-9).all() and (xs <= bhi + 1e-9).all()
        assert all(check_safe(spec, x0, x) == [] for x in xs)
        # a surrogate that believes the objective falls forever towards a corner
        sur = Surrogate(spec)
        for _k in range(8):
            x = lo + (hi - lo) * rng.random(3)
            sur.add(Observation(dict(zip([d.tag for d in spec.decisions], x, strict=True)),
                                {"gas_per_good_part": float(x @ [1e-3, 1e-2, 1e-3]), "hardness": 61.0, "co": 20.0,
                                 "throughput": 300.0}, "plant"))
        adv = advise(spec, sur, x0, {"throughput": 300.0}, rng)
        if adv.x is not None:
            assert check_safe(spec, x0, np.array([adv.x[d.tag] for d in spec.decisions])) == []


def test_trust_region_narrows_on_failures_widens_on_successes_and_never_past_the_step():
    region = TrustRegion()
    assert [region.update(False) for _ in range(3)][-1] == 0.5  # three trials in a row that did not pay
    assert region.update(True) == 0.5 and region.update(True) == 1.0  # two improvements in a row
    assert region.update(True) == 1.0 and region.update(True) == 1.0  # never wider than the full step
    for _ in range(60):
        region.update(False)
    assert region.scale == region.min_scale > 0
    spec = dataclasses.replace(_spec(), min_improvement=0.0)  # any gain counts in a narrow box
    rng = np.random.default_rng(1)
    x0 = np.array([850.0, 4.5, 100.0])
    blo, bhi = trust_box(spec, x0, scale=0.25)
    flo, fhi = trust_box(spec, x0)
    assert np.allclose(bhi - blo, 0.25 * (fhi - flo))
    xs = candidates(spec, x0, rng, n=200, scale=0.25)
    assert (xs >= blo - 1e-9).all() and (xs <= bhi + 1e-9).all()
    sur = Surrogate(spec)
    for _k in range(8):
        x = blo + (bhi - blo) * rng.random(3)
        sur.add(Observation(dict(zip([d.tag for d in spec.decisions], x, strict=True)),
                            {"gas_per_good_part": float(x @ [1e-3, 1e-2, 1e-3]), "hardness": 61.0, "co": 20.0,
                             "throughput": 300.0}, "plant"))
    adv = advise(spec, sur, x0, {"throughput": 300.0}, rng, scale=0.25)
    assert adv.x is not None
    x = np.array([adv.x[d.tag] for d in spec.decisions])
    assert (x >= blo - 1e-9).all() and (x <= bhi + 1e-9).all()
    for bad in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="scale"):
            trust_box(spec, x0, scale=bad)


def test_today_far_outside_the_bounds_gives_no_proposal():
    spec = _spec()
    with pytest.raises(ValueError, match="outside the bounds"):
        trust_box(spec, np.array([700.0, 4.5, 100.0]))


def test_spec_checks_at_the_door():
    with pytest.raises(SpecError, match="max_step"):
        check_spec(dataclasses.replace(_spec(), decisions=(dataclasses.replace(_spec().decisions[0], max_step=0),)))
    with pytest.raises(SpecError, match="not a metric"):
        check_spec(_spec(objective="nope"))
    with pytest.raises(SpecError, match="limit"):
        check_spec(_spec(constraints=(Constraint("co", "max"),)))


# -- the loop on the virtual plant ----------------------------------------------------------------
async def test_approver_must_not_be_the_proposer_and_nothing_is_written():
    io = _plant()
    opt = UnitOptimizer(_spec(), io)
    p = await opt.submit({O2: 4.2}, proposer="kim")
    with pytest.raises(OptimizeError) as e:
        opt.approve(p.id, "kim")
    assert e.value.status == 403 and p.status == "proposed"
    assert not io.writes
    assert _events(io, "optimize.approval_refused")[0].data["user"] == "kim"


async def test_a_constraint_broken_on_the_plant_rolls_back_automatically_with_the_reason():
    io = _plant()
    opt = UnitOptimizer(_spec(), io, furnace_twin_factory(io, A, T))
    # a cooler furnace at the same belt speed under-hardens the parts (engineer's own idea)
    p = await opt.submit({TEMP: 830.0}, proposer="kim", note="try cooler")
    assert p.twin is not None and not all(v["ok"] for v in p.twin["constraints"])  # the twin warned
    opt.approve(p.id, "lee")
    await _finish(opt)
    assert p.status == "rolled_back"
    assert "hardness" in p.reason
    # written under the approver's name, then written back
    assert [(t, v, u) for _, t, v, u in io.writes] == [(TEMP, 830.0, "lee"), (TEMP, 850.0, "lee")]
    assert io.line._furnace.setpoint == 850.0
    steps = [s["step"] for s in p.steps]
    assert steps == ["proposed", "approved", "applied", "rolled_back"]
    for code in ("optimize.proposed", "optimize.approved", "optimize.applied", "optimize.rolled_back"):
        assert len(_events(io, code)) == 1
    assert _events(io, "optimize.rolled_back")[0].severity == "warning"
    writes = [e for e in io.events if e.kind == "write"]
    assert len(writes) == 2 and all(e.data["user"] == "lee" for e in writes)


async def test_a_good_change_is_kept():
    io = _plant()
    opt = UnitOptimizer(_spec(), io)
    p = await opt.submit({O2: 3.9}, proposer="kim")  # less excess air: less gas, CO still low
    opt.approve(p.id, "lee")
    await _finish(opt)
    assert p.status == "kept", p.reason
    assert p.verdict["after"]["gas_per_good_part"] < p.verdict["before"]["gas_per_good_part"]
    assert io.line._furnace.o2_setpoint == 3.9


async def test_stale_proposal_is_refused_when_the_setpoints_moved():
    io = _plant()
    opt = UnitOptimizer(_spec(), io)
    p = await opt.submit({O2: 4.2}, proposer="kim")
    await io.write(TEMP, 845.0, "park")  # someone changed the furnace by hand meanwhile
    opt.approve(p.id, "lee")
    await _finish(opt)
    assert p.status == "failed" and "moved since the proposal" in p.reason
    assert [w[1] for w in io.writes] == [TEMP]  # only the hand write


async def test_one_change_at_a_time():
    io = _plant()
    opt = UnitOptimizer(_spec(), io)
    p1 = await opt.submit({O2: 4.2}, proposer="kim")
    p2 = await opt.submit({O2: 4.1}, proposer="kim")
    opt.approve(p1.id, "lee")
    with pytest.raises(OptimizeError, match="still"):
        opt.approve(p2.id, "lee")
    await _finish(opt)


async def test_submitted_setpoints_outside_the_trust_region_are_refused():
    io = _plant()
    opt = UnitOptimizer(_spec(), io)
    with pytest.raises(OptimizeError, match="trust region|maximum step|hard bounds"):
        await opt.submit({O2: 2.0}, proposer="kim")
    with pytest.raises(OptimizeError, match="not decisions"):
        await opt.submit({f"{A}/zone1_temp": 2.0}, proposer="kim")


async def test_an_unsure_proposal_that_breaks_a_constraint_on_the_twin_is_never_offered():
    io = _plant()
    # CO must stay under 17 ppm: today it is ~16; less air would break it
    spec = _spec(unsure_ratio=0.0, constraints=(Constraint("co", "max", 17.0),))
    opt = UnitOptimizer(spec, io, furnace_twin_factory(io, A, T), explore_on_twin=False)
    # history that misleads: less air saved gas and CO did not move
    for o2 in (4.5, 4.3, 4.1, 3.9):
        opt.surrogate.add(Observation({TEMP: 850.0, O2: o2, BELT: 100.0},
                                      {"gas_per_good_part": 0.18 - 0.01 * (4.5 - o2), "hardness": 60.5, "co": 16.0,
                                       "throughput": 295.0}, "history"))
    out = await opt.propose("advisor")
    rejected = [p for p in opt.proposals.values() if p.status == "twin_rejected"]
    assert rejected, out
    assert "co" in rejected[0].reason and rejected[0].twin["constraints"][0]["ok"] is False
    assert _events(io, "optimize.twin_rejected")
    assert not io.writes  # nothing reached the plant


async def test_unsure_proposal_goes_to_the_twin_then_as_a_small_step():
    io = _plant()
    spec = _spec(unsure_ratio=1e9)  # always unsure
    opt = UnitOptimizer(spec, io, furnace_twin_factory(io, A, T))
    p = await opt.propose("advisor")
    assert not isinstance(p, dict), p
    assert p.status == "proposed" and p.small_step and p.twin is not None
    full = p.advice["x"]
    for d in spec.decisions:  # half way towards what the advisor found
        assert p.x[d.tag] == pytest.approx(p.x0[d.tag] + spec.small_step * (full[d.tag] - p.x0[d.tag]))
        assert abs(p.x[d.tag] - p.x0[d.tag]) <= step_sizes(spec).max() + 1e-9


def test_twin_starts_from_the_plant_state_and_estimates_fouling():
    io = _plant(warm_s=600.0)
    f = io.line._furnace
    f.fouling = 0.4  # burners fouled over months
    io.advance(1800.0)
    make = furnace_twin_factory(io, A, T)
    twin: FurnaceTwin = asyncio.run(make())
    assert twin.line._furnace.setpoint == f.setpoint
    assert abs(twin.line._furnace.temps[0] - f.temps[0]) < 3.0
    assert 0.2 < twin.fouling < 0.6
    series, traj = twin.run({O2: 3.0}, 0.5, [f"{A}/fuel_flow", f"{A}/o2"], sample_s=300.0)
    assert len(traj["t_s"]) == 6 and all(v is not None for v in traj[f"{A}/o2"])
    assert abs(traj[f"{A}/o2"][-1] - 3.0) < 0.5


# -- the feasibility classifier ---------------------------------------------------------------------
def test_no_proposal_near_a_trial_that_broke_a_limit():
    from axline.optimize.advisor import feasible_by_classifier

    spec = _spec()
    tags = [d.tag for d in spec.decisions]
    step = step_sizes(spec)
    x0 = np.array([850.0, 4.5, 100.0])
    bad = x0 + np.array([0.0, -step[1], 0.0])  # less air: CO broke its limit there
    sur = Surrogate(spec)
    rng = np.random.default_rng(1)
    # the objective falls towards less air, so without the classifier the advisor would go there
    for k in range(12):
        x = x0 + step * (2 * rng.random(3) - 1)
        sur.add(Observation(dict(zip(tags, x, strict=True)), {"gas_per_good_part": 0.18 + 0.01 * (x[1] - 4.5),
                                                             "hardness": 61.0, "co": 20.0, "throughput": 300.0},
                            "plant", feasible=True if k else None))
    assert feasible_by_classifier(spec, sur, np.array([bad])).all()  # nothing failed yet
    sur.add(Observation(dict(zip(tags, bad, strict=True)), {"co": 900.0}, "plant", feasible=False))
    xs = candidates(spec, x0, rng, n=400)
    ok = feasible_by_classifier(spec, sur, xs)
    d_bad = np.sqrt((((xs - bad) / step) ** 2).sum(1))
    assert not ok[d_bad <= 0.5].any() and ok[d_bad > 1.5].all()
    adv = advise(spec, sur, x0, {"throughput": 300.0}, rng)
    assert adv.x is not None
    assert np.sqrt((((np.array([adv.x[t] for t in tags]) - bad) / step) ** 2).sum()) > 0.5
    # a twin's answer teaches the classifier nothing: only the plant's trials do
    twin = Surrogate(spec)
    twin.add(Observation(dict(zip(tags, bad, strict=True)), {"co": 900.0}, "twin", feasible=False))
    assert feasible_by_classifier(spec, twin, np.array([bad])).all()
