"""Training an inspector from images of good parts, and operator-feedback updates.

``train_inspector`` writes the truncated EfficientNet-Lite0 as an ONNX graph (no torch, see
:mod:`axline.inspect.features`), extracts patch features of all training images with it on
onnxruntime (tile by tile on a canvas of the part's aspect when a defect scale is set), fits a
Gaussian of good patch features per position (and/or keeps a greedy k-center coreset of the
training patches as a memory bank), calibrates the threshold on held-out good images for a target false-reject rate (refined by labelled
defect images when given) and writes one ``.axi`` file.

``update_with_feedback``: overruled false rejects join the Gaussian (and add their unmatched
patches to the bank); confirmed defects refine the threshold.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
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
from axline.inspect.tiling import GRID, cut_tiles

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
FEEDBACK_WEIGHT = 0.05  # an overruled false reject counts as this share of the good images seen


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


def _auroc(neg: Sequence[float], pos: Sequence[float]) -> float:
    """Probability that a positive outscores a negative (ties count one half)."""
    n, p = np.asarray(neg, np.float64), np.asarray(pos, np.float64)
    return float(((p[:, None] > n[None]).sum() + 0.5 * (p[:, None] == n[None]).sum()) / (len(n) * len(p)))


def _tile_features(runtime: BackboneRunner, image: np.ndarray, prep: Preprocessing,
                   offsets: list[tuple[int, int]]) -> np.ndarray:
    """Features ``(T, D, g, g)`` of every tile of one full image."""
    return runtime.features(cut_tiles(preprocess(crop_roi(image, prep.roi), prep), offsets, prep.size))


def _flat(f: np.ndarray) -> np.ndarray:
    """``(T, D, g, g)`` -> patches ``(T * g * g, D)`` in (tile, row, column) order."""
    return f.transpose(0, 2, 3, 1).reshape(-1, f.shape[1])


def _combine(raw: dict[str, np.ndarray], scales: dict[str, np.ndarray | None]) -> np.ndarray:
    parts = [normalise_patch_scores(m, scales[k]) for k, m in raw.items()]
    return parts[0] if len(parts) == 1 else 0.5 * (parts[0] + parts[1])


def _score(maps: np.ndarray, top_k: int, mask: np.ndarray | None) -> float:
    if mask is not None:
        maps = np.where(mask, 0.0, maps)
    return max(image_score(m, top_k) for m in maps)


GAUSSIAN_KINDS = {"gaussian": "per tile", "shared": "shared by the tiles"}


def quarter_overlap(size: int) -> int:
    """A quarter of a tile of ``size``, on the patch grid: the overlapping layout tried by default."""
    return size // 4 // GRID * GRID


def overlap_candidates(prep: Preprocessing, tile_overlap: int | None) -> list[int]:
    """Tile overlaps to try: the one given, or (``None``) tiles overlapping by a quarter of a tile and
    tiles abutting, where the canvas gives them different layouts."""
    if tile_overlap is not None:
        return [int(tile_overlap)]
    out: list[int] = []
    seen: set[tuple[tuple[int, int], ...]] = set()
    for ov in (quarter_overlap(prep.size), 0):
        layout = tuple(replace(prep, tile_overlap=ov).tiles())
        if layout not in seen:
            seen.add(layout)
            out.append(ov)
    return out


class _LayoutFit:
    """Features, scorers and held-out scores of one tile layout (internal to training)."""

    def __init__(self, prep: Preprocessing, runtime: BackboneRunner, arrays: Sequence[np.ndarray],
                 train_idx: np.ndarray, hold_idx: np.ndarray, defects: Sequence[np.ndarray],
                 synth: Sequence[np.ndarray], scorer: str, bar: ProgressBar, *, rng: np.random.Generator,
                 coreset_ratio: float, max_bank: int, max_candidates: int, seed: int,
                 position_normalise: bool, top_k: int | None) -> None:
        from axline.inspect.scoring import GaussianStats
        from axline.inspect.tiling import ignore_cells

        self.prep = prep
        self.offsets = offsets = prep.tiles()

        def extract(imgs: Sequence[np.ndarray]) -> list[np.ndarray]:
            out_ = []
            for a in imgs:
                out_.append(_tile_features(runtime, a, prep, offsets))
                bar.update()
            return out_

        train_feats = extract([arrays[i] for i in train_idx])
        feats = {"hold": extract([arrays[i] for i in hold_idx]), "defect": extract(defects), "synth": extract(synth)}
        t_dim, dim, gh, gw = train_feats[0].shape
        grid_shape = (t_dim, gh, gw)
        self.dim = int(dim)
        self.top_k = int(top_k) if top_k is not None else max(1, round(gh * gw / 64))
        self.n_patches = sum(f.shape[0] * gh * gw for f in train_feats)
        self.coreset_s = 0.0
        self.bank = np.zeros((0, dim), np.float32)
        self.gaussians: dict[str, Any] = {}
        kinds = ("nn", "gaussian") if scorer in ("combined", "auto") else (scorer,)
        self.raw: dict[str, dict[str, list[np.ndarray]]] = {}
        if "nn" in kinds:
            patches = np.concatenate([_flat(f) for f in train_feats])
            bank_size = int(min(max_bank, max(1, round(coreset_ratio * len(patches))), len(patches)))
            candidates = patches
            if len(patches) > max_candidates:
                candidates = patches[np.sort(rng.choice(len(patches), max_candidates, replace=False))]
            bank_size = min(bank_size, len(candidates))
            t_core = time.perf_counter()
            self.bank = candidates[greedy_coreset(candidates, bank_size, seed=seed,
                                                  per_step=max(1, bank_size // 1000))]
            self.coreset_s = time.perf_counter() - t_core
            del patches, candidates
            nn = NearestNeighbourScorer(self.bank)
            self.raw["nn"] = {k: [nn.distances(_flat(f)).reshape(grid_shape) for f in fs] for k, fs in feats.items()}
        if "gaussian" in kinds:
            stacked = np.stack([_flat(f) for f in train_feats])  # (N, T * g * g, D)
            self.gaussians["gaussian"] = GaussianStats.fit_array(stacked, seed=seed)
            if t_dim > 1:  # one Gaussian per in-tile position, learnt from every tile of every image
                self.gaussians["shared"] = GaussianStats.fit_array(
                    stacked.reshape(len(stacked) * t_dim, gh * gw, dim), seed=seed)
            for key, g in self.gaussians.items():
                self.raw[key] = {k: [g.tile_distances(_flat(f), t_dim).reshape(grid_shape) for f in fs]
                                 for k, fs in feats.items()}
            del stacked
        self.gaussian_kinds = tuple(self.gaussians) or ("gaussian",)
        self.position_normalise = position_normalise
        self.scales: dict[str, np.ndarray | None] = {
            k: position_scale_from(np.stack(r["hold"])) if position_normalise else None for k, r in self.raw.items()}

        def mask_for(img: np.ndarray) -> np.ndarray | None:
            if not prep.ignore:
                return None
            r = prep.roi or (0, 0, img.shape[1], img.shape[0])
            return ignore_cells(prep.ignore, r, prep.canvas_size, offsets, prep.size, prep.size // gh)

        self.mask_for = mask_for
        self.hold_masks = [mask_for(arrays[i]) for i in hold_idx]

    def _parts(self, which: str, gkey: str) -> tuple[str, ...]:
        return tuple(k for k, on in (("nn", which in ("nn", "combined")), (gkey, which in ("gaussian", "combined")))
                     if on)

    def good_scores(self, which: str, gkey: str) -> list[float]:
        """Scores of the held-out goods, each with a leave-one-out position scale."""
        parts = self._parts(which, gkey)
        held = {k: np.stack(self.raw[k]["hold"]) for k in parts}
        out_ = []
        for i in range(len(self.hold_masks)):
            # leave-one-out scale, so a held-out image does not calibrate its own normalisation
            loo = {k: self.scales[k] for k in parts}
            if self.position_normalise and len(self.hold_masks) >= 2:
                loo = {k: position_scale_from(np.delete(held[k], i, axis=0)) for k in parts}
            maps = _combine({k: held[k][i] for k in parts}, loo)
            out_.append(_score(maps, self.top_k, self.hold_masks[i]))
        return out_

    def scores(self, which: str, gkey: str, part: str, imgs: Sequence[np.ndarray]) -> list[float]:
        """Scores of the defect or synthetic images ``imgs``."""
        parts = self._parts(which, gkey)
        return [_score(_combine({k: self.raw[k][part][i] for k in parts}, self.scales), self.top_k, self.mask_for(a))
                for i, a in enumerate(imgs)]


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
    backbone: str | None = None,
    feature_dim: int | None = None,
    grid_stride: int = 16,
    normalize_brightness: bool = True,
    position_normalise: bool = True,
    top_k: int | None = None,
    max_candidates: int = 200_000,
    seed: int = 0,
    threads: int = 2,
    progress: bool = True,
    scorer: str = "auto",
    keep_all_scorers: bool = False,
    smallest_defect_px: float | None = None,
    smallest_defect_mm: float | None = None,
    mm_per_px: float | None = None,
    canvas: tuple[int, int] | None = None,
    tile_overlap: int | None = None,
    ignore: Sequence[tuple[int, int, int, int]] = (),
) -> dict[str, Any]:
    """Train on good images, write ``out`` (``.axi``) and return a report dict.

    ``scorer``: ``"gaussian"`` (a Gaussian of good patch features per position), ``"nn"``
    (distance to the nearest patch of a memory bank: ``coreset_ratio`` of the training patches, at
    most ``max_bank``), ``"combined"`` (the mean of both) or ``"auto"`` (default: all three are
    built and the one that best separates held-out goods from synthetic defects drawn on them is
    kept; ties go to the memory bank, which needs fewer images). ``keep_all_scorers`` keeps the
    parts of the scorers not chosen in the file (to compare them later).
    ``holdout`` of the images are kept out of the statistics to calibrate the threshold for
    ``target_frr``; ``defect_images`` (optional, labelled defective) refine it. With
    ``position_normalise`` a patch's score is divided by the mean held-out good score at its
    position. A tile's score is the mean of its ``top_k`` highest patch scores (default: one patch
    in 64); the image's is its worst tile's.
    ``backbone``: the ImageNet EfficientNet-Lite variant, ``lite0``, ``lite1`` or ``lite2`` (default:
    ``features.INSPECTOR_BACKBONE``);
    ``blocks`` (default: the variant's stride-8 and last stride-16 stages) index its blocks.
    ``normalize_brightness`` (default on) rescales every image to a fixed mean and contrast before
    the backbone: on magnetic tiles it separated held-out goods from synthetic defects better
    (validation AUROC 0.969 against 0.964 without).

    Native resolution: give ``smallest_defect_px`` (or ``smallest_defect_mm`` with the camera's
    ``mm_per_px``) and the region is resized so that defect spans about one 16-pixel patch cell,
    onto a canvas of the part's own aspect, cut into tiles of ``size`` overlapping by
    ``tile_overlap`` pixels (or set ``canvas`` = ``(width, height)`` directly). With ``tile_overlap``
    None (default) both tiles overlapping by a quarter of a tile and tiles abutting are built, and
    the layout that best separates the held-out goods from their synthetic defects is kept. A tiled
    Gaussian is fitted both per tile and shared by the tiles (one per in-tile position, from every
    tile), and the same validation keeps one. ``ignore``:
    ``(x, y, width, height)`` rectangles of the image that never count.
    """
    from axline.inspect import features as feat
    from axline.inspect.synthetic import synthetic_defect
    from axline.inspect.tiling import plan_canvas, scale_for_defect

    _validate(coreset_ratio, target_frr, holdout, max_bank, size)
    if scorer not in ("gaussian", "nn", "combined", "auto"):
        raise ValueError(f"scorer must be gaussian, nn, combined or auto, got {scorer!r}")
    if max_candidates < 16:
        raise ValueError(f"max_candidates must be at least 16, got {max_candidates}")
    t0 = time.perf_counter()
    arrays = _load_all(images, "images")
    if len(arrays) < 3:
        raise ValueError(f"images must hold at least 3 good images (2 to learn from, 1 to calibrate), got {len(arrays)}")
    defects = _load_all(defect_images, "defect_images")
    scale = None
    if canvas is None and (smallest_defect_px is not None or smallest_defect_mm is not None):
        scale = scale_for_defect(smallest_defect_px, smallest_defect_mm, mm_per_px)
        if roi is not None:
            rw, rh = roi[2], roi[3]
        else:
            rw = int(np.median([a.shape[1] for a in arrays]))
            rh = int(np.median([a.shape[0] for a in arrays]))
        canvas = plan_canvas(rw, rh, scale, size)
    prep = Preprocessing(size=size, roi=tuple(roi) if roi is not None else None,  # type: ignore[arg-type]
                         normalize_brightness=normalize_brightness, color=_color_mode(arrays),
                         canvas=tuple(canvas) if canvas is not None else None,  # type: ignore[arg-type]
                         tile_overlap=quarter_overlap(size) if tile_overlap is None else tile_overlap, scale=scale,
                         ignore=list(ignore))
    overlaps = overlap_candidates(prep, tile_overlap)
    layouts = [replace(prep, tile_overlap=ov) for ov in overlaps]
    backbone = backbone or feat.INSPECTOR_BACKBONE
    bb = feat.get_backbone(backbone)
    blocks = tuple(blocks) if blocks is not None else bb.default_blocks
    onnx_bytes = feat.build_backbone_onnx(size, blocks, feature_dim, seed, grid_stride, backbone=backbone)
    runtime = BackboneRunner(onnx_bytes, threads)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(arrays))
    n_hold = max(1, int(round(holdout * len(arrays))))
    hold_idx, train_idx = np.sort(order[:n_hold]), np.sort(order[n_hold:])
    multi_tile = any(len(p.tiles()) > 1 for p in layouts)
    # synthetic defects on the held-out goods decide whatever is left to choose: the scorer, the
    # tile layout, and for tiled parts whether the Gaussian is kept per tile or shared by the tiles
    choosing = scorer == "auto" or len(layouts) > 1 or (multi_tile and scorer in ("gaussian", "combined"))
    n_synth = len(hold_idx) if choosing else 0
    synth_rng = np.random.default_rng(seed + 1)
    synth = [synthetic_defect(arrays[i], synth_rng)[0] for i in hold_idx] if n_synth else []

    bar = ProgressBar((len(arrays) + len(defects) + n_synth) * len(layouts), "extracting features", progress)
    fits = [_LayoutFit(lay, runtime, arrays, train_idx, hold_idx, defects, synth, scorer, bar, rng=rng,
                        coreset_ratio=coreset_ratio, max_bank=max_bank, max_candidates=max_candidates, seed=seed,
                        position_normalise=position_normalise, top_k=top_k)
            for lay in layouts]
    bar.close()

    candidates = []  # (validation AUROC, layout index, scorer, Gaussian kind)
    for li, fit in enumerate(fits):
        for which in (("nn", "gaussian", "combined") if scorer == "auto" else (scorer,)):
            for gkey in (fit.gaussian_kinds if which != "nn" else ("gaussian",)):
                auc = (_auroc(fit.good_scores(which, gkey), fit.scores(which, gkey, "synth", synth))
                       if n_synth else float("nan"))
                candidates.append((auc, li, which, gkey))
    best = candidates[0]
    for c in candidates[1:]:  # ties keep the earlier: the requested layout, the memory bank, the per-tile Gaussian
        if c[0] > best[0]:
            best = c
    _, li, chosen, gkey = best
    fit = fits[li]
    prep, offsets = fit.prep, fit.offsets
    validation: dict[str, float] = {}
    if scorer == "auto":
        for auc, lj, which, _g in candidates:  # each scorer's best Gaussian kind in the chosen layout
            if lj == li:
                validation[which] = max(auc, validation.get(which, auc))
    tiling_validation = [{"tile_overlap": fits[lj].prep.tile_overlap, "tiles": len(fits[lj].offsets),
                          "scorer": which, "gaussian": GAUSSIAN_KINDS[g] if which != "nn" else None,
                          "auroc": None if math.isnan(auc) else round(auc, 4)}
                         for auc, lj, which, g in candidates] if n_synth else []
    gaussian = fit.gaussians.get(gkey) if chosen in ("gaussian", "combined") else None
    bank = fit.bank if chosen in ("nn", "combined") else np.zeros((0, fit.dim), np.float32)
    if keep_all_scorers:
        gaussian = fit.gaussians.get(gkey)
        bank = fit.bank
    scales = fit.scales
    dim, n_patches, coreset_s, top_k = fit.dim, fit.n_patches, fit.coreset_s, fit.top_k
    good_scores = fit.good_scores(chosen, gkey)
    defect_scores = fit.scores(chosen, gkey, "defect", defects)
    threshold = calibrate_threshold(good_scores, target_frr, defect_scores)
    train_s = time.perf_counter() - t0
    info = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "axline_version": __version__,
        "backbone": f"efficientnet-{bb.name} (ImageNet, {bb.package} wheel)",
        "blocks": list(blocks),
        "grid_stride": grid_stride,
        "feature_dim": int(dim),
        "scorer": chosen,
        "scorer_validation_auroc": validation,
        "gaussian": GAUSSIAN_KINDS[gkey] if gaussian is not None else None,
        "tiles": len(offsets),
        "tile_overlap": prep.tile_overlap,
        "tiling_validation": tiling_validation,
        "n_images": len(arrays),
        "n_bank_images": int(len(train_idx)),
        "n_holdout_images": int(len(hold_idx)),
        "n_defect_images": len(defects),
        "n_patches": int(n_patches),
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
        position_scale=scales.get("nn") if len(bank) else None,
        top_k=top_k,
        scorer=chosen,
        gaussian=gaussian,
        gaussian_scale=scales.get(gkey) if gaussian is not None else None,
    )
    from axline.inspect.health import fit_reference

    model.health = fit_reference([crop_roi(arrays[i], prep.roi) for i in
                                  np.unique(np.linspace(0, len(arrays) - 1, min(len(arrays), 300)).astype(int))])
    path = model.save(out)
    frr = float(np.mean(np.asarray(good_scores) > threshold))
    recall = float(np.mean(np.asarray(defect_scores) > threshold)) if defect_scores else None
    return {
        "model": str(path),
        "threshold": threshold,
        "holdout_false_reject_rate": frr,
        "defect_recall": recall,
        "scorer": chosen,
        "scorer_validation_auroc": validation,
        "gaussian": info["gaussian"],
        "tiles": len(offsets),
        "tile_overlap": prep.tile_overlap,
        "tiling_validation": tiling_validation,
        "canvas": list(prep.canvas_size),
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
    stats: dict[str, Any] = {"threshold_before": base.threshold, "bank_before": int(len(base.bank)),
                             "gaussian_count_before": None if base.gaussian is None else base.gaussian.count}
    goods_before = [runtime.inspect(a).score for a in goods]
    new_rows = []
    gaussian = None
    if base.gaussian is not None:
        from axline.inspect.scoring import GaussianStats

        gaussian = GaussianStats(base.gaussian.count, base.gaussian.mean.copy(), base.gaussian.cov.copy(),
                                 base.gaussian.projection)
    for a in goods:
        f = runtime.image_features(a)
        if len(base.bank):
            d = runtime.patch_scores(f, image_shape=a.shape).ravel()
            new_rows.append(_flat(f)[d > cutoff])
        if gaussian is not None:
            w = max(1.0, FEEDBACK_WEIGHT * gaussian.count)
            patches = _flat(f)
            if gaussian.positions == len(patches):
                gaussian.add(patches, weight=w)
            else:  # one Gaussian shared by the tiles: each tile is one more sample of it
                for tile in patches.reshape(len(f), -1, patches.shape[1]):
                    gaussian.add(tile, weight=w / len(f))
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
        scorer=base.scorer,
        gaussian=gaussian,
        gaussian_scale=base.gaussian_scale,
        types=base.types, health=base.health,
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
        gaussian_count_after=None if gaussian is None else gaussian.count,
        good_scores_before=goods_before,
        good_scores_after=goods_after,
        defect_scores=defect_scores,
    )
    if out is not None:
        updated.save(out)
    return updated, stats


def teach_defect_type(
    model: InspectorModel | str | Path,
    image: ImageInput,
    type_id: str,
    names: dict[str, str] | None = None,
    *,
    out: str | Path | None = None,
    source: str | None = None,
) -> tuple[InspectorModel, dict[str, Any]]:
    """Keep ``image`` (a confirmed defect) as a labelled example of defect type ``type_id``.

    The description of the image's defect (see :func:`axline.inspect.types.describe`) joins the
    type's examples; the backbone and the scores are unchanged. ``names``: ``{"en": ..., "ko": ...}``
    (needed for a new type). Returns the new model (saved to ``out`` when given) and the examples per type.
    """
    from axline.inspect.types import DefectTypes, describe, flipped_views

    base = model if isinstance(model, InspectorModel) else InspectorModel.load(model)
    runtime = Inspector(base, batch=1)
    arr = load_image(image)
    v = runtime.inspect(arr)
    types = DefectTypes.from_json(base.types)
    types.add(type_id, describe(runtime, arr, v.features, v.patch_scores, types.descriptor), names, source=source,
              views=flipped_views(runtime, arr, types.descriptor))
    types.fit()  # the cross-validation is kept with the types, not redone on the station's first reject
    updated = InspectorModel(
        backbone_onnx=base.backbone_onnx, bank=base.bank, threshold=base.threshold, preprocessing=base.preprocessing,
        good_scores=list(base.good_scores), defect_scores=list(base.defect_scores), target_frr=base.target_frr,
        info=dict(base.info), position_scale=base.position_scale, top_k=base.top_k, scorer=base.scorer,
        gaussian=base.gaussian, gaussian_scale=base.gaussian_scale, types=types.to_json(), health=base.health,
    )
    if out is not None:
        updated.save(out)
    return updated, {"type": type_id, "names": types.names[type_id], "examples": types.counts()}
