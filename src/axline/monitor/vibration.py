"""Bearing vibration: windows, time-domain features, envelope spectrum at the defect frequencies.

``bearing_features`` turns windows of an accelerometer signal into one feature row each:
time-domain statistics (RMS, kurtosis, crest factor, ...), log band powers of the spectrum, and
the envelope spectrum (band-pass, Hilbert) read at the bearing's defect frequencies (BPFI, BPFO,
BSF, FTF and harmonics) relative to the envelope spectrum's median. ``BearingClassifier`` is a
multinomial logistic regression on those features whose weights are plain arrays (``.npz``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import butter, hilbert, sosfiltfilt

__all__ = [
    "BEARINGS",
    "BearingClassifier",
    "bearing_features",
    "defect_frequencies",
    "envelope_spectrum",
    "time_features",
    "windows",
]

#: defect frequencies as multiples of the shaft frequency (SKF 6205-2RS, CWRU drive end)
BEARINGS: dict[str, dict[str, float]] = {
    "6205": {"bpfi": 5.4152, "bpfo": 3.5848, "bsf": 2.3568, "ftf": 0.39828},
}


def windows(signal: np.ndarray, size: int = 2048, step: int | None = None) -> np.ndarray:
    """Cut a 1-D signal into windows (n, size); ``step`` defaults to ``size`` (no overlap)."""
    x = np.asarray(signal, dtype=np.float64).ravel()
    step = size if step is None else step
    if size < 16 or step < 1:
        raise ValueError(f"size must be >= 16 and step >= 1, got size={size}, step={step}")
    if x.shape[0] < size:
        return np.empty((0, size))
    return sliding_window_view(x, size)[::step]


def defect_frequencies(rpm: float, bearing: str = "6205") -> dict[str, float]:
    """Defect frequencies in Hz at shaft speed ``rpm`` (plus the shaft frequency ``fr``)."""
    if bearing not in BEARINGS:
        raise ValueError(f"unknown bearing {bearing!r}; known: {sorted(BEARINGS)}")
    if not 1 <= rpm <= 100_000:
        raise ValueError(f"rpm must be in [1, 100000], got {rpm}")
    fr = rpm / 60.0
    return {"fr": fr, **{k: v * fr for k, v in BEARINGS[bearing].items()}}


def time_features(W: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """RMS, std, peak, crest, kurtosis, skewness, shape and impulse factors per window."""
    W = np.asarray(W, dtype=np.float64)
    mu = W.mean(axis=1, keepdims=True)
    C = W - mu
    std = C.std(axis=1) + 1e-12
    rms = np.sqrt(np.mean(W**2, axis=1)) + 1e-12
    peak = np.max(np.abs(W), axis=1)
    mean_abs = np.mean(np.abs(W), axis=1) + 1e-12
    kurt = np.mean(C**4, axis=1) / std**4
    skew = np.mean(C**3, axis=1) / std**3
    F = np.column_stack([np.log(rms), np.log(std), np.log(peak + 1e-12), peak / rms, np.log(kurt), skew,
                         rms / mean_abs, peak / mean_abs])
    return F, ["log_rms", "log_std", "log_peak", "crest", "log_kurtosis", "skewness", "shape", "impulse"]


def envelope_spectrum(W: np.ndarray, fs: float, band: tuple[float, float] = (2000.0, 5000.0)) -> tuple[np.ndarray, np.ndarray]:
    """Envelope spectrum of each window: band-pass, |Hilbert|, mean removed, |rFFT| (Hanning)."""
    lo, hi = band
    if not 0 < lo < hi < fs / 2:
        raise ValueError(f"band must satisfy 0 < low < high < fs/2 = {fs / 2}, got {band}")
    sos = butter(4, [lo, hi], btype="bandpass", fs=fs, output="sos")
    B = sosfiltfilt(sos, np.asarray(W, dtype=np.float64), axis=1)
    env = np.abs(hilbert(B, axis=1))
    env -= env.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(env * np.hanning(env.shape[1]), axis=1)) / env.shape[1]
    return np.fft.rfftfreq(env.shape[1], 1.0 / fs), spec


def _peak_near(freqs: np.ndarray, spec: np.ndarray, f: float, tol: float) -> np.ndarray:
    sel = (freqs >= f * (1 - tol) - (freqs[1] - freqs[0])) & (freqs <= f * (1 + tol) + (freqs[1] - freqs[0]))
    return spec[:, sel].max(axis=1)


def bearing_features(W: np.ndarray, fs: float, rpm: float, bearing: str = "6205",
                     n_bands: int = 16, harmonics: int = 3, tol: float = 0.03) -> tuple[np.ndarray, list[str]]:
    """One feature row per window: time features, log band powers, envelope peaks at defect frequencies."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] == 0:
        raise ValueError(f"W must be a non-empty 2-D array of windows, got shape {W.shape}")
    F_time, names = time_features(W)
    spec = np.abs(np.fft.rfft((W - W.mean(axis=1, keepdims=True)) * np.hanning(W.shape[1]), axis=1)) ** 2
    edges = np.linspace(0, spec.shape[1], n_bands + 1).astype(int)
    bands = np.column_stack([spec[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    total = bands.sum(axis=1, keepdims=True) + 1e-30
    F_band = np.log(bands / total + 1e-12)
    names += [f"band{i}" for i in range(n_bands)]
    freqs, env = envelope_spectrum(W, fs)
    base = np.median(env[:, (freqs > 5) & (freqs < 500)], axis=1) + 1e-12
    cols, env_names = [], []
    for key, f in defect_frequencies(rpm, bearing).items():
        for h in range(1, harmonics + 1):
            cols.append(np.log(_peak_near(freqs, env, h * f, tol) / base))
            env_names.append(f"env_{key}_{h}x")
    return np.column_stack([F_time, F_band, *cols]), names + env_names


class BearingClassifier:
    """Multinomial logistic regression on standardised bearing features (weights saved as arrays)."""

    def __init__(self, C: float = 1.0) -> None:
        if not isinstance(C, int | float) or not 1e-6 <= C <= 1e6:
            raise ValueError(f"parameter 'C' must be a number in [1e-6, 1e6], got {C!r}")
        self.C = float(C)
        self.classes_: list[str] = []

    def fit(self, F: np.ndarray, labels: list[str] | np.ndarray) -> BearingClassifier:
        """Fit on feature rows and their class labels."""
        from sklearn.linear_model import LogisticRegression

        F = np.asarray(F, dtype=np.float64)
        self.mean_, self.std_ = F.mean(axis=0), np.where(F.std(axis=0) > 1e-12, F.std(axis=0), 1.0)
        clf = LogisticRegression(C=self.C, max_iter=5000).fit((F - self.mean_) / self.std_, np.asarray(labels))
        self.classes_ = [str(c) for c in clf.classes_]
        coef, icpt = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row
            coef, icpt = np.vstack([-coef, coef]) / 2, np.array([-icpt[0], icpt[0]]) / 2
        self.coef_, self.intercept_ = coef, icpt
        return self

    def predict_proba(self, F: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes)."""
        Z = (np.asarray(F, dtype=np.float64) - self.mean_) / self.std_
        L = Z @ self.coef_.T + self.intercept_
        L -= L.max(axis=1, keepdims=True)
        P = np.exp(L)
        return P / P.sum(axis=1, keepdims=True)

    def predict(self, F: np.ndarray) -> np.ndarray:
        """Most probable class per row."""
        return np.array(self.classes_)[np.argmax(self.predict_proba(F), axis=1)]

    def save(self, path: str | Path) -> Path:
        """Write as ``.npz`` with a JSON header (no pickle)."""
        path = Path(path).with_suffix(".npz")
        meta = json.dumps({"C": self.C, "classes": self.classes_}).encode()
        np.savez(path, mean=self.mean_, std=self.std_, coef=self.coef_, intercept=self.intercept_,
                 meta=np.frombuffer(meta, np.uint8))
        return path

    @classmethod
    def load(cls, path: str | Path) -> BearingClassifier:
        """Load a classifier written by ``save``."""
        with np.load(Path(path), allow_pickle=False) as f:
            meta: dict[str, Any] = json.loads(bytes(f["meta"]).decode())
            m = cls(C=meta["C"])
            m.classes_ = list(meta["classes"])
            m.mean_, m.std_ = np.array(f["mean"]), np.array(f["std"])
            m.coef_, m.intercept_ = np.array(f["coef"]), np.array(f["intercept"])
        return m
