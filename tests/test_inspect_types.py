"""Defect types: region descriptors, the few-shot classifier, its mirrored views and "unknown type"."""

from __future__ import annotations

import numpy as np
import pytest

from axline.inspect.types import DefectTypes, region_feature, unknown_threshold

NAMES = {f"t{i}": {"en": f"Type {i}", "ko": f"유형 {i}"} for i in range(3)}


def sample(rng: np.random.Generator, c: int, noise: float = 0.3) -> np.ndarray:
    centre = np.zeros(12)
    centre[4 * c:4 * c + 4] = 1.0
    return centre + rng.normal(0, noise, 12)


def test_region_feature_describes_the_highest_patches_and_their_contrast() -> None:
    feats = np.zeros((1, 3, 4, 4), np.float32)
    feats[0, 0] = 1.0  # the surface
    feats[0, 1, 2, 3] = 5.0  # the defect patch
    scores = np.zeros((1, 4, 4), np.float32)
    scores[0, 2, 3] = 9.0
    d = region_feature(feats, scores, patches=1)
    assert d.shape == (6,)
    assert np.allclose(np.linalg.norm(d[:3]), 1) and np.allclose(np.linalg.norm(d[3:]), 1)
    assert np.allclose(d[3:], [0, 1, 0], atol=1e-6)  # what differs from the surface: the defect channel
    with pytest.raises(ValueError):
        region_feature(feats, scores[:, :3])


def test_one_example_per_type_uses_the_nearest_mean_and_more_the_logistic_regression() -> None:
    rng = np.random.default_rng(0)
    types = DefectTypes()
    for c in range(3):
        types.add(f"t{c}", sample(rng, c), NAMES[f"t{c}"])
    fit = types._fitted()
    assert fit is not None and not fit[1].logistic and fit[2] == 0.0  # nothing unknown with one example each
    assert types.predict(sample(rng, 1, 0.05))["type"] == "t1"
    for c in range(3):
        for _ in range(5):
            types.add(f"t{c}", sample(rng, c), source="x")
    assert types._fitted()[1].logistic
    hits = [types.predict(sample(rng, c))["type"] == f"t{c}" for c in range(3) for _ in range(20)]
    assert np.mean(hits) > 0.9
    r = types.predict(sample(rng, 2))
    assert r["label"] == {"en": "Type 2", "ko": "유형 2"} and 0 < r["confidence"] <= 1


def test_views_are_taught_with_their_image_and_survive_json() -> None:
    rng = np.random.default_rng(1)
    types = DefectTypes()
    for c in range(2):
        types.add(f"t{c}", sample(rng, c), NAMES[f"t{c}"], views=[sample(rng, c) for _ in range(3)])
    assert types.counts() == {"t0": 1, "t1": 1}  # an image with its views is one example
    back = DefectTypes.from_json(types.to_json())
    assert len(back.examples[0]["views"]) == 3
    assert back._fitted()[1].logistic  # 4 descriptors a type
    assert back.predict(sample(rng, 1, 0.05))["type"] == "t1"
    # an example from an older, shorter descriptor is left out rather than mixed in
    back.examples.insert(0, {"type": "t0", "feature": [0.1, 0.2], "source": None})
    back._fit = None
    assert back.predict(sample(rng, 0, 0.05))["type"] == "t0"


def test_the_unknown_threshold_comes_from_the_labelled_examples() -> None:
    rng = np.random.default_rng(2)
    # separable types: the left-out examples are right, nothing needs to be unknown
    x = np.stack([sample(rng, c, 0.1) for c in range(3) for _ in range(6)])
    y = np.repeat(np.arange(3), 6)
    assert unknown_threshold(x, y, 3) == 0.0
    # indistinguishable types: the left-out examples are no better than a guess, so confident-looking
    # answers are still "unknown"
    x = rng.normal(0, 1, (18, 12))
    thr = unknown_threshold(x, y, 3)
    assert thr > 1 / 3
    types = DefectTypes()
    for xi, yi in zip(x, y, strict=True):
        types.add(f"t{yi}", xi, NAMES[f"t{yi}"])
    answers = [types.predict(rng.normal(0, 1, 12)) for _ in range(30)]
    assert sum(not a["known"] for a in answers) > 0
    assert all(a["label"]["ko"] and a["label"]["en"] for a in answers)
    # a fixed floor set by the plant overrides the cross-validated one
    fixed = DefectTypes(min_confidence=0.99)
    for xi, yi in zip(x, y, strict=True):
        fixed.add(f"t{yi}", xi, NAMES[f"t{yi}"])
    assert not fixed.predict(x[0])["known"] or fixed.predict(x[0])["confidence"] > 0.99
