"""Trained monitors: fit a detector on an asset's history, version it on disk, run it live.

`axline train monitor --asset PATH --from T1 --to T2` reads the asset's analog signals from the
historian on a regular grid (bucket means, forward-filled; only while the asset was running),
fits a detector from `axline.monitor.detectors`, calibrates its threshold for a target false-alarm
rate and writes it to ``models/monitors/<asset>/vNNNN/`` beside the plant file, with a
``current`` pointer. `axline serve` loads the current version of each asset's model and scores
the live stream on the same grid; alarms (with hysteresis) carry each signal's share of the score
and how far it is from normal.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from axline import i18n
from axline.batch import NS_PER_S, Batch
from axline.historian.base import Event, Historian
from axline.kpi import STATE_RUNNING
from axline.monitor.defaults import DEFAULT, MonitorConfig, OnlineMonitor, fit_monitor, with_overrides
from axline.monitor.detectors import Detector, load_detector
from axline.plant import Asset, Plant

MODEL_DIR = os.path.join("models", "monitors")
DEFAULT_DETECTOR = DEFAULT.detector


def model_root(plant: Plant) -> Path:
    """The folder that holds the plant's trained detector models."""
    return Path(plant.base_dir) / MODEL_DIR


def asset_dir(root: Path, asset_path: str) -> Path:
    """The model folder of the asset ``asset_path`` under ``root``."""
    return root / asset_path.replace("/", "__")


def analog_tags(asset: Asset) -> list[str]:
    """The paths of the asset's analog tags (the detector's inputs)."""
    return [t.path for t in asset.tags if t.kind == "analog"]


def _progress(label: str, done: int, total: int, out=sys.stderr) -> None:
    if not out.isatty() and done not in (0, total):
        return
    width = 30
    filled = int(width * done / max(total, 1))
    out.write(f"\r{label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        out.write("\n")
    out.flush()


def asset_matrix(historian: Historian, asset: Asset, start: int, end: int, step_s: float,
                 chunk_s: float = 6 * 3600, progress: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows on a ``step_s`` grid of the asset's analog signals (bucket means, forward-filled), only
    rows where the asset ran; returns (grid times, X, column names)."""
    paths = analog_tags(asset)
    if not paths:
        raise ValueError(f"asset {asset.path} has no analog signals to learn from")
    state = asset.tag("state")
    step = int(step_s * NS_PER_S)
    n = int((end - start) // step)
    if n < 10:
        raise ValueError(f"the range {start}..{end} holds fewer than 10 steps of {step_s} s; give a longer range")
    X = np.full((n, len(paths)), np.nan)
    run = np.ones(n, dtype=bool)
    chunk = max(step, int(chunk_s * NS_PER_S) // step * step)
    chunks = list(range(start, start + n * step, chunk))
    for k, c0 in enumerate(chunks):
        c1 = min(c0 + chunk, start + n * step)
        got = historian.query_buckets(paths + ([state.path] if state else []), c0, c1, step)
        for j, p in enumerate(paths):
            b = got[p]
            rows = ((b.start - start) // step).astype(np.int64)
            X[rows, j] = b.mean
        if state is not None:
            b = got[state.path]
            rows = ((b.start - start) // step).astype(np.int64)
            st = np.full(n, np.nan)
            st[rows] = b.last
            run_part = _ffill(st[:, None])[:, 0]
            sel = slice((c0 - start) // step, (c1 - start) // step)
            run[sel] = run_part[sel] == STATE_RUNNING
        if progress:
            _progress("reading history", k + 1, len(chunks))
    X = _ffill(X)
    keep = run & ~np.isnan(X).any(axis=1)
    grid = start + np.arange(n, dtype=np.int64) * step
    return grid[keep], X[keep], [p.rsplit("/", 1)[1] for p in paths]


def _ffill(X: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs down each column (vectorised)."""
    mask = np.isnan(X)
    idx = np.where(~mask, np.arange(len(X))[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    return X[idx, np.arange(X.shape[1])]


def train_monitor(plant: Plant, historian: Historian, asset_path: str, start: int, end: int, *,
                  detector: str | None = None, params: dict[str, Any] | None = None, far: float | None = None,
                  step_s: float = 1.0, holdout: float | None = None, progress: bool = False) -> dict[str, Any]:
    """Fit, calibrate and store a new version of an asset's monitor (the product default of
    ``axline.monitor.defaults`` unless overridden). Returns what was written."""
    config = with_overrides(DEFAULT, detector=detector, far=far)
    if params:
        config = replace(config, params={**config.params, **params})
    if holdout is not None:
        config = replace(config, holdout=holdout)
    detector, holdout = config.detector, config.holdout
    asset = next((a for a in plant.assets() if a.path == asset_path), None)
    if asset is None:
        known = ", ".join(a.path for a in plant.assets())
        raise ValueError(f"--asset {asset_path!r} is not an asset of this plant; known: {known}")
    if not 0 < holdout < 0.9:
        raise ValueError(f"holdout must be within (0, 0.9), got {holdout}")
    t0 = time.perf_counter()
    grid, X, columns = asset_matrix(historian, asset, start, end, step_s, progress=progress)
    if len(X) < 100:
        raise ValueError(f"only {len(X)} usable rows for {asset_path} between the two times (running, no gaps); "
                         f"train on a longer period of normal operation")
    n_fit = int(len(X) * (1 - holdout))
    if progress:
        _progress(f"fitting {detector}", 0, 1)
    # threshold from data the fit did not see (the later part), for an honest false-alarm rate
    det = fit_monitor(X, columns, config)
    threshold = det.threshold
    if progress:
        _progress(f"fitting {detector}", 1, 1)
    root = asset_dir(model_root(plant), asset_path)
    root.mkdir(parents=True, exist_ok=True)
    versions = sorted(p.name for p in root.glob("v[0-9][0-9][0-9][0-9]"))
    version = f"v{int(versions[-1][1:]) + 1 if versions else 1:04d}"
    vdir = root / version
    vdir.mkdir()
    det.save(vdir / "model.npz")
    meta = {"asset": asset_path, "version": version, "detector": detector, "params": det.params,
            "columns": columns, "tags": analog_tags(asset), "step_s": step_s, "far": config.far, "config": config.as_dict(),
            "threshold": threshold,
            "train_from": int(start), "train_to": int(end), "rows": int(len(X)), "rows_fit": n_fit,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "train_s": round(time.perf_counter() - t0, 2)}
    (vdir / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    tmp = root / ".current.tmp"
    tmp.write_text(version, encoding="utf-8")
    os.replace(tmp, root / "current")
    return {**meta, "path": str(vdir)}


def load_current(plant: Plant, asset_path: str) -> tuple[Detector, dict[str, Any]] | None:
    """The current trained detector of ``asset_path`` and its metadata, or ``None``."""
    root = asset_dir(model_root(plant), asset_path)
    try:
        version = (root / "current").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    meta = json.loads((root / version / "meta.json").read_text(encoding="utf-8"))
    return load_detector(root / version / "model.npz"), meta


class LiveDetectorMonitor:
    """Scores one asset's live stream with a trained detector on its training grid."""

    def __init__(self, asset: Asset, detector: Detector, meta: dict[str, Any], *,
                 emit: Callable[[Event], int], update: Callable[..., None],
                 min_on_steps: int = DEFAULT.min_on, release_steps: int = DEFAULT.release) -> None:
        if detector.threshold is None:
            raise ValueError(f"the monitor of {asset.path} has no threshold; retrain it with `axline train monitor`")
        self.asset, self.det, self.meta = asset, detector, meta
        self.paths = list(meta["tags"])
        self.step = int(meta["step_s"] * NS_PER_S)
        self.emit, self.update_event = emit, update
        # the trained configuration (older models: the default's), with this monitor's latch timing;
        # released relative to the detector's normal score level (not 0 for every detector)
        config = replace(MonitorConfig.from_dict(meta.get("config") or DEFAULT.as_dict()),
                         min_on=min_on_steps, release=release_steps)
        self.online = OnlineMonitor(detector, config, fit_rows=int(meta.get("rows_fit") or meta.get("rows") or 1))
        self.latch = self.online.latch
        self.last = np.full(len(self.paths), np.nan)
        self.sums = np.zeros(len(self.paths))
        self.counts = np.zeros(len(self.paths))
        self.next_t: int | None = None
        state = asset.tag("state")
        self.state_path = state.path if state else None
        self.running = True
        self.alarm_id: int | None = None
        self.alarm_since = 0
        self.peak: dict[str, float] = {}
        self.scores = 0

    def update(self, batch: Batch) -> None:
        """Score the asset's new readings while it runs; open and close anomaly alarms."""
        if not len(batch):
            return
        pos = {p: j for j, p in enumerate(batch.paths)}
        if self.state_path in pos:
            v = batch.value[(batch.idx == pos[self.state_path])]
            v = v[~np.isnan(v)]
            if len(v):
                self.running = int(v[-1]) == STATE_RUNNING
        # readings in time order, per step: mean of each signal within the step, as in training
        cols = np.full(len(batch.paths), -1)
        for k, p in enumerate(self.paths):
            if p in pos:
                cols[pos[p]] = k
        col = cols[batch.idx]
        sel = (col >= 0) & (batch.quality < 2) & ~np.isnan(batch.value)
        if not sel.any():
            return
        ts, col, val = batch.ts[sel], col[sel], batch.value[sel]
        order = np.argsort(ts, kind="stable")
        ts, col, val = ts[order], col[order], val[order]
        if self.next_t is None:
            self.next_t = (int(ts[0]) // self.step + 1) * self.step
        i = 0
        while i < len(ts):
            j = int(np.searchsorted(ts, self.next_t, side="left"))
            if j > i:
                np.add.at(self.sums, col[i:j], val[i:j])
                np.add.at(self.counts, col[i:j], 1)
                i = j
            if i < len(ts):  # the step ended: score it
                self._close_step(self.next_t)
                self.next_t += self.step

    def _close_step(self, t: int) -> None:
        have = self.counts > 0
        self.last[have] = self.sums[have] / self.counts[have]
        self.sums[:] = 0
        self.counts[:] = 0
        if not self.running or np.isnan(self.last).any():
            return
        x = self.last.copy()
        was = self.latch.active
        score, on = self.online.step(x)
        self.scores += 1
        if on and not was:
            expl = self.det.explain(x, top=len(self.paths))
            contrib = {e["signal"]: round(abs(e["z"]), 2) for e in expl if e["share"] > 0.02}
            top = expl[0]["signal"]
            self.peak = dict(contrib)
            onset = t - (self.latch.min_duration - 1) * self.step
            ev = Event(ts=onset, kind="alarm", source=self.asset.path, code="anomaly.sensor", severity="alarm",
                       message=f"{self.asset.id}: unusual pattern, mostly {top} ({self.det.name} score "
                               f"{score:.2f} > {self.det.threshold:.2f})",
                       data={"detector": self.det.name, "version": self.meta.get("version"), "score": round(score, 3),
                             "threshold": round(self.det.threshold, 3), "top": top, "contributions": contrib,
                             "shares": {e["signal"]: round(e["share"], 3) for e in expl},
                             "raised_ts": t, "window": [onset - 120 * NS_PER_S, t],
                             "tags": [f"{self.asset.path}/{k}" for k in contrib]})
            self.alarm_id = self.emit(ev)
        elif was and not on and self.alarm_id is not None:
            self.update_event(self.alarm_id, end_ts=t, data={"peak_score": round(self.latch.episodes[-1].peak, 3)})
            self.alarm_id = None


def add_train_arguments(p) -> None:
    """Add the options of ``axline monitor train`` to ``p``."""
    p.add_argument("--config", "-c", required=True, help="plant file (YAML)")
    p.add_argument("--asset", required=True, help="asset path, e.g. changwon/plant1/line1/cnc/cnc1 (or cnc/cnc1)")
    p.add_argument("--from", dest="start", required=True, help="start of normal history, ISO 8601 (UTC if no zone)")
    p.add_argument("--to", dest="end", required=True, help="end of normal history, ISO 8601")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"detector name (default {DEFAULT_DETECTOR})")
    p.add_argument("--far", type=float, default=None,
                   help=f"target false-alarm rate per step (default {DEFAULT.far})")
    p.add_argument("--step-s", type=float, default=1.0, help="grid step in seconds (default 1)")


def _parse_time(text: str, what: str) -> int:
    from datetime import UTC, datetime

    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not an ISO 8601 time, e.g. 2026-11-02T06:00 or "
                         f"2026-11-02T06:00+09:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1e6) * 1000


def run_train(args) -> int:
    """``axline monitor train``: fit a detector on a stretch of normal history and save it as current."""
    from axline.historian import open_historian
    from axline.plant import load_plant

    plant = load_plant(args.config)
    asset = args.asset
    matches = [a.path for a in plant.assets() if a.path == asset or a.path.endswith("/" + asset)]
    if len(matches) == 1:
        asset = matches[0]
    start, end = _parse_time(args.start, "--from"), _parse_time(args.end, "--to")
    if end <= start:
        raise ValueError(i18n.pair("cli.to_before_from"))
    with open_historian(plant.historian, base_dir=plant.base_dir) as h:
        out = train_monitor(plant, h, asset, start, end, detector=args.detector, far=args.far,
                            step_s=args.step_s, progress=True)
    print(i18n.say("cli.monitor_trained", detector=out["detector"], version=out["version"], asset=asset,
                   rows=out["rows"], seconds=out["train_s"], threshold=f"{out['threshold']:.3f}", path=out["path"]))
    print(i18n.say("cli.monitor_restart"))
    return 0
