"""Synthetic camera images of machined parts, with pixel masks of known surface defects.

The part is a turned steel flange seen from above on a dark conveyor: a disc with concentric tool
marks, a central bore with a bright chamfer ring and a circle of bolt holes. Every image varies in
position, rotation, lighting gradient, exposure and sensor noise. A defect changes the surface only
inside its mask, so rendering the same random state without the defect gives the same image outside
the mask (the tests rely on this).

All drawing is vectorised NumPy on float32 fields; one 256x256 image takes a few milliseconds.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

DEFECT_KINDS: tuple[str, ...] = ("scratch", "dent", "crack", "stain", "missing_feature")

# Pixels whose defect opacity is below this are left untouched, so the mask marks exactly the
# pixels that the defect changes.
_ALPHA_CUTOFF = 0.12
_FEATURE_CUTOFF = 0.05


@functools.lru_cache(maxsize=1)
def _noise_table() -> np.ndarray:
    """A fixed table of standard normals; image noise is a random window of it (fast, deterministic)."""
    table = np.random.default_rng(20240917).standard_normal(1 << 21, dtype=np.float32)
    table.flags.writeable = False
    return table


def _white_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 field of ``shape`` (read-only view for the usual image sizes)."""
    table = _noise_table()
    n = int(np.prod(shape))
    if n > len(table) // 2:
        return rng.standard_normal(shape, dtype=np.float32)
    off = int(rng.integers(0, len(table) - n))
    return table[off:off + n].reshape(shape)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth random field (float32, about [-1, 1]): coarse normal noise bilinearly upsampled."""
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((shape[1], shape[0]), Image.BILINEAR))


def _box(x: float, y: float, rad: float, size: int) -> tuple[slice, slice]:
    """Rows and columns of the square of half-width ``rad`` around (x, y), clipped to the image."""
    x0, x1 = max(0, int(x - rad) - 1), min(size, int(x + rad) + 2)
    y0, y1 = max(0, int(y - rad) - 1), min(size, int(y + rad) + 2)
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def _grid(box: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x as a row, y as a column) of a box, for broadcasting."""
    ys, xs = box
    return (np.arange(xs.start, xs.stop, dtype=np.float32)[None, :],
            np.arange(ys.start, ys.stop, dtype=np.float32)[:, None])


def _polyline_distance(pts: np.ndarray, pad: float, size: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """Distance of the pixels in the polyline's bounding box (+ ``pad``) to the polyline."""
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    c, half = (lo + hi) / 2.0, float((hi - lo).max()) / 2.0 + pad
    box = _box(float(c[0]), float(c[1]), half, size)
    x, y = _grid(box)
    best = np.full((box[0].stop - box[0].start, box[1].stop - box[1].start), np.inf, dtype=np.float32)
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:], strict=True):
        dx, dy = float(bx - ax), float(by - ay)
        seg2 = dx * dx + dy * dy
        px, py = x - float(ax), y - float(ay)
        t = np.clip((px * dx + py * dy) / seg2, 0.0, 1.0) if seg2 > 1e-12 else np.zeros_like(best)
        ex, ey = px - t * dx, py - t * dy
        np.minimum(best, np.sqrt(ex * ex + ey * ey), out=best)
    return box, best


def _curve(rng: np.random.Generator, start: np.ndarray, length: float, heading: float,
           bend: float, n: int = 16) -> np.ndarray:
    """A gently curved polyline: constant curvature plus small wobble."""
    ang = heading + np.cumsum(np.full(n, bend / n) + rng.normal(0.0, 0.04, n))
    step = length / n
    pts = np.empty((n + 1, 2), dtype=np.float32)
    pts[0] = start
    pts[1:, 0] = start[0] + np.cumsum(np.cos(ang) * step)
    pts[1:, 1] = start[1] + np.cumsum(np.sin(ang) * step)
    return pts


def render_part(rng: np.random.Generator, defect: str | None, size: int = 256,
                color: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Render one part as the vision station sees it.

    Returns ``(image, mask)``: image uint8 of shape (size, size) or (size, size, 3) when ``color``,
    mask uint8 (size, size) with 255 on the defect pixels and 0 elsewhere (all zero when ``defect``
    is None). Exactly three integers are drawn from ``rng`` whatever the defect, so the same
    generator state rendered with and without a defect gives the same part.
    """
    if defect is not None and defect not in DEFECT_KINDS:
        raise ValueError(f"defect must be None or one of {DEFECT_KINDS}, got {defect!r}")
    if not isinstance(size, int | np.integer) or not 32 <= int(size) <= 4096:
        raise ValueError(f"size must be an integer in 32..4096 pixels, got {size!r}")
    size = int(size)
    seeds = rng.integers(0, 2**63 - 1, size=3)
    part_rng = np.random.default_rng(int(seeds[0]))
    defect_rng = np.random.default_rng(int(seeds[1]))
    noise_rng = np.random.default_rng(int(seeds[2]))

    s = float(size)
    x = np.arange(size, dtype=np.float32)[None, :]
    y = np.arange(size, dtype=np.float32)[:, None]
    # -- geometry with position and rotation jitter ------------------------------------------
    cx = s * (0.5 + part_rng.uniform(-0.03, 0.03))
    cy = s * (0.5 + part_rng.uniform(-0.03, 0.03))
    rot = part_rng.uniform(0.0, 2.0 * np.pi)
    r_out = s * 0.40 * part_rng.uniform(0.985, 1.015)
    r_bore = s * 0.12
    r_chamfer = r_bore + s * 0.025
    n_holes = int(part_rng.choice([4, 6]))
    r_pitch = s * 0.27
    r_hole = s * 0.032
    edge = max(s / 256.0, 0.6)  # anti-aliasing width in pixels
    dx, dy = x - cx, y - cy
    r = np.sqrt(dx * dx + dy * dy)
    light_dir = part_rng.uniform(0.0, 2.0 * np.pi)
    # cosine of the angle between a pixel's direction from the centre and the light
    cos_l = (dx * np.float32(np.cos(light_dir)) + dy * np.float32(np.sin(light_dir))) / np.maximum(r, 1e-3)

    disc = np.clip((r_out - r) / edge + 0.5, 0.0, 1.0)
    # -- surface: turned grooves, anisotropic sheen, fine grain ------------------------------
    groove_period = s / 256.0 * part_rng.uniform(2.6, 3.4)
    phase = part_rng.uniform(0.0, 2.0 * np.pi)
    grain = _white_noise(part_rng, (size, size))
    surface = (
        0.54
        + 0.05 * np.sin(r * np.float32(2.0 * np.pi / groove_period) + np.float32(phase))
        + 0.16 * cos_l * cos_l  # bow-tie highlight of a turned face: 0.08 * cos(2 (theta - light))
        + 0.025 * grain
        + 0.03 * _smooth_noise(part_rng, (size, size), 6)
    )
    # chamfer ring: bright bevel catching the light
    chamfer = np.clip((r_chamfer - r) / edge + 0.5, 0.0, 1.0) * np.clip((r - r_bore) / edge + 0.5, 0.0, 1.0)
    surface += chamfer * (0.88 + 0.06 * cos_l - surface)
    # -- features: bore and bolt holes (dark, with a thin bright rim), each in its own box ------
    bore = np.clip((r_bore - r) / edge + 0.5, 0.0, 1.0)
    holes = []  # (box, alpha, distance to the hole centre)
    hole_centres = []
    for k in range(n_holes):
        a = rot + 2.0 * np.pi * k / n_holes
        hx, hy = cx + r_pitch * np.cos(a), cy + r_pitch * np.sin(a)
        hole_centres.append((hx, hy))
        box = _box(hx, hy, r_hole + 3.0 * edge + 1.0, size)
        bx, by = _grid(box)
        rh = np.sqrt((bx - np.float32(hx)) ** 2 + (by - np.float32(hy)) ** 2)
        alpha = np.clip((r_hole + 1.5 * edge - rh) / edge + 0.5, 0.0, 1.0)
        alpha[alpha < _FEATURE_CUTOFF] = 0.0
        holes.append((box, alpha, rh))
    background = 0.10 + 0.03 * _smooth_noise(part_rng, (size, size), 4) + 0.015 * grain

    # surface where a defect may lie: on the face, away from the bore, chamfer and edge
    face = (r > r_chamfer + 2.0) & (r < r_out - 3.0)
    for box, alpha, _ in holes:
        face[box] &= alpha == 0.0

    # -- defect: opacity and brightness change, drawn in the defect's own box -------------------
    defect_alpha = np.zeros((size, size), dtype=np.float32)
    defect_delta = np.zeros((size, size), dtype=np.float32)  # added to surface brightness
    tint = None
    removed_hole = -1
    for _attempt in range(20):  # redraw in the rare case the defect missed the face entirely
        defect_alpha[:] = 0.0
        defect_delta[:] = 0.0
        if defect is None:
            break
        for _ in range(50):  # a spot on the face, clear of the bolt holes
            rr = defect_rng.uniform(r_chamfer + s * 0.04, r_out - s * 0.05)
            aa = defect_rng.uniform(0.0, 2.0 * np.pi)
            p0 = np.array([cx + rr * np.cos(aa), cy + rr * np.sin(aa)], dtype=np.float32)
            if min(np.hypot(p0[0] - hx, p0[1] - hy) for hx, hy in hole_centres) > r_hole + s * 0.06:
                break
        px, py = float(p0[0]), float(p0[1])
        if defect == "scratch":
            pts = _curve(defect_rng, p0, s * defect_rng.uniform(0.12, 0.30), defect_rng.uniform(0, 2 * np.pi),
                         defect_rng.uniform(-1.0, 1.0))
            width = max(1.0, s / 256.0 * defect_rng.uniform(0.9, 1.6))
            box, d = _polyline_distance(pts, width + 2.0, size)
            defect_alpha[box] = np.clip(1.0 - d / width, 0.0, 1.0)
            sign = 1.0 if defect_rng.random() < 0.6 else -1.0  # bright (burnished) or dark
            defect_delta[box] = sign * defect_rng.uniform(0.28, 0.40)
        elif defect == "dent":
            rad = s * defect_rng.uniform(0.025, 0.055)
            box = _box(px, py, rad + 2.0, size)
            bx, by = _grid(box)
            ddx, ddy = bx - np.float32(px), by - np.float32(py)
            rd = np.sqrt(ddx * ddx + ddy * ddy)
            defect_alpha[box] = np.clip((rad - rd) / (0.25 * rad), 0.0, 1.0)
            # shaded bowl: the side facing the light is dark, the far side bright, the floor darker
            shade = (ddx * np.float32(np.cos(light_dir) / rad) + ddy * np.float32(np.sin(light_dir) / rad))
            depth = defect_rng.uniform(0.25, 0.4)
            defect_delta[box] = depth * shade - 0.15 * (1.0 - np.clip(rd / rad, 0.0, 1.0))
        elif defect == "crack":
            width = max(0.9, s / 256.0 * 1.1)
            heading = defect_rng.uniform(0, 2 * np.pi)
            main = _curve(defect_rng, p0, s * defect_rng.uniform(0.12, 0.22), heading,
                          defect_rng.uniform(-0.6, 0.6), n=20)
            lines = [main]
            for _ in range(int(defect_rng.integers(1, 4))):
                j = int(defect_rng.integers(3, len(main) - 3))
                lines.append(_curve(defect_rng, main[j], s * defect_rng.uniform(0.03, 0.08),
                                    heading + defect_rng.choice([-1.0, 1.0]) * defect_rng.uniform(0.5, 1.2),
                                    defect_rng.uniform(-0.8, 0.8), n=8))
            for pts in lines:
                box, d = _polyline_distance(pts, width + 2.0, size)
                np.maximum(defect_alpha[box], np.clip(1.0 - d / width, 0.0, 1.0), out=defect_alpha[box])
            defect_delta[:] = -defect_rng.uniform(0.45, 0.6)
        elif defect == "stain":
            rad = s * defect_rng.uniform(0.05, 0.09)
            box = _box(px, py, 3.0 * rad, size)
            bx, by = _grid(box)
            blob = np.zeros((box[0].stop - box[0].start, box[1].stop - box[1].start), dtype=np.float32)
            for _ in range(int(defect_rng.integers(3, 6))):
                off = defect_rng.normal(0.0, 0.45 * rad, 2)
                rb = rad * defect_rng.uniform(0.4, 0.8)
                blob += np.exp(-((bx - np.float32(px + off[0])) ** 2 + (by - np.float32(py + off[1])) ** 2)
                               / np.float32(2 * rb * rb))
            blotch = blob * (1.0 + 0.35 * _smooth_noise(defect_rng, blob.shape, 5))
            defect_alpha[box] = np.clip((blotch - 0.35) * 2.0, 0.0, 1.0)
            defect_delta[box] = -defect_rng.uniform(0.18, 0.30)
            tint = np.array([1.05, 0.88, 0.62], dtype=np.float32)  # brownish heat tint
        elif defect == "missing_feature":
            removed_hole = int(defect_rng.integers(0, n_holes))
        if defect != "missing_feature":
            defect_alpha[defect_alpha < _ALPHA_CUTOFF] = 0.0
            defect_alpha *= face
        if removed_hole >= 0 or defect_alpha.any():
            break

    # -- compose: albedo of surface + defect, then features, then lighting and noise -----------
    img = surface + defect_alpha * defect_delta
    mask = defect_alpha > 0.0
    if removed_hole >= 0:
        box, alpha, _ = holes[removed_hole]
        mask[box] = alpha > 0.0
    for k, (box, alpha, rh) in enumerate(holes):
        if k == removed_hole:
            continue
        rim = np.clip(1.0 - np.abs(rh - r_hole) / (1.2 * edge), 0.0, 1.0)
        img[box] += alpha * (0.08 + 0.5 * rim - img[box])
    img += bore * (0.05 + 0.03 * cos_l - img)
    img = img * disc + background * (1.0 - disc)
    # lighting gradient and exposure
    ga = part_rng.uniform(0.0, 2.0 * np.pi)
    slope = part_rng.uniform(0.05, 0.18) / s
    grad = 1.0 + (x - s / 2) * np.float32(slope * np.cos(ga)) + (y - s / 2) * np.float32(slope * np.sin(ga))
    exposure = part_rng.normal(1.0, 0.05)
    lum = img * (grad * np.float32(exposure * 255.0))
    noise_sigma = np.float32(noise_rng.uniform(1.5, 3.0))
    if color:
        base_tint = np.array([0.97, 1.0, 1.04], dtype=np.float32)  # cool steel under white LEDs
        rgb = lum[..., None] * base_tint
        if tint is not None:
            w = (defect_alpha * disc)[..., None]
            rgb += rgb * (tint - 1.0) * w
        rgb += _white_noise(noise_rng, rgb.shape) * noise_sigma
        image = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    else:
        lum += _white_noise(noise_rng, lum.shape) * noise_sigma
        image = np.clip(lum + 0.5, 0, 255).astype(np.uint8)
    return image, (mask.astype(np.uint8) * 255)
