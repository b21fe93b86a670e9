"""Input and parameter checks shared by every detector, and the causal smoothing of scores."""

from __future__ import annotations

from typing import Any

import numpy as np

#: a normal distribution's sigma is 1.4826 times its median absolute deviation
MAD_TO_SIGMA = 1.4826


def as_2d(X: Any, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """Check and convert input to a finite float64 array of shape (n, d).

    >>> as_2d([1.0, 2.0]).shape
    (1, 2)
    >>> as_2d([[1.0, float("nan")]])
    Traceback (most recent call last):
    ...
    ValueError: X contains 1 NaN or infinite values; fill or drop them before scoring
    """
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


def check_number(name: str, value: Any, lo: float, hi: float, integer: bool = False,
                 lo_open: bool = False) -> float | int:
    """Validate a numeric parameter against a range; the message names the parameter and range.

    >>> check_number("k", 5, 1, 100, integer=True)
    5
    >>> check_number("far", 0.0, 0.0, 0.5, lo_open=True)
    Traceback (most recent call last):
    ...
    ValueError: parameter 'far' must be in (0.0, 0.5], got 0.0
    """
    ok_type = isinstance(value, int | np.integer) if integer else isinstance(value, int | float | np.number)
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"parameter {name!r} must be {kind} in {'(' if lo_open else '['}{lo}, {hi}], got {value!r}")
    if (value <= lo if lo_open else value < lo) or value > hi or (not integer and not np.isfinite(value)):
        raise ValueError(f"parameter {name!r} must be in {'(' if lo_open else '['}{lo}, {hi}], got {value!r}")
    return int(value) if integer else float(value)


def causal_mean(s: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average; the first samples average over what is available.

    >>> causal_mean(np.array([2.0, 4.0, 6.0, 8.0]), 2).tolist()
    [2.0, 3.0, 5.0, 7.0]
    """
    if window <= 1:
        return s
    c = np.cumsum(np.concatenate([[0.0], s]))
    n = np.arange(1, len(s) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)
