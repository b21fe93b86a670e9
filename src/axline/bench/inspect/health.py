"""Camera health under disturbances: where it warns and where false rejects start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

HEALTH_STRENGTHS: dict[str, tuple[float, ...]] = {
    "brightness": (4, 8, 16, 24, 32, 48, 64, 96),  # grey levels added
    "blur": (0.5, 1, 1.5, 2, 3, 4, 6),  # Gaussian sigma, pixels
    "shift": (0.5, 1, 2, 3, 4, 6, 8, 12, 16),  # % of the image width, to the right
    "rotation": (0.5, 1, 2, 3, 5, 8, 12),  # degrees
    # % of the image under a dark smear; the small ones first: a smear of 0.5 % already rejects parts
    "occlusion": (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 4, 8, 16),
}
HEALTH_WARN_SHARE = 0.5  # health "warns" at a strength where it warns on at least half the images
FALSE_REJECT_SHARE = 0.05  # false rejects "start" where at least 5 % of the good images are rejected


def perturb(image: np.ndarray, kind: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """A good image disturbed as a camera station would be: brighter, blurred, shifted, rotated, smeared."""
    from scipy import ndimage

    a = image.astype(np.float64)
    h, w = a.shape[:2]
    if kind == "brightness":
        a = a + strength
    elif kind == "blur":
        a = ndimage.gaussian_filter(a, strength)
    elif kind == "shift":
        a = ndimage.shift(a, (0, strength / 100.0 * w), order=1, mode="nearest")
    elif kind == "rotation":
        a = ndimage.rotate(a, strength, reshape=False, order=1, mode="nearest")
    elif kind == "occlusion":
        r = np.sqrt(strength / 100.0 * h * w / np.pi)
        cy, cx = rng.uniform(r, max(r + 1, h - r)), rng.uniform(r, max(r + 1, w - r))
        yy, xx = np.mgrid[0:h, 0:w]
        smear = ndimage.gaussian_filter((((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).astype(np.float64), 2.0)
        a = a * (1 - smear) + (0.35 * a.mean()) * smear
    else:
        raise ValueError(f"unknown perturbation {kind!r}")
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _health(inspector: Any, test_good: list[Path], log: Any) -> dict[str, Any]:
    """Graded perturbations of held-out good images: where health warns, where false rejects start.

    Health is judged as the station judges it, on windows of consecutive images (the perturbation
    lasts, like a drifting lamp), with the inspector's patch scores for the spot check and its limit
    from the held-out good training images; false rejects are counted image by image."""
    from axline.inspect.health import evaluate, measure, spot_limit
    from axline.inspect.inferencer import crop_roi, load_image

    ref = inspector.model.health
    spots = spot_limit(inspector.model.good_scores)
    goods = [load_image(p) for p in test_good[::3]]
    win = min(int(ref["window"]), len(goods))

    def run(images: list[np.ndarray]) -> tuple[float, float, list[str]]:
        verdicts = [inspector.inspect(im) for im in images]
        ms = [measure(crop_roi(im, inspector.prep.roi), ref, v.patch_scores) for im, v in zip(images, verdicts, strict=True)]
        evals = [evaluate(ms[i:i + win], ref, spots) for i in range(0, len(ms) - win + 1, win)]
        rejected = [v.rejected for v in verdicts]
        return (float(np.mean([not e["ok"] for e in evals])), float(np.mean(rejected)),
                sorted({w for e in evals for w in e["warnings"]}))

    warn0, frr0, kinds0 = run(goods)
    out: dict[str, Any] = {"n_images": len(goods), "window": win, "n_windows": len(goods) // win, "spot_limit": spots,
                           "warn_rate_unperturbed": warn0, "false_reject_rate_unperturbed": frr0,
                           "warned_kinds_unperturbed": kinds0, "kinds": {}}
    for kind, strengths in HEALTH_STRENGTHS.items():
        rows = []
        for k, st in enumerate(strengths):
            # the same disturbance on every image (a smear sits where it sits on the lens)
            wr, fr, kinds = run([perturb(g, kind, st, np.random.default_rng(k)) for g in goods])
            rows.append({"strength": st, "warn_rate": wr, "false_reject_rate": fr, "warned_kinds": kinds})
        warn_at = next((r["strength"] for r in rows if r["warn_rate"] >= HEALTH_WARN_SHARE), None)
        fr_from = next((r["strength"] for r in rows if r["false_reject_rate"] >= FALSE_REJECT_SHARE), None)
        first = warn_at is not None and (fr_from is None or warn_at < fr_from)
        out["kinds"][kind] = {"warn_at": warn_at, "false_rejects_from": fr_from, "health_first": first, "rows": rows}
        log(f"health {kind}: warns at {warn_at}, false rejects from {fr_from}")
    return out
