"""Remaining useful life from run-to-failure histories.

- ``GBRUL`` (default): gradient-boosted trees (scikit-learn's histogram GBM) on features of each
  unit's history up to each cycle: exponentially smoothed sensor levels, means and slopes over several
  windows, and the cycle count. Trees are exported to arrays, so prediction is NumPy only.
- ``CNNRUL``: a small 1-D CNN over the last cycles (PyTorch for training only, NumPy inference).

The target is the piecewise-linear RUL (capped at ``cap`` cycles: early life is treated as
"healthy"), the usual choice for C-MAPSS. Model files are ``.npz`` + JSON (no pickle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

__all__ = ["CNNRUL", "GBRUL", "rul_features", "piecewise_rul", "select_informative", "unit_windows"]


def piecewise_rul(cycles_per_unit: np.ndarray, cap: float) -> np.ndarray:
    """RUL at each row of a run-to-failure record, capped at ``cap`` (rows sorted by unit, cycle)."""
    units = np.asarray(cycles_per_unit)
    out = np.empty(units.shape[0], dtype=np.float64)
    start = 0
    for i in range(1, units.shape[0] + 1):
        if i == units.shape[0] or units[i] != units[start]:
            n = i - start
            out[start:i] = np.minimum(np.arange(n - 1, -1, -1, dtype=np.float64), cap)
            start = i
    return out


def select_informative(X: np.ndarray, min_distinct: int = 3) -> np.ndarray:
    """Indices of columns with at least ``min_distinct`` distinct values (drops constant sensors)."""
    return np.array([j for j in range(X.shape[1]) if np.unique(X[:, j]).size >= min_distinct], dtype=np.int64)


def unit_windows(X: np.ndarray, units: np.ndarray, window: int, last_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``window`` consecutive cycles per unit (n, window, d) and the row index each ends at.

    A unit shorter than the window is padded at its start with its first row.
    """
    wins, ends = [], []
    bounds = np.flatnonzero(np.diff(np.asarray(units))) + 1
    for s, e in zip(np.r_[0, bounds], np.r_[bounds, len(units)], strict=True):
        seg = X[s:e]
        if seg.shape[0] < window:
            seg = np.vstack([np.repeat(seg[:1], window - seg.shape[0], axis=0), seg])
        w = sliding_window_view(seg, (window, seg.shape[1]))[:, 0]
        idx = np.arange(e - w.shape[0], e)
        if last_only:
            w, idx = w[-1:], idx[-1:]
        wins.append(w)
        ends.append(idx)
    return np.concatenate(wins).astype(np.float32), np.concatenate(ends)


def _conv_same(H: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1-D convolution with 'same' padding: H (n, c_in, t), W (c_out, c_in, k)."""
    k = W.shape[2]
    pad_l = (k - 1) // 2
    Hp = np.pad(H, ((0, 0), (0, 0), (pad_l, k - 1 - pad_l)))
    V = sliding_window_view(Hp, k, axis=2)  # (n, c_in, t, k)
    return np.einsum("nctk,ock->not", V, W, optimize=True) + b[None, :, None]


class CNNRUL:
    """1-D CNN regressor of remaining useful life over the last ``window`` cycles.

    Architecture: three same-padded convolutions (``channels``, kernel 5/5/3, ReLU), flatten, dense
    64 (ReLU, dropout in training), dense 1. Inputs are standardised with the training mean/std.
    ``ensemble`` networks with different seeds are averaged.
    """

    def __init__(self, window: int = 30, cap: float = 125.0, channels: int = 32, epochs: int = 40,
                 ensemble: int = 3, seed: int = 0, threads: int = 2) -> None:
        checks = {"window": (window, 2, 1000), "channels": (channels, 1, 512), "epochs": (epochs, 1, 10_000),
                  "ensemble": (ensemble, 1, 50), "seed": (seed, 0, 2**31 - 1), "threads": (threads, 1, 256)}
        for name, (v, lo, hi) in checks.items():
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"parameter {name!r} must be an integer in [{lo}, {hi}], got {v!r}")
        if not isinstance(cap, int | float) or not 1 <= cap <= 1e6:
            raise ValueError(f"parameter 'cap' must be a number in [1, 1e6], got {cap!r}")
        self.params = {"window": window, "cap": float(cap), "channels": channels, "epochs": epochs,
                       "ensemble": ensemble, "seed": seed, "threads": threads}
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.nets_: list[dict[str, np.ndarray]] = []

    def fit(self, X: np.ndarray, units: np.ndarray, rul: np.ndarray | None = None) -> CNNRUL:
        """Fit on run-to-failure records: rows sorted by unit then cycle; ``rul`` defaults to piecewise.

        Training needs torch (the ``train`` extra); predicting with a fitted model does not."""
        try:
            import torch
        except ImportError as exc:
            raise RuntimeError("training the CNN RUL model needs torch: pip install 'axline[train]' "
                               "(predicting with a trained one does not)") from exc

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != len(units):
            raise ValueError(f"X must be (rows, signals) with one unit id per row; got {X.shape} and {len(units)} ids")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinite values")
        y_all = piecewise_rul(units, self.params["cap"]) if rul is None else np.asarray(rul, dtype=np.float64)
        self.mean_, self.std_ = X.mean(axis=0), np.where(X.std(axis=0) > 1e-12, X.std(axis=0), 1.0)
        Z = (X - self.mean_) / self.std_
        W, ends = unit_windows(Z, units, self.params["window"])
        y = (y_all[ends] / self.params["cap"]).astype(np.float32)
        torch.set_num_threads(self.params["threads"])
        self.nets_ = []
        for m in range(self.params["ensemble"]):
            self.nets_.append(self._train_one(W, y, self.params["seed"] + m))
        return self

    def _train_one(self, W: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        import torch
        from torch import nn

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        c, d, t = self.params["channels"], W.shape[2], W.shape[1]
        net = nn.Sequential(
            nn.Conv1d(d, c, 5, padding=2), nn.ReLU(),
            nn.Conv1d(c, c, 5, padding=2), nn.ReLU(),
            nn.Conv1d(c, c, 3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(c * t, 64), nn.ReLU(), nn.Linear(64, 1),
        )
        Xt = torch.from_numpy(np.ascontiguousarray(W.transpose(0, 2, 1)))
        yt = torch.from_numpy(y)[:, None]
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        epochs = self.params["epochs"]
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        for _ in range(epochs):
            net.train()
            perm = rng.permutation(len(Xt))
            for s in range(0, len(perm), 256):
                idx = torch.from_numpy(perm[s : s + 256])
                opt.zero_grad()
                loss = nn.functional.mse_loss(net(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
            sched.step()
        sd = {k: v.detach().numpy().astype(np.float64) for k, v in net.state_dict().items()}
        return {"c1w": sd["0.weight"], "c1b": sd["0.bias"], "c2w": sd["2.weight"], "c2b": sd["2.bias"],
                "c3w": sd["4.weight"], "c3b": sd["4.bias"], "f1w": sd["8.weight"], "f1b": sd["8.bias"],
                "f2w": sd["10.weight"], "f2b": sd["10.bias"]}

    def _forward(self, net: dict[str, np.ndarray], W: np.ndarray) -> np.ndarray:
        H = W.transpose(0, 2, 1).astype(np.float64)
        for i in (1, 2, 3):
            H = np.maximum(_conv_same(H, net[f"c{i}w"], net[f"c{i}b"]), 0.0)
        H = H.reshape(H.shape[0], -1)
        H = np.maximum(H @ net["f1w"].T + net["f1b"], 0.0)
        return (H @ net["f2w"].T + net["f2b"])[:, 0]

    def predict_windows(self, W: np.ndarray) -> np.ndarray:
        """RUL for windows (n, window, d) of standardised rows."""
        out = np.mean([self._forward(n, W) for n in self.nets_], axis=0) * self.params["cap"]
        return np.clip(out, 0.0, self.params["cap"])

    def predict_last(self, X: np.ndarray, units: np.ndarray) -> np.ndarray:
        """RUL at the last row of each unit (rows sorted by unit then cycle)."""
        if self.mean_ is None:
            raise RuntimeError("model is not fitted; call fit first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"X must have {self.mean_.shape[0]} signals, got shape {X.shape}")
        W, _ = unit_windows((X - self.mean_) / self.std_, units, self.params["window"], last_only=True)
        return self.predict_windows(W)

    def save(self, path: str | Path) -> Path:
        """Write weights and normalisation as ``.npz`` with a JSON header (no pickle)."""
        if self.mean_ is None:
            raise RuntimeError("model is not fitted; call fit first")
        path = Path(path).with_suffix(".npz")
        arrays: dict[str, Any] = {"mean": self.mean_, "std": self.std_}
        for i, n in enumerate(self.nets_):
            arrays.update({f"n{i}_{k}": v for k, v in n.items()})
        arrays["meta"] = np.frombuffer(json.dumps({"params": self.params, "n": len(self.nets_)}).encode(), np.uint8)
        np.savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CNNRUL:
        """Load a model written by ``save``."""
        with np.load(Path(path), allow_pickle=False) as f:
            meta = json.loads(bytes(f["meta"]).decode())
            m = cls(**meta["params"])
            m.mean_, m.std_ = np.array(f["mean"]), np.array(f["std"])
            m.nets_ = [{k.split("_", 1)[1]: np.array(f[k]) for k in f.files if k.startswith(f"n{i}_")}
                       for i in range(meta["n"])]
        return m


def _unit_bounds(units: np.ndarray) -> list[tuple[int, int]]:
    b = np.flatnonzero(np.diff(np.asarray(units))) + 1
    return list(zip(np.r_[0, b].tolist(), np.r_[b, len(units)].tolist(), strict=True))


def _rolling_mean_slope(seg: np.ndarray, k: int, S: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and least-squares slope of the last ``k`` rows (fewer at a unit's start) at each row.

    ``S`` and ``T`` are the zero-led cumulative sums of ``seg`` and of ``j * seg`` (j the row number).
    """
    n = seg.shape[0]
    i = np.arange(n)
    st = np.maximum(0, i - k + 1)
    m = (i - st + 1).astype(np.float64)[:, None]
    sx = S[i + 1] - S[st]
    sjx = T[i + 1] - T[st]
    jbar = (i + st)[:, None] / 2.0
    den = m * (m * m - 1.0) / 12.0
    slope = np.where(den > 0, (sjx - jbar * sx) / np.where(den > 0, den, 1.0), 0.0)
    return sx / m, slope


def rul_features(Z: np.ndarray, units: np.ndarray, cycles: np.ndarray,
                 alphas: tuple[float, ...] = (0.05, 0.1, 0.3), means: tuple[int, ...] = (5, 10, 20, 30),
                 slopes: tuple[int, ...] = (10, 20, 30, 60, 120),
                 last_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows from standardised sensors ``Z`` of rows sorted by unit, then cycle.

    Per sensor, using only the unit's rows up to the current cycle: EWMA levels (one per alpha), the
    mean over the last ``k`` cycles for each ``k`` in ``means``, the least-squares slope over the last
    ``k`` cycles for each ``k`` in ``slopes`` (fewer cycles at a unit's start); plus the cycle count.
    Every row is thus a unit "cut" at that cycle, as test units are. Returns (features, row index);
    with ``last_only`` only the last row of each unit.
    """
    Z = np.asarray(Z, dtype=np.float64)
    cycles = np.asarray(cycles, dtype=np.float64)
    blocks, rows = [], []
    for s, e in _unit_bounds(units):
        seg = Z[s:e]
        n, d = seg.shape
        cols = []
        for a in alphas:
            lev, _ = lfilter([a], [1.0, -(1.0 - a)], seg, axis=0, zi=((1.0 - a) * seg[0])[None, :])
            cols.append(lev)
        S = np.vstack([np.zeros((1, d)), np.cumsum(seg, axis=0)])
        T = np.vstack([np.zeros((1, d)), np.cumsum(np.arange(n, dtype=np.float64)[:, None] * seg, axis=0)])
        cols += [_rolling_mean_slope(seg, k, S, T)[0] for k in means]
        cols += [_rolling_mean_slope(seg, k, S, T)[1] for k in slopes]
        cols.append(cycles[s:e, None])
        F = np.hstack(cols)
        if last_only:
            F = F[-1:]
        blocks.append(F)
        rows.append(np.arange(e - F.shape[0], e))
    return np.vstack(blocks), np.concatenate(rows)


def _check_windows(name: str, v: Any) -> list[int]:
    v = list(v)
    if not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 10_000 for k in v):
        raise ValueError(f"parameter {name!r} must be a list of integers in [1, 10000], got {v!r}")
    return v


class GBRUL:
    """Gradient-boosted trees on multi-window features (see ``rul_features``); NumPy prediction.

    Defaults were chosen by cross-validation over training units of C-MAPSS FD001 (see
    ``axline.bench.cmapss``).
    """

    def __init__(self, cap: float = 130.0, max_iter: int = 300, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 100, seed: int = 0,
                 alphas: tuple[float, ...] | list[float] = (0.05, 0.1, 0.3),
                 means: tuple[int, ...] | list[int] = (5, 10, 20, 30),
                 slopes: tuple[int, ...] | list[int] = (10, 20, 30, 60, 120)) -> None:
        checks = {"max_iter": (max_iter, 1, 100_000), "max_leaf_nodes": (max_leaf_nodes, 2, 4096),
                  "min_samples_leaf": (min_samples_leaf, 1, 100_000), "seed": (seed, 0, 2**31 - 1)}
        for name, (v, lo, hi) in checks.items():
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"parameter {name!r} must be an integer in [{lo}, {hi}], got {v!r}")
        if not isinstance(cap, int | float) or not 1 <= cap <= 1e6:
            raise ValueError(f"parameter 'cap' must be a number in [1, 1e6], got {cap!r}")
        if not isinstance(learning_rate, int | float) or not 0 < learning_rate <= 1:
            raise ValueError(f"parameter 'learning_rate' must be a number in (0, 1], got {learning_rate!r}")
        alphas = list(alphas)
        if not all(isinstance(a, int | float) and 0 < a <= 1 for a in alphas):
            raise ValueError(f"parameter 'alphas' must be a list of numbers in (0, 1], got {alphas!r}")
        means, slopes = _check_windows("means", means), _check_windows("slopes", slopes)
        if not alphas and not means:
            raise ValueError("parameters 'alphas' and 'means' are both empty: give at least one sensor level")
        self.params: dict[str, Any] = {"cap": float(cap), "max_iter": max_iter,
                                       "learning_rate": float(learning_rate), "max_leaf_nodes": max_leaf_nodes,
                                       "min_samples_leaf": min_samples_leaf, "seed": seed,
                                       "alphas": [float(a) for a in alphas], "means": means, "slopes": slopes}
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.trees_: dict[str, np.ndarray] = {}

    def features(self, Z: np.ndarray, units: np.ndarray, cycles: np.ndarray,
                 last_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``rul_features`` with this model's windows, from standardised sensors ``Z``."""
        p = self.params
        return rul_features(Z, units, cycles, alphas=tuple(p["alphas"]), means=tuple(p["means"]),
                            slopes=tuple(p["slopes"]), last_only=last_only)

    def _check_X(self, X: np.ndarray, units: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != len(units) or X.shape[0] != len(cycles):
            raise ValueError(f"X must be (rows, signals) with one unit id and cycle per row; got {X.shape}, "
                             f"{len(units)} ids, {len(cycles)} cycles")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinite values; fill or drop them first")
        if self.mean_ is not None and X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"X must have {self.mean_.shape[0]} signals, got {X.shape[1]}")
        return X

    def fit(self, X: np.ndarray, units: np.ndarray, cycles: np.ndarray, rul: np.ndarray | None = None) -> GBRUL:
        """Fit on run-to-failure records (rows sorted by unit then cycle); ``rul`` defaults to piecewise."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        self.mean_ = None
        X = self._check_X(X, units, cycles)
        y_all = piecewise_rul(units, self.params["cap"]) if rul is None else np.asarray(rul, dtype=np.float64)
        std = X.std(axis=0)
        self.mean_, self.std_ = X.mean(axis=0), np.where(std > 1e-12, std, 1.0)
        F, ends = self.features((X - self.mean_) / self.std_, units, cycles)
        p = self.params
        gbm = HistGradientBoostingRegressor(
            max_iter=p["max_iter"], learning_rate=p["learning_rate"], max_leaf_nodes=p["max_leaf_nodes"],
            min_samples_leaf=p["min_samples_leaf"], l2_regularization=1.0, early_stopping=False,
            random_state=p["seed"],
        ).fit(F, y_all[ends])
        nodes = [pred[0].nodes for pred in gbm._predictors]
        offs = np.cumsum([0] + [len(n) for n in nodes])
        allnodes = np.concatenate(nodes)
        self.trees_ = {
            "value": allnodes["value"].astype(np.float64),
            "feature": allnodes["feature_idx"].astype(np.int64),
            "threshold": allnodes["num_threshold"].astype(np.float64),
            "left": allnodes["left"].astype(np.int64),
            "right": allnodes["right"].astype(np.int64),
            "is_leaf": allnodes["is_leaf"].astype(bool),
            "offsets": offs.astype(np.int64),
            "baseline": np.asarray(gbm._baseline_prediction, dtype=np.float64).ravel(),
        }
        return self

    def _predict_features(self, F: np.ndarray) -> np.ndarray:
        t = self.trees_
        offs = t["offsets"]
        out = np.full(F.shape[0], t["baseline"][0])
        rows = np.arange(F.shape[0])
        for k in range(len(offs) - 1):
            node = np.full(F.shape[0], offs[k], dtype=np.int64)
            active = ~t["is_leaf"][node]
            while np.any(active):
                nd = node[active]
                left = F[rows[active], t["feature"][nd]] <= t["threshold"][nd]
                node[active] = offs[k] + np.where(left, t["left"][nd], t["right"][nd])
                active = ~t["is_leaf"][node]
            out += t["value"][node]
        return np.clip(out, 0.0, self.params["cap"])

    def predict_last(self, X: np.ndarray, units: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        """RUL at the last row of each unit (rows sorted by unit then cycle)."""
        if self.mean_ is None or self.std_ is None:
            raise RuntimeError("model is not fitted; call fit first")
        X = self._check_X(X, units, cycles)
        F, _ = self.features((X - self.mean_) / self.std_, units, cycles, last_only=True)
        return self._predict_features(F)

    def save(self, path: str | Path) -> Path:
        """Write trees and normalisation as ``.npz`` with a JSON header (no pickle)."""
        if self.mean_ is None:
            raise RuntimeError("model is not fitted; call fit first")
        path = Path(path).with_suffix(".npz")
        meta = np.frombuffer(json.dumps({"params": self.params}).encode(), np.uint8)
        np.savez(path, mean=self.mean_, std=self.std_, meta=meta, **{f"t_{k}": v for k, v in self.trees_.items()})
        return path

    @classmethod
    def load(cls, path: str | Path) -> GBRUL:
        """Load a model written by ``save``."""
        with np.load(Path(path), allow_pickle=False) as f:
            m = cls(**json.loads(bytes(f["meta"]).decode())["params"])
            m.mean_, m.std_ = np.array(f["mean"]), np.array(f["std"])
            m.trees_ = {k[2:]: np.array(f[k]) for k in f.files if k.startswith("t_")}
        return m
