"""Image health: each check warns on its disturbance and stays quiet on undisturbed parts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from axline.inspect.health import HealthMonitor, evaluate, fit_reference, measure, spot_limit


def part(seed: int) -> np.ndarray:
    """A fixtured part: a textured bright plate with a hole on a dark background, jittered by a pixel."""
    rng = np.random.default_rng(seed)
    img = np.full((128, 160), 30.0)
    yy, xx = np.mgrid[0:128, 0:160]
    oy, ox = rng.integers(-1, 2, 2)
    plate = (yy >= 24 + oy) & (yy < 104 + oy) & (xx >= 30 + ox) & (xx < 130 + ox)
    img[plate] = 150 + 20 * np.sin((xx[plate] + yy[plate]) / 2.0)
    img[((yy - 64 - oy) ** 2 + (xx - 80 - ox) ** 2) < 100] = 30
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def disturbed(img: np.ndarray, kind: str) -> np.ndarray:
    a = img.astype(np.float64)
    if kind == "brightness":
        a = a + 40
    elif kind == "contrast":
        a = (a - a.mean()) * 0.5 + a.mean()
    elif kind == "blur":
        a = ndimage.gaussian_filter(a, 2.0)
    elif kind == "position":
        a = ndimage.shift(a, (0, 12), order=1, mode="nearest")
    elif kind == "rotation":
        a = ndimage.rotate(a, 8, reshape=False, order=1, mode="nearest")
    elif kind == "occlusion":
        yy, xx = np.mgrid[0:a.shape[0], 0:a.shape[1]]
        a[((yy - 40) ** 2 + (xx - 110) ** 2) < 144] = 10  # the same smear on every image
    return np.clip(a, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def reference() -> dict:
    return fit_reference([part(i) for i in range(60)], window=8)


def _window(reference: dict, images: list[np.ndarray]) -> dict:
    return evaluate([measure(im, reference) for im in images], reference)


def test_undisturbed_parts_are_healthy(reference: dict) -> None:
    for start in (100, 200, 300):
        state = _window(reference, [part(start + i) for i in range(8)])
        assert state["ok"], state


@pytest.mark.parametrize("kind", ["brightness", "contrast", "blur", "position", "rotation", "occlusion"])
def test_each_disturbance_raises_its_check(reference: dict, kind: str) -> None:
    state = _window(reference, [disturbed(part(400 + i), kind) for i in range(8)])
    check = {"brightness": "brightness", "contrast": "contrast", "blur": "blur", "position": "position",
             "rotation": "rotation", "occlusion": "occlusion"}[kind]
    assert not state["ok"] and check in state["warnings"], state["warnings"]
    assert state["checks"][check]["status"] == "warn"


def test_monitor_waits_for_a_full_window_and_one_odd_image_does_not_warn(reference: dict) -> None:
    mon = HealthMonitor(reference)
    assert mon.window == 8
    states = [mon.add(part(500 + i)) for i in range(7)]
    assert states == [None] * 7
    assert mon.add(disturbed(part(507), "brightness"))["ok"]  # the window median is robust to one odd part
    for i in range(8):
        state = mon.add(disturbed(part(600 + i), "brightness"))
    assert "brightness" in state["warnings"]
    assert len(mon.recent) == 8  # bounded


def texture(seed: int) -> np.ndarray:
    """A surface filling the whole image (no part outline to align on): each image a different texture."""
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.normal(0, 1, (120, 200)), 1.5)
    return np.clip(128 + 30 * a / a.std(), 0, 255).astype(np.uint8)


def test_a_shift_that_smears_a_border_warns_position_even_without_an_outline() -> None:
    ref = fit_reference([texture(i) for i in range(60)], window=8)
    assert _window(ref, [texture(100 + i) for i in range(8)])["ok"]
    shifted = [np.asarray(ndimage.shift(texture(200 + i).astype(float), (0, 4), order=1, mode="nearest"))
               .clip(0, 255).astype(np.uint8) for i in range(8)]  # 2 % of the width, the left edge smeared
    state = _window(ref, shifted)
    assert "position" in state["warnings"] and state["checks"]["position"]["borders"] == ["l"], state["checks"]


def test_a_spot_anomalous_at_the_same_place_in_most_images_warns_occlusion(reference: dict) -> None:
    rng = np.random.default_rng(0)
    limit = 2.0
    calm = [rng.uniform(0.5, 1.5, (16, 16)) for _ in range(8)]
    ms = [measure(part(700 + i), reference, s) for i, s in enumerate(calm)]
    state = evaluate(ms, reference, limit)
    assert state["ok"] and state["checks"]["occlusion"]["spot"] < limit
    # a real defect: high in one image only (the window's median ignores it)
    odd = [s.copy() for s in calm]
    odd[3][5, 5] = 9.0
    assert evaluate([measure(part(700 + i), reference, s) for i, s in enumerate(odd)], reference, limit)["ok"]
    # the same place high in most images: a smear on the lens (or a tool marking every part)
    spot = [s.copy() for s in calm]
    for s in spot[:6]:
        s[10, 2] = 3.0
    state = evaluate([measure(part(700 + i), reference, s) for i, s in enumerate(spot)], reference, limit)
    assert state["warnings"] == ["occlusion"] and state["checks"]["occlusion"]["spot"] == pytest.approx(3.0)
    # no spot limit (no held-out good scores): the spot check is off
    assert evaluate([measure(part(700 + i), reference, s) for i, s in enumerate(spot)], reference)["ok"]


def test_the_monitor_takes_patch_scores_and_the_spot_limit(reference: dict) -> None:
    mon = HealthMonitor(reference, spots=spot_limit([1.0, 2.0, 3.0]))
    assert mon.spots == 2.0 and spot_limit([]) is None
    scores = np.ones((1, 16, 16))
    scores[0, 4, 4] = 5.0
    state = None
    for i in range(8):
        state = mon.add(part(800 + i), scores)
    assert state is not None and state["warnings"] == ["occlusion"]
