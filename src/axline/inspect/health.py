"""Image health: is the camera still seeing what it saw in training?

Before accuracy drops, say why. Every inspected image is compared with statistics of the good
training images: brightness and contrast (sunlight through a window, an ageing LED), sharpness
(focus, a vibrating mount), the part's position and rotation (fixture, guide; besides the phase
correlation against the mean good thumbnail, the texture across each border of the image: a part
that moved leaves background or a smeared edge there), and local blocks of the image whose
brightness or texture changed (a dirty lens, something in front of it). With the inspector's patch
scores, a spot that is anomalous at the same place in most images of the window is also a lens or
view problem (a real defect does not sit at the same place on most parts; a tool leaving the same
mark on every part does, and the advice names it). Limits come from the spread of the training
images themselves (median +- 6 robust standard deviations, with a floor); the spot limit is the
median score of held-out good training images. A camera that stopped sending images is watched by
the station (see ``axline.vision``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import laplace, sobel

from axline import i18n

WORK_SIDE = 256  # long side of the working copy for brightness, contrast and blocks
SHARP_SIDE = 1024  # long side (at most) of the copy sharpness is measured on: focus lives in fine detail
THUMB = 128  # side of the square thumbnail for position and rotation
BLOCKS = 8  # blocks per side for the local check
ANGLE_BINS = 180  # orientation histogram over 180 degrees, 1 degree a bin
BORDER = 1 / 64  # width of the border strips, as a share of the side
SPREAD = 6.0  # limits: median +- SPREAD robust standard deviations

KINDS = ("brightness", "contrast", "blur", "position", "rotation", "occlusion", "stopped")
ADVICE: dict[str, dict[str, str]] = {k: i18n.both(f"inspect.health.advice.{k}") for k in KINDS}
NAMES: dict[str, dict[str, str]] = {k: i18n.both(f"inspect.health.name.{k}") for k in KINDS}


def _grey(image: np.ndarray) -> np.ndarray:
    return image.mean(axis=2) if image.ndim == 3 else image


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((w, h), Image.BILINEAR), np.float64)


def _orientation_hist(a: np.ndarray) -> np.ndarray:
    gx, gy = sobel(a, axis=1), sobel(a, axis=0)
    mag = np.hypot(gx, gy)
    ang = (np.degrees(np.arctan2(gy, gx)) % 180.0).astype(np.int64) % ANGLE_BINS
    hist = np.bincount(ang.ravel(), weights=mag.ravel(), minlength=ANGLE_BINS)
    return hist / (hist.sum() or 1.0)


def _borders(a: np.ndarray) -> np.ndarray:
    """Texture across each border (left, right, top, bottom): mean absolute gradient across the
    border in a narrow strip, relative to the same gradient over the whole image."""
    gx, gy = np.abs(np.diff(a, axis=1)), np.abs(np.diff(a, axis=0))
    mx, my = float(gx.mean()) + 1e-6, float(gy.mean()) + 1e-6
    sx, sy = max(2, round(a.shape[1] * BORDER)), max(2, round(a.shape[0] * BORDER))
    return np.array([gx[:, :sx].mean() / mx, gx[:, -sx:].mean() / mx, gy[:sy].mean() / my, gy[-sy:].mean() / my])


def _shift(a: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Translation (dx, dy) of ``a`` against ``ref`` in thumbnail pixels, by phase correlation."""
    fa, fr = np.fft.fft2(a - a.mean()), np.fft.fft2(ref - ref.mean())
    cross = fa * np.conj(fr)
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    return float(dx - w if dx > w // 2 else dx), float(dy - h if dy > h // 2 else dy)


def _rotation(hist: np.ndarray, ref: np.ndarray) -> float:
    """Rotation in degrees: the circular lag that best aligns the orientation histograms."""
    corr = np.fft.ifft(np.fft.fft(hist) * np.conj(np.fft.fft(ref))).real
    lag = int(np.argmax(corr))
    return float(lag - ANGLE_BINS if lag > ANGLE_BINS // 2 else lag)


WINDOW = 16  # images in the station's health window
REF_WINDOWS = 300  # random windows of training images the limits come from
SCALARS = ("brightness", "contrast", "sharpness", "dx", "dy", "rotation")


def measure(image: np.ndarray, ref: dict[str, Any] | None = None,
            patch_scores: np.ndarray | None = None) -> dict[str, Any]:
    """Raw statistics of one uint8 image (grey or colour): brightness, contrast, sharpness, block means
    and standard deviations, border texture, thumbnail, orientation histogram; with ``ref`` also shift
    (dx, dy, in fractions of the thumbnail) and rotation (degrees) against the reference; with the
    inspector's ``patch_scores`` (any shape, the same for every image) those too, for the spot check."""
    a = _grey(image).astype(np.float64)
    h, w = a.shape
    f = min(1.0, WORK_SIDE / max(h, w))
    work = _resize(a, max(8, round(w * f)), max(8, round(h * f))) if f < 1.0 else a
    contrast = float(work.std())
    fs = min(1.0, SHARP_SIDE / max(h, w))
    fine = _resize(a, max(8, round(w * fs)), max(8, round(h * fs))) if fs < 1.0 else a
    sharp = float(np.abs(laplace(fine)).mean()) / (float(fine.std()) + 1e-3)
    bh, bw = work.shape[0] // BLOCKS, work.shape[1] // BLOCKS
    blocks = work[: bh * BLOCKS, : bw * BLOCKS].reshape(BLOCKS, bh, BLOCKS, bw)
    thumb = _resize(a, THUMB, THUMB)
    out: dict[str, Any] = {
        "brightness": float(work.mean()), "contrast": contrast, "sharpness": sharp,
        "block_mean": blocks.mean(axis=(1, 3)), "block_std": blocks.std(axis=(1, 3)),
        "thumb": thumb, "orient": _orientation_hist(thumb), "borders": _borders(work),
    }
    if patch_scores is not None:
        out["spots"] = np.asarray(patch_scores, np.float32).ravel()
    if ref is not None:
        dx, dy = _shift(thumb, np.asarray(ref["thumb"]))
        out["dx"], out["dy"] = dx / THUMB, dy / THUMB
        out["rotation"] = _rotation(out["orient"], np.asarray(ref["orient"]))
    return out


def _window_stats(ms: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over a window of measured images (robust to the odd defective part)."""
    out: dict[str, Any] = {k: float(np.median([m[k] for m in ms])) for k in SCALARS}
    out["block_mean"] = np.median([m["block_mean"] for m in ms], axis=0)
    out["block_std"] = np.median([m["block_std"] for m in ms], axis=0)
    out["borders"] = np.median([m["borders"] for m in ms], axis=0)
    sp = [m["spots"] for m in ms if "spots" in m]
    if len(sp) == len(ms) and len({s.shape for s in sp}) == 1:
        out["spots"] = np.median(sp, axis=0)
    return out


FLOORS = {"brightness": 3.0, "contrast": 0.04, "sharpness": 0.04, "dx": 0.01, "dy": 0.01, "rotation": 1.0}


def fit_reference(images: list[np.ndarray], window: int = WINDOW, seed: int = 0) -> dict[str, Any]:
    """Health reference (plain JSON) from good training images (already cropped to the ROI).

    Limits are for the median over a window of ``window`` images, from random windows of the
    training images: median +- 6 robust standard deviations of the window medians, with a floor
    (brightness, contrast and sharpness floors are relative: 3 grey levels, 4 %).
    """
    if len(images) < 2:
        raise ValueError("the health reference needs at least 2 good images")
    first = [measure(im) for im in images]
    ref: dict[str, Any] = {"thumb": np.mean([m["thumb"] for m in first], axis=0),
                           "orient": np.mean([m["orient"] for m in first], axis=0)}
    ms = [measure(im, ref) for im in images]
    rng = np.random.default_rng(seed)
    k = min(window, len(ms))
    wins = [_window_stats([ms[j] for j in rng.choice(len(ms), k, replace=False)]) for _ in range(REF_WINDOWS)]
    limits: dict[str, list[float]] = {}
    for key in SCALARS:
        vals = np.array([w_[key] for w_ in wins])
        med, sd = _robust(vals)
        floor = FLOORS[key] * (abs(med) if key in ("contrast", "sharpness") else 1.0)
        spread = max(SPREAD * sd, floor)
        limits[key] = [round(med - spread, 5), round(med + spread, 5)]
    bm = np.stack([w_["block_mean"] for w_ in wins])
    bs = np.stack([w_["block_std"] for w_ in wins])
    bm_med, bs_med = np.median(bm, axis=0), np.median(bs, axis=0)
    bm_sd = np.maximum(SPREAD * 1.4826 * np.median(np.abs(bm - bm_med), axis=0), 4.0)
    bs_sd = np.maximum(SPREAD * 1.4826 * np.median(np.abs(bs - bs_med), axis=0), 0.1 * bs_med + 0.5)
    bd = np.stack([w_["borders"] for w_ in wins])
    bd_med = np.median(bd, axis=0)
    bd_tol = np.maximum(SPREAD * 1.4826 * np.median(np.abs(bd - bd_med), axis=0), 0.1 * bd_med + 0.02)
    return {
        "what": "image health reference: limits for medians over a window of images, from the good training images",
        "n_images": len(images), "window": k,
        "thumb": np.round(ref["thumb"], 2).tolist(), "orient": np.round(ref["orient"], 6).tolist(),
        "limits": limits,
        "block_mean": np.round(bm_med, 3).tolist(), "block_mean_tol": np.round(bm_sd, 3).tolist(),
        "block_std": np.round(bs_med, 3).tolist(), "block_std_tol": np.round(bs_sd, 3).tolist(),
        "borders": np.round(bd_med, 4).tolist(), "borders_tol": np.round(bd_tol, 4).tolist(),
    }


def _robust(values: np.ndarray) -> tuple[float, float]:
    med = float(np.median(values))
    return med, float(1.4826 * np.median(np.abs(values - med)))


def spot_limit(good_scores: Any) -> float | None:
    """The spot limit: the median image score of held-out good training images (None without any)."""
    g = np.asarray(good_scores, np.float64)
    return float(np.median(g)) if g.size else None


def evaluate(ms: list[dict[str, Any]], reference: dict[str, Any], spots: float | None = None) -> dict[str, Any]:
    """Health of a window of measured images: ``{"ok", "warnings": [kind], "checks": {kind: {...}}}``.

    ``spots``: the spot limit (see :func:`spot_limit`); a patch whose median score over the window
    is above it is a persistent spot."""
    w = _window_stats(ms)
    lim = reference["limits"]
    checks: dict[str, dict[str, Any]] = {}

    def put(kind: str, value: float, lo: float | None, hi: float | None) -> None:
        bad = (lo is not None and value < lo) or (hi is not None and value > hi)
        checks[kind] = {"value": round(float(value), 4), "low": None if lo is None else round(lo, 4),
                        "high": None if hi is None else round(hi, 4), "status": "warn" if bad else "ok"}

    put("brightness", w["brightness"], *lim["brightness"])
    put("contrast", w["contrast"], *lim["contrast"])
    put("blur", w["sharpness"], lim["sharpness"][0], None)
    # position: the larger of the two shifts, each against its own range (0 = inside)
    out_x = max(lim["dx"][0] - w["dx"], w["dx"] - lim["dx"][1], 0.0)
    out_y = max(lim["dy"][0] - w["dy"], w["dy"] - lim["dy"][1], 0.0)
    edges = None
    if "borders" in reference:  # references from before the border check lack it
        edges = np.abs(w["borders"] - np.asarray(reference["borders"])) > np.asarray(reference["borders_tol"])
    checks["position"] = {"value": round(float(np.hypot(w["dx"], w["dy"])), 4), "low": None,
                          "high": round(float(max(abs(v) for v in lim["dx"] + lim["dy"])), 4),
                          "borders": None if edges is None else [b for b, e in zip("lrtb", edges, strict=True) if e],
                          "status": "warn" if max(out_x, out_y) > 0 or (edges is not None and edges.any()) else "ok"}
    put("rotation", w["rotation"], *lim["rotation"])
    off = (np.abs(w["block_mean"] - np.asarray(reference["block_mean"])) > np.asarray(reference["block_mean_tol"])) | (
        np.asarray(reference["block_std"]) - w["block_std"] > np.asarray(reference["block_std_tol"]))
    spot = float(w["spots"].max()) if spots is not None and "spots" in w else None
    checks["occlusion"] = {"value": round(float(off.mean()), 4), "low": None, "high": 0.0,
                           "spot": None if spot is None else round(spot, 4),
                           "spot_limit": None if spots is None else round(float(spots), 4),
                           "status": "warn" if off.any() or (spot is not None and spot > spots) else "ok"}
    warnings = [k for k, v in checks.items() if v["status"] == "warn"]
    return {"ok": not warnings, "warnings": warnings, "checks": checks, "images": len(ms)}


class HealthMonitor:
    """The station's health: statistics of the last ``window`` images against the reference."""

    def __init__(self, reference: dict[str, Any], window: int | None = None, spots: float | None = None) -> None:
        from collections import deque

        self.reference = reference
        self.spots = spots
        self.window = int(window or reference.get("window", WINDOW))
        self.recent: deque[dict[str, Any]] = deque(maxlen=self.window)
        self.state: dict[str, Any] | None = None

    def add(self, image: np.ndarray, patch_scores: np.ndarray | None = None) -> dict[str, Any] | None:
        """Measure one image (already cropped to the ROI) with its patch scores (for the spot check);
        the health once the window is full."""
        self.recent.append(measure(image, self.reference, patch_scores))
        if len(self.recent) < self.window:
            return None
        self.state = evaluate(list(self.recent), self.reference, self.spots)
        return self.state
