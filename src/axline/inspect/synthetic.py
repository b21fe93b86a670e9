"""Synthetic defects on good images, to choose a scorer without labelled defects.

Three kinds, sized relative to the image: a soft dark or bright blob, a thin dark crack (a
wobbling line) and a patch of the image cut, flipped, re-lit and pasted elsewhere.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def synthetic_defect(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A copy of uint8 ``image`` (grey or colour) with one synthetic defect, and its mask."""
    a = image.astype(np.float32)
    h, w = a.shape[:2]
    side = min(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    kind = int(rng.integers(3))
    if kind == 0:
        ry, rx = rng.uniform(0.02, 0.08, 2) * side + 1.0
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        change = rng.choice([-1.0, 1.0]) * rng.uniform(30, 80) * gaussian_filter(mask.astype(np.float32), 1.0)
    elif kind == 1:
        length, angle = rng.uniform(0.1, 0.4) * side, rng.uniform(0, np.pi)
        t = np.linspace(-0.5, 0.5, 200)
        wobble = np.cumsum(rng.normal(0, 0.02, 200)) * length
        py = cy + t * length * np.sin(angle) + wobble * np.cos(angle)
        px = cx + t * length * np.cos(angle) - wobble * np.sin(angle)
        mask = np.zeros((h, w), bool)
        r = int(rng.integers(1, 3))
        for y, x in zip(py.astype(int), px.astype(int), strict=True):
            mask[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] = True
        change = -rng.uniform(40, 100) * gaussian_filter(mask.astype(np.float32), 0.7)
    else:
        ph = min(h - 1, int(rng.uniform(0.05, 0.15) * side) + 4)
        pw = min(w - 1, int(rng.uniform(0.05, 0.15) * side) + 4)
        sy, sx = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
        patch = a[sy:sy + ph, sx:sx + pw][::-1, ::-1] * rng.uniform(0.6, 1.4)
        ty, tx = int(np.clip(cy - ph / 2, 0, h - ph)), int(np.clip(cx - pw / 2, 0, w - pw))
        out = a.copy()
        out[ty:ty + ph, tx:tx + pw] = patch
        mask = np.zeros((h, w), bool)
        mask[ty:ty + ph, tx:tx + pw] = True
        return np.clip(out, 0, 255).astype(np.uint8), mask
    if a.ndim == 3:
        change = change[:, :, None]
    return np.clip(a + change, 0, 255).astype(np.uint8), mask
