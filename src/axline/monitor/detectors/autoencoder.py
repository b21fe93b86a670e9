"""Small MLP autoencoder: scikit-learn trains it, NumPy runs it (``autoencoder``)."""

from __future__ import annotations

import numpy as np

from axline.monitor.detectors.base import StatelessDetector


class AutoencoderDetector(StatelessDetector):
    """Small MLP autoencoder d -> hidden -> bottleneck -> hidden -> d (ReLU).

    Trained with scikit-learn's ``MLPRegressor`` (Adam, early stopping) in seconds on a CPU; the
    weights are kept as NumPy arrays, so inference needs no training stack. Score: mean squared
    reconstruction error over signals divided by its median on the fitting data.

    >>> rng = np.random.default_rng(0)
    >>> load = rng.normal(0.0, 1.0, 400)
    >>> normal = np.column_stack([load, -load, 0.5 * load]) + 0.05 * rng.normal(size=(400, 3))
    >>> det = AutoencoderDetector(hidden=8, epochs=100).fit(normal)
    >>> s = det.score([[1.0, -1.0, 0.5], [1.0, 1.0, 0.5]])  # the second breaks the pattern
    >>> bool(s[1] > 10 * s[0])
    True
    """

    name = "autoencoder"
    PARAMS = {
        "hidden": (16, 1, 1024, True),
        "bottleneck": (0, 0, 1024, True),
        "epochs": (300, 1, 100_000, True),
        "seed": (0, 0, 2**31 - 1, True),
    }

    def _fit(self, Z: np.ndarray) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        d = Z.shape[1]
        b = int(self.params["bottleneck"]) or max(1, d // 2)
        h = int(self.params["hidden"])
        net = MLPRegressor(
            hidden_layer_sizes=(h, b, h), activation="relu", solver="adam", alpha=1e-4,
            max_iter=int(self.params["epochs"]), random_state=int(self.params["seed"]),
            learning_rate_init=3e-3, batch_size=min(64, Z.shape[0]), tol=1e-5,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            net.fit(Z, Z)
        self._arrays = {f"W{i}": w for i, w in enumerate(net.coefs_)}
        self._arrays.update({f"b{i}": v for i, v in enumerate(net.intercepts_)})
        self._arrays["norm"] = np.ones(1)
        med = float(np.median(np.mean(self._residual(Z) ** 2, axis=1)))
        self._arrays["norm"] = np.array([med if med > 1e-12 else 1.0])

    def _residual(self, Z: np.ndarray) -> np.ndarray:
        a = self._arrays
        n_layers = sum(1 for k in a if k.startswith("W"))
        H = Z
        for i in range(n_layers):
            H = H @ a[f"W{i}"] + a[f"b{i}"]
            if i < n_layers - 1:
                H = np.maximum(H, 0.0)
        return Z - H

    def _raw(self, Z: np.ndarray) -> np.ndarray:
        return np.mean(self._residual(Z) ** 2, axis=1) / self._arrays["norm"][0]

    def _contrib(self, Z: np.ndarray) -> np.ndarray:
        return self._residual(Z) ** 2 / (Z.shape[1] * self._arrays["norm"][0])
