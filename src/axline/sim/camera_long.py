"""Synthetic camera images of long parts: a turned steel shaft seen from the side, with small defects.

A long part is where inspecting a squashed square image fails: the shaft fills a wide, low image
(1,024 x 256 by default) and its defects are a few pixels wide. The shaft lies across the image on a
dark conveyor: a cylinder shaded bright along its top, turned marks across it, two grooves, a
keyway and chamfered ends. Every image varies in position, tilt, lighting and noise. A defect
changes the surface only inside its mask, so rendering the same random state without the defect
gives the same image outside the mask (as :func:`axline.sim.camera.render_part`).
"""

from __future__ import annotations

import numpy as np

from axline.sim.camera import _ALPHA_CUTOFF, DEFECT_KINDS, _curve, _smooth_noise, _white_noise

LONG_SIZE = (1024, 256)  # width, height of a long part's image


def _rbox(x: float, y: float, rad: float, w: int, h: int) -> tuple[slice, slice]:
    """Rows and columns of the square of half-width ``rad`` around (x, y), clipped to a w x h image."""
    x0, x1 = max(0, int(x - rad) - 1), min(w, int(x + rad) + 2)
    y0, y1 = max(0, int(y - rad) - 1), min(h, int(y + rad) + 2)
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def _lines_alpha(lines: list[np.ndarray], width: float, w: int, h: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """Opacity of thin polylines (1 on the line, 0 at ``width`` from it) in their bounding box."""
    pts = np.concatenate(lines)
    lo, hi = pts.min(axis=0) - width - 2.0, pts.max(axis=0) + width + 2.0
    box = (slice(max(0, int(lo[1])), min(h, int(hi[1]) + 1)), slice(max(0, int(lo[0])), min(w, int(hi[0]) + 1)))
    x = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :]
    y = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None]
    best = np.full((len(y), x.shape[1]), np.inf, np.float32)
    for line in lines:
        for (ax, ay), (bx, by) in zip(line[:-1], line[1:], strict=True):
            dx, dy = float(bx - ax), float(by - ay)
            seg2 = dx * dx + dy * dy
            px, py = x - float(ax), y - float(ay)
            t = np.clip((px * dx + py * dy) / seg2, 0.0, 1.0) if seg2 > 1e-12 else np.zeros_like(best)
            np.minimum(best, np.hypot(px - t * dx, py - t * dy), out=best)
    return box, np.clip(1.0 - best / width, 0.0, 1.0)


def render_long_part(rng: np.random.Generator, defect: str | None, size: tuple[int, int] = LONG_SIZE,
                     color: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Render one long part (a shaft) as a line-scan or wide camera sees it.

    ``size`` is (width, height), width at least twice the height. Returns ``(image, mask)``: image
    uint8 of shape (height, width) (or (height, width, 3) when ``color``), mask uint8 with 255 on
    the defect pixels. Defects are the same kinds as a flange's (:data:`DEFECT_KINDS`), drawn small:
    a scratch or crack a pixel or two wide and a few percent of the length, a dent or stain a few
    pixels across; a missing feature is a missing groove. Exactly three integers are drawn from
    ``rng`` whatever the defect.
    """
    if defect is not None and defect not in DEFECT_KINDS:
        raise ValueError(f"defect must be None or one of {DEFECT_KINDS}, got {defect!r}")
    w, h = (int(v) for v in size)
    if not (64 <= h <= 2048 and 2 * h <= w <= 8192):
        raise ValueError(f"size must be (width, height) with height 64..2048 and width 2..32 times it, got {size!r}")
    seeds = rng.integers(0, 2**63 - 1, size=3)
    part_rng, defect_rng, noise_rng = (np.random.default_rng(int(s)) for s in seeds)
    sh = float(h)
    x = np.arange(w, dtype=np.float32)[None, :]
    y = np.arange(h, dtype=np.float32)[:, None]
    # -- geometry: a shaft across the image, jittered in position and tilt ----------------------
    cy = sh * (0.5 + part_rng.uniform(-0.03, 0.03))
    tilt = part_rng.uniform(-0.004, 0.004)
    radius = sh * 0.30 * part_rng.uniform(0.99, 1.01)
    x0, x1 = w * (0.04 + part_rng.uniform(-0.005, 0.005)), w * (0.96 + part_rng.uniform(-0.005, 0.005))
    edge = max(sh / 256.0, 0.6)
    v = (y - (cy + tilt * (x - w / 2))) / np.float32(radius)  # -1 top edge .. 1 bottom edge
    chamfer = sh * 0.05
    # the shaft's outline, with chamfered ends (the radius shrinks over the last ``chamfer`` pixels)
    end = np.clip(np.minimum(x - x0, x1 - x) / chamfer, 0.0, 1.0)
    r_eff = 0.82 + 0.18 * end
    body = np.clip((r_eff - np.abs(v)) * radius / edge + 0.5, 0.0, 1.0) * np.clip(
        np.minimum(x - x0, x1 - x) / edge + 0.5, 0.0, 1.0)
    # -- surface: cylinder shading, turned marks across the shaft, grain --------------------------
    grain = _white_noise(part_rng, (h, w))
    period = sh / 256.0 * part_rng.uniform(2.6, 3.4)
    vc = np.clip(v, -1.0, 1.0)
    surface = (0.35 + 0.40 * np.sqrt(np.clip(1.0 - (vc + 0.35) ** 2, 0.0, 1.0))
               + 0.04 * np.sin(x * np.float32(2 * np.pi / period) + np.float32(part_rng.uniform(0, 6.28)))
               + 0.025 * grain + 0.03 * _smooth_noise(part_rng, (h, w), 8))
    surface += (1.0 - end) * 0.25  # the chamfers catch the light
    # two grooves (dark bands with a bright lip) and a keyway (a dark slot along the axis)
    grooves = [w * f for f in (0.25 + part_rng.uniform(-0.01, 0.01), 0.72 + part_rng.uniform(-0.01, 0.01))]
    gw = sh * 0.025
    groove_alpha = [np.clip((gw - np.abs(x - g)) / edge + 0.5, 0.0, 1.0) * np.ones_like(v) for g in grooves]
    kx0, kx1 = w * 0.42, w * 0.58
    key = (np.clip((0.12 - np.abs(v + 0.1)) * radius / edge + 0.5, 0.0, 1.0)
           * np.clip(np.minimum(x - kx0, kx1 - x) / edge + 0.5, 0.0, 1.0))
    background = 0.10 + 0.03 * _smooth_noise(part_rng, (h, w), 6) + 0.015 * grain
    # surface where a defect may lie: on the shaft, clear of its edges, grooves, keyway and ends
    face = (np.abs(v) < 0.7) & (end >= 1.0) & (key == 0.0)
    for g in grooves:
        face &= np.abs(x - g) > gw + 4 * edge
    # -- defect ----------------------------------------------------------------------------------
    alpha = np.zeros((h, w), np.float32)
    delta = np.zeros((h, w), np.float32)
    tint = None
    missing = -1
    ys, xs = np.nonzero(face)
    for _attempt in range(20):
        alpha[:] = 0.0
        delta[:] = 0.0
        if defect is None:
            break
        i = int(defect_rng.integers(0, len(xs)))
        p0 = np.array([xs[i], ys[i]], np.float32)
        px, py = float(p0[0]), float(p0[1])
        if defect in ("scratch", "crack"):
            length = sh * defect_rng.uniform(0.10, 0.25)
            heading = defect_rng.uniform(0, 2 * np.pi)
            lines = [_curve(defect_rng, p0, length, heading, defect_rng.uniform(-0.8, 0.8), n=16)]
            if defect == "crack":
                for _ in range(int(defect_rng.integers(1, 3))):
                    j = int(defect_rng.integers(3, len(lines[0]) - 3))
                    lines.append(_curve(defect_rng, lines[0][j], length * defect_rng.uniform(0.2, 0.4),
                                        heading + defect_rng.choice([-1.0, 1.0]) * defect_rng.uniform(0.5, 1.2),
                                        defect_rng.uniform(-0.8, 0.8), n=8))
            width = max(0.9, sh / 256.0 * (defect_rng.uniform(0.9, 1.4) if defect == "scratch" else 1.0))
            box, a = _lines_alpha(lines, width, w, h)
            alpha[box] = a
            if defect == "scratch":
                delta[box] = (1.0 if defect_rng.random() < 0.6 else -1.0) * defect_rng.uniform(0.28, 0.40)
            else:
                delta[box] = -defect_rng.uniform(0.45, 0.6)
        elif defect in ("dent", "stain"):
            rad = sh * (defect_rng.uniform(0.02, 0.04) if defect == "dent" else defect_rng.uniform(0.04, 0.07))
            box = _rbox(px, py, (1.0 if defect == "dent" else 2.5) * rad + 2.0, w, h)
            bx = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :] - np.float32(px)
            by = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None] - np.float32(py)
            rd = np.hypot(bx, by)
            if defect == "dent":
                alpha[box] = np.clip((rad - rd) / (0.25 * rad), 0.0, 1.0)
                delta[box] = defect_rng.uniform(0.25, 0.4) * (-by / rad) - 0.15 * (1.0 - np.clip(rd / rad, 0.0, 1.0))
            else:
                blob = np.exp(-(rd / rad) ** 2) * (1.0 + 0.35 * _smooth_noise(defect_rng, rd.shape, 4))
                alpha[box] = np.clip((blob - 0.35) * 2.0, 0.0, 1.0)
                delta[box] = -defect_rng.uniform(0.18, 0.30)
                tint = np.array([1.05, 0.88, 0.62], np.float32)
        else:  # missing_feature: one groove was not cut
            missing = int(defect_rng.integers(0, len(grooves)))
        if defect != "missing_feature":
            alpha[alpha < _ALPHA_CUTOFF] = 0.0
            alpha *= face
        if missing >= 0 or alpha.any():
            break
    # -- compose ---------------------------------------------------------------------------------
    img = surface + alpha * delta
    mask = alpha > 0.0
    for k, ga in enumerate(groove_alpha):
        ga = ga * body
        lip = np.clip(1.0 - np.abs(np.abs(x - grooves[k]) - gw) / (1.5 * edge), 0.0, 1.0)
        if k == missing:
            mask |= (ga > 0.0) | (lip * body > 0.0)
            continue
        img += ga * (0.12 - img) + lip * body * 0.25
    img += key * body * (0.08 - img)
    img = img * body + background * (1.0 - body)
    grad = 1.0 + (x - w / 2) * np.float32(part_rng.uniform(-0.08, 0.08) / w)
    lum = img * (grad * np.float32(part_rng.normal(1.0, 0.04) * 255.0))
    sigma = np.float32(noise_rng.uniform(1.5, 3.0))
    if color:
        rgb = lum[..., None] * np.array([0.97, 1.0, 1.04], np.float32)
        if tint is not None:
            rgb += rgb * (tint - 1.0) * (alpha * body)[..., None]
        rgb += _white_noise(noise_rng, rgb.shape) * sigma
        image = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    else:
        lum += _white_noise(noise_rng, lum.shape) * sigma
        image = np.clip(lum + 0.5, 0, 255).astype(np.uint8)
    return image, mask.astype(np.uint8) * 255
