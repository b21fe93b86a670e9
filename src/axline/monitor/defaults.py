"""The product's default detector configuration and the one code path that fits it.

`axline detect`, `axline train monitor` (and so the live service, which runs what it trained) and
`axline bench skab` all call ``fit_monitor`` and ``monitor_latch`` from here, so the detector the
SKAB page calls the default is the one a user gets.

How the default was chosen: `axline bench skab` runs every candidate of ``CANDIDATES`` through
``fit_monitor`` and ``OnlineMonitor`` on SKAB's ``valve1`` group only (16 runs) and on its
anomaly-free run, and keeps the best F1 on valve1 among those with a false-alarm rate <= 10 % there
that keep the alarm budget on the anomaly-free run (<= 6 alarms per hour, in alarm <= 10 % of the
time, and <= 6 per hour on each of its signals alone) and on long drifting streams made as `axline
bench alarms` makes them but with other seeds, while catching at least 75 % of the step faults
injected there; the other groups (``valve2``, ``other``) are the test. The bench reports its choice
(``selected``) next to ``DEFAULT``; a test checks that they agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from axline.monitor.alarms import AlarmLatch
from axline.monitor.detectors import Detector, make_detector

__all__ = ["CANDIDATES", "DEFAULT", "MonitorConfig", "OnlineMonitor", "fit_monitor", "monitor_latch"]


@dataclass(frozen=True)
class MonitorConfig:
    """A detector kind with its parameters, the target false-alarm rate of its threshold, the share
    of the normal rows held out to set that threshold, and the alarm latch (hysteresis ratio, samples
    above the threshold to raise, samples below the release level to clear)."""

    detector: str = "pca"
    params: dict[str, Any] = field(default_factory=dict)
    far: float = 0.01
    holdout: float = 0.3
    latch_ratio: float = 0.8
    min_on: int = 5
    release: int = 10
    #: threshold = normal level + margin x (calibrated quantile - normal level)
    margin: float = 1.0
    #: online learning of each signal's level, time constant in multiples of the rows the detector
    #: was fitted on (0 = off; a model fitted on a longer history adapts more slowly): fast while the
    #: score is below the release level, slow (``adapt_tau_alarm``) while it is above or alarming,
    #: so drift and daily cycles are followed and a fault is learnt only if it lasts many times
    #: ``adapt_tau_alarm`` (then the alarm clears: a new normal)
    adapt_tau: float = 0.0
    adapt_tau_alarm: float = 0.0
    #: largest step of the learnt level per sample, in robust sigmas x 1/tau
    adapt_clip: float = 3.0

    def as_dict(self) -> dict[str, Any]:
        """The configuration as plain values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> MonitorConfig:
        """A config from ``as_dict`` output (unknown keys ignored; missing ones take the defaults)."""
        if not d:
            return cls()
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def label(self) -> str:
        """A short text naming the detector, its parameters and its alarm settings."""
        p = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        out = f"{self.detector}({p}) far={self.far}"
        if self.margin != 1.0:
            out += f" margin={self.margin:g}"
        if self.latch_ratio != 0.8:
            out += f" release-at={self.latch_ratio:g}"
        if self.release != 10:
            out += f" clear-after={self.release}"
        if self.adapt_tau or self.adapt_tau_alarm:
            out += f" adapt={self.adapt_tau:g}/{self.adapt_tau_alarm:g}"
        return out


#: the product default (chosen by `axline bench skab` on SKAB valve1; see the module docstring)
DEFAULT = MonitorConfig(detector="robust", params={"smooth": 10}, far=0.01, margin=3.5, release=20,
                        adapt_tau=0.35, adapt_tau_alarm=12.0)

#: the candidates the default is chosen from
CANDIDATES: list[MonitorConfig] = [
    MonitorConfig(detector=kind, params={"smooth": smooth}, far=0.01, margin=margin,
                  adapt_tau=tau, adapt_tau_alarm=tau_alarm)
    for kind in ("pca", "robust", "mset")
    for smooth in (1, 10)
    for margin in (1.0, 2.0, 3.0)
    for tau, tau_alarm in ((0.0, 0.0), (0.35, 6.0), (1.0, 12.0))
] + [
    # per-signal EWMA charts: the EWMA does the smoothing; the latch may release nearer the normal level
    MonitorConfig(detector="ewma", params={"alpha": alpha}, far=0.01, margin=margin, latch_ratio=ratio,
                  adapt_tau=0.35, adapt_tau_alarm=6.0)
    for alpha in (0.1, 0.2)
    for margin in (6.0, 9.0, 13.0)
    for ratio in (0.8, 0.5)
] + [
    # a longer off-delay: an alarm clears after 20 samples below the release level, so a signal that
    # hovers near the threshold raises one alarm, not a burst
    MonitorConfig(detector=kind, params=params, far=0.01, margin=margin, release=20, adapt_tau=0.35,
                  adapt_tau_alarm=tau_alarm)
    for kind, params, margins in (("robust", {"smooth": 10}, (3.0, 3.5, 4.0)), ("ewma", {"alpha": 0.1}, (6.0, 9.0)))
    for margin in margins
    for tau_alarm in (6.0, 12.0)
]


def fit_monitor(X: Any, columns: list[str] | None = None, config: MonitorConfig = DEFAULT,
                min_rows: int = 10) -> Detector:
    """Fit ``config``'s detector on the first ``1 - holdout`` of the normal rows ``X`` and set its
    threshold on the rest (rows the fit did not see), for the target false-alarm rate."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (rows x signals), got shape {X.shape}")
    d = X.shape[1]
    need = max(min_rows, d + 2)
    n_model = max(need, int((1.0 - config.holdout) * X.shape[0]))
    if X.shape[0] - n_model < 5:
        raise ValueError(f"{X.shape[0]} normal rows leave too few to set the threshold; give at least {n_model + 5}")
    det = make_detector(config.detector, **config.params)
    det.fit(X[:n_model], columns=columns)
    det.fit_rows_ = n_model  # type: ignore[attr-defined]  # sets the pace of online learning
    q = det.calibrate(X[n_model:], far=config.far)
    det.threshold = float(det.normal_level + config.margin * (q - det.normal_level))
    return det


def monitor_latch(det: Detector, config: MonitorConfig = DEFAULT) -> AlarmLatch:
    """The alarm latch every monitor uses on ``det``'s scores."""
    return det.latch(ratio=config.latch_ratio, min_duration=config.min_on, release=config.release)


class OnlineMonitor:
    """A fitted detector, its latch and the online learning of signal levels: what `axline serve`
    (trained monitors), `axline detect` and the SKAB benchmark run, sample by sample.

    ``step(x)`` scores one sample, updates the latch and then learns the level: each signal's
    centre moves towards the sample by ``clip(z, +-adapt_clip) / tau`` robust sigmas, with the fast
    ``adapt_tau`` while the score is below the release level and the slow ``adapt_tau_alarm``
    otherwise (both times the fitted rows ``fit_rows``). The detector's centre (``center_``) is the
    learnt state."""

    def __init__(self, det: Detector, config: MonitorConfig = DEFAULT, fit_rows: int | None = None) -> None:
        if det.threshold is None:
            raise ValueError("the detector has no threshold; fit it with fit_monitor")
        self.det, self.config = det, config
        self.latch = monitor_latch(det, config)
        n = fit_rows if fit_rows is not None else getattr(det, "fit_rows_", None)
        if (config.adapt_tau > 0 or config.adapt_tau_alarm > 0) and not n:
            raise ValueError("online learning needs the number of rows the detector was fitted on (fit_rows)")
        self._a_normal = 1.0 / max(1.0, config.adapt_tau * n) if config.adapt_tau > 0 and n else 0.0
        self._a_alarm = 1.0 / max(1.0, config.adapt_tau_alarm * n) if config.adapt_tau_alarm > 0 and n else 0.0
        self._clip = float(config.adapt_clip)

    def reset(self) -> None:
        """Fresh latch and smoothing state (the learnt levels are kept)."""
        self.latch.reset()
        self.det.reset()

    def step(self, x: Any) -> tuple[float, bool]:
        """Score one sample; returns (score, alarm on)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        s = self.det.score_one(x)
        on = self.latch.update(s)
        a = self._a_alarm if (on or s >= self.latch.off) else self._a_normal
        if a > 0.0:
            det = self.det
            assert det.center_ is not None and det.scale_ is not None
            z = (x - det.center_) / det.scale_
            det.center_ = det.center_ + a * np.clip(z, -self._clip, self._clip) * det.scale_
        return s, on

    def run(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Score rows in order from a fresh latch; returns (scores, alarm mask over whole episodes)."""
        X = np.asarray(X, dtype=np.float64)
        self.reset()
        scores = np.empty(X.shape[0])
        for i, x in enumerate(X):
            scores[i] = self.step(x)[0]
        mask = np.zeros(X.shape[0], dtype=bool)
        for ep in self.latch.open_and_closed():
            mask[ep.start : ep.end if ep.end is not None else X.shape[0]] = True
        return scores, mask


def with_overrides(config: MonitorConfig = DEFAULT, detector: str | None = None, far: float | None = None,
                   smooth: int | None = None) -> MonitorConfig:
    """``config`` with the options a user gave on the command line; a different detector kind starts
    from its own parameters, and the threshold margin and release level, which were tuned on the
    scale of ``config``'s own (smoothed) scores, go back to plain (margin 1, release at 0.8)."""
    params = dict(config.params)
    margin, ratio = config.margin, config.latch_ratio
    if detector is not None and detector != config.detector:
        params = {}
        plain = MonitorConfig()
        margin, ratio = plain.margin, plain.latch_ratio
    if smooth is not None:
        params["smooth"] = smooth
    return replace(config, detector=detector or config.detector, params=params, margin=margin,
                   latch_ratio=ratio, far=config.far if far is None else far)
