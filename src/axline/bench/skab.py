"""SKAB benchmark: ``axline bench skab --data ../shared/datasets/SKAB --json out.json``.

SKAB's own protocol: each of the 34 labelled CSVs is split, the first 400 rows fit the detector and
the rest are the test part (no shuffling). Outlier metrics are point-wise, pooled over all test
parts; changepoints are the edges of the predicted mask, scored with SKAB's NAB variant (60 s
windows to the right of each true changepoint).

The product's default detector (``axline.monitor.defaults``: the configuration `axline detect`
and `axline train monitor` use, fitted and latched by the same ``fit_monitor``/``monitor_latch``)
is chosen among ``CANDIDATES`` on the ``valve1`` group (16 runs); ``valve2`` and ``other``
(18 runs) are its test. As a check of the choice, the reverse is run too (choose on valve2+other,
report on valve1).

The library rows (every detector kind) choose their parameters on the anomaly-free run only. The threshold
of every file is ``level + factor x spread`` of the detector's scores on that file's own 400
fitting rows; ``factor`` gives a pooled false-alarm rate of ``--calib-far`` on 1,150-row pieces of
the anomaly-free run, and each detector's free parameters are picked by F1 on synthetic faults
injected there (``select_params``). Test labels are used for scoring only.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from axline.bench.common import (
    bench_header,
    markdown_table,
    page,
    peak_rss_mb,
    publish,
    require_dir,
)
from axline.bench.streams import drifting_rows
from axline.monitor.alarms import AlarmLatch
from axline.monitor.defaults import CANDIDATES, DEFAULT, MonitorConfig, OnlineMonitor, fit_monitor
from axline.monitor.detectors import Detector, make_detector
from axline.monitor.metrics import binary_metrics, mask_edges, nab_scores

FIT_ROWS = 400
SIGNALS = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
]

#: published SKAB leaderboard rows (README of waico/SKAB @ b2c0d46): F1, FAR %, MAR %
PUBLISHED_OUTLIER = [
    ("Conv-AE", 0.78, 13.55, 28.02),
    ("MSET", 0.78, 39.73, 14.13),
    ("T-squared+Q (PCA-based)", 0.76, 26.62, 24.92),
    ("LSTM-AE", 0.74, 29.96, 25.92),
    ("T-squared", 0.66, 19.21, 42.6),
    ("LSTM-VAE", 0.56, 9.13, 55.03),
    ("Vanilla LSTM", 0.54, 12.54, 59.53),
    ("MSCRED", 0.36, 49.94, 69.88),
]
#: NAB standard, LowFP, LowFN
PUBLISHED_CP = [
    ("MSCRED", 32.42, 16.53, 40.28),
    ("Isolation forest", 26.16, 19.5, 30.82),
    ("T-squared+Q (PCA-based)", 25.35, 14.51, 31.33),
    ("Conv-AE", 23.61, 21.54, 27.55),
    ("LSTM-AE", 23.51, 20.11, 25.91),
    ("T-squared", 19.54, 10.2, 24.31),
    ("MSET", 13.84, 10.22, 17.37),
    ("Vanilla AE", 11.41, 6.53, 13.91),
    ("Vanilla LSTM", 11.31, -3.8, 17.25),
    ("ArimaFD", -0.09, -0.17, -0.06),
]


@dataclass
class SkabFile:
    """One SKAB run: timestamps (ns UTC), 8 signals, labels."""

    name: str
    group: str
    ts: np.ndarray
    X: np.ndarray
    anomaly: np.ndarray
    changepoint: np.ndarray


def read_skab_csv(path: Path) -> SkabFile:
    """Read one ';'-separated SKAB CSV (labels are zero where the file has none)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    head, body = rows[0], [r for r in rows[1:] if r]
    missing = [c for c in ["datetime", *SIGNALS] if c not in head]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    col = {c: i for i, c in enumerate(head)}
    ts = np.array(
        [int(dt.datetime.fromisoformat(r[col["datetime"]]).replace(tzinfo=dt.UTC).timestamp()) for r in body],
        dtype=np.int64,
    ) * 10**9
    X = np.array([[float(r[col[c]]) for c in SIGNALS] for r in body], dtype=np.float64)

    def label(name: str) -> np.ndarray:
        if name not in col:
            return np.zeros(len(body), dtype=np.int8)
        return np.array([int(float(r[col[name]])) for r in body], dtype=np.int8)

    return SkabFile(path.stem if path.parent.name == "" else f"{path.parent.name}/{path.stem}", path.parent.name, ts, X,
                    label("anomaly"), label("changepoint"))


def load_skab(data: Path) -> tuple[list[SkabFile], SkabFile]:
    """The 34 labelled runs (valve1, valve2, other; numeric order) and the anomaly-free run."""
    root = data / "data" if (data / "data").is_dir() else data
    files: list[SkabFile] = []
    for group in ("valve1", "valve2", "other"):
        paths = sorted((root / group).glob("*.csv"), key=lambda p: int(p.stem) if p.stem.isdigit() else 10**9)
        files += [read_skab_csv(p) for p in paths if p.stem.isdigit()]
    free = root / "anomaly-free" / "anomaly-free.csv"
    if not files or not free.is_file():
        raise SystemExit(f"error: {root} does not look like SKAB's data folder (valve1/, valve2/, other/, anomaly-free/)")
    return files, read_skab_csv(free)


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


def evaluate(kind: str, params: dict[str, Any], files: list[SkabFile], factor: float,
             min_scale: np.ndarray | None) -> dict[str, Any]:
    """Run one detector over all files with SKAB's split; returns metrics and timing."""
    preds, trues, cps, pcps, tss = [], [], [], [], []
    fit_s = 0.0
    for f in files:
        det = make_detector(kind, **params)
        t0 = time.perf_counter()
        level, spread, sc = _fit_and_score(det, f.X, min_scale)
        fit_s += time.perf_counter() - t0
        mask = _latch(level, spread, factor).run(sc)
        preds.append(mask)
        trues.append(f.anomaly[FIT_ROWS:])
        cps.append(f.changepoint[FIT_ROWS:])
        pcps.append(mask_edges(mask))
        tss.append(f.ts[FIT_ROWS:])
    b = binary_metrics(trues, preds)
    n = nab_scores(tss, cps, pcps)
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
    preds, trues, cps, pcps, tss = [], [], [], [], []
    for f in files:
        _, mask = OnlineMonitor(fit_monitor(f.X[:FIT_ROWS], SIGNALS, config), config).run(f.X[FIT_ROWS:])
        preds.append(mask)
        trues.append(f.anomaly[FIT_ROWS:])
        cps.append(f.changepoint[FIT_ROWS:])
        pcps.append(mask_edges(mask))
        tss.append(f.ts[FIT_ROWS:])
    b = binary_metrics(trues, preds)
    n = nab_scores(tss, cps, pcps)
    return {"files": len(files), "f1": round(b["f1"], 4), "far": round(b["far"], 2), "mar": round(b["mar"], 2),
            "nab_standard": round(n["standard"], 2), "nab_lowfp": round(n["lowfp"], 2),
            "nab_lowfn": round(n["lowfn"], 2)}


def trivial_all_anomaly(files: list[SkabFile]) -> dict[str, Any]:
    """Everything is an anomaly, on the same test parts."""
    trues = [f.anomaly[FIT_ROWS:] for f in files]
    ones = [np.ones_like(t) for t in trues]
    b = binary_metrics(trues, ones)
    n = nab_scores([f.ts[FIT_ROWS:] for f in files], [f.changepoint[FIT_ROWS:] for f in files],
                   [mask_edges(o) for o in ones])
    return {"files": len(files), "f1": round(b["f1"], 4), "far": round(b["far"], 2), "mar": round(b["mar"], 2),
            "nab_standard": round(n["standard"], 2), "nab_lowfp": round(n["lowfp"], 2),
            "nab_lowfn": round(n["lowfn"], 2)}


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


def per_signal_alarms(config: MonitorConfig, free: SkabFile) -> list[dict[str, Any]]:
    """Alarms of ``config`` on each signal of the anomaly-free run alone (a univariate stream, as
    `axline detect` on one column sees it), fitted on its first 400 rows: onsets per hour, the most in
    any 10 minutes, and whether both keep the alarm budget."""
    out = []
    t = free.ts[FIT_ROWS:]
    hours = (t[-1] - t[0] + (t[1] - t[0])) / 3.6e12  # as `axline bench alarms` counts them
    for j, sig in enumerate(SIGNALS):
        X = free.X[:, [j]]
        _, mask = OnlineMonitor(fit_monitor(X[:FIT_ROWS], [sig], config), config).run(X[FIT_ROWS:])
        onsets = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8)]) == 1)
        flood = max((int(np.sum((t[onsets] >= t[i]) & (t[onsets] < t[i] + 600 * 10**9))) for i in onsets),
                    default=0)
        per_h = len(onsets) / hours
        out.append({"signal": sig, "per_hour": round(per_h, 2), "max_in_10_min": flood,
                    "within_budget": bool(per_h <= BUDGET_PER_HOUR and flood <= 10)})
    return out


#: seeds of the drifting streams (``axline bench alarms``) a default candidate is checked on; that
#: benchmark reports on other seeds, so the streams that choose are not the ones that report
SELECT_STREAM_SEEDS = (101, 102, 103)
#: share of the step faults injected into those streams that a default candidate must catch
MIN_FAULTS_CAUGHT = 0.75


def drifting_selection(config: MonitorConfig) -> dict[str, Any]:
    """Alarms and caught step faults of ``config`` on the drifting streams of ``SELECT_STREAM_SEEDS``."""
    fams = drifting_rows(config, SELECT_STREAM_SEEDS)
    faults = sum(f["faults"] for f in fams)
    caught = sum(f["faults_caught"] for f in fams)
    share = caught / faults if faults else 0.0
    within = all(f["within_budget"] for f in fams)
    return {"seeds": list(SELECT_STREAM_SEEDS), "faults": faults, "faults_caught": caught,
            "caught_share": round(share, 4), "families_within_budget": within,
            "max_per_hour": max(f["per_hour"] for f in fams),
            "ok": bool(within and share >= MIN_FAULTS_CAUGHT)}


def choose(rows: list[dict[str, Any]], key: str, max_far: float, free: SkabFile) -> dict[str, Any]:
    """Best F1 (then NAB) among rows whose FAR on ``key`` is within ``max_far`` and that keep the
    alarm budget on the anomaly-free run, all 8 signals together and each signal alone (checked in
    rank order, recorded as ``anomaly_free_per_signal``), and on the selection drifting streams
    while catching at least ``MIN_FAULTS_CAUGHT`` of their step faults (``drifting_selection``);
    else the best of those keeping the budget on each signal; else of those keeping the joint
    budget; else the lowest FAR among those keeping it (else all)."""
    pool = [r for r in rows if r["anomaly_free"]["within_budget"]] or rows
    ok = sorted((r for r in pool if r[key]["far"] <= max_far),
                key=lambda r: (r[key]["f1"], r[key]["nab_standard"]), reverse=True)
    alone = []
    for r in ok:
        cfg = MonitorConfig.from_dict(r["config"])
        if "anomaly_free_per_signal" not in r:
            r["anomaly_free_per_signal"] = per_signal_alarms(cfg, free)
        if not all(x["within_budget"] for x in r["anomaly_free_per_signal"]):
            continue
        alone.append(r)
        if "drifting_selection" not in r:
            r["drifting_selection"] = drifting_selection(cfg)
        if r["drifting_selection"]["ok"]:
            return r
    if alone:
        return alone[0]
    if ok:
        return ok[0]
    return min(pool, key=lambda r: r[key]["far"])


def default_selection(files: list[SkabFile], free: SkabFile, max_far: float) -> dict[str, Any]:
    """Choose the product default on SELECT_GROUPS, report it on the other groups; and the reverse."""
    sel = [f for f in files if f.group in SELECT_GROUPS]
    test = [f for f in files if f.group not in SELECT_GROUPS]
    rows = []
    for cfg in CANDIDATES:
        rows.append({"config": cfg.as_dict(), "label": cfg.label(), "anomaly_free": anomaly_free_alarms(cfg, free),
                     "select": evaluate_config(cfg, sel), "test": evaluate_config(cfg, test)})
        print(f"  {cfg.label():48s} valve1 F1 {rows[-1]['select']['f1']:.3f} FAR {rows[-1]['select']['far']:5.1f} "
              f"free {rows[-1]['anomaly_free']['per_hour']:5.1f}/h {rows[-1]['anomaly_free']['in_alarm']:.2f}",
              flush=True)
    chosen = choose(rows, "select", max_far, free)
    reverse = choose(rows, "test", max_far, free)
    default_row = next((r for r in rows if r["config"] == DEFAULT.as_dict()), None)
    if default_row is None:
        default_row = {"config": DEFAULT.as_dict(), "label": DEFAULT.label(),
                       "anomaly_free": anomaly_free_alarms(DEFAULT, free),
                       "select": evaluate_config(DEFAULT, sel), "test": evaluate_config(DEFAULT, test)}
    if "anomaly_free_per_signal" not in default_row:
        default_row["anomaly_free_per_signal"] = per_signal_alarms(DEFAULT, free)
    if "drifting_selection" not in default_row:
        default_row["drifting_selection"] = drifting_selection(DEFAULT)
    return {
        "selected_on": f"{'+'.join(SELECT_GROUPS)} ({len(sel)} runs), the anomaly-free run and the drifting "
                       f"streams of seeds {', '.join(map(str, SELECT_STREAM_SEEDS))}; test: the other groups "
                       f"({len(test)} runs)",
        "selection_stream_seeds": list(SELECT_STREAM_SEEDS),
        "select_files": [f.name for f in sel],
        "test_files": [f.name for f in test],
        "rule": f"highest F1 among candidates with FAR <= {max_far:g} % on the selection group that keep "
                f"the alarm budget on the anomaly-free run (<= {BUDGET_PER_HOUR:g} alarms per hour, no more "
                f"than 10 in 10 minutes, in alarm <= {100 * BUDGET_IN_ALARM:g} % of the time) with all 8 "
                f"signals together and on each signal alone (<= {BUDGET_PER_HOUR:g} per hour, no more than 10 "
                "in 10 minutes), and on each drifting stream family of seeds "
                f"{', '.join(map(str, SELECT_STREAM_SEEDS))} (as `axline bench alarms` makes them) while "
                f"catching >= {100 * MIN_FAULTS_CAUGHT:g} % of their step faults (ties: NAB standard); the "
                "lowest FAR if none qualifies",
        "candidates": rows,
        "selected": chosen["label"],
        "selected_config": chosen["config"],
        "default": default_row,
        "default_is_selected": chosen["config"] == DEFAULT.as_dict(),
        "reverse": {"selected_on": "the other groups", "selected": reverse["label"],
                    "on_selection_group": reverse["test"], "on_" + "+".join(SELECT_GROUPS): reverse["select"]},
        "default_all_files": evaluate_config(DEFAULT, files),
        "trivial_test": trivial_all_anomaly(test),
    }


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; writes the JSON and the page rendered from it."""
    t_start = time.perf_counter()
    data = require_dir(args.data, "SKAB")
    files, free = load_skab(data)
    result: dict[str, Any] = bench_header("skab")
    print("choosing the product default on valve1:", flush=True)
    selection = default_selection(files, free, args.max_far)
    floors = {"": normal_drift_scale(free), "-nofloor": None}
    if args.floor == "on":
        floors.pop("-nofloor")
    elif args.floor == "off":
        floors.pop("")
    names = list(CONFIGS) if args.detectors == ["all"] else (args.detectors or [])
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"error: unknown detector(s) {unknown}; choose from {list(CONFIGS)}")
    rows: list[dict[str, Any]] = []
    for (suffix, min_scale), base_name in ((f, n) for f in floors.items() for n in names):
        name = base_name + suffix
        kind = CONFIGS[base_name][0]
        params, factor, sel_report = select_params(base_name, free, args.calib_far, min_scale)
        res = evaluate(kind, params, files, factor, min_scale)
        res.update(throughput(kind, params, free))
        res.update({"name": name, "detector": kind, "params": params, "threshold_factor": round(factor, 4),
                    "drift_floor": None if min_scale is None else [round(float(v), 5) for v in min_scale],
                    "selection_on_anomaly_free": sel_report})
        rows.append(res)
        print(f"{name:20s} F1 {res['f1']:.3f} FAR {res['far']:5.1f}% MAR {res['mar']:5.1f}% "
              f"NAB {res['nab_standard']:6.2f}/{res['nab_lowfp']:6.2f}/{res['nab_lowfn']:6.2f} "
              f"train {res['train_s']:.3f}s score {res['score_samples_per_s']:,.0f}/s", flush=True)
    d = selection["default"]
    result.update({
        "protocol": {"fit_rows": FIT_ROWS, "files": len(files), "test_rows": int(sum(len(f.anomaly) - FIT_ROWS
                                                                                   for f in files)),
                     "nab_window_s": 60, "calib_far": args.calib_far, "latch_off_ratio": LATCH_OFF_RATIO,
                     "synthetic_far_budget": SYNTHETIC_FAR_BUDGET, "max_far": args.max_far},
        "default_detector": DEFAULT.label(),
        "default_config": DEFAULT.as_dict(),
        "selected_on": selection["selected_on"],
        "default_test": d["test"],
        "default_selection": selection,
        "detectors": rows,
        "trivial_all_anomaly": trivial_all_anomaly(files),
        "published_outlier": [dict(zip(("name", "f1", "far", "mar"), r, strict=True)) for r in PUBLISHED_OUTLIER],
        "published_changepoint": [dict(zip(("name", "nab_standard", "nab_lowfp", "nab_lowfn"), r, strict=True))
                                  for r in PUBLISHED_CP],
    })
    result["wall_s"] = round(time.perf_counter() - t_start, 2)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    publish(result, args.json, args.table, render)
    print(f"default {DEFAULT.label()}: test F1 {d['test']['f1']:.3f} FAR {d['test']['far']:.1f}%; "
          f"selected on valve1: {selection['selected']}; wrote {args.json or '-'} and {args.table or '-'}")
    return 0


def _yes(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _alone(c: dict[str, Any]) -> str:
    """Whether a candidate keeps the budget on each anomaly-free signal alone ('–' if not checked)."""
    per = c.get("anomaly_free_per_signal")
    if per is None:
        return "–"
    over = [f"{x['signal']} {x['per_hour']:.1f}/h" for x in per if not x["within_budget"]]
    return "within budget" if not over else "over: " + ", ".join(over)


def _streams(c: dict[str, Any]) -> str:
    """Faults caught and budget on the selection drifting streams ('–' if not checked)."""
    d = c.get("drifting_selection")
    if d is None:
        return "–"
    return (f"{d['faults_caught']}/{d['faults']} caught, "
            + ("within budget" if d["families_within_budget"] else f"over budget ({d['max_per_hour']:.1f}/h)"))


def render(r: dict[str, Any]) -> str:
    """The Markdown page of a SKAB result (from its JSON alone)."""
    sel = r["default_selection"]
    d, t = sel["default"]["test"], sel["trivial_test"]
    p = r["protocol"]
    max_far = p["max_far"]
    ok_far = d["far"] <= max_far
    rev = sel["reverse"]
    summary = "\n".join([
        f"- Product default (what `axline detect` and `axline train monitor` fit, through the same code): "
        f"`{r['default_detector']}`, latched as in the live service. Chosen on {sel['selected_on']}; rule: "
        f"{sel['rule']}. The selection picked `{sel['selected']}`"
        + (" (the shipped default)." if sel["default_is_selected"] else " — **not** the shipped default."),
        f"- Default on the test groups: F1 {d['f1']:.3f}, FAR {d['far']:.1f} %, MAR {d['mar']:.1f} %, "
        f"NAB standard {d['nab_standard']:.1f} (low FP {d['nab_lowfp']:.1f}, low FN {d['nab_lowfn']:.1f}).",
        f"- Trivial detector (everything is an anomaly) on the same test parts: F1 {t['f1']:.3f} at FAR "
        f"{t['far']:.0f} %. Beat it with FAR <= {max_far:g} %: {'yes' if ok_far and d['f1'] > t['f1'] else 'no'}.",
        f"- Goal F1 >= 0.85 at FAR <= {max_far:g} %: {_yes(ok_far and d['f1'] >= 0.85)} (F1 {d['f1']:.3f}, "
        f"FAR {d['far']:.1f} %). Goal changepoint NAB standard >= 40: {_yes(d['nab_standard'] >= 40)} "
        f"({d['nab_standard']:.1f}).",
        f"- Check of the choice, reversed (chosen on {rev['selected_on']}): `{rev['selected']}`, F1 "
        f"{rev['on_' + 'valve1']['f1']:.3f} / FAR {rev['on_valve1']['far']:.1f} % on valve1.",
        f"- Default on all {sel['default_all_files']['files']} runs (includes the selection group, for "
        f"comparison with the published figures only): F1 {sel['default_all_files']['f1']:.3f}, FAR "
        f"{sel['default_all_files']['far']:.1f} %, NAB standard {sel['default_all_files']['nab_standard']:.1f}.",
    ])
    cand = markdown_table(
        ["candidate", "anomaly-free alarms/h", "in alarm", "each signal alone", "selection streams",
         "valve1 F1", "valve1 FAR %", "valve1 NAB", "test F1", "test FAR %", "test NAB"],
        [[("**" + c["label"] + "**") if c["label"] == r["default_detector"] else c["label"],
          c["anomaly_free"]["per_hour"], c["anomaly_free"]["in_alarm"], _alone(c), _streams(c),
          c["select"]["f1"], c["select"]["far"], c["select"]["nab_standard"],
          c["test"]["f1"], c["test"]["far"], c["test"]["nab_standard"]] for c in sel["candidates"]])
    out_rows: list[list[Any]] = []
    for x in r["detectors"]:
        out_rows.append([f"axline library {x['name']}", x["f1"], x["far"], x["mar"], x["nab_standard"],
                         x["nab_lowfp"], x["nab_lowfn"], x["train_s"], round(x["score_samples_per_s"]),
                         round(x["score_one_samples_per_s"])])
    a = sel["default_all_files"]
    out_rows.insert(0, [f"**axline default** {r['default_detector']}", a["f1"], a["far"], a["mar"],
                        a["nab_standard"], a["nab_lowfp"], a["nab_lowfn"], None, None, None])
    tr = r["trivial_all_anomaly"]
    out_rows.append(["trivial: everything is an anomaly", tr["f1"], tr["far"], tr["mar"], tr["nab_standard"],
                     tr["nab_lowfp"], tr["nab_lowfn"], None, None, None])
    cp = {c["name"]: c for c in r["published_changepoint"]}
    for o in r["published_outlier"]:
        c = cp.get(o["name"], {})
        out_rows.append([f"published {o['name']}", o["f1"], o["far"], o["mar"], c.get("nab_standard"),
                         c.get("nab_lowfp"), c.get("nab_lowfn"), None, None, None])
    names = {o["name"] for o in r["published_outlier"]}
    for c in r["published_changepoint"]:
        if c["name"] not in names:
            out_rows.append([f"published {c['name']}", None, None, None, c["nab_standard"], c["nab_lowfp"],
                             c["nab_lowfn"], None, None, None])
    table = markdown_table(
        ["detector", "F1", "FAR %", "MAR %", "NAB std", "NAB lowFP", "NAB lowFN", "train s (400 rows)",
         "score samples/s (batch, 8 signals)", "score_one samples/s"], out_rows)
    library = (f"""- Library rows (all {p['files']} runs): each detector kind's parameters are chosen on the anomaly-free
  run only: threshold `level + factor x spread` of the scores on the file's own fitting rows, `factor`
  for a pooled false-alarm rate of {100 * p['calib_far']:.0f} % on 1,150-row pieces of the anomaly-free run,
  the smoothing window and one parameter by F1 on synthetic faults injected there, among candidates
  whose false-alarm rate there stayed within {p['synthetic_far_budget']:.0f} % (JSON:
  `selection_on_anomaly_free`). Rows suffixed `-nofloor` do not floor each signal's scale at its
  normal drift measured on the anomaly-free run. Latch released at {p['latch_off_ratio']} of the way from
  the normal level to the threshold.
""" if r["detectors"] else "")
    notes = f"""- Protocol: SKAB's own. {p['files']} labelled runs; the first {p['fit_rows']} rows of each fit the
  detector, the remaining {p['test_rows']} rows are scored (no shuffling). F1 = TP / (TP + (FP + FN)/2),
  FAR = FP / (FP + TN), MAR = FN / (FN + TP), pooled over the runs. Changepoints are the edges of the
  predicted (latched) mask, scored with SKAB's NAB variant ({p['nab_window_s']} s window to the right of each
  true changepoint, first detection per window).
- Default and its candidates: `fit_monitor` fits on the first 70 % of the {p['fit_rows']} fitting rows and
  sets the threshold on the other 30 % for the candidate's false-alarm rate (times `margin` above the
  normal level); `OnlineMonitor` then scores the rest row by row: its latch raises an alarm after
  `min_on` samples above the threshold and clears it after `release` samples below the release level,
  and it learns each signal's level online (`adapt` = time constants while normal / while alarming, in
  multiples of the fitted rows). Labels of the test groups are used for scoring only.
- "each signal alone": the candidate fitted on one anomaly-free signal at a time (as `axline detect`
  runs on a single column); "selection streams": step faults caught and the alarm budget on the
  drifting streams of `axline bench alarms` made with other seeds than the ones that benchmark
  reports; both checked in the rule's rank order until a candidate qualifies ("–": not reached).
{library}- "published" rows are quoted from SKAB's README leaderboard, not re-run here."""
    if r["detectors"]:
        notes += "\n" + """- Speed: train time is one fit on 400 rows x 8 signals; batch rate is `score()` on 100,000 rows x 8
  signals (tiled anomaly-free data, best of three runs); streaming rate is `score_one()` per sample."""
    return page("SKAB benchmark (outliers and changepoints)", [
        ("Summary", summary),
        ("Choosing the product default (valve1 chooses, the other groups are the test)", cand),
        (f"All {p['files']} runs: default" + (", library detectors" if r["detectors"] else "")
         + ", trivial and published", table),
        ("Notes", notes),
    ], r)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``axline bench skab``."""
    parser.add_argument("--data", default="../shared/datasets/SKAB", help="SKAB folder (holding data/)")
    parser.add_argument("--json", default="benchmarks/skab.json", help="write the results as JSON here")
    parser.add_argument("--table", default="benchmarks/skab.md", help="write the Markdown table here")
    parser.add_argument("--detectors", nargs="*", default=None,
                        help=f"also run these library detectors ('all' for every one of {list(CONFIGS)}), each "
                             "tuned on the anomaly-free run; default: only the product default and its candidates")
    parser.add_argument("--calib-far", type=float, default=0.05,
                        help="target false-alarm rate on the anomaly-free run for the threshold factor")
    parser.add_argument("--floor", choices=["both", "on", "off"], default="both",
                        help="floor each signal's scale at its normal drift measured on the anomaly-free run "
                             "(rows without it are suffixed -nofloor)")
    parser.add_argument("--max-far", type=float, default=10.0,
                        help="FAR (%%) limit when choosing the default on the selection group")


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m axline.bench.skab", description=__doc__.splitlines()[0])
    add_arguments(_p)
    raise SystemExit(run(_p.parse_args()))
