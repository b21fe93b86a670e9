"""The product's default detector configuration and the one code path that fits it.

`axline detect`, `axline train monitor` (and so the live service, which runs what it trained) and
`axline bench skab` all call ``fit_monitor`` and ``monitor_latch`` from here, so the detector the
SKAB page calls the default is the one a user gets.

How the default was chosen: `axline bench skab` evaluates the candidates of ``CANDIDATES`` through
``fit_monitor``/``monitor_latch`` on SKAB's ``valve1`` group only (16 runs) and keeps the best F1
among those with a false-alarm rate <= 10 % there; the other groups (``valve2``, ``other``) are
the test. The bench reports its choice (``selected``) next to ``DEFAULT``; a test checks that
they agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from axline.monitor.alarms import AlarmLatch
from axline.monitor.detectors import Detector, make_detector

__all__ = ["CANDIDATES", "DEFAULT", "MonitorConfig", "fit_monitor", "monitor_latch"]


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        p = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.detector}({p}) far={self.far}"


#: the product default (chosen by `axline bench skab` on SKAB valve1; see the module docstring)
DEFAULT = MonitorConfig(detector="robust", params={"smooth": 1}, far=0.01)

#: the candidates the default is chosen from
CANDIDATES: list[MonitorConfig] = [
    MonitorConfig(detector=kind, params={"smooth": smooth}, far=far)
    for kind in ("pca", "robust", "mset")
    for smooth in (1, 10, 30)
    for far in (0.01, 0.05)
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
    det.calibrate(X[n_model:], far=config.far)
    return det


def monitor_latch(det: Detector, config: MonitorConfig = DEFAULT) -> AlarmLatch:
    """The alarm latch every monitor uses on ``det``'s scores."""
    return det.latch(ratio=config.latch_ratio, min_duration=config.min_on, release=config.release)


def with_overrides(config: MonitorConfig = DEFAULT, detector: str | None = None, far: float | None = None,
                   smooth: int | None = None) -> MonitorConfig:
    """``config`` with the options a user gave on the command line; a different detector kind keeps
    only the shared ``smooth`` parameter."""
    params = dict(config.params)
    if detector is not None and detector != config.detector:
        params = {k: v for k, v in params.items() if k == "smooth"}
    if smooth is not None:
        params["smooth"] = smooth
    return replace(config, detector=detector or config.detector, params=params,
                   far=config.far if far is None else far)
