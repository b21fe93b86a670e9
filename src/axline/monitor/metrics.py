"""Scoring of anomaly and changepoint detections, following SKAB's protocol (TSAD's code).

- ``binary_metrics``: point-wise TP/FP/FN/TN pooled over all series; F1 = TP / (TP + (FP + FN)/2),
  FAR = FP / (FP + TN), MAR = FN / (FN + TP) (FAR and MAR in %).
- ``mask_edges``: the changepoints of a predicted mask: |diff|, with the first sample's value.
- ``nab_scores``: SKAB's NAB variant: a window of ``window_ns`` to the right of each true
  changepoint (an overlapping next window starts where the previous one ends), only the first
  detection in a window counts, scored on TSAD's "improved" tanh scale; detections outside windows
  are false positives. Profiles standard / low-FP / low-FN; 100 = perfect, 0 = null detector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["NAB_PROFILES", "binary_metrics", "mask_edges", "nab_scores", "nab_window_score"]

#: profile -> (A_tp, A_fp, A_fn)
NAB_PROFILES: dict[str, tuple[float, float, float]] = {
    "standard": (1.0, -0.11, -1.0),
    "lowfp": (1.0, -0.22, -1.0),
    "lowfn": (1.0, -0.11, -2.0),
}


def binary_metrics(true: Sequence[np.ndarray], pred: Sequence[np.ndarray]) -> dict[str, float]:
    """Pooled point-wise metrics over several series (lists of 0/1 arrays of equal lengths)."""
    if len(true) != len(pred):
        raise ValueError(f"true has {len(true)} series but pred has {len(pred)}")
    tp = tn = fp = fn = 0
    for t, p in zip(true, pred, strict=True):
        t = np.asarray(t).astype(bool)
        p = np.asarray(p).astype(bool)
        if t.shape != p.shape:
            raise ValueError(f"a true series has shape {t.shape} but its prediction {p.shape}")
        tp += int(np.sum(t & p))
        tn += int(np.sum(~t & ~p))
        fp += int(np.sum(~t & p))
        fn += int(np.sum(t & ~p))
    f1 = tp / (tp + (fp + fn) / 2) if tp + fp + fn else 1.0
    far = 100.0 * fp / (fp + tn) if fp + tn else 0.0
    mar = 100.0 * fn / (fn + tp) if fn + tp else 0.0
    return {"f1": f1, "far": far, "mar": mar, "tp": tp, "tn": tn, "fp": fp, "fn": fn}


def mask_edges(mask: np.ndarray) -> np.ndarray:
    """Changepoints of a 0/1 mask as SKAB takes them: ``abs(diff)``, first value = mask[0]."""
    m = np.asarray(mask).astype(np.int8)
    out = np.zeros(m.shape[0], dtype=bool)
    if m.shape[0]:
        out[0] = bool(m[0])
        out[1:] = np.diff(m) != 0
    return out


def nab_window_score(start: int, detect: int, end: int, a_tp: float, a_fp: float) -> float:
    """TSAD's "improved" scaled reward of a first detection at ``detect`` in window [start, end]."""
    detalization = 1000
    x = np.linspace(-np.pi / 2, np.pi / 2, detalization)
    y = (a_tp - a_fp) / 2 * -1 * np.tanh(x) / np.tanh(np.pi / 2) + (a_tp - a_fp) / 2 + a_fp
    span = end - start
    event = int((detect - start) / span * detalization) if span > 0 else 0
    return float(y[min(event, detalization - 1)])


def _windows(true_ts: np.ndarray, window_ns: int) -> list[list[int]]:
    wins = [[int(t), int(t) + int(window_ns)] for t in np.sort(true_ts)]
    for i in range(len(wins) - 1):  # "cut right window", as TSAD does by default
        if wins[i][1] >= wins[i + 1][0]:
            wins[i + 1][0] = wins[i][1]
    return wins


def _single_nab(ts: np.ndarray, true_cp: np.ndarray, pred_cp: np.ndarray, window_ns: int) -> np.ndarray:
    """Rows: score, null score, perfect score; columns: standard, lowfp, lowfn."""
    ts = np.asarray(ts, dtype=np.int64)
    wins = _windows(ts[np.asarray(true_cp).astype(bool)], window_ns)
    times = np.sort(ts[np.asarray(pred_cp).astype(bool)])
    tps: list[tuple[int, int, int]] = []
    n_fn = 0
    if wins:
        n_fp = int(np.sum(times < wins[0][0]))
        for i, (a, b) in enumerate(wins):
            inside = times[(times >= a) & (times <= b)]
            if inside.size == 0:
                n_fn += 1
            else:
                tps.append((a, int(inside[0]), b))
            if i + 1 < len(wins):
                n_fp += int(np.sum((times > b) & (times < wins[i + 1][0])))
        n_fp += int(np.sum(times > wins[-1][1]))
    else:
        n_fp = int(times.size)
    out = np.zeros((3, 3))
    for j, (a_tp, a_fp, a_fn) in enumerate(NAB_PROFILES.values()):
        s = a_fp * n_fp + a_fn * n_fn + sum(nab_window_score(a, t, b, a_tp, a_fp) for a, t, b in tps)
        out[:, j] = (s, len(wins) * a_fn, len(wins) * a_tp)
    return out


def nab_scores(
    timestamps: Sequence[np.ndarray],
    true_cp: Sequence[np.ndarray],
    pred_cp: Sequence[np.ndarray],
    window_ns: int = 60 * 10**9,
) -> dict[str, float]:
    """SKAB NAB scores (standard, lowfp, lowfn) pooled over series; plus counts of misses and FPs."""
    if not (len(timestamps) == len(true_cp) == len(pred_cp)):
        raise ValueError("timestamps, true_cp and pred_cp must hold the same number of series")
    total = np.zeros((3, 3))
    missed = fps = 0
    for ts, t, p in zip(timestamps, true_cp, pred_cp, strict=True):
        if not (len(ts) == len(t) == len(p)):
            raise ValueError(f"a series has {len(ts)} timestamps, {len(t)} labels, {len(p)} predictions")
        total += _single_nab(ts, t, p, window_ns)
        m, f = _counts(np.asarray(ts, dtype=np.int64), np.asarray(t).astype(bool), np.asarray(p).astype(bool), window_ns)
        missed += m
        fps += f
    res: dict[str, float] = {}
    for j, name in enumerate(NAB_PROFILES):
        denom = total[2, j] - total[1, j]
        res[name] = 100.0 * (total[0, j] - total[1, j]) / denom if denom else 0.0
    res["missed_cps"] = missed
    res["false_positives"] = fps
    return res


def _counts(ts: np.ndarray, t: np.ndarray, p: np.ndarray, window_ns: int) -> tuple[int, int]:
    wins = _windows(ts[t], window_ns)
    times = ts[p]
    if not wins:
        return 0, int(times.size)
    hit = np.zeros(times.size, dtype=bool)
    missed = 0
    for a, b in wins:
        w = (times >= a) & (times <= b)
        hit |= w
        missed += int(not np.any(w))
    return missed, int(np.sum(~hit))
