"""Per-position Gaussian of good patch features (PaDiM-style) and its Mahalanobis scores.

Every patch position (tile and grid cell) gets the mean and covariance of the good training
patches seen there, or, shared by the tiles of a long part, every grid cell of a tile gets those
of the good patches at that cell of any tile (more samples per Gaussian); a patch's score is its Mahalanobis distance to that Gaussian. Sums are kept so
an operator's overruled false reject can join the statistics without retraining.
"""

from __future__ import annotations

import numpy as np

COV_RIDGE = 0.01  # added to the covariance diagonal, as a fraction of the mean variance
MEMORY_BUDGET = 64 * 2**20  # bytes of covariances; larger canvases get a projected feature


def gaussian_dim(positions: int, dim: int, budget: int = MEMORY_BUDGET) -> int:
    """Feature dimension that keeps ``positions`` float32 covariances within ``budget`` bytes."""
    return int(max(8, min(dim, np.floor(np.sqrt(budget / (4.0 * max(positions, 1)))))))


class GaussianStats:
    """Running first and second moments of patch features per position ``(P, D)``."""

    def __init__(self, count: float, mean: np.ndarray, cov: np.ndarray,
                 projection: np.ndarray | None = None) -> None:
        if projection is not None and (projection.ndim != 2 or projection.shape[0] != mean.shape[1]):
            raise ValueError(f"projection must be (d, D) with d = {mean.shape[1]}, got {projection.shape}")
        self.projection = None if projection is None else np.asarray(projection, np.float32)
        if mean.ndim != 2 or cov.shape != (mean.shape[0], mean.shape[1], mean.shape[1]):
            raise ValueError(f"mean must be (P, D) and cov (P, D, D), got {mean.shape} and {cov.shape}")
        if not count >= 2:
            raise ValueError(f"a Gaussian needs at least 2 samples, got {count}")
        self.count = float(count)
        self.mean = np.asarray(mean, np.float32)
        self.cov = np.asarray(cov, np.float32)
        self._inv: np.ndarray | None = None

    @property
    def positions(self) -> int:
        """Number of patch positions."""
        return int(self.mean.shape[0])

    @property
    def dim(self) -> int:
        """Feature dimension of the statistics (after the projection, if any)."""
        return int(self.mean.shape[1])

    @property
    def input_dim(self) -> int:
        """Feature dimension of the patches given to it."""
        return int(self.projection.shape[1]) if self.projection is not None else self.dim

    def project(self, x: np.ndarray) -> np.ndarray:
        """Patches ``(..., D)`` in the statistics' space."""
        return x if self.projection is None else x @ self.projection.T

    @classmethod
    def fit(cls, samples: list[np.ndarray]) -> GaussianStats:
        """Fit from per-image patch features, each ``(P, D)``."""
        if len(samples) < 2:
            raise ValueError(f"a Gaussian needs at least 2 images, got {len(samples)}")
        p, d = samples[0].shape
        s1 = np.zeros((p, d), np.float64)
        for x in samples:
            s1 += x
        mean = s1 / len(samples)
        s2 = np.zeros((p, d, d), np.float64)
        for x in samples:
            c = x.astype(np.float64) - mean
            s2 += c[:, :, None] * c[:, None, :]
        return cls(len(samples), mean, s2 / (len(samples) - 1))

    @classmethod
    def fit_array(cls, x: np.ndarray, chunk: int = 64, budget: int = MEMORY_BUDGET, seed: int = 0) -> GaussianStats:
        """Fit from stacked patch features ``(N, P, D)``, ``chunk`` positions at a time. When ``P``
        covariances of ``D`` would exceed ``budget`` bytes, features are first reduced by a fixed
        random projection (kept with the statistics)."""
        if x.ndim != 3 or len(x) < 2:
            raise ValueError(f"features must be (N >= 2, P, D), got shape {x.shape}")
        projection = None
        d_keep = gaussian_dim(x.shape[1], x.shape[2], budget)
        if d_keep < x.shape[2]:
            from axline.inspect.features import random_projection

            projection = random_projection(x.shape[2], d_keep, seed)
            x = x @ projection.T
        n, p, d = x.shape
        mean = x.astype(np.float64).mean(axis=0)
        cov = np.empty((p, d, d), np.float32)
        for s in range(0, p, chunk):
            xc = (x[:, s:s + chunk].astype(np.float64) - mean[s:s + chunk]).transpose(1, 0, 2)
            cov[s:s + chunk] = np.matmul(xc.transpose(0, 2, 1), xc) / (n - 1)
        return cls(n, mean, cov, projection)

    def add(self, x: np.ndarray, weight: float = 1.0) -> None:
        """Fold one image's patches ``(P, D)`` in with ``weight`` samples' worth."""
        x = self.project(x)
        if x.shape != self.mean.shape:
            raise ValueError(f"features must be {self.mean.shape}, got {x.shape}")
        n, w = self.count, float(weight)
        mean = self.mean.astype(np.float64)
        delta = x.astype(np.float64) - mean
        new_mean = mean + delta * (w / (n + w))
        scatter = self.cov.astype(np.float64) * (n - 1) + (n * w / (n + w)) * delta[:, :, None] * delta[:, None, :]
        self.count = n + w
        self.mean = new_mean.astype(np.float32)
        self.cov = (scatter / (self.count - 1)).astype(np.float32)
        self._inv = None

    def inverse(self) -> np.ndarray:
        """Inverse covariances ``(P, D, D)`` with a small ridge (computed once)."""
        if self._inv is None:
            cov = self.cov.astype(np.float64)
            ridge = COV_RIDGE * np.trace(cov, axis1=1, axis2=2) / self.dim
            cov = cov + ridge[:, None, None] * np.eye(self.dim)[None]
            self._inv = np.linalg.inv(cov).astype(np.float32)
        return self._inv

    def tile_distances(self, x: np.ndarray, tiles: int) -> np.ndarray:
        """Distances ``(T * P,)`` of the patches ``(T * P, D)`` of ``tiles`` tiles: each position's own
        Gaussian, or with statistics of one tile's ``P`` positions (shared by the tiles), every
        tile's patches against them."""
        if len(x) == self.positions:
            return self.distances(x)
        if tiles > 1 and len(x) == tiles * self.positions:
            q = self.project(x.reshape(tiles, self.positions, x.shape[-1])) - self.mean  # (T, P, d)
            y = np.matmul(self.inverse(), q.transpose(1, 2, 0))  # one product per position for all its tiles
            return np.sqrt(np.maximum(np.einsum("pdt,tpd->tp", y, q), 0.0)).reshape(-1)
        raise ValueError(f"the model's Gaussian has {self.positions} positions, the image {len(x)} patches in "
                         f"{tiles} tiles; retrain the model")

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of every patch ``(P, D)`` (or ``(N, P, D)``) to its position's Gaussian."""
        q = self.project(x) - self.mean
        y = np.matmul(self.inverse(), q[..., None])[..., 0]
        return np.sqrt(np.maximum(np.einsum("...pd,...pd->...p", q, y), 0.0))
