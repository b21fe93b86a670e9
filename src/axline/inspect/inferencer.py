"""Deployable inspector: runs a trained ``.axi`` model with onnxruntime and NumPy only (no torch).

``Inspector.load("model.axi").inspect(image)`` returns a :class:`Verdict` with the image score
(the worst tile's score; a tile's score is the mean of its highest patch scores, each the
Mahalanobis distance to that position's good Gaussian, the distance to the nearest good patch in
the memory bank, or both), ``"pass"`` or ``"reject"`` against the calibrated threshold, the score
of every tile and an anomaly map at the image's size, stitched from the tiles.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy.ndimage import gaussian_filter

from axline import i18n
from axline.inspect.model import InspectorModel, Preprocessing
from axline.inspect.tiling import cut_tiles, ignore_cells, stitch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BANK_CHUNK = 2048
BRIGHTNESS_MEAN = 127.5
BRIGHTNESS_STD = 48.0


# Labels for the dashboard (Korean and English); the CLI prints the English key.
VERDICT_LABELS: dict[str, dict[str, str]] = {v: i18n.both(f"inspect.verdict.{v}") for v in ("pass", "reject")}


class ImageError(ValueError):
    """An image could not be read or has an unusable shape."""


@dataclass
class Verdict:
    """Result of inspecting one image."""

    score: float
    verdict: str
    anomaly_map: np.ndarray
    threshold: float
    tile_scores: list[float] | None = None
    tile_boxes: list[tuple[int, int, int, int]] | None = None  # (x, y, width, height) in image pixels
    features: np.ndarray | None = None  # (T, D, g, g) backbone features, for defect types
    patch_scores: np.ndarray | None = None  # (T, g, g)
    defect_type: dict[str, Any] | None = None  # type, confidence, label {en, ko}, known (rejects only)

    @property
    def rejected(self) -> bool:
        """True when the part is judged defective."""
        return self.verdict == "reject"

    def label(self, language: str = "en") -> str:
        """The verdict in ``language`` (``"en"`` or ``"ko"``) for display."""
        if language not in ("en", "ko"):
            raise ValueError(f"language must be 'en' or 'ko', got {language!r}")
        return VERDICT_LABELS[self.verdict][language]


def load_image(image: np.ndarray | str | Path) -> np.ndarray:
    """Return an image as a uint8 array ``(H, W)`` or ``(H, W, 3)``; raise :class:`ImageError`."""
    if isinstance(image, np.ndarray):
        arr = image
        name = "array"
    else:
        name = str(image)
        try:
            with Image.open(image) as im:
                im.load()
                if im.mode not in ("L", "RGB"):
                    im = im.convert("RGB" if im.mode in ("RGBA", "P", "CMYK", "YCbCr", "LA") else "L")
                arr = np.asarray(im)
        except FileNotFoundError as exc:
            raise ImageError(f"{name}: no such image file") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{name}: not a readable image ({exc}); check the file or re-save it") from exc
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ImageError(f"{name}: expected a grey (H, W) or colour (H, W, 3) image, got shape {arr.shape}")
    if min(arr.shape[:2]) < 8:
        raise ImageError(f"{name}: image is {arr.shape[1]}x{arr.shape[0]} pixels; at least 8x8 is needed")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise ImageError(f"{name}: pixel values must be finite numbers 0..255")
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return arr


def crop_roi(image: np.ndarray, roi: tuple[int, int, int, int] | None) -> np.ndarray:
    """Crop ``(x, y, width, height)``; error if the region is not inside the image."""
    if roi is None:
        return image
    x, y, w, h = roi
    if x + w > image.shape[1] or y + h > image.shape[0]:
        raise ImageError(
            f"region of interest {roi} (x, y, width, height) does not fit in a "
            f"{image.shape[1]}x{image.shape[0]} image; retrain with a smaller --roi"
        )
    return image[y:y + h, x:x + w]


def preprocess(image: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Turn a uint8 image (already cropped to the ROI) into the canvas ``(3, H, W)`` (the backbone
    input ``(3, S, S)`` when the model has no canvas)."""
    if prep.color == "grey" and image.ndim == 3:
        pil = Image.fromarray(image, "RGB").convert("L")
    else:
        pil = Image.fromarray(image)
    pil = pil.resize(prep.canvas_size, Image.BILINEAR)
    arr = np.asarray(pil, dtype=np.float32)
    if prep.normalize_brightness:
        arr = (arr - arr.mean()) / (arr.std() + 1e-3) * BRIGHTNESS_STD + BRIGHTNESS_MEAN
        np.clip(arr, 0.0, 255.0, out=arr)
    if arr.ndim == 2:
        return np.repeat(arr[None], 3, axis=0)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


@functools.lru_cache(maxsize=64)
def bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """Interpolation matrix ``(out_size, in_size)`` of bilinear resizing with half-pixel centres.

    Matches ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``. Cached
    (read-only): a station sees the same few image sizes again and again.
    """
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = (src - lo).astype(np.float32)
    mat = np.zeros((out_size, in_size), np.float32)
    rows = np.arange(out_size)
    np.add.at(mat, (rows, lo), 1.0 - frac)
    np.add.at(mat, (rows, hi), frac)
    mat.setflags(write=False)
    return mat


def anomaly_map(patch_scores: np.ndarray, height: int, width: int, sigma_px: float) -> np.ndarray:
    """Upsample patch scores ``(h, w)`` bilinearly to ``(height, width)`` and smooth (Gaussian)."""
    up = bilinear_matrix(height, patch_scores.shape[0]) @ patch_scores.astype(np.float32)
    up = up @ bilinear_matrix(width, patch_scores.shape[1]).T
    if sigma_px > 0:
        up = gaussian_filter(up, sigma=sigma_px, mode="nearest", truncate=3.0)
    return up.astype(np.float32, copy=False)


class NearestNeighbourScorer:
    """Exact nearest-neighbour distances to a memory bank: one float32 matmul per bank chunk.

    Candidates come from ``|q - b|^2 = |q|^2 + (|b|^2 - 2 q.b)`` on centred features with the bank
    stored as ``[-2 b, |b|^2]``, so one matrix product gives the bank-dependent part; the distance to
    the chosen bank row is then recomputed directly, which keeps float32 rounding below 1e-5.
    """

    def __init__(self, bank: np.ndarray, chunk: int = BANK_CHUNK) -> None:
        if bank.ndim != 2 or len(bank) == 0:
            raise ValueError(f"bank must be a non-empty (M, D) array, got shape {bank.shape}")
        if not 1 <= chunk <= 1_000_000:
            raise ValueError(f"chunk must be between 1 and 1000000, got {chunk}")
        self.center = bank.astype(np.float32).mean(axis=0)
        b = bank.astype(np.float32) - self.center
        self.bank = b
        self.dim = b.shape[1]
        self.chunk = chunk
        aug = np.empty((b.shape[1] + 1, b.shape[0]), np.float32)
        aug[:-1] = -2.0 * b.T
        aug[-1] = np.einsum("ij,ij->i", b, b)
        self._chunks = [np.ascontiguousarray(aug[:, s:s + chunk]) for s in range(0, b.shape[0], chunk)]
        self._aug_full: np.ndarray | None = None

    @property
    def bank_aug(self) -> np.ndarray:
        """The whole ``(D + 1, M)`` augmented bank (input of the fused ONNX search)."""
        if self._aug_full is None:
            self._aug_full = np.ascontiguousarray(np.concatenate(self._chunks, axis=1))
        return self._aug_full

    def distances_to(self, queries: np.ndarray, nearest: np.ndarray) -> np.ndarray:
        """Exact distances of queries ``(n, D)`` to the bank rows ``nearest`` ``(n,)`` found for them."""
        diff = queries - self.center - self.bank[nearest]
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))

    def distances(self, queries: np.ndarray) -> np.ndarray:
        """Euclidean distance of each query ``(n, D)`` to its nearest bank row; returns ``(n,)``."""
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must be (n, {self.dim}), got shape {queries.shape}")
        n = queries.shape[0]
        q = np.empty((n, self.dim + 1), np.float32)
        np.subtract(queries, self.center, out=q[:, :-1])
        q[:, -1] = 1.0
        rows = np.arange(n)
        best_val = np.full(n, np.inf, np.float32)
        best_idx = np.zeros(n, np.int64)
        for k, chunk in enumerate(self._chunks):
            part = q @ chunk
            idx = part.argmin(axis=1)
            val = part[rows, idx]
            better = val < best_val
            best_val[better] = val[better]
            best_idx[better] = idx[better] + k * self.chunk
        diff = q[:, :-1] - self.bank[best_idx]
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def normalise_patch_scores(raw: np.ndarray, position_scale: np.ndarray | None) -> np.ndarray:
    """Divide nearest-bank distances ``(h, w)`` by the per-position scale (if the model has one)."""
    if position_scale is None:
        return raw
    if position_scale.shape != raw.shape:
        raise ValueError(f"position_scale shape {position_scale.shape} differs from the patch grid {raw.shape}")
    return (raw / position_scale).astype(np.float32)


def image_score(patch_scores: np.ndarray, top_k: int) -> float:
    """Image score: the mean of the ``top_k`` highest patch scores."""
    flat = patch_scores.ravel()
    k = min(max(1, top_k), flat.size)
    return float(np.partition(flat, flat.size - k)[flat.size - k:].astype(np.float64).mean())


def tile_top_k_means(patch_scores: np.ndarray, top_k: int) -> list[float]:
    """Score of every tile ``(T, g, g)`` at once: the mean of its ``top_k`` highest patch scores
    (equal to :func:`image_score` tile by tile)."""
    flat = patch_scores.reshape(len(patch_scores), -1)
    k = min(max(1, top_k), flat.shape[1])
    top = np.partition(flat, flat.shape[1] - k, axis=1)[:, flat.shape[1] - k:]
    return top.astype(np.float64).mean(axis=1).tolist()


def session_options(threads: int = 2) -> Any:
    """onnxruntime session options: ``threads`` intra-op threads, all graph optimisations.

    Worker threads do not spin while idle: on a shared 2-core PC, spinning threads fight with every
    other process (and with NumPy's BLAS threads) and multiply the latency.
    """
    import onnxruntime as ort

    if not 1 <= threads <= 256:
        raise ValueError(f"threads must be between 1 and 256, got {threads}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


class BackboneRunner:
    """The exported graph in an onnxruntime session: patch features and the nearest-bank search."""

    def __init__(self, onnx_bytes: bytes, threads: int = 2) -> None:
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(
                onnx_bytes, session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"the model's backbone.onnx cannot be loaded ({exc}); retrain the model") from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        if set(inputs) != {"image", "bank", "center"}:
            raise ValueError(f"the model's backbone.onnx has inputs {sorted(inputs)}; retrain the model")
        self.dim = int(inputs["center"].shape[0]) if isinstance(inputs["center"].shape[0], int) else None
        self._dummy: tuple[np.ndarray, np.ndarray] | None = None

    def features(self, batch: np.ndarray) -> np.ndarray:
        """Patch features of ``(N, 3, S, S)`` float32 pixels 0..255; returns ``(N, D, h, w)``."""
        if self._dummy is None:
            dim = self.dim
            if dim is None:  # a symbolic dimension: learn it from one run
                probe = np.zeros((1, 3, batch.shape[2], batch.shape[3]), np.float32)
                dim = self.session.run(["features"], {"image": probe, "bank": np.zeros((1, 1), np.float32),
                                                      "center": np.zeros(1, np.float32)})[0].shape[1]
            self._dummy = (np.zeros((dim + 1, 1), np.float32), np.zeros(dim, np.float32))
        bank, center = self._dummy
        feed = {"image": np.ascontiguousarray(batch, dtype=np.float32), "bank": bank, "center": center}
        return self.session.run(["features"], feed)[0]

    def features_and_nearest(
        self, batch: np.ndarray, scorer: NearestNeighbourScorer
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features ``(N, D, h, w)`` and the nearest bank row of every patch ``(N, h*w)`` in one run."""
        feed = {"image": np.ascontiguousarray(batch, dtype=np.float32), "bank": scorer.bank_aug,
                "center": scorer.center}
        feats, nearest = self.session.run(["features", "nearest"], feed)
        return feats, nearest


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread() -> Any:
    """Context: NumPy's BLAS on one thread. Its small products gain nothing from threads, and on
    a loaded 2-core PC waiting threads multiply their time (40 ms instead of 0.4 ms)."""
    return _blas_controller().limit(limits=1, user_api="blas")


class Inspector:
    """Loads a trained model once and inspects images (torch-free).

    ``threads``: onnxruntime threads (default: the machine's cores, at most 4); ``batch``: tiles per
    backbone run (default: all tiles of an image in one run, so the graph's fixed cost is paid once
    per image and no Python runs between tiles); ``ignore``: extra ``(x, y, width, height)``
    rectangles never to count.
    """

    def __init__(self, model: InspectorModel, threads: int | None = None, batch: int | None = None,
                 ignore: list[tuple[int, int, int, int]] | None = None) -> None:
        self.model = model
        self.prep = model.preprocessing
        self.threshold = float(model.threshold)
        self.threads = threads if threads is not None else auto_threads()
        self.backbone = BackboneRunner(model.backbone_onnx, self.threads)
        self.scorer = NearestNeighbourScorer(model.bank) if model.scorer in ("nn", "combined") else None
        from axline.inspect.types import DefectTypes

        self.types = DefectTypes.from_json(model.types)
        self.offsets = self.prep.tiles()
        self.ignore = list(self.prep.ignore) + [tuple(int(v) for v in r) for r in (ignore or [])]
        self._ignore_cache: dict[tuple[int, ...], np.ndarray | None] = {}
        self.batch = batch if batch is not None else len(self.offsets)
        if not 1 <= self.batch <= 256:
            raise ValueError(f"batch must be between 1 and 256, got {self.batch}")

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None, batch: int | None = None,
             ignore: list[tuple[int, int, int, int]] | None = None) -> Inspector:
        """Load a ``.axi`` file (verified) and prepare the runtime."""
        return cls(InspectorModel.load(path), threads=threads, batch=batch, ignore=ignore)

    def _run_tiles(self, tiles: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray | None]:
        feats, nearest = [], []
        for s in range(0, len(tiles), batch):
            part = tiles[s:s + batch]
            if self.scorer is not None:
                f, n = self.backbone.features_and_nearest(part, self.scorer)
                nearest.append(n)
            else:
                f = self.backbone.features(part)
            feats.append(f)
        return np.concatenate(feats), (np.concatenate(nearest) if nearest else None)

    def tiles(self, crop: np.ndarray) -> np.ndarray:
        """The backbone inputs ``(T, 3, S, S)`` of an image already cropped to the ROI."""
        return cut_tiles(preprocess(crop, self.prep), self.offsets, self.prep.size)

    def features(self, batch: np.ndarray) -> np.ndarray:
        """Backbone patch features of ``(N, 3, S, S)`` float32 pixels; returns ``(N, D, h, w)``."""
        return self.backbone.features(batch)

    def image_features(self, image: np.ndarray) -> np.ndarray:
        """Backbone features ``(T, D, g, g)`` of every tile of a full image."""
        return self._run_tiles(self.tiles(crop_roi(load_image(image), self.prep.roi)), self.batch)[0]

    def patch_scores(self, features: np.ndarray, nearest: np.ndarray | None = None,
                     image_shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Patch scores ``(T, g, g)`` of tile features ``(T, D, g, g)`` (or one tile ``(D, g, g)``);
        cells in ignored rectangles score 0 (``image_shape`` is needed for them without a ROI)."""
        if features.ndim == 3:
            features = features[None]
        t, d, h, w = features.shape
        q = features.transpose(0, 2, 3, 1).reshape(t * h * w, d)
        parts = []
        if self.model.scorer in ("nn", "combined"):
            assert self.scorer is not None
            if nearest is not None:
                raw = self.scorer.distances_to(q, nearest.reshape(-1))
            else:
                raw = self.scorer.distances(q)
            parts.append(normalise_patch_scores(raw.reshape(t, h, w), self.model.position_scale))
        if self.model.scorer in ("gaussian", "combined"):
            raw = self.model.gaussian.tile_distances(q, t).reshape(t, h, w)
            parts.append(normalise_patch_scores(raw, self.model.gaussian_scale))
        scores = parts[0] if len(parts) == 1 else 0.5 * (parts[0] + parts[1])
        mask = self._ignored(scores.shape[1], image_shape)
        if mask is not None:
            scores = np.where(mask, 0.0, scores).astype(np.float32)
        return scores.astype(np.float32, copy=False)

    def _ignored(self, g: int, image_shape: tuple[int, ...] | None) -> np.ndarray | None:
        if not self.ignore:
            return None
        if self.prep.roi is not None:
            roi = self.prep.roi
        elif image_shape is not None:
            roi = (0, 0, int(image_shape[1]), int(image_shape[0]))
        else:
            raise ValueError("ignore rectangles without a region of interest need the image's shape")
        key = (g, *roi)
        if key not in self._ignore_cache:
            if len(self._ignore_cache) > 64:  # images of many sizes: keep the cache bounded
                self._ignore_cache.clear()
            self._ignore_cache[key] = ignore_cells(self.ignore, roi, self.prep.canvas_size, self.offsets,
                                                   self.prep.size, self.prep.size // g)
        return self._ignore_cache[key]

    def inspect(self, image: np.ndarray | str | Path, defect_type: bool = True) -> Verdict:
        """Score one image (array or file path) and decide pass or reject.

        The region is resized to the canvas and cut into tiles; onnxruntime computes each tile's
        features (and, for the memory bank, each patch's nearest bank row); NumPy then computes the
        patch scores, the tile scores, the image score and the stitched anomaly map. ``defect_type``
        False: a reject's type is left for :meth:`type_of` (a station asks for it after the PLC has
        its signal, so the conveyor does not wait for it).
        """
        full = load_image(image)
        crop = crop_roi(full, self.prep.roi)
        feats, nearest = self._run_tiles(self.tiles(crop), self.batch)
        with one_blas_thread():
            return self._verdict(full, self.patch_scores(feats, nearest, full.shape), feats, defect_type)

    def region(self, image: np.ndarray | str | Path) -> np.ndarray:
        """The part of ``image`` (array or file path) that is inspected: its region of interest."""
        return crop_roi(load_image(image), self.prep.roi)

    def runner(self, onnx_bytes: bytes) -> BackboneRunner:
        """A runner for another backbone graph, with this inspector's threads."""
        return BackboneRunner(onnx_bytes, self.threads)

    def type_of(self, image: np.ndarray | str | Path, v: Verdict) -> dict | None:
        """The defect type of a reject ``v`` of ``image`` (None for a pass or while no type is taught)."""
        if v.verdict != "reject" or v.features is None or v.patch_scores is None or not self.types.names:
            return None
        from axline.inspect.types import describe

        with one_blas_thread():
            return self.types.predict(describe(self, load_image(image), v.features, v.patch_scores,
                                               self.types.descriptor), observe=True)

    def verdict_from_features(self, full: np.ndarray, features: np.ndarray) -> Verdict:
        """Verdict for image ``full`` given its tile features ``(T, D, g, g)`` (ROI already applied)."""
        with one_blas_thread():
            return self._verdict(full, self.patch_scores(features, image_shape=full.shape),
                                 features if features.ndim == 4 else features[None])

    def _verdict(self, full: np.ndarray, scores: np.ndarray, feats: np.ndarray | None = None,
                 defect_type: bool = True) -> Verdict:
        tile_scores = tile_top_k_means(scores, self.model.top_k)
        score = max(tile_scores)
        if self.prep.roi is not None:
            x, y, w, h = self.prep.roi
        else:
            x, y, h, w = 0, 0, full.shape[0], full.shape[1]
        cw, ch = self.prep.canvas_size
        g = scores.shape[1]
        grid = stitch(scores, self.offsets, (cw, ch), self.prep.size // g)
        sigma = self.prep.smoothing_sigma * max(h / ch, w / cw)
        amap = anomaly_map(grid, h, w, sigma)
        if self.prep.roi is not None:
            canvas = np.zeros(full.shape[:2], np.float32)
            canvas[y:y + h, x:x + w] = amap
            amap = canvas
        for ix, iy, iw, ih in self.ignore:
            amap[max(iy, 0):iy + ih, max(ix, 0):ix + iw] = 0.0
        boxes = [(x + round(ox * w / cw), y + round(oy * h / ch), round(self.prep.size * w / cw),
                  round(self.prep.size * h / ch)) for oy, ox in self.offsets]
        verdict = "reject" if score > self.threshold else "pass"
        dtype = None
        if defect_type and verdict == "reject" and feats is not None and self.types.names:
            from axline.inspect.types import describe

            dtype = self.types.predict(describe(self, full, feats, scores, self.types.descriptor), observe=True)
        return Verdict(score=score, verdict=verdict, anomaly_map=amap, threshold=self.threshold,
                       tile_scores=tile_scores, tile_boxes=boxes, features=feats, patch_scores=scores,
                       defect_type=dtype)

    def health_monitor(self) -> Any:
        """A fresh :class:`~axline.inspect.health.HealthMonitor` for this model (None without a reference)."""
        if self.model.health is None:
            return None
        from axline.inspect.health import HealthMonitor

        return HealthMonitor(self.model.health)

    def inspect_many(
        self, images: Iterable[str | Path]
    ) -> Iterator[tuple[str, Verdict | None, str | None]]:
        """Inspect files one by one; yields ``(path, verdict, error)`` and never stops on a bad file."""
        for path in images:
            try:
                yield str(path), self.inspect(path), None
            except ImageError as exc:
                yield str(path), None, str(exc)


def list_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories (non-recursive, sorted) into image paths."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()))
        else:
            out.append(p)
    return out


def save_heatmap_overlay(
    image: np.ndarray | str | Path,
    anomaly: np.ndarray,
    out_path: str | Path,
    threshold: float | None = None,
    alpha: float = 0.5,
) -> Path:
    """Write a PNG: the image with the anomaly map as a blue-to-red overlay.

    Colours are scaled from 0 to ``2 * threshold`` when a threshold is given (red = clearly above
    it), otherwise to the map's own maximum.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    base = load_image(image)
    if anomaly.shape != base.shape[:2]:
        raise ValueError(f"anomaly map shape {anomaly.shape} differs from the image's {base.shape[:2]}")
    rgb = np.repeat(base[:, :, None], 3, axis=2) if base.ndim == 2 else base
    top = 2.0 * threshold if threshold is not None and threshold > 0 else float(anomaly.max()) or 1.0
    t = np.clip(anomaly / top, 0.0, 1.0)
    heat = np.stack([np.clip(2 * t, 0, 1), np.clip(2 - np.abs(4 * t - 2), 0, 1), np.clip(2 - 2 * t, 0, 1)], -1)
    mixed = (1 - alpha) * rgb.astype(np.float32) + alpha * 255.0 * heat
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8), "RGB").save(out_path, format="PNG")
    return out_path


def auto_threads() -> int:
    """Inference threads: ``AXLINE_INSPECT_THREADS``, else the machine's cores (at most 4)."""
    try:
        return max(1, int(os.environ["AXLINE_INSPECT_THREADS"]))
    except (KeyError, ValueError):
        return max(1, min(os.cpu_count() or 2, 4))


def default_threads() -> int:
    """Inference threads (see :func:`auto_threads`)."""
    return auto_threads()
