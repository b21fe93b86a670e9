"""Multivariate anomaly detectors behind one small abstract base.

Every detector is fitted on normal history (``fit``), then scores a batch (``score``) or one sample
at a time as data streams in (``score_one``; same numbers as the batch, state kept between calls).
A higher score is more anomalous. ``calibrate`` sets ``threshold`` from normal data for a target
false-alarm rate; ``contributions`` tells which signals drove the score and ``deviations`` how far
each signal is from normal (robust z-score). Models are saved as ``.npz`` arrays plus JSON (no
pickle), so a model file is safe to load.

Modules: ``base`` (the abstract :class:`Detector`), ``validation`` (input and parameter checks),
``persistence`` (the model file), and one module per detector (``DETECTORS`` registry):

- ``robust``: per-signal median/MAD z-scores, optional EWMA and a seasonal profile.
- ``pca``: PCA with Hotelling T² and Q (SPE), each normalised by its limit on the fitting data.
- ``mset``: kNN similarity model (MSET-style): estimate each sample from the most similar memory
  vectors of normal history; the score is the residual energy.
- ``iforest``: scikit-learn isolation forest (trees exported to arrays for saving).
- ``autoencoder``: small MLP autoencoder (scikit-learn for training, NumPy at inference).
- ``changepoint``: two-sided CUSUM per signal on decorrelated residuals (a persistent shift accumulates).
- ``ewma``: one EWMA control chart per signal, each as wide as its average wandered on the fitting
  data; the score is the worst chart.

All share a causal moving-average ``smooth`` window on the score (1 = off). A new detector is a
module with a :class:`Detector` subclass that defines ``name``, imported and listed below.

>>> import numpy as np
>>> det = make_detector("pca").fit(np.random.default_rng(0).normal(0.0, 1.0, (300, 3)))
>>> sorted(DETECTORS)[:3], det.score([[0.0, 0.0, 0.0]]).shape
(['autoencoder', 'changepoint', 'ewma'], (1,))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from axline.monitor.detectors.autoencoder import AutoencoderDetector
from axline.monitor.detectors.base import Detector, StatelessDetector
from axline.monitor.detectors.changepoint import ChangepointDetector
from axline.monitor.detectors.ewma import EWMADetector
from axline.monitor.detectors.iforest import IsolationForestDetector
from axline.monitor.detectors.mset import MSETDetector
from axline.monitor.detectors.pca import PCADetector
from axline.monitor.detectors.robust import RobustDetector

__all__ = [
    "DETECTORS",
    "AutoencoderDetector",
    "ChangepointDetector",
    "Detector",
    "EWMADetector",
    "IsolationForestDetector",
    "MSETDetector",
    "PCADetector",
    "RobustDetector",
    "StatelessDetector",
    "load_detector",
    "make_detector",
]

#: detector name -> class, in the order the documentation lists them (holds every registered kind)
DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (
        RobustDetector,
        PCADetector,
        MSETDetector,
        IsolationForestDetector,
        AutoencoderDetector,
        ChangepointDetector,
        EWMADetector,
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
