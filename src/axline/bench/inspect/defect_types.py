"""Defect types taught from a few labelled images per type."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from axline.bench.inspect.accuracy import DEFECT_CLASSES

TYPE_KS = (1, 5, 10)
TYPE_DRAWS = 20


def _defect_types(inspector: Any, feats: np.ndarray, test: list[Path], n_good: int, log: Any) -> dict[str, Any]:
    """Defect types from k labelled images per type (k = 1, 5, 10), tested on the rest, many draws.

    Each defect image's descriptor (the shipped description, :func:`axline.inspect.types.describe`,
    on the shipped scorer's patch scores) and those of its mirrored views are computed once; a draw
    picks k labelled images per type, teaches them (with their views, as the review page does) and
    classifies every other defect image (as it is). An "unknown type" answer counts as wrong in the
    accuracy (``accuracy_answered``: among the images given a type); macro-F1 is over the five types.
    ``method`` says in words what ran (the page prints it)."""
    from axline.inspect import types as T
    from axline.inspect.inferencer import load_image

    cls = np.array([next(i for i, c in enumerate(DEFECT_CLASSES) if p.parent.parent.name == c) for p in test[n_good:]])
    x, views = [], []
    t0 = time.perf_counter()
    for f, p in zip(feats[n_good:], test[n_good:], strict=True):
        img = load_image(p)
        x.append(T.describe(inspector, img, f, inspector.patch_scores(f, image_shape=img.shape), T.DESCRIPTOR))
        # the mirrored views a station keeps with each labelled image (computed once for every image)
        views.append(T.flipped_views(inspector, img, T.DESCRIPTOR))
    x = np.stack(x)
    # the development half (every other image of each folder, in sorted order): the self-training's
    # settings were chosen on draws within it; accuracy on the other half alone is reported as well
    dev = np.zeros(len(cls), bool)
    for c in range(len(DEFECT_CLASSES)):
        dev[np.flatnonzero(cls == c)[::2]] = True
    log(f"defect types: {len(x)} images described with their views in {time.perf_counter() - t0:.1f} s")
    out: dict[str, Any] = {"types": list(DEFECT_CLASSES), "draws": TYPE_DRAWS,
                           "per_type": {c: int(np.sum(cls == i)) for i, c in enumerate(DEFECT_CLASSES)},
                           "accuracy": {}, "macro_f1": {}, "unknown_rate": {}, "accuracy_sd": {},
                           "accuracy_answered": {}, "accuracy_held_out_half": {}, "descriptor": T.DESCRIPTOR,
                           "logistic_c": {}, "method": method_text()}
    for k in TYPE_KS:
        accs, f1s, unk, answered, chosen, held_accs = [], [], [], [], [], []
        for draw in range(TYPE_DRAWS):
            rng = np.random.default_rng(1000 * k + draw)
            taught = np.concatenate([rng.choice(np.flatnonzero(cls == c), k, replace=False)
                                     for c in range(len(DEFECT_CLASSES))])
            rest = np.setdiff1d(np.arange(len(cls)), taught)
            types = T.DefectTypes()
            for i in taught:
                types.add(f"t{cls[i]}", x[i], {"en": DEFECT_CLASSES[cls[i]], "ko": DEFECT_CLASSES[cls[i]]},
                          views=views[i])
            pred = []
            for i in rest:  # the station's unlabelled rejects: the images to be typed
                types.observe(x[i])
            types.predict(x[rest[0]])
            chosen.append(types.logistic_c)
            for i in rest:
                r = types.predict(x[i])
                pred.append(int(r["type"][1:]) if r and r["known"] else -1)
            pred_a, truth = np.asarray(pred), cls[rest]
            accs.append(float(np.mean(pred_a == truth)))
            held = ~dev[rest]
            held_accs.append(float(np.mean(pred_a[held] == truth[held])))
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
        out["accuracy_held_out_half"][str(k)] = float(np.mean(held_accs))
        out["unknown_rate"][str(k)] = float(np.mean(unk))
        out["accuracy_answered"][str(k)] = float(np.mean(answered)) if answered else None
        out["logistic_c"][str(k)] = {str(c): chosen.count(c) for c in sorted(set(chosen))}
        log(f"defect types k={k}: accuracy {out['accuracy'][str(k)]:.3f}, macro-F1 {out['macro_f1'][str(k)]:.3f}, "
            f"held-out half {out['accuracy_held_out_half'][str(k)]:.3f}")
    return out


def method_text() -> str:
    """What the defect-type run does, in words, from the shipped settings."""
    from axline.inspect import types as T
    from axline.inspect.features import get_backbone

    blocks = ", ".join(str(b) for b in T.TYPE_BLOCKS)
    cs = ", ".join(f"{c:g}" for c in T.LOGISTIC_CS)
    return (
        f"A defect is described by one more run of the ImageNet {get_backbone(T.TYPE_BACKBONE).title} on the part's "
        "tiles (whichever variant the anomaly detector runs), tapping "
        f"deeper stages than the anomaly detector (blocks {blocks}) on the detector's patch grid: the mean deep "
        f"feature of the {T.REGION_PATCHES} patches the detector scores highest, its difference from the part's "
        "surface (the patches scoring at most the median), and each feature's spread over the part; no backbone "
        f"is retrained. The answer is the nearest type mean (cosine) while a type has fewer than {T.LOGISTIC_FROM} "
        "descriptors, then a logistic regression on the standardised descriptors whose strength (C among "
        f"{cs}) is chosen by cross-validation on the labelled images alone. \"Unknown type\" (counted as wrong "
        "in the accuracy) is answered at or below a confidence chosen by the same cross-validation: the highest up "
        "to which the left-out labelled images were right no more often than a guess, one more right and one more "
        "wrong answer counted. The classifier is then refitted with the unlabelled rejects a station has typed "
        "(here: every image of the draw to be typed, as a plant holds its rejects; no label of theirs is used) "
        f"that it types with a probability above {T.SELF_TRAIN_FLOOR:g}, under the type it gives them "
        f"({T.SELF_TRAIN_ROUNDS} rounds of self-training); the refitted classifier is surer of itself than the "
        "labelled images' cross-validation, whose threshold it keeps, so it answers \"unknown type\" less often. "
        "Caveat: the descriptor's design (which stages, how the "
        "patches are pooled, the unknown rule) was settled by comparing this section's accuracy over draws during development, so these "
        "figures are an optimistic estimate, not a clean held-out one; only the strength and the unknown threshold "
        "are chosen per draw on the labelled images alone. The self-training (its floor and rounds, and that it "
        "helps) was settled on draws within a development half of each folder (every other image in sorted "
        "order); the accuracy on the test images of the other half alone is given with the table, a clean "
        "held-out figure for that choice. Tried there and not kept, for gaining nothing beyond the spread of the "
        "draws: shape features of the anomaly map (area, elongation, distance to the edge, grey contrast), "
        "90-degree rotations among the taught views, averaging the answer over mirrored views, a second "
        "description of a native-resolution crop around the peak, other stages and poolings (top 8 or 16 "
        "patches, score-weighted), and other classifiers (linear SVM, shrunk LDA, nearest neighbour). Tried "
        "later on the development half's draws and not kept either (none gained more than 0.04 at any k, inside "
        "the spread of the draws): EfficientNet-Lite1 or Lite2 for the description (their matching stages), a "
        "384 x 384 input for it, two descriptions concatenated (Lite1 at 256 and Lite0 at 384, at three times the "
        "cost), the detector's own features pooled the same way added, the part's mean or maximum deep feature "
        "added, patches chosen by how far their deep features lie from the part's median instead of by the "
        "detector's scores, shifted crops among the taught views, other "
        "self-training (none, four rounds, floor 0.8, at most 20 rejects a type, standardising with the "
        "rejects) and label spreading on a nearest-neighbour graph of the rejects, alone or smoothing the "
        "classifier's answers."
    )
