"""Per-signal robust z-scores with optional EWMA and seasonal profile (``robust``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.signal import lfilter

from axline.monitor.detectors.base import Detector
from axline.monitor.detectors.validation import as_2d


class RobustDetector(Detector):
    """Univariate robust z-scores (median/MAD), optional EWMA and seasonal profile.

    ``alpha`` is the EWMA weight of the newest sample (1 = no EWMA); ``season`` is the period in
    samples of a repeating profile that is removed (0 = none; phase counts from the first sample
    scored after ``reset``). Score: mean over signals of the squared (smoothed) z-score.

    >>> normal = np.random.default_rng(0).normal(0.0, 1.0, (500, 2))
    >>> det = RobustDetector(alpha=0.5).fit(normal, columns=["temp", "flow"])
    >>> _ = det.calibrate(normal, far=0.01)
    >>> det.predict([[0.1, 0.0], [0.0, 8.0]]).tolist()
    [False, True]
    >>> det.explain([0.0, 8.0], top=1)[0]["signal"]
    'flow'
    """

    name = "robust"
    learns_online = True
    PARAMS = {"alpha": (1.0, 0.0, 1.0, False), "season": (0, 0, 1_000_000, True)}

    def _fit(self, Z: np.ndarray) -> None:
        period = int(self.params["season"])
        if period > 0:
            if Z.shape[0] < 2 * period:
                raise ValueError(f"season={period} needs at least {2 * period} fitting samples, got {Z.shape[0]}")
            phase = np.arange(Z.shape[0]) % period
            prof = np.stack([np.median(Z[phase == p], axis=0) for p in range(period)])
            self._arrays = {"profile": prof}
        else:
            self._arrays = {"profile": np.zeros((1, Z.shape[1]))}

    def reset(self) -> None:
        """Forget the streaming state."""
        super().reset()
        self._ew: np.ndarray | None = None
        self._t = 0

    def _deseason(self, Z: np.ndarray, start: int) -> np.ndarray:
        prof = self._arrays["profile"]
        if int(self.params["season"]) == 0:
            return Z
        phase = (start + np.arange(Z.shape[0])) % prof.shape[0]
        return Z - prof[phase]

    def _ewma(self, Z: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        a = float(self.params["alpha"])
        if a >= 1.0:
            return Z
        # y[t] = a z[t] + (1 - a) y[t-1]; y[-1] = z[0] (start at the first value, not zero)
        zi = (1 - a) * (Z[0] if init is None else init)
        out, _ = lfilter([a], [1.0, -(1 - a)], Z, axis=0, zi=zi[None, :])
        return out

    def _raw_batch(self, Z: np.ndarray) -> np.ndarray:
        E = self._ewma(self._deseason(Z, 0), None)
        return np.mean(E**2, axis=1)

    def _raw_one(self, z: np.ndarray) -> float:
        z = self._deseason(z[None, :], self._t)[0]
        self._t += 1
        a = float(self.params["alpha"])
        self._ew = z if self._ew is None else a * z + (1 - a) * self._ew
        return float(np.mean(self._ew**2))

    def learn_one(self, x: Any) -> RobustDetector:
        """Nudge the centre toward a normal sample (slow EWMA of the median, rate 0.001).

        >>> det = RobustDetector().fit(np.random.default_rng(0).normal(0.0, 1.0, (500, 1)))
        >>> before = float(det.center_[0])
        >>> after = float(det.learn_one([before + 1.0]).center_[0])
        >>> round(after - before, 6)
        0.001
        """
        self._check_fitted()
        X = as_2d(x, self.n_features, name="x")
        assert self.center_ is not None
        self.center_ = self.center_ + 0.001 * (X[0] - self.center_)
        return self

    def _contrib(self, Z: np.ndarray) -> np.ndarray:
        E = self._ewma(self._deseason(Z, 0), None)
        return E**2 / Z.shape[1]
