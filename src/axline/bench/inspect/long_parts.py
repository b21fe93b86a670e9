"""Long parts: several tile images side by side, inspected as one canvas."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from axline.bench.inspect.accuracy import _grey, auroc

STRIP_PIECES = 4  # a long part: this many 256 x 256 tile images side by side


def _strips(goods: list[np.ndarray], n: int, rng: np.random.Generator,
            defects: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """``n`` long parts of ``STRIP_PIECES`` pieces side by side (one piece a defect when given)."""
    out = []
    for i in range(n):
        pick = [goods[j] for j in rng.choice(len(goods), STRIP_PIECES, replace=False)]
        if defects is not None:
            pick[int(rng.integers(STRIP_PIECES))] = defects[i]
        out.append(np.concatenate(pick, axis=1))
    return out


def _long_parts(train: list[Path], test_good: list[Path], defects: list[Path], tmp: Path, scorer: str,
                log: Any) -> dict[str, Any]:
    """Long parts built from the same split: squashed to one square against tiled at native aspect."""
    from axline.inspect.inferencer import Inspector
    from axline.inspect.train import train_inspector

    rng = np.random.default_rng(0)
    piece = (256, 256)
    tr = [_grey(p, piece) for p in train]
    order = rng.permutation(len(tr))
    train_strips = [np.concatenate([tr[j] for j in order[i:i + STRIP_PIECES]], axis=1)
                    for i in range(0, len(order) - STRIP_PIECES + 1, STRIP_PIECES)]
    del tr
    tg = [_grey(p, piece) for p in test_good]
    good_strips = _strips(tg, 100, rng)
    defect_strips = _strips(tg, len(defects), rng, [_grey(p, piece) for p in defects])
    labels = np.r_[np.zeros(len(good_strips), bool), np.ones(len(defect_strips), bool)]
    out: dict[str, Any] = {"what": f"{STRIP_PIECES} magnetic-tile images (each 256 x 256) side by side: "
                           f"{256 * STRIP_PIECES} x 256 parts; training parts from training goods only; "
                           "test parts from test goods, a defective part has one test defect image in a "
                           "random place",
                           "n_train": len(train_strips), "n_test_good": len(good_strips),
                           "n_test_defect": len(defect_strips), "scorer": scorer}
    # tiled: the layout (tiles of 256 overlapping by 64, or abutting) and the Gaussian (per tile, or
    # shared by the tiles) are the product's defaults, chosen by each model on its own validation
    for name, kw in (("squashed", {}), ("tiled", {"smallest_defect_px": 16.0})):
        path = tmp / f"long_{name}.axi"
        t0 = time.perf_counter()
        rep = train_inspector(train_strips, path, scorer=scorer, progress=False, **kw)
        ins = Inspector.load(path)
        t1 = time.perf_counter()
        scores = [ins.inspect(s).score for s in good_strips + defect_strips]
        per_image = (time.perf_counter() - t1) / len(scores) * 1000
        out[name] = {"image_auroc": auroc(labels, np.asarray(scores)), "tiles": rep["tiles"],
                     "scorer": rep["scorer"], "validation_auroc": rep["scorer_validation_auroc"],
                     "tile_overlap": rep["tile_overlap"], "gaussian": rep["gaussian"],
                     "tiling_validation": rep["tiling_validation"],
                     "canvas": rep["canvas"], "train_s": round(time.perf_counter() - t0 - per_image * len(scores) / 1000, 1),
                     "mean_ms_in_loop": round(per_image, 1)}
        log(f"long parts, {name}: {out[name]}")
    return out
