"""The abstract base every detector derives from.

A detector is fitted on normal history (``fit``), then scores a batch (``score``) or one sample at
a time as data streams in (``score_one``; the same numbers as the batch, state kept between calls),
in the style of river's anomaly detectors. A higher score is more anomalous. ``calibrate`` sets
``threshold`` from normal data for a target false-alarm rate; ``contributions`` tells which signals
drove the score and ``deviations`` how far each signal is from normal (robust z-score).

A new detector subclasses :class:`StatelessDetector` (each sample scored on its own) or, when a
sample's score depends on the ones before it, :class:`Detector` itself. It gives the class a
registry ``name`` and ``PARAMS`` and implements the abstract methods on standardised data:
``_fit(Z)``, the raw score (``_raw(Z)`` for a stateless detector; ``_raw_batch(Z)``,
``_raw_one(z)`` and ``reset`` for a stateful one) and ``_contrib(Z)`` (per-signal non-negative
parts whose row sum is the raw score). Defining ``name`` in the class body registers the class for
``make_detector`` and for loading saved models.
"""

from __future__ import annotations

import abc
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from axline.monitor.detectors.persistence import read_model, write_model
from axline.monitor.detectors.validation import MAD_TO_SIGMA, as_2d, causal_mean, check_number


class Detector(abc.ABC):
    """Base class: robust standardisation, smoothing, calibration, latching and persistence.

    Subclasses implement ``_fit(Z)``, ``_raw_batch(Z)`` (per-sample score of standardised data
    from a fresh state), ``_raw_one(z)`` (one sample, keeping state) and ``_contrib(Z)``
    (per-signal non-negative parts whose row sum is the raw score).
    """

    name: ClassVar[str] = "base"
    #: parameter name -> (default, low, high, integer)
    PARAMS: ClassVar[dict[str, tuple[Any, float, float, bool]]] = {
        "smooth": (1, 1, 10_000, True),
    }
    #: whether ``learn_one`` updates the model online (otherwise refit in batch)
    learns_online: ClassVar[bool] = False
    #: detector name -> class, filled by every subclass that defines ``name`` in its body
    _registry: ClassVar[dict[str, type[Detector]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return
        known = Detector._registry.get(cls.name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"detector name {cls.name!r} is taken by {known.__qualname__}")
        Detector._registry[cls.name] = cls

    @classmethod
    def kinds(cls) -> dict[str, type[Detector]]:
        """The registry: every detector class by name, in definition order."""
        return Detector._registry

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
            self.params[key] = check_number(key, value, lo, hi, integer)
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

        >>> from axline.monitor.detectors import RobustDetector
        >>> normal = np.random.default_rng(0).normal(0.0, 1.0, (500, 3))
        >>> det = RobustDetector().fit(normal, columns=["temp", "flow", "vib"])
        >>> det.n_features, det.columns
        (3, ['temp', 'flow', 'vib'])
        """
        X = as_2d(X)
        n, d = X.shape
        if n < max(10, d + 2):
            raise ValueError(f"fit needs at least {max(10, d + 2)} samples for {d} signals, got {n}")
        if columns is None:
            columns = [f"x{i}" for i in range(d)]
        if len(columns) != d:
            raise ValueError(f"columns has {len(columns)} names but X has {d} signals")
        self.columns = [str(c) for c in columns]
        med = np.median(X, axis=0)
        mad = np.median(np.abs(X - med), axis=0) * MAD_TO_SIGMA
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

    @abc.abstractmethod
    def _fit(self, Z: np.ndarray) -> None:
        """Fit the model on standardised normal data (n x d); keep arrays to save in ``_arrays``."""

    @abc.abstractmethod
    def _contrib(self, Z: np.ndarray) -> np.ndarray:
        """Per-signal non-negative parts of each row's score (n x d)."""

    # ----- streaming state -----------------------------------------------------------------
    def reset(self) -> None:
        """Forget the streaming state (smoothing buffer and detector-specific state)."""
        self._buf: deque[float] = deque(maxlen=int(self.params["smooth"]))

    def _smooth_batch(self, raw: np.ndarray) -> np.ndarray:
        return causal_mean(raw, int(self.params["smooth"]))

    # ----- scoring -------------------------------------------------------------------------
    def score(self, X: Any) -> np.ndarray:
        """Score a batch from a fresh streaming state: one float per sample, higher is worse.

        >>> from axline.monitor.detectors import PCADetector
        >>> det = PCADetector().fit(np.random.default_rng(0).normal(0.0, 1.0, (500, 3)))
        >>> s = det.score([[0.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
        >>> s.shape, bool(s[1] > 10 * s[0])
        ((2,), True)
        """
        self._check_fitted()
        X = as_2d(X, self.n_features)
        return self._smooth_batch(self._raw_batch(self._standardise(X)))

    @abc.abstractmethod
    def _raw_batch(self, Z: np.ndarray) -> np.ndarray:
        """Raw score of each row of a standardised batch (n,) from a fresh state, before smoothing."""

    def score_one(self, x: Any) -> float:
        """Score one sample (length-d vector), keeping state; equals ``score`` on the sequence.

        >>> from axline.monitor.detectors import RobustDetector
        >>> det = RobustDetector(smooth=3).fit(np.random.default_rng(0).normal(0.0, 1.0, (500, 2)))
        >>> stream = [[0.0, 0.0], [0.5, 0.0], [4.0, 0.0], [0.0, 0.0]]
        >>> one = [det.score_one(x) for x in stream]
        >>> bool(np.allclose(one, det.score(stream)))
        True
        """
        self._check_fitted()
        X = as_2d(x, self.n_features, name="x")
        if X.shape[0] != 1:
            raise ValueError(f"score_one takes one sample (shape (d,)), got {X.shape[0]} rows")
        raw = self._raw_one(self._standardise(X)[0])
        self._buf.append(raw)
        return float(sum(self._buf) / len(self._buf))

    @abc.abstractmethod
    def _raw_one(self, z: np.ndarray) -> float:
        """Raw score of one standardised sample, updating the streaming state."""

    def learn_one(self, x: Any) -> Detector:
        """Update the model with one normal sample (river style) where the detector supports it.

        >>> from axline.monitor.detectors import PCADetector
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
        X = as_2d(X, self.n_features)
        c = np.clip(self._contrib(self._standardise(X)), 0.0, None)
        total = c.sum(axis=1, keepdims=True)
        d = c.shape[1]
        return np.where(total > 0, c / np.where(total > 0, total, 1.0), 1.0 / d)

    def deviations(self, X: Any) -> np.ndarray:
        """How far each signal is from normal: robust z-score (median/MAD of the fitting data)."""
        self._check_fitted()
        return self._standardise(as_2d(X, self.n_features))

    def explain(self, x: Any, top: int = 3) -> list[dict[str, Any]]:
        """The signals that drove the score of one sample, largest share first.

        >>> from axline.monitor.detectors import RobustDetector
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

        >>> from axline.monitor.detectors import RobustDetector
        >>> normal = np.random.default_rng(0).normal(0.0, 1.0, (1000, 2))
        >>> det = RobustDetector().fit(normal)
        >>> threshold = det.calibrate(normal, far=0.01)
        >>> float(np.mean(det.score(normal) > threshold))
        0.01
        """
        far = check_number("far", far, 0.0, 0.5, lo_open=True)
        factor = check_number("factor", factor, 0.0, 1000.0, lo_open=True)
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
        ratio = check_number("ratio", ratio, 0.0, 1.0)
        level = min(self.normal_level, self.threshold)
        return AlarmLatch(on=self.threshold, off=level + ratio * (self.threshold - level),
                          min_duration=min_duration, release=release)

    def predict(self, X: Any) -> np.ndarray:
        """Boolean mask: score above the calibrated threshold (no latch; see ``AlarmLatch``).

        >>> from axline.monitor.detectors import RobustDetector
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
        """Write the fitted model to ``path`` (``.npz``; arrays plus a JSON header, no pickle).

        >>> import tempfile
        >>> from axline.monitor.detectors import RobustDetector
        >>> det = RobustDetector().fit(np.random.default_rng(0).normal(0.0, 1.0, (100, 2)))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     back = Detector.load(det.save(Path(tmp) / "model"))
        >>> type(back).__name__, bool(np.allclose(back.center_, det.center_))
        ('RobustDetector', True)
        """
        self._check_fitted()
        return write_model(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Detector:
        """Load a model written by ``save`` (any detector kind when called on ``Detector``)."""
        return read_model(path, Detector._registry, expect=None if cls is Detector else cls)

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({ps})"


class StatelessDetector(Detector):
    """A detector that scores each sample on its own: one ``_raw(Z)`` serves batch and stream."""

    @abc.abstractmethod
    def _raw(self, Z: np.ndarray) -> np.ndarray:
        """Raw score of each row of standardised data (n,), before smoothing."""

    def _raw_batch(self, Z: np.ndarray) -> np.ndarray:
        """Raw score of a batch: the rows do not depend on each other."""
        return self._raw(Z)

    def _raw_one(self, z: np.ndarray) -> float:
        """Raw score of one sample (no state to keep)."""
        return float(self._raw(z[None, :])[0])
