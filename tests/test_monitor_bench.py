"""Benchmark helpers: metric formulas, loaders and output writers on tiny hand-made inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from axline.bench.cmapss import phm08_score, rmse, truncate_units
from axline.bench.common import markdown_table, peak_rss_mb, write_json, write_markdown
from axline.bench.cwru import auroc, class_of, split_windows
from axline.bench.skab import SIGNALS, inject_faults, read_skab_csv


def test_phm08_and_rmse_hand_computed() -> None:
    pred, true = np.array([10.0, 20.0, 30.0]), np.array([20.0, 20.0, 20.0])
    # early by 10: exp(10/13) - 1; exact: 0; late by 10: exp(1) - 1
    assert phm08_score(pred, true) == pytest.approx(math.exp(10 / 13) - 1 + math.e - 1)
    assert rmse(pred, true) == pytest.approx(math.sqrt(200 / 3))


def test_truncate_units_keeps_at_least_min_len_and_reports_true_rul() -> None:
    data = np.column_stack([np.repeat([1, 2], [100, 40]), np.r_[np.arange(1, 101), np.arange(1, 41)]])
    kept, truth = truncate_units(data, np.random.default_rng(0), min_len=31, max_rul=150)
    for u, t in zip([1, 2], truth, strict=True):
        n_kept = int(np.sum(kept[:, 0] == u))
        n_all = int(np.sum(data[:, 0] == u))
        assert n_kept >= 31 and t == n_all - n_kept


def test_auroc_and_cwru_names() -> None:
    assert auroc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert auroc(np.array([0.1, 0.4]), np.array([0.2, 0.3])) == 0.5
    assert auroc(np.array([1.0]), np.array([1.0])) == 0.5
    assert class_of("1797_OR@6_14_DE12") == "outer_race"
    assert class_of("1797_IR_7_DE12") == "inner_race"
    assert class_of("1797_B_28_DE12") == "ball"
    assert class_of("1797_Normal") == "normal"
    x = np.arange(10_000, dtype=float)
    tr, te = split_windows(x, 512)
    assert tr.max() < 6000 <= te.min()  # no window crosses the 60 % split


def test_read_skab_csv_and_injected_fault(tmp_path) -> None:
    head = "datetime;" + ";".join(SIGNALS) + ";anomaly;changepoint"
    rows = [f"2020-03-09 10:14:{i:02d};" + ";".join(str(float(i + j)) for j in range(8)) + f";{int(i > 3)};{int(i == 4)}"
            for i in range(6)]
    (tmp_path / "valve1").mkdir()
    p = tmp_path / "valve1" / "0.csv"
    p.write_text("\n".join([head, *rows]) + "\n", encoding="utf-8")
    f = read_skab_csv(p)
    assert f.X.shape == (6, 8) and f.X[2, 3] == 5.0
    assert np.diff(f.ts).tolist() == [10**9] * 5
    assert f.anomaly.tolist() == [0, 0, 0, 0, 1, 1] and f.changepoint.tolist() == [0, 0, 0, 0, 1, 0]
    X = np.zeros((750, 8))
    Xi, y = inject_faults(X, np.ones(8), np.random.default_rng(3))
    changed = np.abs(Xi).sum(axis=1) > 0
    np.testing.assert_array_equal(changed, y.astype(bool))
    assert 150 <= y.sum() <= 400


def test_writers(tmp_path) -> None:
    table = markdown_table(["a", "b"], [[1.23456, None], [12345.6, "x"]])
    assert table.splitlines()[2] == "| 1.2 | – |"
    assert "12,346" in table
    write_json(tmp_path / "r.json", {"x": np.float64(1.5), "n": np.int64(3), "arr": np.arange(2)})
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": 1.5, "n": 3, "arr": [0, 1]}
    write_markdown(tmp_path / "r.md", "Title", [("Results", table)], {"wall_s": 1.0, "peak_rss_mb": 10.0})
    text = (tmp_path / "r.md").read_text()
    assert text.startswith("# Title") and "## Results" in text and "Command:" in text
    assert peak_rss_mb() > 1.0


def test_default_choice_skips_a_candidate_that_misses_faults_on_the_selection_streams(monkeypatch) -> None:
    import axline.bench.skab as skab
    import axline.bench.streams as alarms
    from axline.monitor.defaults import MonitorConfig

    assert not set(skab.SELECT_STREAM_SEEDS) & set(alarms.SEEDS)  # the streams that choose never report
    blind = MonitorConfig(detector="ewma", margin=13.0)
    keen = MonitorConfig(detector="robust", margin=3.0)
    seen: list[tuple[int, ...]] = []

    def fake_rows(config: MonitorConfig, seeds: tuple[int, ...]) -> list[dict]:
        seen.append(tuple(seeds))
        caught = 2 if config == blind else 5
        return [{"faults": 6, "faults_caught": caught, "within_budget": True, "per_hour": 0.1}]

    monkeypatch.setattr(skab, "drifting_rows", fake_rows)
    monkeypatch.setattr(skab, "per_signal_alarms", lambda cfg, free: [{"within_budget": True}])

    def row(cfg: MonitorConfig, f1: float) -> dict:
        return {"config": cfg.as_dict(), "label": cfg.label(), "anomaly_free": {"within_budget": True},
                "select": {"f1": f1, "far": 5.0, "nab_standard": 20.0}}

    rows = [row(blind, 0.8), row(keen, 0.7)]
    chosen = skab.choose(rows, "select", 10.0, free=None)
    assert chosen["config"] == keen.as_dict()
    assert rows[0]["drifting_selection"]["faults_caught"] == 2 and not rows[0]["drifting_selection"]["ok"]
    assert seen == [skab.SELECT_STREAM_SEEDS] * 2
    # if no candidate catches enough, the best one keeping the budget on each signal is kept
    monkeypatch.setattr(skab, "drifting_rows", lambda config, seeds: [
        {"faults": 6, "faults_caught": 1, "within_budget": True, "per_hour": 0.1}])
    rows = [row(blind, 0.8), row(keen, 0.7)]
    assert skab.choose(rows, "select", 10.0, free=None)["config"] == blind.as_dict()
