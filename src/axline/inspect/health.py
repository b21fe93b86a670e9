"""Image health: is the camera still seeing what it saw in training?

Before accuracy drops, say why. Every inspected image is compared with statistics of the good
training images: brightness and contrast (sunlight through a window, an ageing LED), sharpness
(focus, a vibrating mount), the part's position and rotation (fixture, guide), and local blocks of
the image whose brightness or texture changed (a dirty lens, something in front of it). Limits come
from the spread of the training images themselves (median +- 6 robust standard deviations, with a
floor). A camera that stopped sending images is watched by the station (see ``axline.vision``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import laplace, sobel

WORK_SIDE = 256  # long side of the working copy for the statistics
THUMB = 64  # side of the square thumbnail for position and rotation
BLOCKS = 8  # blocks per side for the local check
ANGLE_BINS = 180  # orientation histogram over 180 degrees, 1 degree a bin
SPREAD = 6.0  # limits: median +- SPREAD robust standard deviations

KINDS = ("brightness", "contrast", "blur", "position", "rotation", "occlusion", "stopped")
ADVICE: dict[str, dict[str, str]] = {
    "brightness": {"en": "Image brightness has drifted (sunlight through a window, an ageing LED?). Check the "
                         "lighting, shade the station from daylight, replace a weak lamp.",
                   "ko": "영상 밝기가 변했습니다 (창문 햇빛, 노후된 LED?). 조명을 점검하고 외광을 가리거나 약해진 "
                         "조명을 교체하세요."},
    "contrast": {"en": "Image contrast has changed (lighting angle, exposure, a diffuser?). Check the lamp, its "
                       "angle and the camera exposure.",
                 "ko": "영상 대비가 변했습니다 (조명 각도, 노출, 확산판?). 조명과 각도, 카메라 노출을 점검하세요."},
    "blur": {"en": "Images are out of focus. Clean the lens, refocus, and check the camera mount for vibration "
                   "or a part sitting at the wrong height.",
             "ko": "영상 초점이 맞지 않습니다. 렌즈를 닦고 초점을 다시 맞추고, 카메라 고정부 진동이나 제품 높이를 "
                   "확인하세요."},
    "position": {"en": "The part is out of its usual position. Check the fixture or guide rails and that the "
                       "camera mount has not moved.",
                 "ko": "제품 위치가 평소와 다릅니다. 지그나 가이드를 점검하고 카메라 고정부가 움직이지 않았는지 "
                       "확인하세요."},
    "rotation": {"en": "The part (or the camera) is rotated. Check the fixture or guide and the camera mount.",
                 "ko": "제품(또는 카메라)이 회전되어 있습니다. 지그나 가이드와 카메라 고정부를 점검하세요."},
    "occlusion": {"en": "Part of the image is covered or smeared: clean the lens and its window, remove what "
                        "blocks the view (cable, oil mist, dust).",
                  "ko": "영상 일부가 가려지거나 흐립니다. 렌즈와 보호창을 닦고 시야를 가리는 것(케이블, 오일 미스트, "
                        "먼지)을 치우세요."},
    "stopped": {"en": "The camera has sent no image for too long. Check its cable, power, trigger and the "
                      "folder it writes to.",
                "ko": "카메라 영상이 오랫동안 들어오지 않습니다. 케이블, 전원, 트리거와 저장 폴더를 점검하세요."},
}
NAMES: dict[str, dict[str, str]] = {
    "brightness": {"en": "brightness", "ko": "밝기"}, "contrast": {"en": "contrast", "ko": "대비"},
    "blur": {"en": "focus", "ko": "초점"}, "position": {"en": "position", "ko": "위치"},
    "rotation": {"en": "rotation", "ko": "회전"}, "occlusion": {"en": "lens / view", "ko": "렌즈 / 시야"},
    "stopped": {"en": "camera", "ko": "카메라"},
}


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


def measure(image: np.ndarray, ref: dict[str, Any] | None = None) -> dict[str, Any]:
    """Raw statistics of one uint8 image (grey or colour): brightness, contrast, sharpness, block means
    and standard deviations, thumbnail, orientation histogram; with ``ref`` also shift and rotation."""
    a = _grey(image).astype(np.float64)
    h, w = a.shape
    f = min(1.0, WORK_SIDE / max(h, w))
    work = _resize(a, max(8, round(w * f)), max(8, round(h * f))) if f < 1.0 else a
    contrast = float(work.std())
    sharp = float(np.abs(laplace(work)).mean()) / (contrast + 1e-3)
    bh, bw = work.shape[0] // BLOCKS, work.shape[1] // BLOCKS
    blocks = work[: bh * BLOCKS, : bw * BLOCKS].reshape(BLOCKS, bh, BLOCKS, bw)
    thumb = _resize(a, THUMB, THUMB)
    out: dict[str, Any] = {
        "brightness": float(work.mean()), "contrast": contrast, "sharpness": sharp,
        "block_mean": blocks.mean(axis=(1, 3)), "block_std": blocks.std(axis=(1, 3)),
        "thumb": thumb, "orient": _orientation_hist(thumb),
    }
    if ref is not None:
        dx, dy = _shift(thumb, np.asarray(ref["thumb"]))
        out["shift"] = float(np.hypot(dx, dy)) / THUMB
        out["rotation"] = abs(_rotation(out["orient"], np.asarray(ref["orient"])))
    return out


def _robust(values: np.ndarray) -> tuple[float, float]:
    med = float(np.median(values))
    return med, float(1.4826 * np.median(np.abs(values - med)))


def fit_reference(images: list[np.ndarray]) -> dict[str, Any]:
    """Health reference (plain JSON) from good training images (already cropped to the ROI)."""
    if len(images) < 2:
        raise ValueError("the health reference needs at least 2 good images")
    stats = [measure(im) for im in images]
    ref: dict[str, Any] = {"thumb": np.mean([s["thumb"] for s in stats], axis=0),
                           "orient": np.mean([s["orient"] for s in stats], axis=0)}
    second = [measure(im, ref) for im in images]
    limits: dict[str, list[float]] = {}
    for key, floor in (("brightness", 6.0), ("contrast", 0.08), ("sharpness", 0.08)):
        vals = np.array([s[key] for s in stats])
        med, sd = _robust(vals)
        spread = max(SPREAD * sd, floor * (1.0 if key == "brightness" else med))
        limits[key] = [med - spread, med + spread]
    for key, floor in (("shift", 0.03), ("rotation", 2.0)):
        vals = np.array([s[key] for s in second])
        med, sd = _robust(vals)
        limits[key] = [0.0, max(float(vals.max()), med + SPREAD * sd) + floor]
    bm = np.stack([s["block_mean"] for s in stats])
    bs = np.stack([s["block_std"] for s in stats])
    bm_med, bs_med = np.median(bm, axis=0), np.median(bs, axis=0)
    bm_sd = np.maximum(1.4826 * np.median(np.abs(bm - bm_med), axis=0), 4.0)
    fractions = [float(np.mean(_blocks_off(m, s, bm_med, bm_sd, bs_med))) for m, s in zip(bm, bs, strict=True)]
    return {
        "what": "image health reference from the good training images",
        "n_images": len(images),
        "thumb": np.round(ref["thumb"], 2).tolist(), "orient": np.round(ref["orient"], 6).tolist(),
        "limits": {k: [round(v[0], 5), round(v[1], 5)] for k, v in limits.items()},
        "block_mean": np.round(bm_med, 3).tolist(), "block_mean_sd": np.round(bm_sd, 3).tolist(),
        "block_std": np.round(bs_med, 3).tolist(),
        "occlusion_limit": round(max(fractions) + 1.5 / BLOCKS**2, 5),
    }


def _blocks_off(mean: np.ndarray, std: np.ndarray, ref_mean: np.ndarray, ref_sd: np.ndarray,
                ref_std: np.ndarray) -> np.ndarray:
    """Blocks whose brightness left the usual range, or whose texture went flat (smear, cover)."""
    return (np.abs(mean - ref_mean) > SPREAD * ref_sd) | (std < 0.4 * ref_std)


def check(image: np.ndarray, reference: dict[str, Any]) -> dict[str, Any]:
    """Health of one image against ``reference``: ``{"ok", "warnings": [kind], "checks": {kind: {...}}}``."""
    m = measure(image, reference)
    lim = reference["limits"]
    checks: dict[str, dict[str, Any]] = {}

    def put(kind: str, value: float, lo: float | None, hi: float | None) -> None:
        bad = (lo is not None and value < lo) or (hi is not None and value > hi)
        checks[kind] = {"value": round(float(value), 4), "low": None if lo is None else round(lo, 4),
                        "high": None if hi is None else round(hi, 4), "status": "warn" if bad else "ok"}

    put("brightness", m["brightness"], *lim["brightness"])
    put("contrast", m["contrast"], *lim["contrast"])
    put("blur", m["sharpness"], lim["sharpness"][0], None)
    put("position", m["shift"], None, lim["shift"][1])
    put("rotation", m["rotation"], None, lim["rotation"][1])
    off = _blocks_off(m["block_mean"], m["block_std"], np.asarray(reference["block_mean"]),
                      np.asarray(reference["block_mean_sd"]), np.asarray(reference["block_std"]))
    put("occlusion", float(off.mean()), None, reference["occlusion_limit"])
    warnings = [k for k, v in checks.items() if v["status"] == "warn"]
    return {"ok": not warnings, "warnings": warnings, "checks": checks}
