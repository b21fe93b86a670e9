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


def test_the_deep_descriptor_describes_the_top_patches_their_contrast_and_the_spread() -> None:
    from axline.inspect.types import deep_feature

    feats = np.zeros((2, 3, 4, 4), np.float32)
    feats[:, 0] = 1.0  # the surface
    feats[1, 2, 1, 1] = 4.0  # the defect patch, in the second tile
    scores = np.zeros((2, 4, 4), np.float32)
    scores[1, 1, 1] = 5.0
    d = deep_feature(feats, scores, patches=1)
    assert d.shape == (9,)
    assert np.allclose(d[:3], np.array([1, 0, 4]) / np.sqrt(17), atol=1e-6)
    assert np.allclose(d[3:6], [0, 0, 1], atol=1e-6)  # what differs from the surface
    assert d[6] == 0 and d[7] == 0 and d[8] > 0  # only the defect channel varies over the part
    with pytest.raises(ValueError):
        deep_feature(feats, scores[:1])


def test_new_types_keep_compact_deep_descriptors_and_older_types_their_own() -> None:
    from axline.inspect.types import DESCRIPTOR, LEGACY_DESCRIPTOR, describe

    rng = np.random.default_rng(3)
    types = DefectTypes()
    assert types.descriptor == DESCRIPTOR
    for c in range(2):
        types.add(f"t{c}", sample(rng, c), NAMES[f"t{c}"], views=[sample(rng, c)])
    data = types.to_json()
    assert data["descriptor"] == DESCRIPTOR and isinstance(data["examples"][0]["feature"], str)
    back = DefectTypes.from_json(data)
    assert back.descriptor == DESCRIPTOR and back.predict(sample(rng, 1, 0.05))["type"] == "t1"
    # types saved before descriptions were named: the older description, lists kept as they were
    data.pop("descriptor")
    old = DefectTypes.from_json(data)
    assert old.descriptor == LEGACY_DESCRIPTOR
    old.add("t0", sample(rng, 0))
    assert isinstance(old.examples[-1]["feature"], list)
    assert DefectTypes.from_json(None).descriptor == DESCRIPTOR
    with pytest.raises(ValueError):
        DefectTypes(descriptor="nonsense")
    feats = rng.normal(0, 1, (1, 3, 4, 4)).astype(np.float32)
    scores = rng.random((1, 4, 4)).astype(np.float32)
    assert np.allclose(describe(None, np.zeros((8, 8), np.uint8), feats, scores, LEGACY_DESCRIPTOR),
                       region_feature(feats, scores))
    with pytest.raises(ValueError):
        describe(None, np.zeros((8, 8), np.uint8), feats, scores, "nonsense")


def test_cross_validation_chooses_the_logistic_strength_from_the_labelled_images() -> None:
    from axline.inspect.types import LOGISTIC_C, LOGISTIC_CS, cross_validate

    rng = np.random.default_rng(4)
    x = np.stack([sample(rng, c, 0.5) for c in range(3) for _ in range(6)])
    y = np.repeat(np.arange(3), 6)
    c_value, thr = cross_validate(x, y, 3)
    assert c_value in LOGISTIC_CS and 0.0 <= thr < 1.0
    assert cross_validate(x[::6], y[::6], 3) == (LOGISTIC_C, 0.0)  # one image a type: nothing to leave out
    types = DefectTypes()
    for xi, yi in zip(x, y, strict=True):
        types.add(f"t{yi}", xi, NAMES[f"t{yi}"])
    types.predict(x[0])
    assert types.logistic_c == c_value


def test_the_cross_validation_is_kept_with_the_types_until_an_example_is_added() -> None:
    rng = np.random.default_rng(5)
    types = DefectTypes()
    for c in range(3):
        for _ in range(3):
            types.add(f"t{c}", sample(rng, c), NAMES[f"t{c}"])
    assert types.to_json()["cv"] is None
    types.fit()
    data = types.to_json()
    assert data["cv"]["examples"] == 9
    data["cv"]["threshold"] = 0.999  # what was kept is used, not recomputed
    back = DefectTypes.from_json(data)
    assert back.cv == data["cv"] and not back.predict(sample(rng, 0))["known"]
    back.add("t0", sample(rng, 0))
    assert back.cv is None


def test_unlabelled_rejects_teach_by_self_training_bounded_and_refitted_in_steps() -> None:
    from axline.inspect.types import MAX_UNLABELLED, REFIT_EVERY

    rng = np.random.default_rng(6)
    types = DefectTypes()
    for c in range(3):
        for _ in range(3):
            types.add(f"t{c}", sample(rng, c, 0.1), NAMES[f"t{c}"], views=[sample(rng, c, 0.1)])
    types.fit()
    cv = dict(types.cv)
    first = types._fitted()[1]
    assert types.self_trained == 0  # nothing seen yet
    # rejects seen and typed: kept unlabelled; the classifier is refitted only every REFIT_EVERY of them
    for i in range(REFIT_EVERY - 1):
        types.predict(sample(rng, i % 3, 0.1), observe=True)
        assert not types.refresh()
    assert len(types.unlabelled) == REFIT_EVERY - 1 and types._fitted()[1] is first
    types.predict(sample(rng, 0, 0.1), observe=True)
    assert types._fitted()[1] is first  # the fit in use answers until the refit is done
    assert types.refit_due and types.refresh() and not types.refit_due
    second = types._fitted()[1]
    assert second is not first
    assert 0 < types.self_trained <= REFIT_EVERY  # the confident ones joined their predicted type
    assert types.cv == cv  # the labelled cross-validation is not redone for unlabelled rejects
    # bounded, and a reloaded station keeps what it saw
    for _ in range(MAX_UNLABELLED + 10):
        types.observe(sample(rng, 1))
    assert len(types.unlabelled) == MAX_UNLABELLED
    back = DefectTypes.from_json(types.to_json())
    assert len(back.unlabelled) == 0
    back.adopt_unlabelled(types)
    assert len(back.unlabelled) == MAX_UNLABELLED


def test_self_training_moves_the_boundary_towards_where_the_plants_rejects_lie() -> None:
    rng = np.random.default_rng(7)

    def point(x: float, noise: float = 0.05) -> np.ndarray:
        v = rng.normal(0, noise, 12)
        v[0] += x
        v[1] += 1.0
        return v

    types = DefectTypes(min_confidence=0.0)
    for c, x in ((0, -1.0), (1, 1.0)):
        for _ in range(3):
            types.add(f"t{c}", point(x), NAMES[f"t{c}"])
    query = point(-0.1, 0.0)
    before = types._fitted()[1].proba(query[None])[0, 1]
    # the plant's rejects of the second type reach well towards the first
    for x in np.linspace(-0.05, 1.2, 40):
        types.observe(point(float(x)))
    assert types.refresh()
    after = types._fitted()[1].proba(query[None])[0, 1]
    assert types.self_trained > 0
    assert after > before + 0.05


def test_the_description_runs_its_own_backbone_whatever_the_builders_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from axline.inspect import features
    from axline.inspect import types as T

    built = []

    def fake_build(size: int, blocks: tuple[int, ...], feature_dim: int | None, seed: int, grid_stride: int,
                   backbone: str = "lite2") -> bytes:  # a builder whose default is another variant
        built.append((size, blocks, grid_stride, backbone))
        return b"graph"

    class FakeInspector:
        threads = 3

        def runner(self, onnx_bytes: bytes) -> tuple[str, bytes]:
            return ("runner", onnx_bytes)

    monkeypatch.setattr(features, "build_backbone_onnx", fake_build)
    monkeypatch.setattr(T, "_TYPE_BACKBONES", {})
    assert T.type_backbone(FakeInspector(), 256, 16) == ("runner", b"graph")
    assert built == [(256, T.TYPE_BLOCKS, 16, T.TYPE_BACKBONE)]
    assert set(T.TYPE_BLOCKS) <= set(features.get_backbone(T.TYPE_BACKBONE).outputs)
    T.type_backbone(FakeInspector(), 256, 16)
    assert len(built) == 1  # built once per process
