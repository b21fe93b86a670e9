"""Alarm latch, SKAB outlier metrics and the NAB changepoint score against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from axline.monitor.alarms import AlarmLatch
from axline.monitor.metrics import binary_metrics, mask_edges, nab_scores

S = 10**9  # one second in ns


def test_latch_gives_one_alarm_per_excursion() -> None:
    # an excursion that chatters around the threshold, a quiet stretch, a second excursion
    scores = [0, 0, 1.2, 0.9, 1.1, 0.95, 1.3, 0.5, 0.1, 0, 0, 2.0, 2.0, 0.2, 0]
    latch = AlarmLatch(on=1.0, off=0.8)
    mask = latch.run(scores)
    eps = latch.open_and_closed()
    assert [(e.start, e.end) for e in eps] == [(2, 7), (11, 13)]
    assert eps[0].peak == 1.3
    np.testing.assert_array_equal(np.flatnonzero(mask), [2, 3, 4, 5, 6, 11, 12])
    # without hysteresis (off == on) the chattering excursion alone would give three alarms
    plain = AlarmLatch(on=1.0, off=1.0)
    plain.run(scores)
    assert len(plain.open_and_closed()) == 4


def test_latch_min_duration_ignores_single_spikes_and_marks_whole_episode() -> None:
    latch = AlarmLatch(on=1.0, min_duration=3)
    mask = latch.run([0, 5, 0, 0, 2, 2, 2, 2, 0, 0])
    assert np.flatnonzero(mask).tolist() == [4, 5, 6, 7]
    states = [AlarmLatch(on=1.0, min_duration=3).update(v) for v in [5]]
    assert states == [False]


def test_latch_streaming_matches_batch_and_open_episode() -> None:
    rng = np.random.default_rng(0)
    s = np.abs(rng.standard_normal(300)).cumsum() % 3
    batch = AlarmLatch(on=2.0, off=1.5, min_duration=1).run(s)
    latch = AlarmLatch(on=2.0, off=1.5)
    stream = np.array([latch.update(v) for v in s])
    np.testing.assert_array_equal(stream, batch)
    open_latch = AlarmLatch(on=1.0)
    open_latch.run([0, 3, 3])
    assert open_latch.open_and_closed()[-1].end is None


def test_latch_validation() -> None:
    with pytest.raises(ValueError, match="'off' must be"):
        AlarmLatch(on=1.0, off=2.0)
    with pytest.raises(ValueError, match="'min_duration' must be an integer"):
        AlarmLatch(on=1.0, min_duration=0)
    with pytest.raises(ValueError, match="'on' must be a finite number"):
        AlarmLatch(on=float("nan"))


def test_binary_metrics_hand_computed() -> None:
    true = [np.array([0, 0, 1, 1, 1, 0]), np.array([1, 0, 0, 0])]
    pred = [np.array([0, 1, 1, 1, 0, 0]), np.array([1, 1, 0, 0])]
    m = binary_metrics(true, pred)
    # TP 3, FP 2, FN 1, TN 4
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (3, 2, 1, 4)
    assert m["f1"] == pytest.approx(3 / (3 + 1.5))
    assert m["far"] == pytest.approx(100 * 2 / 6)
    assert m["mar"] == pytest.approx(100 * 1 / 4)


def test_mask_edges_like_skab() -> None:
    np.testing.assert_array_equal(mask_edges(np.array([1, 1, 0, 0, 1, 1])), [1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(mask_edges(np.array([0, 0, 1, 0])), [0, 0, 1, 1])


def _tsad_scale(rel: float, a_tp: float, a_fp: float) -> float:
    """The scoring curve written out by hand: index into 1000 points over [-pi/2, pi/2]."""
    i = min(int(rel * 1000), 999)
    x = -math.pi / 2 + i * math.pi / 999
    return (a_tp - a_fp) / 2 * -math.tanh(x) / math.tanh(math.pi / 2) + (a_tp - a_fp) / 2 + a_fp


def test_nab_perfect_null_and_hand_computed() -> None:
    ts = np.arange(200, dtype=np.int64) * S
    true = np.zeros(200, dtype=bool)
    true[100] = True
    # detection exactly at the changepoint: full reward, 100 on every profile
    pred = true.copy()
    r = nab_scores([ts], [true], [pred])
    assert r["standard"] == pytest.approx(100.0)
    assert r["lowfn"] == pytest.approx(100.0)
    # no detection: the null detector scores 0
    r0 = nab_scores([ts], [true], [np.zeros(200, dtype=bool)])
    assert r0["standard"] == pytest.approx(0.0) and r0["missed_cps"] == 1
    # detection 30 s late (middle of the 60 s window) plus one false positive at t=10 s
    pred = np.zeros(200, dtype=bool)
    pred[[10, 130, 140]] = True  # 140 is a second detection in the same window: ignored
    r = nab_scores([ts], [true], [pred])
    tp = _tsad_scale(30 / 60, 1.0, -0.11)
    assert r["standard"] == pytest.approx(100 * (tp - 0.11 + 1) / 2)
    tp_fp = _tsad_scale(30 / 60, 1.0, -0.22)
    assert r["lowfp"] == pytest.approx(100 * (tp_fp - 0.22 + 1) / 2)
    assert r["lowfn"] == pytest.approx(100 * (tp - 0.11 + 2) / 3)
    assert r["false_positives"] == 1 and r["missed_cps"] == 0
    # a detection before the changepoint is a false positive, not a hit (window is to the right)
    early = np.zeros(200, dtype=bool)
    early[95] = True
    r = nab_scores([ts], [true], [early])
    assert r["standard"] == pytest.approx(100 * (-0.11 + 1) / 2 - 50)


def test_nab_overlapping_windows_are_cut() -> None:
    ts = np.arange(300, dtype=np.int64) * S
    true = np.zeros(300, dtype=bool)
    true[[100, 130]] = True  # windows [100,160] and [160,190] after cutting the second
    pred = np.zeros(300, dtype=bool)
    pred[150] = True  # inside the first window only
    r = nab_scores([ts], [true], [pred])
    assert r["missed_cps"] == 1
    tp = _tsad_scale(50 / 60, 1.0, -0.11)
    assert r["standard"] == pytest.approx(100 * (tp - 1 + 2) / 4)


def test_describe_episode_names_the_driving_signal_in_both_languages() -> None:
    from axline.monitor.alarms import describe_episode
    from axline.monitor.detectors import make_detector

    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 3))
    det = make_detector("pca").fit(X[:200], columns=["temp", "vib", "flow"])
    thr = det.calibrate(X[200:300], far=0.01)
    X[320:340, 1] += 8.0
    latch = AlarmLatch(on=thr)
    latch.run(det.score(X))
    eps = [e for e in latch.open_and_closed() if e.start >= 300]
    assert len(eps) == 1
    info = describe_episode(det, X, eps[0])
    assert info["signals"][0]["signal"] == "vib"
    assert info["signals"][0]["z"] > 5
    assert "vib" in info["message"]["en"] and "vib" in info["message"]["ko"]
    assert "주요 원인" in info["message"]["ko"]
