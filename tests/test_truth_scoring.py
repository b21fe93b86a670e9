"""Strict scoring of alarms against injected faults, the recurring schedule, and the review rates."""

from __future__ import annotations

from types import SimpleNamespace

from axline.sim.faults import alarm_signals, recurring_schedule, score_alarms
from axline.sim.line import FAULT_KINDS

S = 1_000_000_000
A = "p/l/cnc/cnc1"


def _fault(kind: str, start: int, end: int, tags: tuple[str, ...]) -> dict:
    return {"kind": kind, "asset": A, "tags": tags, "start_ns": start * S, "end_ns": end * S, "severity": 1.0}


def _alarm(ts: int, signal: str, source: str = A) -> SimpleNamespace:
    return SimpleNamespace(kind="alarm", source=source, ts=ts * S, code="anomaly.sensor",
                           data={"raised_ts": ts * S, "signal": signal})


def test_a_detection_must_name_a_signal_the_fault_moves() -> None:
    faults = [_fault("clogged_filter", 1000, 2000, (f"{A}/filter_dp", f"{A}/coolant_flow")),
              _fault("tool_wear", 5000, 6000, (f"{A}/part_dimension", f"{A}/tool_wear"))]
    alarms = [
        _alarm(1100, "filter_dp"),          # detects the clogged filter
        _alarm(1200, "coolant_flow"),       # a second alarm on the same fault: not a false alarm
        _alarm(5100, "filter_dp"),          # on the asset during tool wear, but names another signal
        _alarm(9000, "spindle_temp"),       # nothing going on
        _alarm(2200, "coolant_flow"),       # within the 300 s grace after the filter fault
    ]
    r = score_alarms(faults, alarms, 0, 3600 * 3 * S)
    assert r["faults_injected"] == 2 and r["faults_detected"] == 1
    assert [f["detected"] for f in r["faults"]] == [True, False]
    assert r["faults"][0]["delay_s"] == 100.0 and r["faults"][0]["signals"] == ["filter_dp"]
    assert r["alarms"] == 5 and r["true_alarms"] == 3 and r["false_alarms"] == 2
    assert r["precision"] == 0.6 and r["recall"] == 0.5
    assert abs(r["false_alarms_per_hour"] - 2 / 3) < 1e-3
    assert r["per_kind"]["tool_wear"] == {"injected": 1, "detected": 0, "recall": 0.0, "mean_delay_s": None}


def test_alarm_signals_reads_tags_signal_top_and_contributions() -> None:
    ev = SimpleNamespace(source=A, data={"tags": [f"{A}/x"], "top": "y", "contributions": {"z": 1.0}})
    assert alarm_signals(ev) == {f"{A}/x", f"{A}/y", f"{A}/z"}


def test_recurring_schedule_covers_the_day_with_every_kind_at_varied_severity() -> None:
    specs = recurring_schedule(5, 24 * 3600.0, 600.0)
    kinds = [s.kind for s in specs]
    assert {k: kinds.count(k) >= 3 for k in FAULT_KINDS} == dict.fromkeys(FAULT_KINDS, True)
    assert specs[0].start_s >= 600.0 and specs[-1].start_s + specs[-1].duration_s <= 24 * 3600.0
    assert specs[-1].start_s > 20 * 3600.0
    for a, b in zip(specs, specs[1:], strict=False):
        assert b.start_s - (a.start_s + a.duration_s) >= 600.0 - 0.2
    sev = [s.severity for s in specs]
    assert min(sev) >= 0.5 and max(sev) <= 1.5 and max(sev) - min(sev) > 0.6
    assert recurring_schedule(5, 24 * 3600.0, 600.0) == specs != recurring_schedule(6, 24 * 3600.0, 600.0)


def test_review_rates_count_each_part_with_the_verdict_it_got_when_inspected() -> None:
    from collections import deque

    from axline.vision import VisionStation

    st = VisionStation.__new__(VisionStation)
    st.review_items = deque(maxlen=100)
    st.model_version = 1
    # before the update: two good parts rejected wrongly, one defect escaped
    st.review_items.extend([{"truth": "good", "verdict": "reject", "model_version": 0},
                            {"truth": "good", "verdict": "reject", "model_version": 0},
                            {"truth": "defect", "verdict": "pass", "model_version": 0},
                            # after: one good part passed, one rejected; one defect caught
                            {"truth": "good", "verdict": "pass", "model_version": 1},
                            {"truth": "good", "verdict": "reject", "model_version": 1},
                            {"truth": "defect", "verdict": "reject", "model_version": 1}])
    r = st._rates()
    assert r["before"] == {"parts": 3, "false_reject_rate": 1.0, "escape_rate": 1.0}
    assert r["after"] == {"parts": 3, "false_reject_rate": 0.5, "escape_rate": 0.0}
    assert r["n_good"] == 4 and r["n_defect"] == 2
