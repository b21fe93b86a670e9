"""Two-sided CUSUM per signal on decorrelated residuals (``changepoint``)."""

from __future__ import annotations

import numpy as np

from axline.monitor.detectors.base import Detector


class ChangepointDetector(Detector):
    """Two-sided CUSUM per signal on decorrelated residuals.

    Each signal's residual given all the others (from the inverse covariance of the fitting data,
    standardised to unit variance) removes what the signals share, such as load. ``drift`` (k, in
    sigmas) is the slack subtracted each step: the sum rises only on a sustained shift larger than
    k and decays by k per normal sample afterwards; ``cap`` bounds the sum so an alarm ends within
    about cap/k samples after the shift is over. Score: the largest sum over signals.

    >>> rng = np.random.default_rng(0)
    >>> det = ChangepointDetector(drift=0.5).fit(rng.normal(0.0, 1.0, (500, 2)))
    >>> stream = rng.normal(0.0, 1.0, (60, 2))
    >>> stream[30:, 1] += 2.0  # a sustained shift of two sigmas on the second signal
    >>> s = det.score(stream)
    >>> bool(s[:30].max() < 8.0 < s[-1])
    True
    >>> det.reset(); bool(np.allclose([det.score_one(x) for x in stream], s))
    True
    """

    name = "changepoint"
    PARAMS = {"drift": (0.5, 0.0, 100.0, False), "cap": (50.0, 1.0, 1e6, False), "clip": (10.0, 0.1, 1e6, False)}

    def _fit(self, Z: np.ndarray) -> None:
        mu = Z.mean(axis=0)
        d = Z.shape[1]
        C = np.atleast_2d(np.cov(Z - mu, rowvar=False)) + 1e-3 * np.eye(d)
        prec = np.linalg.inv(C)
        self._arrays = {"mu": mu, "A": prec / np.sqrt(np.diag(prec))[:, None]}

    def _resid(self, Z: np.ndarray) -> np.ndarray:
        a = self._arrays
        c = float(self.params["clip"])
        return np.clip((Z - a["mu"]) @ a["A"].T, -c, c)  # one wild spike is not a sustained shift

    def reset(self) -> None:
        """Forget the streaming state."""
        super().reset()
        self._pos: np.ndarray | None = None
        self._neg: np.ndarray | None = None

    def _sums(self, R: np.ndarray, pos: np.ndarray | None, neg: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        k = float(self.params["drift"])
        cap = float(self.params["cap"])
        n, d = R.shape
        P = np.empty((n, d))
        N = np.empty((n, d))
        p = np.zeros(d) if pos is None else pos.copy()
        q = np.zeros(d) if neg is None else neg.copy()
        for i in range(n):
            p = np.minimum(np.maximum(0.0, p + R[i] - k), cap)
            q = np.minimum(np.maximum(0.0, q - R[i] - k), cap)
            P[i], N[i] = p, q
        return P, N

    def _raw_batch(self, Z: np.ndarray) -> np.ndarray:
        P, N = self._sums(self._resid(Z), None, None)
        return np.maximum(P, N).max(axis=1)

    def _raw_one(self, z: np.ndarray) -> float:
        P, N = self._sums(self._resid(z[None, :]), self._pos, self._neg)
        self._pos, self._neg = P[-1], N[-1]
        return float(np.maximum(P[-1], N[-1]).max())

    def _contrib(self, Z: np.ndarray) -> np.ndarray:
        P, N = self._sums(self._resid(Z), None, None)
        return np.maximum(P, N)
