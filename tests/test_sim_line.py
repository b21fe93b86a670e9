"""The virtual line: determinism, ranges, sampling, physics, faults with ground truth, parts, writes."""

from __future__ import annotations

import numpy as np
import pytest

from axline.batch import BAD_SENSOR, GOOD, NS_PER_S, Batch
from axline.sim.line import (
    DIMENSION_NOMINAL_MM,
    DIMENSION_TOLERANCE_MM,
    FAULT_KINDS,
    STATE_CHANGEOVER,
    STATE_MICROSTOP,
    STATE_RUNNING,
    FaultSpec,
    VirtualLine,
)

T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z
P = "changwon/plant1/line1"


def run(line: VirtualLine, seconds: float, dt: float = 5.0) -> Batch:
    n = int(round(seconds / dt))
    return Batch.concat([line.step(dt) for _ in range(n)])


def series(batch: Batch, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seconds since T0, value, quality) of one tag."""
    i = batch.paths.index(path)
    m = batch.idx == i
    return (batch.ts[m] - T0) / NS_PER_S, batch.value[m], batch.quality[m]


@pytest.fixture(scope="module")
def clean_hour():
    line = VirtualLine(seed=3, start_ns=T0, faults=None, render_images=False)
    batch = run(line, 3600.0)
    return line, batch, line.drain_parts()


# -- determinism -------------------------------------------------------------------------------
def _record(seed: int, steps: list[float]):
    line = VirtualLine(seed=seed, start_ns=T0, warmup_s=60.0, image_size=48)
    out = [line.step(dt) for dt in steps]
    return Batch.concat(out), line.drain_parts(), line.drain_images(), line.faults


def test_same_seed_same_output_different_seed_differs():
    steps = [0.05, 0.2, 1.0, 3.3, 10.0, 0.7] * 12
    b1, parts1, imgs1, f1 = _record(11, steps)
    b2, parts2, imgs2, f2 = _record(11, steps)
    assert b1.paths == b2.paths
    for col in ("idx", "ts", "value", "quality"):
        assert np.array_equal(getattr(b1, col), getattr(b2, col), equal_nan=True)
    assert parts1 == parts2 and len(parts1) > 5
    assert f1 == f2
    assert len(imgs1) == len(imgs2) > 5
    for (p, im, m), (q, im2, m2) in zip(imgs1, imgs2, strict=True):
        assert p == q and np.array_equal(im, im2) and np.array_equal(m, m2)
    b3, parts3, imgs3, f3 = _record(12, steps)
    assert len(b3) == len(b1)  # same sampling instants ...
    assert not np.array_equal(b3.value, b1.value, equal_nan=True)  # ... different values
    assert [f.start_ns for f in f3] != [f.start_ns for f in f1]
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(imgs1, imgs3, strict=False))


def test_result_does_not_depend_on_how_time_is_sliced():
    a = VirtualLine(seed=5, start_ns=T0, faults=None, render_images=False)
    b = VirtualLine(seed=5, start_ns=T0, faults=None, render_images=False)
    ba = run(a, 300.0, dt=0.2)
    bb = Batch.concat([b.step(dt) for dt in [0.05] * 10 + [7.3] * 20 + [10.0] * 15 + [3.5]])
    assert a.now_ns == b.now_ns == T0 + 300 * NS_PER_S
    assert np.array_equal(ba.ts, bb.ts) and np.array_equal(ba.idx, bb.idx)
    assert np.array_equal(ba.value, bb.value)


# -- tags, ranges, sampling ----------------------------------------------------------------------
def test_tag_list_is_complete_and_well_formed():
    line = VirtualLine(seed=0, start_ns=T0, faults=None, render_images=False)
    paths = [t.path for t in line.tags]
    assert 40 <= len(paths) <= 60 and len(set(paths)) == len(paths)
    for sig in (
        "press/press1/ram_force",
        "press/press1/oil_temp",
        "cnc/cnc1/vibration_rms",
        "cnc/cnc1/part_dimension",
        "cnc/cnc1/filter_dp",
        "furnace/furnace1/zone1_temp",
        "furnace/furnace1/temp_setpoint",
        "vision/camera1/diverter",
        "packing/packer1/parts_packed",
        "line/totals/parts_total",
        "line/totals/energy",
    ):
        assert f"{P}/{sig}" in paths
    for t in line.tags:
        assert len(t.path.split("/")) == 6
        assert t.lo < t.hi and t.period_s in (0.2, 1.0)
        assert t.kind in ("analog", "counter", "state", "bool", "setpoint")
        assert t.name_en and t.name_ko
    assert sorted(line.writable_paths) == [
        f"{P}/furnace/furnace1/belt_speed",
        f"{P}/furnace/furnace1/o2_setpoint",
        f"{P}/furnace/furnace1/temp_setpoint",
        f"{P}/vision/camera1/diverter",
        f"{P}/vision/camera1/result_ok",
    ]
    start = line.current_values()  # meaningful before the first step
    assert list(start) == paths
    assert all(t.lo <= start[t.path] <= t.hi for t in line.tags)
    assert start[f"{P}/furnace/furnace1/temp_setpoint"] == 850.0


def test_every_tag_stays_in_its_physical_range_for_a_fault_free_hour(clean_hour):
    line, batch, _ = clean_hour
    assert np.isfinite(batch.value).all()
    assert (batch.quality == GOOD).all()
    for i, tag in enumerate(line.tags):
        v = batch.value[batch.idx == i]
        assert len(v) > 0
        assert v.min() >= tag.lo and v.max() <= tag.hi, (tag.path, v.min(), v.max())
        if tag.kind == "analog":
            assert v.std() > 0, tag.path  # noise: no flat analog signal


def test_sampling_periods_are_honoured(clean_hour):
    line, batch, _ = clean_hour
    for i, tag in enumerate(line.tags):
        ts = batch.ts[batch.idx == i]
        period_ns = round(tag.period_s * NS_PER_S)
        assert len(ts) == 3600 * NS_PER_S // period_ns
        assert ts[0] == T0 + period_ns and ts[-1] == T0 + 3600 * NS_PER_S
        assert (np.diff(ts) == period_ns).all(), tag.path
    assert len(batch) / 3600 > 100  # readings per simulated second


def test_step_returns_only_instants_in_the_step_window():
    line = VirtualLine(seed=0, start_ns=T0, faults=None, render_images=False)
    assert len(line.step(0.1)) == 0  # no sampling instant in (0, 0.1]
    b = line.step(0.1)  # (0.1, 0.2]: the fast tags
    assert len(b) == sum(1 for t in line.tags if t.period_s == 0.2)
    assert (b.ts == T0 + 200_000_000).all()
    b = line.step(0.8)  # (0.2, 1.0]: 4 fast instants and one slow one
    assert b.ts.min() > T0 + 200_000_000 and b.ts.max() == T0 + NS_PER_S
    assert len(b) == 4 * sum(1 for t in line.tags if t.period_s == 0.2) + sum(
        1 for t in line.tags if t.period_s == 1.0
    )


# -- physics ----------------------------------------------------------------------------------
def test_furnace_has_heavy_thermal_inertia_and_follows_its_setpoint():
    line = VirtualLine(seed=4, start_ns=T0, faults=None, render_images=False)
    run(line, 60.0)
    line.write(f"{P}/furnace/furnace1/temp_setpoint", 900.0)
    b = run(line, 1800.0, dt=10.0)
    for zone in ("zone1_temp", "zone2_temp"):
        t, v, _ = series(b, f"{P}/furnace/furnace1/{zone}")
        assert np.abs(np.diff(v)).max() < 4.0  # cannot jump: at most a few degC per second
        assert v[t <= 70].max() < 860.0  # 10 s after the step it is still near 850
        assert abs(v[t > 1500].mean() - 900.0) < 3.0  # it gets there
    t, sp, _ = series(b, f"{P}/furnace/furnace1/temp_setpoint")
    assert (sp == 900.0).all()


def test_cnc_signals_follow_the_machining_cycle(clean_hour):
    _, batch, _ = clean_hour
    _, speed, _ = series(batch, f"{P}/cnc/cnc1/spindle_speed")
    _, current, _ = series(batch, f"{P}/cnc/cnc1/spindle_current")
    _, vib, _ = series(batch, f"{P}/cnc/cnc1/vibration_rms")
    cutting = speed > 3000
    assert 0.3 < cutting.mean() < 0.8
    assert current[cutting].mean() > 2 * current[speed == 0].mean()
    assert vib[cutting].mean() > 3 * vib[speed == 0].mean()
    _, force, _ = series(batch, f"{P}/press/press1/ram_force")
    _, pressure, _ = series(batch, f"{P}/press/press1/hydraulic_pressure")
    assert force.max() > 700 and np.corrcoef(force, pressure)[0, 1] > 0.9


def test_counters_monotonic_and_totals_consistent(clean_hour):
    line, batch, parts = clean_hour
    for tag in line.tags:
        if tag.kind == "counter":
            _, v, _ = series(batch, tag.path)
            assert (np.diff(v) >= 0).all(), tag.path
    _, total, _ = series(batch, f"{P}/line/totals/parts_total")
    _, good, _ = series(batch, f"{P}/line/totals/parts_good")
    _, rej, _ = series(batch, f"{P}/line/totals/parts_rejected")
    assert (good + rej == total).all()
    assert total[-1] == len(parts) > 250  # ~300 parts an hour at a 12 s takt
    assert rej[-1] == sum(p.diverted for p in parts)
    _, packed, _ = series(batch, f"{P}/packing/packer1/parts_packed")
    assert packed[-1] == good[-1]
    _, inspected, _ = series(batch, f"{P}/vision/camera1/parts_inspected")
    assert inspected[-1] >= total[-1]
    _, energy, _ = series(batch, f"{P}/line/totals/energy")
    assert 10.0 < energy[-1] < 100.0  # kWh in an hour for a ~30 kW line


def test_parts_are_plausible(clean_hour):
    _, _, parts = clean_hour
    ids = [p.part_id for p in parts]
    assert len(set(ids)) == len(ids)  # a diverted part may leave before the one ahead is packed
    for p in parts:
        assert p.start_ns < p.image_ns < p.end_ns
        assert p.good == (not p.diverted)
        assert (p.reject_reason is None) == (not p.diverted)
        assert abs(p.dimension_mm - DIMENSION_NOMINAL_MM) < 0.05
    rejects = sum(p.diverted for p in parts) / len(parts)
    assert rejects < 0.06  # a low base reject rate
    lead = np.array([(p.end_ns - p.start_ns) / NS_PER_S for p in parts if not p.diverted])
    assert lead.min() > 45.0  # five stations of ~10 s ...
    assert np.median(lead) < 200.0  # ... plus a little waiting in the buffers


def test_microstops_and_changeovers_happen():
    line = VirtualLine(seed=6, start_ns=T0, faults=None, render_images=False, changeover_interval_s=1800.0)
    b = run(line, 2700.0, dt=10.0)
    _, state, _ = series(b, f"{P}/line/totals/state")
    assert (state == STATE_CHANGEOVER).sum() >= 480 and (state == STATE_MICROSTOP).any()
    assert (state == STATE_RUNNING).mean() > 0.5
    t, wear, _ = series(b, f"{P}/cnc/cnc1/tool_wear")
    assert wear.min() < 3.0 < wear[0]  # the changeover put in a new tool
    _, cnc_state, _ = series(b, f"{P}/cnc/cnc1/state")
    assert (cnc_state == STATE_CHANGEOVER).any()
    _, total, _ = series(b, f"{P}/line/totals/parts_total")
    co = state == STATE_CHANGEOVER
    assert total[co][-1] - total[co][0] <= 6  # only parts already on the line get out


# -- faults -----------------------------------------------------------------------------------
def test_faults_none_has_no_ground_truth():
    line = VirtualLine(seed=1, start_ns=T0, faults=None, render_images=False)
    line.step(5.0)
    assert line.faults == [] and line.active_faults() == []


def test_auto_faults_recur_for_every_kind_through_the_day_with_gaps():
    line = VirtualLine(seed=8, start_ns=T0, render_images=False)
    faults = line.faults
    first_day = [f for f in faults if f.start_ns < T0 + 24 * 3600 * NS_PER_S]
    kinds = [f.kind for f in first_day]
    assert set(kinds) == set(FAULT_KINDS) and min(kinds.count(k) for k in FAULT_KINDS) >= 3
    # spread over the day, not all in the first hours
    assert max(f.start_ns for f in first_day) > T0 + 20 * 3600 * NS_PER_S
    severities = {f.severity for f in faults}
    assert len(severities) > 10 and min(severities) < 0.8 and max(severities) > 1.2
    assert faults[0].start_ns >= T0 + 600 * NS_PER_S
    for a, b in zip(faults[:-1], faults[1:], strict=True):
        assert b.start_ns - a.end_ns >= 600 * NS_PER_S
    for f in faults:
        assert f.tags and all(p in line.paths for p in f.tags)
        assert all(p.startswith(f.asset + "/") for p in f.tags)
    again = VirtualLine(seed=8, start_ns=T0, render_images=False).faults
    other = VirtualLine(seed=9, start_ns=T0, render_images=False).faults
    assert again == faults and other != faults
    line.step(float((faults[0].start_ns - T0) / NS_PER_S) + 1.0)
    assert line.active_faults() == [faults[0]]


@pytest.fixture(scope="module")
def faulty_line():
    specs = [
        FaultSpec("bearing_wear", "cnc1", 600.0, 900.0),
        FaultSpec("burner_fouling", f"{P}/furnace/furnace1", 600.0, 900.0),
        FaultSpec("stuck_sensor", "furnace1", 700.3, 300.0, signal="zone1_temp"),
        FaultSpec("sensor_dropout", "press1", 800.1, 200.3),
    ]
    line = VirtualLine(seed=21, start_ns=T0, faults=specs, render_images=False)
    batch = run(line, 1800.0, dt=10.0)
    return line, batch


def _window(t, v, lo, hi):
    return v[(t >= lo) & (t < hi)]


def test_fault_records_are_ground_truth(faulty_line):
    line, _ = faulty_line
    kinds = {f.kind: f for f in line.faults}
    assert kinds["bearing_wear"].start_ns == T0 + 600 * NS_PER_S
    assert kinds["bearing_wear"].end_ns == T0 + 1500 * NS_PER_S
    assert f"{P}/cnc/cnc1/vibration_rms" in kinds["bearing_wear"].tags
    assert kinds["sensor_dropout"].tags == (f"{P}/press/press1/hydraulic_pressure",)
    assert kinds["stuck_sensor"].tags == (f"{P}/furnace/furnace1/zone1_temp",)


def test_bearing_wear_raises_vibration(faulty_line):
    _, b = faulty_line
    t, v, _ = series(b, f"{P}/cnc/cnc1/vibration_rms")
    _, speed, _ = series(b, f"{P}/cnc/cnc1/spindle_speed")
    at_speed = speed > 3000  # compare like with like: the spindle turning at its cutting speed
    t, v = t[at_speed], v[at_speed]
    pre, late = _window(t, v, 100, 600), _window(t, v, 1200, 1500)
    after = _window(t, v, 1560, 1800)
    assert len(pre) > 500 and len(late) > 300 and len(after) > 100
    assert late.mean() > 2.0 * pre.mean() and late.mean() - pre.mean() > 1.0
    assert abs(after.mean() - pre.mean()) < 0.3 * pre.mean()  # bearing replaced
    t, temp, _ = series(b, f"{P}/cnc/cnc1/spindle_temp")
    assert _window(t, temp, 1400, 1500).mean() > _window(t, temp, 500, 600).mean() + 1.0


def test_burner_fouling_raises_fuel_per_part_and_shifts_combustion(faulty_line):
    _, b = faulty_line
    t, gas, _ = series(b, f"{P}/line/totals/gas")
    _, treated, _ = series(b, f"{P}/furnace/furnace1/parts_treated")

    def per_part(lo, hi):
        m = (t >= lo) & (t <= hi)
        return (gas[m][-1] - gas[m][0]) / (treated[m][-1] - treated[m][0])

    # per part over windows of ~40 parts (micro-stops, when the furnace burns gas without parts, add noise)
    before, during = per_part(100, 600), per_part(900, 1500)
    assert 1.04 < during / before < 1.4
    t, fuel, _ = series(b, f"{P}/furnace/furnace1/fuel_flow")
    assert 1.1 < _window(t, fuel, 900, 1500).mean() / _window(t, fuel, 100, 600).mean() < 1.3
    t, o2, _ = series(b, f"{P}/furnace/furnace1/o2")
    assert _window(t, o2, 1000, 1500).mean() > _window(t, o2, 200, 600).mean() + 0.5
    t, ex, _ = series(b, f"{P}/furnace/furnace1/exhaust_temp")
    assert _window(t, ex, 1000, 1500).mean() > _window(t, ex, 200, 600).mean() + 20


def test_stuck_sensor_freezes_at_its_last_value(faulty_line):
    _, b = faulty_line
    t, v, q = series(b, f"{P}/furnace/furnace1/zone1_temp")
    stuck = _window(t, v, 700.3, 1000.3)
    assert len(stuck) == 300 and (stuck == stuck[0]).all() and np.var(stuck) < 1e-12
    assert stuck[0] == v[t < 700.3][-1]
    assert np.var(_window(t, v, 1000.3, 1300)) > 0 and np.var(_window(t, v, 400, 700)) > 0
    assert (q == GOOD).all()


def test_sensor_dropout_gives_nan_with_bad_sensor_quality_exactly_in_its_window(faulty_line):
    _, b = faulty_line
    t, v, q = series(b, f"{P}/press/press1/hydraulic_pressure")
    inside = (t >= 800.1) & (t < 1000.4)
    assert inside.sum() == 1001
    assert np.isnan(v[inside]).all() and (q[inside] == BAD_SENSOR).all()
    assert np.isfinite(v[~inside]).all() and (q[~inside] == GOOD).all()
    others = b.idx != b.paths.index(f"{P}/press/press1/hydraulic_pressure")
    assert (b.quality[others] == GOOD).all()


def test_coolant_loss_and_clogged_filter():
    specs = [
        FaultSpec("coolant_loss", "cnc1", 300.0, 600.0),
        FaultSpec("clogged_filter", "cnc1", 1200.0, 600.0),
    ]
    line = VirtualLine(seed=22, start_ns=T0, faults=specs, render_images=False)
    b = run(line, 1800.0, dt=10.0)
    t, flow, _ = series(b, f"{P}/cnc/cnc1/coolant_flow")
    _, press, _ = series(b, f"{P}/cnc/cnc1/coolant_pressure")
    tt, ctemp, _ = series(b, f"{P}/cnc/cnc1/coolant_temp")
    _, stemp, _ = series(b, f"{P}/cnc/cnc1/spindle_temp")
    pre_flow = _window(t, flow, 0, 300).mean()
    assert _window(t, flow, 400, 900).mean() < 0.5 * pre_flow
    assert _window(t, press, 400, 900).mean() < 0.5 * _window(t, press, 0, 300).mean()
    assert _window(tt, ctemp, 850, 900).mean() > _window(tt, ctemp, 250, 300).mean() + 3.0
    assert _window(tt, stemp, 850, 900).mean() > _window(tt, stemp, 250, 300).mean() + 3.0
    _, dp, _ = series(b, f"{P}/cnc/cnc1/filter_dp")
    assert _window(t, dp, 1650, 1800).mean() > _window(t, dp, 1000, 1200).mean() + 0.5
    assert _window(t, flow, 1650, 1800).mean() < 0.85 * _window(t, flow, 1000, 1200).mean()


def test_tool_wear_drives_the_bore_out_of_tolerance_and_raises_rejects():
    line = VirtualLine(
        seed=23, start_ns=T0, faults=[FaultSpec("tool_wear", "cnc1", 900.0, 900.0)], render_images=False
    )
    b = run(line, 1800.0, dt=10.0)
    parts = line.drain_parts()
    start, end = T0 + 900 * NS_PER_S, T0 + 1800 * NS_PER_S

    def reject_rate(lo, hi):
        sel = [p for p in parts if lo <= p.image_ns < hi]
        assert len(sel) > 20
        return sum(p.diverted for p in sel) / len(sel)

    base = reject_rate(T0, start)
    late = reject_rate(start + (end - start) // 2, end)
    assert base < 0.08 and late > base + 0.3
    late_parts = [p for p in parts if p.image_ns >= start + (end - start) // 2]
    assert any(abs(p.dimension_mm - DIMENSION_NOMINAL_MM) > DIMENSION_TOLERANCE_MM for p in late_parts)
    assert all(p.reject_reason == "dimension" for p in late_parts if p.diverted and p.defect is None)
    t, dim, _ = series(b, f"{P}/cnc/cnc1/part_dimension")
    assert _window(t, dim, 1600, 1800).mean() < _window(t, dim, 600, 900).mean() - 0.015


def test_bad_fault_specs_are_rejected():
    with pytest.raises(ValueError, match="fault kind must be one of"):
        VirtualLine(start_ns=T0, faults=[FaultSpec("rust", "cnc1", 0, 10)])
    with pytest.raises(ValueError, match="happens on asset 'cnc1'"):
        VirtualLine(start_ns=T0, faults=[FaultSpec("bearing_wear", "press1", 0, 10)])
    with pytest.raises(ValueError, match="unknown asset"):
        VirtualLine(start_ns=T0, faults=[FaultSpec("bearing_wear", "lathe9", 0, 10)])
    with pytest.raises(ValueError, match="not an analog tag of press1; use one of"):
        VirtualLine(start_ns=T0, faults=[FaultSpec("stuck_sensor", "press1", 0, 10, signal="state")])
    with pytest.raises(ValueError, match="duration_s must be > 0"):
        VirtualLine(start_ns=T0, faults=[FaultSpec("tool_wear", "cnc1", 0, 0)])
    with pytest.raises(ValueError, match="faults must be 'auto', None or a list of FaultSpec"):
        VirtualLine(start_ns=T0, faults="some")  # type: ignore[arg-type]


# -- writes and the diverter -----------------------------------------------------------------
def test_writing_a_read_only_or_unknown_tag_is_a_clear_error():
    line = VirtualLine(seed=0, start_ns=T0, faults=None, render_images=False)
    with pytest.raises(ValueError, match="read-only; writable tags are .*temp_setpoint.*diverter"):
        line.write(f"{P}/cnc/cnc1/spindle_speed", 100.0)
    with pytest.raises(ValueError, match="unknown tag; writable tags are"):
        line.write(f"{P}/cnc/cnc1/nope", 1.0)
    with pytest.raises(ValueError, match="must be in 700 .. 950 degC"):
        line.write(f"{P}/furnace/furnace1/temp_setpoint", 2000.0)
    with pytest.raises(ValueError, match="must be 0 or 1"):
        line.write(f"{P}/vision/camera1/diverter", 0.5)
    with pytest.raises(ValueError, match="dt_s must be"):
        line.step(0.0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        VirtualLine(seed=-1)


def test_diverter_written_by_the_controller_diverts_that_part():
    line = VirtualLine(seed=30, start_ns=T0, faults=None, auto_divert=False, image_size=32)
    divert_ids: set[int] = set()
    seen = []
    for _ in range(int(600 / 0.2)):
        line.step(0.2)
        for part, image, mask in line.drain_images():
            seen.append(part)
            assert image.shape == (32, 32) and mask.shape == (32, 32)
            assert mask.any() == (part.defect is not None)
            if part.part_id % 3 == 0:  # the controller rejects every third part
                line.write(f"{P}/vision/camera1/diverter", 1)
                divert_ids.add(part.part_id)
    parts = line.drain_parts()
    assert len(parts) > 30 and divert_ids
    for p in parts:
        assert p.diverted == (p.part_id in divert_ids)
        assert p.good == (not p.diverted)
    assert {p.part_id for p in parts} <= {p.part_id for p in seen}
    rejected = line.current_values()[f"{P}/line/totals/parts_rejected"]
    assert rejected == sum(p.diverted for p in parts)


def test_without_auto_divert_defects_escape_and_count_as_good():
    line = VirtualLine(
        seed=31,
        start_ns=T0,
        faults=[FaultSpec("tool_wear", "cnc1", 60.0, 1200.0, 2.0)],
        auto_divert=False,
        render_images=False,
    )
    run(line, 1500.0, dt=10.0)
    parts = line.drain_parts()
    bad = [p for p in parts if not p.in_tolerance]
    assert len(bad) > 10
    assert not any(p.diverted for p in parts) and all(p.good for p in parts)
    with_auto = VirtualLine(
        seed=31, start_ns=T0, faults=[FaultSpec("tool_wear", "cnc1", 60.0, 1200.0, 2.0)], render_images=False
    )
    run(with_auto, 1500.0, dt=10.0)
    assert all(p.diverted for p in with_auto.drain_parts() if not p.in_tolerance)


def test_vision_handshake_holds_the_part_until_the_controller_answers():
    """With vision_wait_s, a part waits at the diverter for an OK or NG from the vision system."""
    line = VirtualLine(seed=4, start_ns=T0, faults=None, render_images=True, warmup_s=0,
                       auto_divert=False, vision_wait_s=8.0, changeover_interval_s=None)
    diverter, ok = f"{P}/vision/camera1/diverter", f"{P}/vision/camera1/result_ok"
    answered: dict[int, str] = {}
    parts = []
    for _ in range(3000):  # 10 simulated minutes in 0.2 s ticks
        line.step(0.2)
        for part, _img, _mask in line.drain_images():
            verdict = "ng" if part.part_id % 3 == 0 else "ok"
            if part.part_id % 7 == 0:
                verdict = "none"  # no answer: the station waits, then lets the part go
            answered[part.part_id] = verdict
            if verdict == "ng":
                line.write(diverter, 1)
            elif verdict == "ok":
                line.write(ok, 1)
        parts += line.drain_parts()
    seen = [p for p in parts if p.part_id in answered]
    assert len(seen) > 20
    for part in seen:
        assert part.diverted == (answered[part.part_id] == "ng"), part.part_id
    assert line._vision.timeouts == sum(1 for p in seen if answered[p.part_id] == "none")
    # without an answer the part waited the full 8 s at the diverter
    waited = [p.end_ns - p.image_ns for p in seen if answered[p.part_id] == "none"]
    normal = [p.end_ns - p.image_ns for p in seen if answered[p.part_id] != "none"]
    assert min(waited) >= max(normal) + 7 * 10**9 - 10**9
