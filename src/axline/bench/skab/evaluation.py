"""Detectors and the product's monitor scored on SKAB: fault injection, calibration, alarm budgets, throughput."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from axline.bench.skab.runs import FIT_ROWS, SIGNALS, SkabFile
from axline.monitor.alarms import AlarmLatch
from axline.monitor.defaults import MonitorConfig, OnlineMonitor, fit_monitor
from axline.monitor.detectors import Detector, make_detector
from axline.monitor.metrics import binary_metrics, mask_edges, nab_scores

#: detector configurations: name -> (registry name, fixed params, {param: candidates} chosen label-free)
CONFIGS: dict[str, tuple[str, dict[str, Any], dict[str, list[Any]]]] = {
    "robust": ("robust", {}, {"alpha": [1.0, 0.2, 0.05], "smooth": [1, 10, 30]}),
    "pca": ("pca", {"variance": 0.9}, {"weight_q": [0.3, 1.0, 3.0], "smooth": [1, 10, 30]}),
    "mset": ("mset", {"memory": 256}, {"k": [1, 5, 20], "smooth": [1, 10, 30]}),
    "iforest": ("iforest", {"n_trees": 100, "max_samples": 256}, {"smooth": [1, 10, 30]}),
    "autoencoder": ("autoencoder", {"epochs": 200}, {"hidden": [8, 16], "smooth": [1, 10, 30]}),
    "changepoint": ("changepoint", {}, {"drift": [0.5, 1.0, 2.0], "smooth": [1]}),
}

PIECE = 1150
#: largest pooled false-alarm rate (%) on the synthetic faults that a selected candidate may have
SYNTHETIC_FAR_BUDGET = 10.0
LATCH_OFF_RATIO = 0.8


def _grid(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{}]
    for key, values in space.items():
        out = [{**o, key: v} for o in out for v in values]
    return out


def inject_faults(X: np.ndarray, scale: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Add one synthetic persistent fault to a test part: a step or 60 s ramp of 2-6 sigma on 1-3
    random signals, starting 50-350 samples in and lasting 150-400 samples. Returns (X, labels)."""
    X = X.copy()
    n, d = X.shape
    start = int(rng.integers(50, min(350, n - 60)))
    stop = min(n, start + int(rng.integers(150, 400)))
    sig = rng.choice(d, size=int(rng.integers(1, 4)), replace=False)
    mag = rng.uniform(2.0, 6.0, size=sig.size) * rng.choice([-1.0, 1.0], size=sig.size) * scale[sig]
    shape = np.ones(stop - start)
    if rng.random() < 0.5:
        shape = np.minimum(1.0, np.arange(1, stop - start + 1) / 60.0)
    X[start:stop, sig] += shape[:, None] * mag[None, :]
    y = np.zeros(n, dtype=np.int8)
    y[start:stop] = 1
    return X, y


def select_params(name: str, free: SkabFile, calib_far: float, min_scale: np.ndarray | None,
                  replicates: int = 3, seed: int = 0) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    """Choose a detector's parameters without SKAB labels: synthetic faults on the anomaly-free run.

    For each candidate: fit on the first 400 rows of each 1,150-row piece of the anomaly-free run,
    set the threshold factor for ``calib_far`` on the clean rest, then score ``replicates`` copies of
    each piece's rest with an injected fault; keep the candidate with the best pooled F1 among those
    whose pooled false-alarm rate there is within ``SYNTHETIC_FAR_BUDGET`` % (else the lowest one).
    """
    kind, fixed, space = CONFIGS[name]
    report = []
    best: tuple[tuple[bool, float], dict[str, Any], float] | None = None
    for cand in _grid(space):
        params = {**fixed, **cand}
        ratios, refs, dets = [], [], []
        for s in range(0, free.X.shape[0] - PIECE + 1, PIECE):
            det = make_detector(kind, **params)
            level, spread, sc = _fit_and_score(det, free.X[s : s + PIECE], min_scale)
            ratios.append((sc - level) / spread)
            refs.append((level, spread))
            dets.append((det, s))
        factor = float(np.quantile(np.concatenate(ratios), 1.0 - calib_far))
        rng = np.random.default_rng(seed)
        trues, preds = [], []
        for (det, s), (level, spread) in zip(dets, refs, strict=True):
            raw_scale = free.X[s : s + FIT_ROWS].std(axis=0) + 1e-9
            for _ in range(replicates):
                Xi, y = inject_faults(free.X[s + FIT_ROWS : s + PIECE], raw_scale, rng)
                preds.append(_latch(level, spread, factor).run(det.score(Xi)))
                trues.append(y)
        b = binary_metrics(trues, preds)
        report.append({"params": cand, "synthetic_f1": round(b["f1"], 4), "synthetic_far": round(b["far"], 2)})
        # best F1 among candidates whose synthetic false-alarm rate stays within the budget
        key = (b["far"] <= SYNTHETIC_FAR_BUDGET, b["f1"] if b["far"] <= SYNTHETIC_FAR_BUDGET else -b["far"])
        if best is None or key > best[0]:
            best = (key, params, factor)
    assert best is not None
    return best[1], best[2], report


def normal_drift_scale(free: SkabFile, piece: int = 1150) -> np.ndarray:
    """Per-signal drift of normal operation beyond a 400-row fitting window (anomaly-free run only).

    For each piece: robust sigma (1.4826 x median absolute deviation) of the rows after the first
    400 from the median of those 400; the median over pieces. Used as ``min_scale`` so a signal that
    drifts in normal operation (fluid temperature warming up) is not judged by its short-term noise.
    """
    out = []
    for s in range(0, free.X.shape[0] - piece + 1, piece):
        X = free.X[s : s + piece]
        out.append(1.4826 * np.median(np.abs(X[FIT_ROWS:] - np.median(X[:FIT_ROWS], axis=0)), axis=0))
    return np.median(np.array(out), axis=0)


def _fit_and_score(det: Detector, X: np.ndarray, min_scale: np.ndarray | None) -> tuple[float, float, np.ndarray]:
    """Fit on the first FIT_ROWS rows; return the normal level (median of the fit-row scores), the
    spread (99th percentile minus median) and the scores of the remaining rows."""
    det.fit(X[:FIT_ROWS], min_scale=min_scale)
    s_fit = det.score(X[:FIT_ROWS])
    level = float(np.median(s_fit))
    spread = float(np.quantile(s_fit, 0.99)) - level
    spread = spread if spread > 1e-9 * max(1.0, abs(level)) else 1e-9 * max(1.0, abs(level))
    return level, spread, det.score(X[FIT_ROWS:])


def _latch(level: float, spread: float, factor: float) -> AlarmLatch:
    """Alarm above level + factor x spread; released below 80 % of the way up from the normal level."""
    on = level + factor * spread
    return AlarmLatch(on=on, off=level + LATCH_OFF_RATIO * (on - level))


def _scores(files: list[SkabFile], masks: list[np.ndarray]) -> tuple[dict[str, Any], dict[str, Any]]:
    """SKAB's binary metrics and NAB scores of ``masks``, one per file over its rows after the fit part."""
    b = binary_metrics([f.anomaly[FIT_ROWS:] for f in files], masks)
    n = nab_scores([f.ts[FIT_ROWS:] for f in files], [f.changepoint[FIT_ROWS:] for f in files],
                   [mask_edges(m) for m in masks])
    return b, n


def _summary(files: list[SkabFile], masks: list[np.ndarray]) -> dict[str, Any]:
    """The scores of ``masks`` on ``files`` as the page reports them."""
    b, n = _scores(files, masks)
    return {"files": len(files), "f1": round(b["f1"], 4), "far": round(b["far"], 2), "mar": round(b["mar"], 2),
            "nab_standard": round(n["standard"], 2), "nab_lowfp": round(n["lowfp"], 2),
            "nab_lowfn": round(n["lowfn"], 2)}


def evaluate(kind: str, params: dict[str, Any], files: list[SkabFile], factor: float,
             min_scale: np.ndarray | None) -> dict[str, Any]:
    """Run one detector over all files with SKAB's split; returns metrics and timing."""
    masks = []
    fit_s = 0.0
    for f in files:
        det = make_detector(kind, **params)
        t0 = time.perf_counter()
        level, spread, sc = _fit_and_score(det, f.X, min_scale)
        fit_s += time.perf_counter() - t0
        masks.append(_latch(level, spread, factor).run(sc))
    b, n = _scores(files, masks)
    return {
        "f1": round(b["f1"], 4), "far": round(b["far"], 2), "mar": round(b["mar"], 2),
        "nab_standard": round(n["standard"], 2), "nab_lowfp": round(n["lowfp"], 2), "nab_lowfn": round(n["lowfn"], 2),
        "missed_cps": n["missed_cps"], "false_positive_cps": n["false_positives"],
        "fit_and_score_s_per_file": fit_s / len(files),
    }


def throughput(kind: str, params: dict[str, Any], free: SkabFile, n: int = 100_000) -> dict[str, float]:
    """Training time on 400 rows x 8 signals; batch and streaming scoring rate on 8 signals."""
    X = free.X
    det = make_detector(kind, **params)
    t0 = time.perf_counter()
    det.fit(X[:FIT_ROWS])
    train_s = time.perf_counter() - t0
    big = np.tile(X, (n // X.shape[0] + 1, 1))[:n]
    best = np.inf
    for _ in range(3):  # best of three: the machine is shared, the minimum is the least disturbed
        t0 = time.perf_counter()
        det.score(big)
        best = min(best, time.perf_counter() - t0)
    batch_rate = n / best
    det.reset()
    m = 2000
    t0 = time.perf_counter()
    for row in big[:m]:
        det.score_one(row)
    stream_rate = m / (time.perf_counter() - t0)
    return {"train_s": train_s, "score_samples_per_s": batch_rate, "score_one_samples_per_s": stream_rate}


#: the group that chooses the product default; the others are its test
SELECT_GROUPS = ("valve1",)


def evaluate_config(config: MonitorConfig, files: list[SkabFile]) -> dict[str, Any]:
    """The product's own code path on SKAB's split: ``fit_monitor`` on each file's first 400 rows
    (threshold set on the last 30 % of them), then ``OnlineMonitor`` over the rest, row by row."""
    return _summary(files, [OnlineMonitor(fit_monitor(f.X[:FIT_ROWS], SIGNALS, config), config).run(f.X[FIT_ROWS:])[1]
                            for f in files])


def trivial_all_anomaly(files: list[SkabFile]) -> dict[str, Any]:
    """Everything is an anomaly, on the same test parts."""
    return _summary(files, [np.ones_like(f.anomaly[FIT_ROWS:]) for f in files])


#: alarm budget on the anomaly-free run that a default candidate must keep
BUDGET_PER_HOUR = 6.0
BUDGET_IN_ALARM = 0.10


def anomaly_free_alarms(config: MonitorConfig, free: SkabFile) -> dict[str, Any]:
    """Alarms of ``config`` on SKAB's anomaly-free run, fitted on its first 400 rows: onsets per
    hour, the most onsets in any 10 minutes, and the share of time in alarm."""
    _, mask = OnlineMonitor(fit_monitor(free.X[:FIT_ROWS], SIGNALS, config), config).run(free.X[FIT_ROWS:])
    onsets = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8)]) == 1)
    t = free.ts[FIT_ROWS:]
    hours = (t[-1] - t[0]) / 3.6e12
    flood = max((int(np.sum((t[onsets] >= t[i]) & (t[onsets] < t[i] + 600 * 10**9))) for i in onsets), default=0)
    per_h = len(onsets) / hours
    return {"onsets": int(len(onsets)), "per_hour": round(per_h, 2), "max_in_10_min": flood,
            "in_alarm": round(float(mask.mean()), 3),
            "within_budget": bool(per_h <= BUDGET_PER_HOUR and flood <= 10 and mask.mean() <= BUDGET_IN_ALARM)}
