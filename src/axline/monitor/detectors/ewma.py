"""A bank of EWMA control charts, one per signal, alarming on the worst signal (``ewma``)."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from axline.monitor.detectors.base import Detector


class EWMADetector(Detector):
    """One EWMA control chart per signal; the score is the largest squared chart statistic.

    Each signal's robust z-score is smoothed by an exponentially weighted moving average
    (``alpha`` = weight of the newest sample) and divided by that average's own spread on the
    fitting data: the larger of its measured standard deviation there and the spread white noise of
    the same variance would give (``sqrt(alpha / (2 - alpha))``). A signal that wanders slowly
    (a temperature) so gets a wide chart and a noisy but steady one (a flow meter) a narrow one,
    and a persistent shift of a few noise sigmas on one signal stands out of the others instead of
    being averaged away. Score: max over signals of the squared standardised average (a normal
    sample scores about 0-4).

    >>> rng = np.random.default_rng(0)
    >>> normal = rng.normal(0.0, 1.0, (400, 3))
    >>> det = EWMADetector(alpha=0.1).fit(normal, columns=["temp", "flow", "vib"])
    >>> shifted = rng.normal(0.0, 1.0, (60, 3)) + [0.0, -2.0, 0.0]  # flow drops by two sigmas
    >>> s = det.score(shifted)
    >>> bool(s[:3].max() < 9.0 < s[-20:].min()), det.explain(shifted[-1], top=1)[0]["signal"]
    (True, 'flow')
    """

    name = "ewma"
    PARAMS = {"alpha": (0.1, 0.0, 1.0, False)}

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        if float(self.params["alpha"]) <= 0.0:
            raise ValueError("parameter 'alpha' must be in (0, 1], got 0.0")

    def _average(self, Z: np.ndarray) -> np.ndarray:
        """y[t] = a z[t] + (1 - a) y[t-1] from y[-1] = 0: a fresh chart starts at the normal level
        (starting at the first sample would give that sample the weight of a whole average)."""
        a = float(self.params["alpha"])
        if a >= 1.0:
            return Z
        return lfilter([a], [1.0, -(1.0 - a)], Z, axis=0)

    def _fit(self, Z: np.ndarray) -> None:
        a = float(self.params["alpha"])
        measured = self._average(Z).std(axis=0)
        white = np.sqrt(a / (2.0 - a)) * Z.std(axis=0)
        self._arrays = {"spread": np.maximum(np.maximum(measured, white), 1e-6)}

    def reset(self) -> None:
        """Forget the streaming state."""
        super().reset()
        self._avg: np.ndarray | None = None

    def _charts(self, E: np.ndarray) -> np.ndarray:
        return (E / self._arrays["spread"]) ** 2

    def _raw_batch(self, Z: np.ndarray) -> np.ndarray:
        return self._charts(self._average(Z)).max(axis=1)

    def _raw_one(self, z: np.ndarray) -> float:
        a = float(self.params["alpha"])
        prev = np.zeros_like(z) if self._avg is None else self._avg
        self._avg = z.copy() if a >= 1.0 else a * z + (1.0 - a) * prev
        return float(self._charts(self._avg[None, :]).max())

    def _contrib(self, Z: np.ndarray) -> np.ndarray:
        # each chart's share of the row's charts, scaled so the row sums to the score (the max)
        C = self._charts(self._average(Z))
        total = C.sum(axis=1, keepdims=True)
        return np.where(total > 0, C * (C.max(axis=1, keepdims=True) / np.where(total > 0, total, 1.0)), 0.0)
