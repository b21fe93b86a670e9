"""The shipped backbone against the other EfficientNet-Lite variants on the same split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from axline.bench.inspect.accuracy import _mask, _pixel_auroc, auroc
from axline.bench.inspect.latency import _latency


def _compare_backbones(train: list[Path], test: list[Path], labels: np.ndarray, shipped: dict[str, Any],
                       tmp: Path, latency_runs: int, pixel_stride: int, log: Any,
                       **train_kwargs: Any) -> dict[str, dict[str, Any]]:
    """Per backbone: the scorer it chose on validation, that validation AUROC, test image and pixel AUROC,
    and latency at 256 x 256. ``shipped`` is the main run's row (default backbone); every other variant
    is trained here with the same settings (validation chooses its scorer; test labels only score)."""
    from axline.inspect.features import BACKBONES, INSPECTOR_BACKBONE
    from axline.inspect.inferencer import Inspector, load_image
    from axline.inspect.train import train_inspector

    out: dict[str, dict[str, Any]] = {}
    lat_imgs = test[:: max(1, len(test) // 50)]
    for name in BACKBONES:
        if name == INSPECTOR_BACKBONE:
            out[name] = shipped
            continue
        path = tmp / f"backbone_{name}.axi"
        rep = train_inspector(train, path, scorer="auto", progress=False, backbone=name, **train_kwargs)
        ins = Inspector.load(path)
        scores, maps, masks = [], [], []
        for p in test:
            img = load_image(p)
            v = ins.inspect(img)
            scores.append(v.score)
            maps.append(v.anomaly_map)
            masks.append(_mask(p, img.shape[:2]))
        lat = _latency(path, lat_imgs, latency_runs, warmup=10)
        out[name] = {"scorer": rep["scorer"], "validation_auroc": rep["scorer_validation_auroc"][rep["scorer"]],
                     "image_auroc": auroc(labels, np.asarray(scores)), "pixel_auroc": _pixel_auroc(maps, masks,
                                                                                                  pixel_stride),
                     "feature_dim": rep["feature_dim"], "train_s": rep["train_seconds"],
                     "latency_ms_p50": lat["latency_ms_p50"], "latency_ms_p99": lat["latency_ms_p99"]}
        log(f"backbone {name}: {out[name]}")
    return out
