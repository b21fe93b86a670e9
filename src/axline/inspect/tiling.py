"""Native-resolution inspection: the working canvas, overlapping tiles and stitching.

A part is inspected at its own aspect ratio. The region of interest is resized by a scale set from
the smallest defect to catch (in pixels, or in mm with a calibration) onto a *canvas* whose sides
are multiples of the patch grid; the canvas is cut into square tiles of the backbone's input size
that overlap; each tile gives a grid of patch scores and the grids are stitched back (averaged
where tiles overlap) onto the canvas. The image is judged by its worst tile, so a long part is not
judged by its average.
"""

from __future__ import annotations

import math

import numpy as np

# a defect this many canvas pixels across covers about one 16-pixel patch cell of the backbone
DEFECT_TARGET_PX = 16.0
SCALE_LIMITS = (0.125, 2.0)
GRID = 16


def scale_for_defect(smallest_defect_px: float | None = None, smallest_defect_mm: float | None = None,
                     mm_per_px: float | None = None) -> float:
    """Canvas scale that makes the smallest defect about one patch cell (16 px) across.

    Give the defect size in image pixels, or in mm together with the camera's calibration
    ``mm_per_px``. The scale is clamped to 1/8 .. 2 (enlarging more adds no detail).
    """
    if smallest_defect_mm is not None:
        if mm_per_px is None or not mm_per_px > 0:
            raise ValueError("smallest_defect_mm needs mm_per_px (the camera calibration, mm per pixel) > 0")
        if not smallest_defect_mm > 0:
            raise ValueError(f"smallest_defect_mm must be > 0, got {smallest_defect_mm}")
        smallest_defect_px = smallest_defect_mm / mm_per_px
    if smallest_defect_px is None:
        raise ValueError("give smallest_defect_px, or smallest_defect_mm with mm_per_px")
    if not smallest_defect_px > 0:
        raise ValueError(f"smallest_defect_px must be > 0, got {smallest_defect_px}")
    return float(min(max(DEFECT_TARGET_PX / smallest_defect_px, SCALE_LIMITS[0]), SCALE_LIMITS[1]))


def plan_canvas(width: int, height: int, scale: float, tile: int) -> tuple[int, int]:
    """Canvas ``(width, height)`` for a ``width x height`` region at ``scale``: multiples of the
    grid, at least one tile a side."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    w = max(tile, int(round(width * scale / GRID)) * GRID)
    h = max(tile, int(round(height * scale / GRID)) * GRID)
    return w, h


def tile_offsets(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``length`` with at least ``overlap`` pixels shared by
    neighbours; offsets are multiples of the grid so patch cells line up across tiles."""
    if length < tile:
        raise ValueError(f"the canvas side {length} is shorter than the tile {tile}")
    if length == tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, {tile}), got {overlap}")
    n = math.ceil((length - overlap) / (tile - overlap))
    n = max(n, 2)
    last = length - tile
    starts = [int(round(i * last / (n - 1) / GRID)) * GRID for i in range(n)]
    starts[-1] = last
    return sorted(set(starts))


def tile_grid(canvas: tuple[int, int], tile: int, overlap: int) -> list[tuple[int, int]]:
    """``(y, x)`` offsets of every tile on a ``(width, height)`` canvas, row by row."""
    w, h = canvas
    return [(y, x) for y in tile_offsets(h, tile, overlap) for x in tile_offsets(w, tile, overlap)]


def cut_tiles(canvas_img: np.ndarray, offsets: list[tuple[int, int]], tile: int) -> np.ndarray:
    """Tiles ``(T, C, tile, tile)`` of a ``(C, H, W)`` canvas."""
    return np.stack([canvas_img[:, y:y + tile, x:x + tile] for y, x in offsets])


def stitch(tile_maps: np.ndarray, offsets: list[tuple[int, int]], canvas: tuple[int, int],
           stride: int) -> np.ndarray:
    """Average tile grids ``(T, g, g)`` onto the canvas grid ``(H / stride, W / stride)``."""
    w, h = canvas
    acc = np.zeros((h // stride, w // stride), np.float64)
    cnt = np.zeros_like(acc)
    g = tile_maps.shape[1]
    for m, (y, x) in zip(tile_maps, offsets, strict=True):
        gy, gx = y // stride, x // stride
        acc[gy:gy + g, gx:gx + g] += m
        cnt[gy:gy + g, gx:gx + g] += 1
    return (acc / np.maximum(cnt, 1)).astype(np.float32)


def ignore_cells(ignore: list[tuple[int, int, int, int]], roi: tuple[int, int, int, int],
                 canvas: tuple[int, int], offsets: list[tuple[int, int]], tile: int,
                 stride: int) -> np.ndarray | None:
    """Boolean ``(T, g, g)``: patch cells whose centre lies in an ignored rectangle.

    ``ignore`` and ``roi`` are ``(x, y, width, height)`` in pixels of the camera image.
    """
    if not ignore:
        return None
    rx, ry, rw, rh = roi
    w, h = canvas
    g = tile // stride
    out = np.zeros((len(offsets), g, g), bool)
    centres = (np.arange(g) + 0.5) * stride
    for t, (y, x) in enumerate(offsets):
        cy = ry + (y + centres) * rh / h  # image pixels
        cx = rx + (x + centres) * rw / w
        for ix, iy, iw, ih in ignore:
            inside_y = (cy >= iy) & (cy < iy + ih)
            inside_x = (cx >= ix) & (cx < ix + iw)
            out[t] |= inside_y[:, None] & inside_x[None, :]
    return out
