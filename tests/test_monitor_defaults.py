"""The product default: one code path (fit_monitor + OnlineMonitor) that follows drift while
normal and still alarms on a fault."""

from __future__ import annotations

import numpy as np
import pytest

from axline.monitor.defaults import DEFAULT, MonitorConfig, OnlineMonitor, fit_monitor, with_overrides


def _stream(n: int = 6000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    drift = 0.004 * t  # 24 noise sigmas over the stream: far outside what the fit window saw
    cycle = 2.0 * np.sin(2 * np.pi * t / 2000)
    return np.column_stack([drift + cycle + rng.normal(0, 1, n), 0.5 * drift + rng.normal(0, 1, n)])


def test_drift_is_learnt_while_normal_and_a_step_fault_still_alarms() -> None:
    X = _stream()
    X[4000:4300, 1] += 15.0  # a step fault on the second signal
    fit = 400
    det = fit_monitor(X[:fit], ["a", "b"], DEFAULT)
    _, mask = OnlineMonitor(det, DEFAULT).run(X[fit:])
    onsets = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8)]) == 1) + fit
    assert any(4000 <= o < 4300 for o in onsets), onsets
    false = [o for o in onsets if not 4000 <= o < 4300 + 600]
    assert len(false) <= 2, false
    # without online learning the same detector is lost to the drift: in alarm most of the time
    frozen = MonitorConfig(**{**DEFAULT.as_dict(), "adapt_tau": 0.0, "adapt_tau_alarm": 0.0})
    _, mask0 = OnlineMonitor(fit_monitor(X[:fit], ["a", "b"], frozen), frozen).run(X[fit:])
    assert mask0.mean() > 0.5 > mask.mean()


def test_fit_monitor_holds_out_rows_for_the_threshold_and_applies_the_margin() -> None:
    X = np.random.default_rng(1).normal(size=(500, 3))
    plain = fit_monitor(X, None, with_overrides(DEFAULT, detector="pca"))
    cfg = MonitorConfig(detector="pca", params={}, far=0.01, margin=1.0)
    base = fit_monitor(X, None, cfg)
    wide = fit_monitor(X, None, MonitorConfig(detector="pca", params={}, far=0.01, margin=3.0))
    assert wide.threshold - wide.normal_level == pytest.approx(3 * (base.threshold - base.normal_level))
    assert plain.fit_rows_ == int(0.7 * 500)
    with pytest.raises(ValueError, match="too few"):
        fit_monitor(X[:12], None, cfg)


def test_online_learning_needs_the_fitted_row_count() -> None:
    X = np.random.default_rng(2).normal(size=(200, 2))
    det = fit_monitor(X, None, DEFAULT)
    del det.fit_rows_
    with pytest.raises(ValueError, match="fit_rows"):
        OnlineMonitor(det, DEFAULT)
    assert OnlineMonitor(det, DEFAULT, fit_rows=140).step(X[0])[1] in (True, False)


def test_another_detector_kind_does_not_inherit_the_default_margin() -> None:
    other = "pca" if DEFAULT.detector != "pca" else "robust"
    swapped = with_overrides(DEFAULT, detector=other, far=0.001)
    assert swapped.detector == other and swapped.far == 0.001
    assert (swapped.margin, swapped.latch_ratio) == (MonitorConfig().margin, MonitorConfig().latch_ratio)
    assert swapped.adapt_tau == DEFAULT.adapt_tau  # online learning stays as the default has it
    assert swapped.params == {}  # smoothing was tuned with the margin: the other kind's own defaults
    assert with_overrides(DEFAULT, detector=other, smooth=3).params == {"smooth": 3}
    same = with_overrides(DEFAULT, smooth=5)
    assert (same.margin, same.latch_ratio, same.params["smooth"]) == (DEFAULT.margin, DEFAULT.latch_ratio, 5)
