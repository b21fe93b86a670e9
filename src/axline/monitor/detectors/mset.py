"""kNN similarity model in the MSET style: estimate from the nearest normal memory vectors (``mset``)."""

from __future__ import annotations

import numpy as np

from axline.monitor.detectors.base import StatelessDetector


class MSETDetector(StatelessDetector):
    """kNN similarity model (MSET-style): estimate from the most similar normal memory vectors.

    ``memory``: number of memory vectors kept from the fitting data (evenly spaced in time after
    removing duplicates); ``k``: neighbours blended with inverse-distance weights. A memory vector
    identical to the sample is left out (so scores of fitting rows are honest, leave-one-out). The
    score is the mean squared residual (observed minus estimate) over signals, divided by its median
    on the fitting data, so a normal sample scores about 1.

    >>> rng = np.random.default_rng(0)
    >>> t = rng.uniform(0.0, 6.0, 800)
    >>> normal = np.column_stack([np.sin(t), np.cos(t)]) + 0.02 * rng.normal(size=(800, 2))
    >>> det = MSETDetector(memory=128).fit(normal)
    >>> s = det.score([[0.0, 1.0], [0.0, 0.0]])  # the second is off the circle of normal states
    >>> bool(s[0] < 3.0 < s[1])
    True
    """

    name = "mset"
    PARAMS = {"memory": (256, 2, 100_000, True), "k": (5, 1, 100, True)}

    def _fit(self, Z: np.ndarray) -> None:
        m = min(int(self.params["memory"]), Z.shape[0])
        idx = np.unique(np.linspace(0, Z.shape[0] - 1, m).round().astype(int))
        D = Z[idx]
        # add the extremes of each signal so the memory spans the normal range
        ext = np.unique(np.concatenate([Z.argmin(axis=0), Z.argmax(axis=0)]))
        D = np.unique(np.vstack([D, Z[ext]]), axis=0)
        self._tree = None
        self._arrays = {"D": D, "norm": np.ones(1)}
        R = self._residual(Z)
        med = float(np.median(np.mean(R**2, axis=1)))
        self._arrays["norm"] = np.array([med if med > 1e-12 else 1.0])

    def _residual(self, Z: np.ndarray) -> np.ndarray:
        from scipy.spatial import cKDTree

        D = self._arrays["D"]
        tree = getattr(self, "_tree", None)
        if tree is None or tree.n != D.shape[0]:
            tree = self._tree = cKDTree(D)
        k = min(int(self.params["k"]), D.shape[0] - 1)
        dist, ind = tree.query(Z, k=k + 1)
        dist, ind = dist.reshape(Z.shape[0], k + 1), ind.reshape(Z.shape[0], k + 1)
        valid = dist >= 1e-9  # leave an identical memory vector out
        keep = valid & (np.cumsum(valid, axis=1) <= k)
        w = np.where(keep, 1.0 / (dist + 1e-3), 0.0)
        w /= w.sum(axis=1, keepdims=True)
        return Z - np.einsum("nk,nkd->nd", w, D[ind])

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super()._load_arrays(arrays)
        self._tree = None

    def _raw(self, Z: np.ndarray) -> np.ndarray:
        R = self._residual(Z)
        return np.mean(R**2, axis=1) / self._arrays["norm"][0]

    def _contrib(self, Z: np.ndarray) -> np.ndarray:
        R = self._residual(Z)
        return R**2 / (Z.shape[1] * self._arrays["norm"][0])
