"""Synthetic long parts (a shaft in a wide image): shapes, masks that mark exactly the defect,
small defects, determinism, bad input, and the virtual line's camera rendering them."""

from __future__ import annotations

import numpy as np
import pytest

from axline.sim.camera import DEFECT_KINDS
from axline.sim.camera_long import render_long_part
from axline.sim.line import VirtualLine

SIZE = (512, 128)


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("defect", DEFECT_KINDS)
def test_mask_marks_exactly_where_the_defect_changes_the_shaft(defect: str, color: bool) -> None:
    for seed in range(4):
        img, mask = render_long_part(np.random.default_rng(seed), defect, SIZE, color)
        good, good_mask = render_long_part(np.random.default_rng(seed), None, SIZE, color)
        assert img.shape == ((128, 512, 3) if color else (128, 512)) and mask.shape == (128, 512)
        assert img.dtype == np.uint8 and set(np.unique(mask).tolist()) <= {0, 255}
        assert not good_mask.any() and mask.any()
        diff = np.abs(img.astype(int) - good.astype(int))
        if color:
            diff = diff.max(axis=-1)
        inside = mask > 0
        assert not diff[~inside].any(), "pixels outside the mask changed"
        assert (diff[inside] > 8).mean() > 0.3  # the defect is visible
        if defect != "missing_feature":
            # a small defect on a long part: well under 1 % of the image
            assert inside.mean() < 0.01


def test_a_shaft_is_a_bright_bar_across_a_dark_conveyor() -> None:
    img, _ = render_long_part(np.random.default_rng(2), None, (1024, 256))
    assert img.shape == (256, 1024)
    bar = img[110:140, 100:900].astype(float)
    assert bar.mean() > img[:20].astype(float).mean() + 60 and bar.mean() > img[-20:].astype(float).mean() + 60
    assert img[:, :15].astype(float).mean() < bar.mean() - 60  # the shaft ends before the image does


def test_same_state_same_shaft_and_shafts_vary() -> None:
    a, _ = render_long_part(np.random.default_rng(3), "crack", SIZE)
    b, _ = render_long_part(np.random.default_rng(3), "crack", SIZE)
    assert np.array_equal(a, b)
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    first, _ = render_long_part(r1, "dent", SIZE)
    render_long_part(r2, None, SIZE)
    assert r1.integers(1 << 30) == r2.integers(1 << 30)  # three draws whatever the defect
    second, _ = render_long_part(r1, None, SIZE)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("size", [(256, 256), (100, 40), (512, 4096)])
def test_bad_sizes_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="size"):
        render_long_part(np.random.default_rng(0), None, size)
    with pytest.raises(ValueError, match="defect"):
        render_long_part(np.random.default_rng(0), "rust", SIZE)


def test_the_virtual_line_images_shafts_in_wide_images() -> None:
    line = VirtualLine(seed=4, start_ns=1_700_000_000_000_000_000, faults=None, warmup_s=0.0, image_size=64,
                       part="shaft")
    for _ in range(60):
        line.step(1.0)
    images = line.drain_images()
    assert images, "the vision station took no picture"
    for _part, image, mask in images:
        assert image.shape == (64, 256) and mask.shape == (64, 256)
    with pytest.raises(ValueError, match="part"):
        VirtualLine(seed=4, part="gear")
