"""Defect types taught from a few labelled images per type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from axline.bench.inspect.accuracy import DEFECT_CLASSES

TYPE_KS = (1, 5, 10)
TYPE_DRAWS = 20


def _defect_types(inspector: Any, feats: np.ndarray, test: list[Path], n_good: int, log: Any) -> dict[str, Any]:
    """Defect types from k labelled images per type (k = 1, 5, 10), tested on the rest, many draws.

    Each defect image's region feature (its most anomalous patches, shipped scorer) and those of its
    mirrored views are computed once; a draw picks k labelled images per type, teaches them (with
    their views, as the review page does) and classifies every other defect image (as it is).
    An "unknown type" answer counts as wrong in the accuracy (``accuracy_answered``: among the
    images given a type); macro-F1 is over the five types."""
    from axline.inspect.inferencer import load_image
    from axline.inspect.types import DefectTypes, flipped_views, region_feature

    cls = np.array([next(i for i, c in enumerate(DEFECT_CLASSES) if p.parent.parent.name == c) for p in test[n_good:]])
    x = np.stack([region_feature(f, inspector.patch_scores(f)) for f in feats[n_good:]])
    # the mirrored views a station keeps with each labelled image (computed once for every image)
    views = [flipped_views(inspector, load_image(p)) for p in test[n_good:]]
    out: dict[str, Any] = {"types": list(DEFECT_CLASSES), "draws": TYPE_DRAWS,
                           "per_type": {c: int(np.sum(cls == i)) for i, c in enumerate(DEFECT_CLASSES)},
                           "accuracy": {}, "macro_f1": {}, "unknown_rate": {}, "accuracy_sd": {},
                           "accuracy_answered": {}}
    for k in TYPE_KS:
        accs, f1s, unk, answered = [], [], [], []
        for draw in range(TYPE_DRAWS):
            rng = np.random.default_rng(1000 * k + draw)
            taught = np.concatenate([rng.choice(np.flatnonzero(cls == c), k, replace=False)
                                     for c in range(len(DEFECT_CLASSES))])
            rest = np.setdiff1d(np.arange(len(cls)), taught)
            types = DefectTypes()
            for i in taught:
                types.add(f"t{cls[i]}", x[i], {"en": DEFECT_CLASSES[cls[i]], "ko": DEFECT_CLASSES[cls[i]]},
                          views=views[i])
            pred = []
            for i in rest:
                r = types.predict(x[i])
                pred.append(int(r["type"][1:]) if r and r["known"] else -1)
            pred_a, truth = np.asarray(pred), cls[rest]
            accs.append(float(np.mean(pred_a == truth)))
            unk.append(float(np.mean(pred_a == -1)))
            if np.any(pred_a != -1):
                answered.append(float(np.mean(pred_a[pred_a != -1] == truth[pred_a != -1])))
            f1 = []
            for c in range(len(DEFECT_CLASSES)):
                tp = np.sum((pred_a == c) & (truth == c))
                f1.append(2 * tp / max(2 * tp + np.sum((pred_a == c) & (truth != c)) + np.sum((pred_a != c) & (truth == c)), 1))
            f1s.append(float(np.mean(f1)))
        out["accuracy"][str(k)] = float(np.mean(accs))
        out["accuracy_sd"][str(k)] = float(np.std(accs))
        out["macro_f1"][str(k)] = float(np.mean(f1s))
        out["unknown_rate"][str(k)] = float(np.mean(unk))
        out["accuracy_answered"][str(k)] = float(np.mean(answered)) if answered else None
        log(f"defect types k={k}: accuracy {out['accuracy'][str(k)]:.3f}, macro-F1 {out['macro_f1'][str(k)]:.3f}")
    return out
