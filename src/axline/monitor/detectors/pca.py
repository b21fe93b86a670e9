"""PCA with Hotelling T² and Q (SPE), each normalised by its limit on the fitting data (``pca``)."""

from __future__ import annotations

import numpy as np

from axline.monitor.detectors.base import StatelessDetector


class PCADetector(StatelessDetector):
    """PCA on standardised signals: Hotelling T² in the model space plus Q (SPE) outside it.

    ``variance``: share of variance the kept components explain. The score is
    T²/T²_lim + Q/Q_lim, both limits being the 99th percentile on the fitting data, so a normal
    sample scores about 0-2.

    >>> rng = np.random.default_rng(0)
    >>> load = rng.normal(0.0, 1.0, 500)
    >>> normal = np.column_stack([load, 2 * load + 0.1 * rng.normal(size=500), rng.normal(size=500)])
    >>> det = PCADetector().fit(normal, columns=["load", "current", "vib"])
    >>> s = det.score([[1.0, 2.0, 0.0], [1.0, -2.0, 0.0]])  # the second breaks the load/current link
    >>> bool(s[0] < 2.0 < s[1])
    True
    """

    name = "pca"
    PARAMS = {"variance": (0.9, 0.0, 1.0, False), "weight_q": (1.0, 0.0, 100.0, False)}

    def _fit(self, Z: np.ndarray) -> None:
        mu = Z.mean(axis=0)
        C = np.cov(Z - mu, rowvar=False)
        lam, V = np.linalg.eigh(np.atleast_2d(C))
        order = np.argsort(lam)[::-1]
        lam, V = np.clip(lam[order], 1e-9, None), V[:, order]
        share = np.cumsum(lam) / lam.sum()
        k = int(np.searchsorted(share, float(self.params["variance"])) + 1)
        k = min(k, Z.shape[1] - 1) if Z.shape[1] > 1 else 1
        self._arrays = {"mu": mu, "P": V[:, :k], "lam": lam[:k], "lims": np.ones(2)}
        t2, q = self._parts(Z)
        lims = np.array([np.quantile(t2, 0.99), np.quantile(q, 0.99)])
        self._arrays["lims"] = np.where(lims > 1e-12, lims, 1.0)

    def _parts(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = self._arrays
        Zc = Z - a["mu"]
        T = Zc @ a["P"]
        t2 = np.sum(T**2 / a["lam"], axis=1)
        R = Zc - T @ a["P"].T
        return t2, np.sum(R**2, axis=1)

    def _raw(self, Z: np.ndarray) -> np.ndarray:
        t2, q = self._parts(Z)
        lims = self._arrays["lims"]
        return t2 / lims[0] + float(self.params["weight_q"]) * q / lims[1]

    def _contrib(self, Z: np.ndarray) -> np.ndarray:
        a = self._arrays
        Zc = Z - a["mu"]
        T = Zc @ a["P"]
        R = Zc - T @ a["P"].T
        # T² = sum_j z_j * sum_a P_ja t_a / lam_a ; negative parts are clipped by the caller
        ct2 = Zc * ((T / a["lam"]) @ a["P"].T)
        return ct2 / a["lims"][0] + float(self.params["weight_q"]) * R**2 / a["lims"][1]
