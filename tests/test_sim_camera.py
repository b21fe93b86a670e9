"""Synthetic part images: shapes, masks that mark exactly the defect, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from axline.sim.camera import DEFECT_KINDS, render_part


def _pair(seed: int, defect: str, size: int = 128, color: bool = False):
    """The same part rendered with and without ``defect``."""
    img, mask = render_part(np.random.default_rng(seed), defect, size, color)
    good, good_mask = render_part(np.random.default_rng(seed), None, size, color)
    return img, mask, good, good_mask


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("defect", [None, *DEFECT_KINDS])
def test_shapes_dtypes_and_mask_values(defect, color):
    img, mask = render_part(np.random.default_rng(1), defect, 96, color)
    assert img.dtype == np.uint8 and mask.dtype == np.uint8
    assert img.shape == ((96, 96, 3) if color else (96, 96))
    assert mask.shape == (96, 96)
    assert set(np.unique(mask).tolist()) <= {0, 255}
    if defect is None:
        assert not mask.any()
    else:
        assert mask.any()


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("defect", DEFECT_KINDS)
def test_mask_marks_exactly_where_the_defect_changes_the_part(defect, color):
    for seed in range(6):
        img, mask, good, good_mask = _pair(seed, defect, color=color)
        assert not good_mask.any()
        diff = np.abs(img.astype(int) - good.astype(int))
        if color:
            diff = diff.max(axis=-1)
        inside = mask > 0
        assert not diff[~inside].any(), "pixels outside the mask changed"
        # the defect is visible: most of its pixels differ clearly from the good part
        assert (diff[inside] > 8).mean() > 0.5


def test_good_part_is_a_bright_disc_on_a_dark_conveyor():
    img, _ = render_part(np.random.default_rng(7), None, 128)
    centre_ring = img[64 - 40 : 64 - 20, 54:74].astype(float).mean()  # on the face, above the bore
    corners = np.concatenate([img[:10, :10].ravel(), img[-10:, -10:].ravel()]).astype(float).mean()
    bore = img[60:68, 60:68].astype(float).mean()
    assert centre_ring > corners + 60
    assert centre_ring > bore + 60
    # tool marks and sensor noise: the face is textured, not flat
    assert img[64 - 40 : 64 - 20, 54:74].std() > 2.0


def test_same_generator_state_gives_same_image_and_parts_vary():
    a, ma = render_part(np.random.default_rng(3), "scratch", 64)
    b, mb = render_part(np.random.default_rng(3), "scratch", 64)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    rng = np.random.default_rng(3)
    first, _ = render_part(rng, None, 64)
    second, _ = render_part(rng, None, 64)
    assert not np.array_equal(first, second)  # position, rotation, lighting and noise vary


def test_draws_from_the_generator_do_not_depend_on_the_defect():
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    render_part(r1, "crack", 64)
    render_part(r2, None, 64)
    assert r1.integers(1 << 30) == r2.integers(1 << 30)


def test_missing_feature_removes_a_dark_hole():
    img, mask, good, _ = _pair(4, "missing_feature")
    inside = mask > 0
    # where the hole was the part now shows its bright face
    assert img[inside].astype(float).mean() > good[inside].astype(float).mean() + 40


@pytest.mark.parametrize("size", [32, 64, 200])
def test_sizes(size):
    for seed, defect in enumerate(DEFECT_KINDS * 4):
        img, mask = render_part(np.random.default_rng(seed), defect, size, color=seed % 2 == 1)
        assert img.shape[:2] == mask.shape == (size, size)
        assert mask.any(), (defect, seed)  # even a small image shows its defect


def test_bad_input_is_rejected_with_a_clear_message():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="defect must be None or one of"):
        render_part(rng, "rust", 64)
    with pytest.raises(ValueError, match="size must be an integer in 32..4096"):
        render_part(rng, None, 16)
    with pytest.raises(ValueError, match="size must be an integer"):
        render_part(rng, None, 64.0)  # type: ignore[arg-type]
