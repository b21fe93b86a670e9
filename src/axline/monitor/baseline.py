"""The baseline live monitor: simple, robust, explained.

Per asset, each analog signal is smoothed (EWMA over ``smooth_s``) and compared with what it was
during a learning period (median and MAD of the smoothed signal while the asset was running). The
asset's score is the largest robust z-score; an alarm opens when it exceeds ``z_on`` for ``min_on_s``
and closes when it falls below ``z_off`` (hysteresis: one excursion, one alarm). Each alarm names the
signals that drove it with their z-scores. Two sensor-health checks run beside it: a signal frozen at
one value (stuck sensor) and a signal reporting bad quality (dropped-out sensor).

A few minutes of learning never see a whole day of a plant, so the learnt scale of a slow signal
is widened by its effective sample size (correlation time against the learning span), and after it:

* the level and scale keep learning slowly while the asset runs (time constants ``adapt_s`` and
  ``adapt_scale_s``; each sample's pull on the level is clipped at 3 scales, so a slow drift and a
  process regime are followed while a fault that ramps up in minutes is not absorbed; while a
  signal is off normal its level follows at a third of that pull, so a lasting regime change still
  closes its alarm); the scale learns only from samples within 3 scales, never while the signal is
  off normal, and never drops below the learnt one;
* signals that hold one value per part (cycle time, a gauged dimension: most samples repeat the one
  before) are judged per part, on an EWMA chart of the part values (weight ``part_lambda``, each
  part clipped at 4 scales so one odd part is no alarm);
* signals are judged (and learnt) while the asset runs a part, not between parts or while stopped;
  after a pause of work longer than ``settle_s`` (a micro-stop, a changeover, a starved furnace) a
  signal is not judged for twice the pause, at least ``settle_s`` and at most twenty of its own
  correlation times (measured while learning; at most ``settle_max_s``): a slow temperature needs
  long to come back after a long stop, a fast current only seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from axline.batch import NS_PER_S, Batch
from axline.historian.base import Event
from axline.kpi import STATE_IDLE, STATE_RUNNING
from axline.plant import Asset, Plant

ANALOG_KINDS = ("analog",)
# states of an asset in production (working a part, or idle between parts); settle_s counts from
# the last other state (a micro-stop, changeover, breakdown)
PRODUCING_STATES = (STATE_RUNNING, STATE_IDLE)


@dataclass
class _Signal:
    path: str
    name: str
    period_s: float
    span: float  # hi - lo of the tag's range, for a floor on the scale
    ewma: float | None = None
    last_ts: int | None = None
    train: list[np.ndarray] = field(default_factory=list)
    train_parts: list[float] = field(default_factory=list)
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
    per_part: bool = False  # holds one value per part: judged on an EWMA chart of part values
    parts: list[float] = field(default_factory=list)  # part values (new values) of this batch
    part_ewma: float | None = None
    last_part_ts: int = 0
    learnt_scale: float = 1.0
    var: float = 1.0  # adapted variance of the deviations
    corr_s: float = 0.0  # correlation time of the smoothed signal while learning (1/e of the ACF)


@dataclass
class _Alarm:
    id: int
    signals: set[str]
    peak: dict[str, float]


class AssetBaseline:
    """Robust z-score monitor of one asset's analog signals (see module doc)."""

    def __init__(self, asset: Asset, *, learn_s: float = 240.0, smooth_s: float = 10.0, z_on: float = 6.0,
                 z_off: float = 3.0, min_on_s: float = 5.0, stuck_s: float = 30.0, bad_s: float = 5.0,
                 adapt_s: float = 3600.0, adapt_scale_s: float = 14400.0, settle_s: float = 30.0,
                 settle_max_s: float = 900.0,
                 part_lambda: float = 0.2,
                 emit: Callable[[Event], int] | None = None,
                 update: Callable[..., None] | None = None, judge_levels: bool = True) -> None:
        for name, value, lo in (("learn_s", learn_s, 1), ("smooth_s", smooth_s, 0), ("min_on_s", min_on_s, 0),
                                ("stuck_s", stuck_s, 1), ("bad_s", bad_s, 0), ("adapt_s", adapt_s, 0),
                                ("adapt_scale_s", adapt_scale_s, 0), ("settle_s", settle_s, 0),
                                ("settle_max_s", settle_max_s, 0)):
            if not value >= lo:
                raise ValueError(f"{name} must be >= {lo} seconds (0: off where allowed), got {value}")
        if not 0 < z_off < z_on:
            raise ValueError(f"need 0 < z_off < z_on, got z_off={z_off}, z_on={z_on}")
        if not 0 < part_lambda <= 1:
            raise ValueError(f"part_lambda must be in (0, 1], got {part_lambda}")
        self.adapt_s, self.adapt_scale_s, self.part_lambda = adapt_s, adapt_scale_s, part_lambda
        self.settle_ns, self.settle_max_ns = int(settle_s * NS_PER_S), int(settle_max_s * NS_PER_S)
        self.running_since: int | None = None  # end of the last pause of work (>= settle_s)
        self.stopped_since: int | None = None  # start of the current pause (state other than running)
        self.last_stop_ns = 0  # length of the last pause
        self.asset = asset
        self.judge_levels = judge_levels  # False when a trained detector judges this asset's levels
        self.learn_s, self.smooth_s, self.z_on, self.z_off = learn_s, smooth_s, z_on, z_off
        self.min_on_ns, self.stuck_ns, self.bad_ns = (int(x * NS_PER_S) for x in (min_on_s, stuck_s, bad_s))
        self.signals = {t.path: _Signal(t.path, t.signal, t.period_s, (t.hi - t.lo) if np.isfinite(t.hi - t.lo) else 0.0)
                        for t in asset.tags if t.kind in ANALOG_KINDS}
        state = asset.tag("state")
        self.state_path = state.path if state else None
        self.running = True  # working a part: continuous signals are judged
        self.producing = True  # running or idle between parts: part values are judged
        self.learn_until: int | None = None
        self.trained = False
        self.emit = emit or (lambda e: 0)
        self.update_event = update or (lambda *a, **k: None)
        self.open_alarms: list[_Alarm] = []
        self.sensor_alarms: dict[tuple[str, str], int] = {}  # (code, path) -> event id

    # -- streaming ------------------------------------------------------------------------------
    def update(self, batch: Batch) -> None:
        """Feed one batch of readings (any tags; those of other assets are ignored)."""
        if not len(batch):
            return
        pos = {p: j for j, p in enumerate(batch.paths)}
        if self.state_path in pos:
            sel = batch.idx == pos[self.state_path]
            v, vts = batch.value[sel], batch.ts[sel]
            ok = ~np.isnan(v)
            v, vts = v[ok], vts[ok]
            if len(v):
                states = v.astype(np.int64)
                run = np.isin(states, PRODUCING_STATES)
                self.running = int(states[-1]) == STATE_RUNNING
                self.producing = bool(run[-1])
                working = states == STATE_RUNNING
                for t, w in zip(vts.tolist(), working.tolist(), strict=True):
                    if not w and self.stopped_since is None:
                        self.stopped_since = t
                    elif w and self.stopped_since is not None:
                        if t - self.stopped_since >= self.settle_ns:  # a gap between parts is no pause
                            self.running_since, self.last_stop_ns = t, t - self.stopped_since
                        self.stopped_since = None
        t_max = None
        for path, sig in self.signals.items():
            j = pos.get(path)
            if j is None:
                continue
            sel = np.flatnonzero(batch.idx == j)
            ts, vals, qual = batch.ts[sel], batch.value[sel], batch.quality[sel]
            sig.parts = []
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
                if self.producing:
                    sig.train_parts.extend(sig.parts)
                continue
            if not np.isfinite(sig.scale):
                continue
            if sig.per_part:
                if self.producing:
                    self._judge_parts(sig)
            elif self.running:
                if self._settled(sig, int(ts[-1])):
                    sig.z = float(abs(smoothed[-1] - sig.median) / sig.scale)
                    self._adapt(sig, smoothed, sig.period_s)
                else:
                    sig.z = 0.0
        if t_max is None:
            return
        if not self.trained and t_max >= (self.learn_until or t_max + 1):
            self._finish_learning()
            return
        if self.trained and self.judge_levels:
            self._evaluate(t_max)

    def _settled(self, sig: _Signal, t: int) -> bool:
        """Whether a signal is past the pause before: a pause shorter than ``settle_s`` (the gap
        between parts) needs nothing; a longer one needs twice its length, at least ``settle_s``
        and at most the signal's memory: twenty of its correlation times as measured while learning
        (a few minutes see only part of a slow signal's memory), at most ``settle_max_s``."""
        if self.running_since is None or self.last_stop_ns < self.settle_ns:
            return True
        memory = min(self.settle_max_ns, int(20 * sig.corr_s * NS_PER_S))
        need = min(max(self.settle_ns, 2 * self.last_stop_ns), max(self.settle_ns, memory))
        return t - self.running_since >= need

    def _adapt(self, sig: _Signal, x: np.ndarray, dt_s: float) -> None:
        """Slow, clipped learning of level and scale after the learning period (see module doc)."""
        n = len(x)
        if not n:
            return
        lim = 3.0 * sig.scale
        d = np.clip(x - sig.median, -lim, lim)
        if self.adapt_s > 0:
            w = 1.0 - np.exp(-n * dt_s / self.adapt_s)
            sig.median += (w / 3.0 if sig.active else w) * float(d.mean())
        inside = np.abs(d) < lim  # the scale learns only from samples that look normal
        if self.adapt_scale_s > 0 and not sig.active and inside.any():
            w = 1.0 - np.exp(-int(inside.sum()) * dt_s / self.adapt_scale_s)
            sig.var += w * (float(np.mean(d[inside] ** 2)) - sig.var)
            sig.scale = max(sig.learnt_scale, float(np.sqrt(sig.var)))

    def _judge_parts(self, sig: _Signal) -> None:
        """EWMA chart of per-part values (each clipped at 4 scales)."""
        if not sig.parts:
            return
        lam = self.part_lambda
        x = np.asarray(sig.parts)
        lim = 4.0 * sig.scale
        xc = np.clip(x, sig.median - lim, sig.median + lim)
        e = sig.median if sig.part_ewma is None else sig.part_ewma
        for v in xc.tolist():
            e += lam * (v - e)
        sig.part_ewma = e
        sig.z = abs(e - sig.median) / (sig.scale * np.sqrt(lam / (2.0 - lam)))
        # the clock of the slow learning: the time since the part before (stops do not count)
        t = sig.last_seen
        dt = min(60.0, (t - sig.last_part_ts) / NS_PER_S) if sig.last_part_ts else 0.0
        sig.last_part_ts = t
        self._adapt(sig, xc, dt / len(xc))

    def _smooth(self, sig: _Signal, vals: np.ndarray) -> np.ndarray:
        alpha = 1.0 - np.exp(-sig.period_s / self.smooth_s) if self.smooth_s > 0 else 1.0
        if sig.ewma is None:
            sig.ewma = float(vals[0])
        out, _ = lfilter([alpha], [1.0, alpha - 1.0], vals, zi=[(1.0 - alpha) * sig.ewma])
        sig.ewma = float(out[-1])
        return out

    def _finish_learning(self) -> None:
        for sig in self.signals.values():
            parts = np.asarray(sig.train_parts) if sig.train_parts else np.zeros(0)
            data = np.concatenate(sig.train) if sig.train else np.zeros(0)
            sig.train, sig.train_parts = [], []
            sig.varies = sig.seen >= 50 and sig.repeats <= 0.01 * sig.seen
            sig.per_part = sig.seen >= 50 and sig.repeats >= 0.5 * sig.seen
            if sig.per_part:
                data = parts
            if len(data) < 10:
                sig.scale = np.inf  # never learnt: never alarms on its level
                continue
            sig.median = float(np.median(data))
            mad = float(np.median(np.abs(data - sig.median))) * 1.4826
            sig.trained_std = float(np.std(data))
            if sig.per_part:  # part values: the MAD (odd parts are clipped on the chart), a small floor
                sig.scale = max(mad, 1e-3 * sig.span, 1e-9)
            else:
                # a process with several regimes (bimodal, heavy tails) gets the width of its tails, so
                # normal excursions seen while learning stay normal; 5.15 sigma = q99.5 - q0.5 of a Gaussian
                lo, hi = np.quantile(data, [0.005, 0.995])
                # floor: a nearly constant signal must not alarm on noise-level wiggles
                sig.scale = max(mad, (hi - lo) / 5.15, 0.005 * sig.span, 1e-3 * abs(sig.median), 1e-9)
            sig.learnt_scale, sig.var = sig.scale, sig.scale**2
            if not sig.per_part:
                sig.corr_s = _correlation_time(data, sig.period_s)
                # a short window of a slow signal underestimates its spread: widen by the effective
                # sample size (variance x 1 / (1 - 2 tau / T), at most x 2)
                sig.scale /= np.sqrt(max(0.5, 1.0 - 2.0 * sig.corr_s / (len(data) * sig.period_s)))
                sig.learnt_scale, sig.var = sig.scale, sig.scale**2
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
        """Stuck and bad-quality checks; also collects the new values of a per-part signal."""
        n = len(vals)
        if not n:
            return
        bad = (qual >= 2) | np.isnan(vals)
        if not bad.any() and sig.bad_since is None:
            prev = np.empty(n)
            prev[0] = np.nan if sig.last_value is None else sig.last_value
            prev[1:] = vals[:-1]
            changed = vals != prev
            if changed.all():  # the common case of a varying signal: nothing repeats, nothing is bad
                if sig.same_count:
                    self._close_sensor_alarm("sensor.stuck", sig, int(ts[0]))
                sig.same_since, sig.same_count, sig.last_value = int(ts[-1]), 0, float(vals[-1])
                sig.last_seen = int(ts[-1])
                if not self.trained:
                    sig.seen += n
                if sig.per_part or not self.trained:
                    sig.parts = vals.tolist()
                return
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
                if sig.per_part or not self.trained:
                    sig.parts.append(v)

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


def _correlation_time(x: np.ndarray, period_s: float) -> float:
    """Lag (seconds) at which the autocorrelation of ``x`` first falls below 1/e (the length of
    ``x`` when it never does)."""
    d = x - x.mean()
    n = len(d)
    if n < 4 or not np.any(d):
        return 0.0
    f = np.fft.rfft(d, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    below = np.flatnonzero(acf < acf[0] / np.e)
    return float((below[0] if len(below) else n) * period_s)


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
