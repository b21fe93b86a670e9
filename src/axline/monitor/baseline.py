"""The baseline live monitor: simple, robust, explained.

Per asset, each analog signal is smoothed (EWMA over ``smooth_s``) and compared with what it was
during a learning period (median and MAD of the smoothed signal while the asset was running). The
asset's score is the largest robust z-score; an alarm opens when it exceeds ``z_on`` and closes
when it falls below ``z_off`` (hysteresis: one excursion, one alarm). Each alarm names the signals
that drove it with their z-scores. Two sensor-health checks run beside it: a signal frozen at one
value (stuck sensor) and a signal reporting bad quality (dropped-out sensor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from axline.batch import NS_PER_S, Batch
from axline.historian.base import Event
from axline.kpi import STATE_RUNNING
from axline.plant import Asset, Plant

ANALOG_KINDS = ("analog",)


@dataclass
class _Signal:
    path: str
    name: str
    period_s: float
    span: float  # hi - lo of the tag's range, for a floor on the scale
    ewma: float | None = None
    last_ts: int | None = None
    train: list[np.ndarray] = field(default_factory=list)
    median: float = 0.0
    scale: float = 1.0
    trained_std: float = 0.0
    z: float = 0.0
    last_value: float | None = None
    same_since: int | None = None
    same_count: int = 0
    bad_since: int | None = None
    active: bool = False  # latched off-normal
    above_since: int | None = None
    below_since: int | None = None
    seen: int = 0  # samples seen while learning
    repeats: int = 0  # of which equal to the one before
    last_seen: int = 0
    varies: bool = False  # changes at (nearly) every sample: eligible for the stuck-sensor check


@dataclass
class _Alarm:
    id: int
    signals: set[str]
    peak: dict[str, float]


class AssetBaseline:
    """Robust z-score monitor of one asset's analog signals (see module doc)."""

    def __init__(self, asset: Asset, *, learn_s: float = 240.0, smooth_s: float = 10.0, z_on: float = 6.0,
                 z_off: float = 3.0, min_on_s: float = 5.0, stuck_s: float = 30.0, bad_s: float = 5.0,
                 emit: Callable[[Event], int] | None = None,
                 update: Callable[..., None] | None = None, judge_levels: bool = True) -> None:
        for name, value, lo in (("learn_s", learn_s, 1), ("smooth_s", smooth_s, 0), ("min_on_s", min_on_s, 0),
                                ("stuck_s", stuck_s, 1), ("bad_s", bad_s, 0)):
            if not value >= lo:
                raise ValueError(f"{name} must be >= {lo} seconds, got {value}")
        if not 0 < z_off < z_on:
            raise ValueError(f"need 0 < z_off < z_on, got z_off={z_off}, z_on={z_on}")
        self.asset = asset
        self.judge_levels = judge_levels  # False when a trained detector judges this asset's levels
        self.learn_s, self.smooth_s, self.z_on, self.z_off = learn_s, smooth_s, z_on, z_off
        self.min_on_ns, self.stuck_ns, self.bad_ns = (int(x * NS_PER_S) for x in (min_on_s, stuck_s, bad_s))
        self.signals = {t.path: _Signal(t.path, t.signal, t.period_s, (t.hi - t.lo) if np.isfinite(t.hi - t.lo) else 0.0)
                        for t in asset.tags if t.kind in ANALOG_KINDS}
        state = asset.tag("state")
        self.state_path = state.path if state else None
        self.running = True
        self.learn_until: int | None = None
        self.trained = False
        self.emit = emit or (lambda e: 0)
        self.update_event = update or (lambda *a, **k: None)
        self.open_alarms: list[_Alarm] = []
        self.sensor_alarms: dict[tuple[str, str], int] = {}  # (code, path) -> event id

    # -- streaming ------------------------------------------------------------------------------
    def update(self, batch: Batch) -> None:
        if not len(batch):
            return
        pos = {p: j for j, p in enumerate(batch.paths)}
        if self.state_path in pos:
            sel = batch.idx == pos[self.state_path]
            v = batch.value[sel]
            v = v[~np.isnan(v)]
            if len(v):
                self.running = int(v[-1]) == STATE_RUNNING
        t_max = None
        for path, sig in self.signals.items():
            j = pos.get(path)
            if j is None:
                continue
            sel = np.flatnonzero(batch.idx == j)
            ts, vals, qual = batch.ts[sel], batch.value[sel], batch.quality[sel]
            self._sensor_health(sig, ts, vals, qual)
            good = (qual < 2) & ~np.isnan(vals)
            ts, vals = ts[good], vals[good]
            if not len(vals):
                continue
            if self.learn_until is None:
                self.learn_until = int(ts[0]) + int(self.learn_s * NS_PER_S)
            smoothed = self._smooth(sig, vals)
            sig.last_ts = int(ts[-1])
            t_max = max(t_max or 0, int(ts[-1]))
            if not self.trained:
                if self.running:
                    sig.train.append(smoothed)
                continue
            if self.running:
                dev = np.abs(smoothed - sig.median) / sig.scale
                sig.z = float(dev[-1])
        if t_max is None:
            return
        if not self.trained and t_max >= (self.learn_until or t_max + 1):
            self._finish_learning()
            return
        if self.trained and self.judge_levels:
            self._evaluate(t_max)

    def _smooth(self, sig: _Signal, vals: np.ndarray) -> np.ndarray:
        alpha = 1.0 - np.exp(-sig.period_s / self.smooth_s) if self.smooth_s > 0 else 1.0
        if sig.ewma is None:
            sig.ewma = float(vals[0])
        out, _ = lfilter([alpha], [1.0, alpha - 1.0], vals, zi=[(1.0 - alpha) * sig.ewma])
        sig.ewma = float(out[-1])
        return out

    def _finish_learning(self) -> None:
        for sig in self.signals.values():
            data = np.concatenate(sig.train) if sig.train else np.zeros(0)
            sig.train = []
            sig.varies = sig.seen >= 50 and sig.repeats <= 0.01 * sig.seen
            if len(data) < 10:
                sig.scale = np.inf  # never learnt: never alarms on its level
                continue
            sig.median = float(np.median(data))
            mad = float(np.median(np.abs(data - sig.median))) * 1.4826
            sig.trained_std = float(np.std(data))
            # a process with several regimes (bimodal, heavy tails) gets the width of its tails, so
            # normal excursions seen while learning stay normal; 5.15 sigma = q99.5 - q0.5 of a Gaussian
            lo, hi = np.quantile(data, [0.005, 0.995])
            # floor: a nearly constant signal must not alarm on noise-level wiggles
            sig.scale = max(mad, (hi - lo) / 5.15, 0.005 * sig.span, 1e-3 * abs(sig.median), 1e-9)
        self.trained = True

    # -- alarms ---------------------------------------------------------------------------------
    def _evaluate(self, t: int) -> None:
        """Per-signal hysteresis latches; an alarm event covers a group of signals that went off
        normal together, so a second fault on the same asset still opens its own alarm."""
        sigs = [s for s in self.signals.values() if np.isfinite(s.scale)]
        if not sigs:
            return
        newly: list[_Signal] = []
        for s in sigs:
            if not s.active:
                if s.z > self.z_on:
                    s.above_since = s.above_since or t
                    if t - s.above_since >= self.min_on_ns:
                        s.active, s.below_since = True, None
                        newly.append(s)
                else:
                    s.above_since = None
            elif s.z < self.z_off:
                s.below_since = s.below_since or t
                if t - s.below_since >= self.min_on_ns:
                    s.active, s.above_since = False, None
            else:
                s.below_since = None
        zs = {s.name: s.z for s in sigs}
        for alarm in self.open_alarms:
            for k in alarm.signals:
                alarm.peak[k] = round(max(alarm.peak.get(k, 0.0), zs[k]), 2)
        uncovered = [s for s in newly if not any(s.name in a.signals for a in self.open_alarms)]
        if uncovered:
            onset = min(s.above_since or t for s in uncovered)
            group = {s.name for s in uncovered} | {s.name for s in sigs if s.active and not any(
                s.name in a.signals for a in self.open_alarms)}
            contrib = {k: round(v, 2) for k, v in sorted(zs.items(), key=lambda kv: -kv[1]) if v > 1.0}
            top = max(group, key=lambda k: zs[k])
            ev = Event(ts=onset, kind="alarm", source=self.asset.path, code="anomaly.sensor", severity="alarm",
                       message=f"{self.asset.id}: unusual {top} (z={zs[top]:.1f})",
                       data={"detector": "robust", "score": round(zs[top], 2), "top": top, "contributions": contrib,
                             "signals": sorted(group), "raised_ts": t, "window": [onset - 120 * NS_PER_S, t],
                             "tags": [f"{self.asset.path}/{k}" for k in contrib]})
            self.open_alarms.append(_Alarm(self.emit(ev), set(group), {k: round(zs[k], 2) for k in group}))
        active = {s.name for s in sigs if s.active}
        for alarm in list(self.open_alarms):
            if not alarm.signals & active:
                self.update_event(alarm.id, end_ts=t, data={"peak_contributions": alarm.peak})
                self.open_alarms.remove(alarm)

    def _sensor_health(self, sig: _Signal, ts: np.ndarray, vals: np.ndarray, qual: np.ndarray) -> None:
        for t, v, q in zip(ts.tolist(), vals.tolist(), qual.tolist(), strict=True):
            sig.last_seen = t
            if q >= 2 or v != v:
                sig.bad_since = sig.bad_since or t
                if t - sig.bad_since >= self.bad_ns:
                    self._open_sensor_alarm("sensor.bad_quality", sig, sig.bad_since,
                                            f"{self.asset.id}: {sig.name} reports bad quality / no value")
                continue
            if sig.bad_since is not None:
                sig.bad_since = None
                self._close_sensor_alarm("sensor.bad_quality", sig, t)
            if not self.trained:
                sig.seen += 1
                sig.repeats += v == sig.last_value
            if sig.last_value is not None and v == sig.last_value:
                sig.same_count += 1
                if (self.trained and sig.varies and sig.same_count >= 10
                        and t - (sig.same_since or t) >= self.stuck_ns):
                    self._open_sensor_alarm("sensor.stuck", sig, sig.same_since or t,
                                            f"{self.asset.id}: {sig.name} is frozen at {v:g}")
            else:
                if sig.same_count:
                    self._close_sensor_alarm("sensor.stuck", sig, t)
                sig.same_since, sig.same_count, sig.last_value = t, 0, v

    def _open_sensor_alarm(self, code: str, sig: _Signal, since: int, message: str) -> None:
        key = (code, sig.path)
        if key in self.sensor_alarms:
            return
        ev = Event(ts=since, kind="alarm", source=self.asset.path, code=code, severity="warning", message=message,
                   data={"detector": "sensor_health", "signal": sig.name, "tags": [sig.path],
                         "contributions": {sig.name: 1.0}, "raised_ts": sig.last_seen})
        self.sensor_alarms[key] = self.emit(ev)

    def _close_sensor_alarm(self, code: str, sig: _Signal, t: int) -> None:
        eid = self.sensor_alarms.pop((code, sig.path), None)
        if eid is not None:
            self.update_event(eid, end_ts=t)


def monitors_for_plant(plant: Plant, emit: Callable[[Event], int], update: Callable[..., None],
                       trained: bool = True, **params: object) -> dict[str, object]:
    """The live monitors of a plant: per asset with analog signals, the baseline (sensor health,
    and levels unless a trained model exists), plus the asset's trained detector (`axline train
    monitor`) when there is one. When the plant file declares monitors, only those assets, each
    with its own parameters on top of ``params``."""
    from axline.monitor.live import LiveDetectorMonitor, load_current

    configured = {m.asset: m for m in plant.monitors}
    out: dict[str, AssetBaseline] = {}
    for asset in plant.assets():
        m = configured.get(asset.path)
        if plant.monitors and m is None:
            continue
        if not any(t.kind in ANALOG_KINDS for t in asset.tags):
            continue
        merged = dict(params)
        if m is not None:
            merged.update(m.params)
        model = load_current(plant, asset.path) if trained else None
        out[asset.path] = AssetBaseline(asset, emit=emit, update=update, judge_levels=model is None, **merged)
        if model is not None:
            out[asset.path + "#trained"] = LiveDetectorMonitor(asset, model[0], model[1], emit=emit, update=update)
    return out
