"""Multivariate anomaly detectors behind one small interface.

Every detector is fitted on normal history (``fit``), then scores a batch (``score``) or one sample
at a time as data streams in (``score_one``; same numbers as the batch, state kept between calls).
A higher score is more anomalous. ``calibrate`` sets ``threshold`` from normal data for a target
false-alarm rate; ``contributions`` tells which signals drove the score and ``deviations`` how far
each signal is from normal (robust z-score). Models are saved as ``.npz`` arrays plus JSON (no
pickle), so a model file is safe to load.

Detectors (``DETECTORS`` registry):

- ``robust``: per-signal median/MAD z-scores, optional EWMA and a seasonal profile.
- ``pca``: PCA with Hotelling T² and Q (SPE), each normalised by its limit on the fitting data.
- ``mset``: kNN similarity model (MSET-style): estimate each sample from the most similar memory
  vectors of normal history; the score is the residual energy.
- ``iforest``: scikit-learn isolation forest (trees exported to arrays for saving).
- ``autoencoder``: small MLP autoencoder (scikit-learn for training, NumPy at inference).
- ``changepoint``: two-sided CUSUM per signal on decorrelated residuals (a persistent shift accumulates).

All share a causal moving-average ``smooth`` window on the score (1 = off).
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.signal import lfilter

__all__ = [
    "DETECTORS",
    "AutoencoderDetector",
    "ChangepointDetector",
    "Detector",
    "IsolationForestDetector",
    "MSETDetector",
    "PCADetector",
    "RobustDetector",
    "load_detector",
    "make_detector",
]

_MAD_TO_SIGMA = 1.4826
_FORMAT_VERSION = 1


def _as_2d(X: Any, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """Check and convert input to a finite float64 array of shape (n, d)."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric (an array of numbers): {exc}") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples x signals), got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} signals but the detector was fitted on {n_features}; "
            "pass the same columns in the same order"
        )
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values; fill or drop them before scoring")
    return arr


def _check_number(name: str, value: Any, lo: float, hi: float, integer: bool = False,
                  lo_open: bool = False) -> float | int:
    """Validate a numeric parameter against a range; the message names the parameter and range."""
    ok_type = isinstance(value, int | np.integer) if integer else isinstance(value, int | float | np.number)
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"parameter {name!r} must be {kind} in {'(' if lo_open else '['}{lo}, {hi}], got {value!r}")
    if (value <= lo if lo_open else value < lo) or value > hi or (not integer and not np.isfinite(value)):
        raise ValueError(f"parameter {name!r} must be in {'(' if lo_open else '['}{lo}, {hi}], got {value!r}")
    return int(value) if integer else float(value)


def _causal_mean(s: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average; the first samples average over what is available."""
    if window <= 1:
        return s
    c = np.cumsum(np.concatenate([[0.0], s]))
    n = np.arange(1, len(s) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


class Detector:
    """Base class: robust standardisation, smoothing, calibration, latching and persistence.

    Subclasses implement ``_fit(Z)``, ``_raw(Z)`` (per-sample score of standardised data) and
    ``_contrib(Z)`` (per-signal non-negative parts whose row sum is the raw score).
    """

    name: ClassVar[str] = "base"
    #: parameter name -> (default, low, high, integer)
    PARAMS: ClassVar[dict[str, tuple[Any, float, float, bool]]] = {
        "smooth": (1, 1, 10_000, True),
    }

    def __init__(self, **params: Any) -> None:
        spec = dict(Detector.PARAMS)
        spec.update(self.PARAMS)
        unknown = sorted(set(params) - set(spec))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for detector {self.name!r}; allowed: {sorted(spec)}"
            )
        self.params: dict[str, Any] = {}
        for key, (default, lo, hi, integer) in spec.items():
            value = params.get(key, default)
            self.params[key] = _check_number(key, value, lo, hi, integer)
        self.columns: list[str] = []
        self.center_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.threshold: float | None = None
        #: median score on the calibration data (the normal level the hysteresis is measured from)
        self.normal_level = 0.0
        self._arrays: dict[str, np.ndarray] = {}
        self.reset()

    # ----- fitting -------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        """Number of signals the detector was fitted on."""
        self._check_fitted()
        assert self.center_ is not None
        return int(self.center_.shape[0])

    def _check_fitted(self) -> None:
        if self.center_ is None:
            raise RuntimeError(f"detector {self.name!r} is not fitted; call fit(X_normal) first")

    def fit(self, X: Any, columns: list[str] | None = None, min_scale: Any = None) -> Detector:
        """Fit on normal history ``X`` (n samples x d signals); returns self.

        ``min_scale`` (optional, one value per signal, in signal units) is a floor on each signal's
        robust scale: the smallest deviation that matters, e.g. the drift a signal shows in normal
        operation beyond a short fitting window, or a sensor's resolution.

        >>> normal = np.random.default_rng(0).normal(0.0, 1.0, (500, 3))
        >>> det = RobustDetector().fit(normal, columns=["temp", "flow", "vib"])
        >>> det.n_features, det.columns
        (3, ['temp', 'flow', 'vib'])
        """
        X = _as_2d(X)
        n, d = X.shape
        if n < max(10, d + 2):
            raise ValueError(f"fit needs at least {max(10, d + 2)} samples for {d} signals, got {n}")
        if columns is None:
            columns = [f"x{i}" for i in range(d)]
        if len(columns) != d:
            raise ValueError(f"columns has {len(columns)} names but X has {d} signals")
        self.columns = [str(c) for c in columns]
        med = np.median(X, axis=0)
        mad = np.median(np.abs(X - med), axis=0) * _MAD_TO_SIGMA
        std = X.std(axis=0)
        # MAD is 0 for quantised or mostly constant signals: fall back to std, then to 1.
        scale = np.where(mad > 1e-12, mad, np.where(std > 1e-12, std, 1.0))
        if min_scale is not None:
            floor = np.asarray(min_scale, dtype=np.float64).ravel()
            if floor.shape != (d,) or not np.all(np.isfinite(floor)) or np.any(floor < 0):
                raise ValueError(f"min_scale must hold {d} finite non-negative values (one per signal), got {floor!r}")
            scale = np.maximum(scale, floor)
        self.center_, self.scale_ = med, scale
        self.threshold = None
        self._fit(self._standardise(X))
        self.reset()
        return self

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        assert self.center_ is not None and self.scale_ is not None
        return (X - self.center_) / self.scale_

    def _fit(self, Z: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _raw(self, Z: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _contrib(self, Z: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----- streaming state -----------------------------------------------------------------
    def reset(self) -> None:
        """Forget the streaming state (smoothing buffer and detector-specific state)."""
        self._buf: deque[float] = deque(maxlen=int(self.params["smooth"]))

    def _smooth_batch(self, raw: np.ndarray) -> np.ndarray:
        return _causal_mean(raw, int(self.params["smooth"]))

    # ----- scoring -------------------------------------------------------------------------
    def score(self, X: Any) -> np.ndarray:
        """Score a batch from a fresh streaming state: one float per sample, higher is worse.

        >>> det = PCADetector().fit(np.random.default_rng(0).normal(0.0, 1.0, (500, 3)))
        >>> s = det.score([[0.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
        >>> s.shape, bool(s[1] > 10 * s[0])
        ((2,), True)
        """
        self._check_fitted()
        X = _as_2d(X, self.n_features)
        return self._smooth_batch(self._raw_batch(self._standardise(X)))

    def _raw_batch(self, Z: np.ndarray) -> np.ndarray:
        """Raw score of a batch from fresh state (stateful detectors override)."""
        return self._raw(Z)

    def score_one(self, x: Any) -> float:
        """Score one sample (length-d vector), keeping state; equals ``score`` on the sequence.

        >>> det = RobustDetector(smooth=3).fit(np.random.default_rng(0).normal(0.0, 1.0, (500, 2)))
        >>> stream = [[0.0, 0.0], [0.5, 0.0], [4.0, 0.0], [0.0, 0.0]]
        >>> one = [det.score_one(x) for x in stream]
        >>> bool(np.allclose(one, det.score(stream)))
        True
        """
        self._check_fitted()
        X = _as_2d(x, self.n_features, name="x")
        if X.shape[0] != 1:
            raise ValueError(f"score_one takes one sample (shape (d,)), got {X.shape[0]} rows")
        raw = self._raw_one(self._standardise(X)[0])
        self._buf.append(raw)
        return float(sum(self._buf) / len(self._buf))

    def _raw_one(self, z: np.ndarray) -> float:
        return float(self._raw(z[None, :])[0])

    def learn_one(self, x: Any) -> Detector:
        """Update the model with one normal sample (river style) where the detector supports it.

        >>> det = PCADetector().fit(np.random.default_rng(0).normal(0.0, 1.0, (100, 2)))
        >>> det.learn_one([0.0, 0.0])
        Traceback (most recent call last):
        ...
        NotImplementedError: detector 'pca' learns from history in batch; call fit(X_normal) again to update
        """
        raise NotImplementedError(
            f"detector {self.name!r} learns from history in batch; call fit(X_normal) again to update"
        )

    def contributions(self, X: Any) -> np.ndarray:
        """Per-signal share of each sample's score (n x d, rows sum to 1; equal shares if score 0)."""
        self._check_fitted()
        X = _as_2d(X, self.n_features)
        c = np.clip(self._contrib(self._standardise(X)), 0.0, None)
        total = c.sum(axis=1, keepdims=True)
        d = c.shape[1]
        return np.where(total > 0, c / np.where(total > 0, total, 1.0), 1.0 / d)

    def deviations(self, X: Any) -> np.ndarray:
        """How far each signal is from normal: robust z-score (median/MAD of the fitting data)."""
        self._check_fitted()
        return self._standardise(_as_2d(X, self.n_features))

    def explain(self, x: Any, top: int = 3) -> list[dict[str, Any]]:
        """The signals that drove the score of one sample, largest share first.

        >>> normal = np.random.default_rng(0).normal(0.0, 1.0, (500, 3))
        >>> det = RobustDetector().fit(normal, columns=["temp", "flow", "vib"])
        >>> top = det.explain([0.1, -0.2, 8.0], top=1)[0]
        >>> top["signal"], top["share"] > 0.9, top["z"] > 5
        ('vib', True, True)
        """
        share = self.contributions(x)[0]
        z = self.deviations(x)[0]
        order = np.argsort(-share)[: max(1, int(top))]
        return [{"signal": self.columns[i], "share": float(share[i]), "z": float(z[i])} for i in order]

    # ----- calibration ---------------------------------------------------------------------
    def calibrate(self, X_normal: Any, far: float = 0.01, factor: float = 1.0) -> float:
        """Set ``threshold`` so that a fraction ``far`` of normal samples would exceed it.

        ``factor`` (>= 1 for a safety margin) multiplies the quantile. Returns the threshold.

        >>> normal = np.random.default_rng(0).normal(0.0, 1.0, (1000, 2))
        >>> det = RobustDetector().fit(normal)
        >>> threshold = det.calibrate(normal, far=0.01)
        >>> float(np.mean(det.score(normal) > threshold))
        0.01
        """
        far = _check_number("far", far, 0.0, 0.5, lo_open=True)
        factor = _check_number("factor", factor, 0.0, 1000.0, lo_open=True)
        s = self.score(X_normal)
        self.reset()
        self.threshold = float(np.quantile(s, 1.0 - far) * factor)
        self.normal_level = float(np.median(s))
        return self.threshold

    def latch(self, ratio: float = 0.8, min_duration: int = 1, release: int = 1) -> Any:
        """An ``AlarmLatch`` on the calibrated threshold, released ``ratio`` of the way from the
        normal score level (median on the calibration data) up to the threshold; use this rather
        than ``off = ratio * threshold``, which is wrong for scores whose normal level is not 0
        (the isolation forest's is about 0.5)."""
        from axline.monitor.alarms import AlarmLatch

        if self.threshold is None:
            raise RuntimeError("threshold is not set; call calibrate(X_normal, far=...) first")
        ratio = _check_number("ratio", ratio, 0.0, 1.0)
        level = min(self.normal_level, self.threshold)
        return AlarmLatch(on=self.threshold, off=level + ratio * (self.threshold - level),
                          min_duration=min_duration, release=release)

    def predict(self, X: Any) -> np.ndarray:
        """Boolean mask: score above the calibrated threshold (no latch; see ``AlarmLatch``).

        >>> normal = np.random.default_rng(0).normal(0.0, 1.0, (1000, 2))
        >>> det = RobustDetector().fit(normal)
        >>> _ = det.calibrate(normal, far=0.01)
        >>> det.predict([[0.0, 0.1], [0.0, 7.0]]).tolist()
        [False, True]
        """
        if self.threshold is None:
            raise RuntimeError("threshold is not set; call calibrate(X_normal, far=...) first")
        return self.score(X) > self.threshold

    # ----- persistence ---------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        return dict(self._arrays)

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._arrays = dict(arrays)

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to ``path`` (``.npz``; arrays plus a JSON header, no pickle)."""
        self._check_fitted()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        meta = {
            "format": _FORMAT_VERSION,
            "detector": self.name,
            "params": self.params,
            "columns": self.columns,
            "threshold": self.threshold,
            "normal_level": self.normal_level,
        }
        arrays = {f"a_{k}": np.asarray(v) for k, v in self._state_arrays().items()}
        arrays["center"] = np.asarray(self.center_)
        arrays["scale"] = np.asarray(self.scale_)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Detector:
        """Load a model written by ``save`` (any detector kind when called on ``Detector``)."""
        with np.load(Path(path), allow_pickle=False) as f:
            meta = json.loads(bytes(f["meta"]).decode("utf-8"))
            if meta.get("format") != _FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported model format {meta.get('format')!r}")
            kind = meta["detector"]
            if kind not in DETECTORS:
                raise ValueError(f"{path}: unknown detector {kind!r}; known: {sorted(DETECTORS)}")
            klass = DETECTORS[kind]
            if cls is not Detector and klass is not cls:
                raise ValueError(f"{path} holds a {kind!r} detector, not {cls.name!r}")
            det = klass(**meta["params"])
            det.columns = list(meta["columns"])
            det.threshold = meta["threshold"]
            det.normal_level = float(meta.get("normal_level", 0.0))
            det.center_ = np.array(f["center"])
            det.scale_ = np.array(f["scale"])
            det._load_arrays({k[2:]: np.array(f[k]) for k in f.files if k.startswith("a_")})
        det.reset()
        return det

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({ps})"


# ---------------------------------------------------------------------------------------------
class RobustDetector(Detector):
    """Univariate robust z-scores (median/MAD), optional EWMA and seasonal profile.

    ``alpha`` is the EWMA weight of the newest sample (1 = no EWMA); ``season`` is the period in
    samples of a repeating profile that is removed (0 = none; phase counts from the first sample
    scored after ``reset``). Score: mean over signals of the squared (smoothed) z-score.
    """

    name = "robust"
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
        X = _as_2d(x, self.n_features, name="x")
        assert self.center_ is not None
        self.center_ = self.center_ + 0.001 * (X[0] - self.center_)
        return self

    def _contrib(self, Z: np.ndarray) -> np.ndarray:
        E = self._ewma(self._deseason(Z, 0), None)
        return E**2 / Z.shape[1]


class PCADetector(Detector):
    """PCA on standardised signals: Hotelling T² in the model space plus Q (SPE) outside it.

    ``variance``: share of variance the kept components explain. The score is
    T²/T²_lim + Q/Q_lim, both limits being the 99th percentile on the fitting data, so a normal
    sample scores about 0-2.
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


class MSETDetector(Detector):
    """kNN similarity model (MSET-style): estimate from the most similar normal memory vectors.

    ``memory``: number of memory vectors kept from the fitting data (evenly spaced in time after
    removing duplicates); ``k``: neighbours blended with inverse-distance weights. A memory vector
    identical to the sample is left out (so scores of fitting rows are honest, leave-one-out). The
    score is the mean squared residual (observed minus estimate) over signals, divided by its median
    on the fitting data, so a normal sample scores about 1.
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


class IsolationForestDetector(Detector):
    """Isolation forest (scikit-learn training; trees exported to arrays, NumPy scoring).

    The score is the forest's anomaly score s in (0, 1) (0.5 = average; near 1 = isolated fast).
    Contributions are the squared robust z-scores scaled to the score (a forest gives no additive
    split of its score).
    """

    name = "iforest"
    PARAMS = {"n_trees": (100, 1, 2000, True), "max_samples": (256, 2, 100_000, True), "seed": (0, 0, 2**31 - 1, True)}

    def _fit(self, Z: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest

        n_sub = min(int(self.params["max_samples"]), Z.shape[0])
        forest = IsolationForest(
            n_estimators=int(self.params["n_trees"]), max_samples=n_sub, random_state=int(self.params["seed"])
        ).fit(Z)
        feats, thrs, lefts, rights, depths, offs = [], [], [], [], [], [0]
        for est in forest.estimators_:
            t = est.tree_
            # expected path length below each leaf (sklearn's average_path_length correction)
            n_node = t.n_node_samples.astype(np.float64)
            depth = self._node_depths(t.children_left, t.children_right)
            leaf_len = depth + self._c(n_node)
            feats.append(t.feature.astype(np.int32))
            thrs.append(t.threshold.astype(np.float64))
            lefts.append(t.children_left.astype(np.int32))
            rights.append(t.children_right.astype(np.int32))
            depths.append(leaf_len)
            offs.append(offs[-1] + t.node_count)
        self._arrays = {
            "feature": np.concatenate(feats),
            "thr": np.concatenate(thrs),
            "left": np.concatenate(lefts),
            "right": np.concatenate(rights),
            "plen": np.concatenate(depths),
            "offsets": np.array(offs, dtype=np.int64),
            "cn": np.array([self._c(np.array([float(n_sub)]))[0]]),
        }
        self._lists = None

    @staticmethod
    def _c(n: np.ndarray) -> np.ndarray:
        """Average path length of an unsuccessful BST search among n points."""
        n = np.asarray(n, dtype=np.float64)
        out = np.zeros_like(n)
        big = n > 2
        out[n == 2] = 1.0
        out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
        return out

    @staticmethod
    def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        depth = np.zeros(len(left))
        stack = [0]
        while stack:
            i = stack.pop()
            if left[i] >= 0:
                depth[left[i]] = depth[right[i]] = depth[i] + 1
                stack.extend([left[i], right[i]])
        return depth

    def _raw(self, Z: np.ndarray) -> np.ndarray:
        a = self._arrays
        offs = a["offsets"]
        total = np.zeros(Z.shape[0])
        rows = np.arange(Z.shape[0])
        for t in range(len(offs) - 1):
            node = np.full(Z.shape[0], offs[t], dtype=np.int64)
            active = a["left"][node] >= 0
            while np.any(active):
                nd = node[active]
                go_left = Z[rows[active], a["feature"][nd]] <= a["thr"][nd]
                node[active] = offs[t] + np.where(go_left, a["left"][nd], a["right"][nd])
                active = a["left"][node] >= 0
            total += a["plen"][node]
        mean_len = total / (len(offs) - 1)
        return 2.0 ** (-mean_len / a["cn"][0])

    def _raw_one(self, z: np.ndarray) -> float:
        """One sample: plain-Python traversal (far faster than array code on a single row)."""
        a = self._arrays
        lists = getattr(self, "_lists", None)
        if lists is None:
            lists = self._lists = tuple(a[k].tolist() for k in ("feature", "thr", "left", "right", "plen", "offsets"))
        feature, thr, left, right, plen, offs = lists
        zl = z.tolist()
        total = 0.0
        for t in range(len(offs) - 1):
            o = offs[t]
            node = o
            while left[node] >= 0:
                node = o + (left[node] if zl[feature[node]] <= thr[node] else right[node])
            total += plen[node]
        return float(2.0 ** (-(total / (len(offs) - 1)) / a["cn"][0]))

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super()._load_arrays(arrays)
        self._lists = None

    def _contrib(self, Z: np.ndarray) -> np.ndarray:
        z2 = Z**2
        s = z2.sum(axis=1, keepdims=True)
        return np.where(s > 0, z2 / np.where(s > 0, s, 1.0), 1.0 / Z.shape[1]) * self._raw(Z)[:, None]


class AutoencoderDetector(Detector):
    """Small MLP autoencoder d -> hidden -> bottleneck -> hidden -> d (ReLU).

    Trained with scikit-learn's ``MLPRegressor`` (Adam, early stopping) in seconds on a CPU; the
    weights are kept as NumPy arrays, so inference needs no training stack. Score: mean squared
    reconstruction error over signals divided by its median on the fitting data.
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


class ChangepointDetector(Detector):
    """Two-sided CUSUM per signal on decorrelated residuals.

    Each signal's residual given all the others (from the inverse covariance of the fitting data,
    standardised to unit variance) removes what the signals share, such as load. ``drift`` (k, in
    sigmas) is the slack subtracted each step: the sum rises only on a sustained shift larger than
    k and decays by k per normal sample afterwards; ``cap`` bounds the sum so an alarm ends within
    about cap/k samples after the shift is over. Score: the largest sum over signals.
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


DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (
        RobustDetector,
        PCADetector,
        MSETDetector,
        IsolationForestDetector,
        AutoencoderDetector,
        ChangepointDetector,
    )
}


def make_detector(name: str, **params: Any) -> Detector:
    """Create a detector by registry name with validated parameters."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {sorted(DETECTORS)}")
    return DETECTORS[name](**params)


def load_detector(path: str | Path) -> Detector:
    """Load any saved detector."""
    return Detector.load(path)
