"""The magnetic-tile split, AUROC at image and pixel level, and the scorers compared on the same features."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import numpy as np

DEFECT_CLASSES = ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")
FEWSHOT_SIZES = (10, 50, 100, 200)
GOALS = {"image_auroc": 0.985, "pixel_auroc": 0.97, "latency_ms_p50": 20.0, "latency_ms_p99": 50.0,
         "latency_ms_p99_1024x256": 100.0, "long_parts_image_auroc": 0.95,
         "defect_type_accuracy": {"5": 0.75, "10": 0.90}}


def split_magnetic_tile(data: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(training goods, test goods, test defects) by the benchmark protocol."""
    free_dir = data / "MT_Free" / "Imgs"
    if not free_dir.is_dir():
        raise FileNotFoundError(
            f"{free_dir} not found: --data must be the magnetic_tile folder (with MT_Free/Imgs inside)"
        )
    free = sorted(free_dir.glob("*.jpg"))
    train = [p for i, p in enumerate(free) if i % 5 != 0]
    test_good = [p for i, p in enumerate(free) if i % 5 == 0]
    defects = sorted(p for c in DEFECT_CLASSES for p in (data / c / "Imgs").glob("*.jpg"))
    return train, test_good, defects


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half), via ranks."""
    labels = np.asarray(labels, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auroc needs both positive and negative labels")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(labels.size, np.float64)
    # average ranks over ties
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [labels.size]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _mask(image_path: Path, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    mask_path = image_path.with_suffix(".png")
    if not mask_path.exists():
        return np.zeros(shape, bool)
    m = np.asarray(Image.open(mask_path).convert("L"))
    if m.shape != shape:
        m = np.asarray(Image.open(mask_path).convert("L").resize((shape[1], shape[0]), Image.NEAREST))
    return m > 127


def _score_cached(feats: np.ndarray, inspector: Any) -> np.ndarray:
    """Image scores of cached backbone features under another model with the same backbone."""
    from axline.inspect.inferencer import image_score

    return np.array([max(image_score(t, inspector.model.top_k) for t in inspector.patch_scores(f)) for f in feats])


def _pixel_auroc(maps: list[np.ndarray], masks: list[np.ndarray], stride: int) -> float:
    scores = np.concatenate([m.ravel()[::stride] for m in maps])
    labels = np.concatenate([k.ravel()[::stride] for k in masks])
    return auroc(labels, scores)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _compare_scorers(model: Any, feats: np.ndarray, test: list[Path], labels: np.ndarray,
                     masks: list[np.ndarray], pixel_stride: int, validation: dict[str, float],
                     log: Any) -> dict[str, dict[str, float]]:
    """Image and pixel AUROC of every scorer on the same cached test features (test labels only score)."""
    import copy

    from axline.inspect.inferencer import Inspector, load_image

    out: dict[str, dict[str, float]] = {}
    for name in ("nn", "gaussian", "combined"):
        m = copy.copy(model)
        m.scorer = name
        ins = Inspector(m, batch=1)
        scores, maps = [], []
        for f, p in zip(feats, test, strict=True):
            v = ins.verdict_from_features(load_image(p), f)
            scores.append(v.score)
            maps.append(v.anomaly_map)
        out[name] = {"validation_auroc": validation.get(name), "image_auroc": auroc(labels, np.asarray(scores)),
                     "pixel_auroc": _pixel_auroc(maps, masks, pixel_stride)}
        log(f"scorer {name}: {out[name]}")
    return out


def _grey(path: Path, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize(size, Image.BILINEAR))


def _evenly(items: list[Path], k: int) -> list[Path]:
    idx = np.unique(np.linspace(0, len(items) - 1, k).round().astype(int))
    return [items[i] for i in idx]
