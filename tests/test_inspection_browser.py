"""The inspection review page in headless Chromium on a running service: an operator confirms a reject
with the page's buttons, names its defect type (English and Korean) in the page's form, the page shows
it labelled, the next similar reject shows that type; the tile grid and the health strip are shown."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from _app_thread import AppInThread
from _auth import PASSWORD
from _browser import log_in, new_page
from axline.plant import parse_plant
from axline.service import Service
from test_vision_review import PLANT, scratched, texture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the review test's plant, with a camera that may pause between images while the operator reviews
BROWSER_PLANT = PLANT.replace("expected_interval_s: 1.5", "expected_interval_s: 600")


class ServiceThread(AppInThread):
    """The whole service (camera folder, vision station, app) on its own loop in a background thread."""

    def __init__(self, tmp_dir: Path) -> None:
        super().__init__()
        self.tmp_dir = tmp_dir

    async def _start(self) -> None:
        self.service = Service(parse_plant(BROWSER_PLANT, base_dir=str(self.tmp_dir)), port=0)
        await self.service.start()
        self.port = int(self.service.url.rstrip("/").rsplit(":", 1)[1])

    async def _stop(self) -> None:
        await self.service.stop()


def _wait(cond, timeout: float, what: str):
    t0 = time.monotonic()
    while not (value := cond()):
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return value


def test_an_operator_types_a_reject_on_the_review_page_and_the_next_reject_shows_it(browser, tmp_path):
    from axline.inspect.train import train_inspector

    train_inspector([texture(i) for i in range(24)], tmp_path / "model.axi", size=64, scorer="nn",
                    target_frr=0.0, progress=False)
    images = tmp_path / "images"
    images.mkdir()
    errors: list[str] = []
    with ServiceThread(tmp_path) as app:
        svc = app.service
        svc.security.accounts.add("kim", "operator", PASSWORD)

        def rejects() -> list:
            return svc.historian.events(kinds=["defect"], limit=100)

        Image.fromarray(scratched(100)).save(images / "p0001.png")
        first = _wait(rejects, 120, "a reject")[0]
        page = new_page(browser, errors)
        log_in(page, app.url, "kim")
        page.wait_for_url(lambda u: "/login" not in u)
        page.goto(app.url + "/inspection")
        card = f'#verdicts li[data-event-id="{first.id}"]'
        page.wait_for_selector(f"{card}[data-verdict=reject]")
        assert page.query_selector(f"{card} .defect-type") is None  # no type taught yet
        assert page.query_selector(f"{card} .type-form") is None  # a type only after the reject is confirmed
        assert page.text_content(f"{card} .verdict-label") == "Reject"
        # the tile grid over the heat map, also for a part seen whole in one tile: that tile is over the threshold
        tiles = page.eval_on_selector_all(f"{card} .tile-grid .tile",
                                          "els => els.map(e => [e.className, e.style.left, e.style.width])")
        assert tiles == [["tile worst over", "0%", "100%"]], tiles
        assert page.text_content(f"{card} .tiles").startswith("whole part in 1 tile, score ")

        # the health strip: one chip per check, named, with its state; the camera has sent an image
        strip = '#insp-health .health-strip[data-camera="cam1"]'
        page.wait_for_selector(f'{strip} .health-chip[data-check="stopped"][data-status="ok"]')
        checks = page.eval_on_selector_all(f"{strip} .health-chip",
                                           "els => els.map(e => [e.dataset.check, e.dataset.status, e.textContent])")
        kinds = {c[0] for c in checks}
        assert kinds >= {"brightness", "blur", "position", "occlusion", "stopped"}, checks
        assert all(c[1] in ("ok", "warn", "waiting", "off") and c[2].strip() for c in checks), checks
        assert "Image health" in page.text_content(strip)

        # confirm with the page's button: the station learns, the form to name the type appears
        page.click(f"{card} button[data-verdict=confirmed]")
        page.wait_for_selector(f"{card} .type-form")
        _wait(lambda: svc.historian.event(first.id).ack == "confirmed", 60, "the confirmation stored")
        assert page.query_selector(f"{card} button[data-verdict=confirmed]") is None
        assert page.input_value(f"{card} .type-select") == "__new"  # no type exists yet: a new one

        # a new type without its Korean name is refused, and the page says why
        page.fill(f"{card} .type-id", "scratch")
        page.fill(f"{card} .type-en", "Scratch")
        page.click(f"{card} .type-set")
        page.wait_for_function("(sel) => document.querySelector(sel).textContent.trim() !== ''",
                               arg=f"{card} .type-msg")
        assert "defect_type_label" not in svc.historian.event(first.id).data
        assert svc.vision_json()["cameras"]["cam1"]["types"]["names"] == {}

        page.fill(f"{card} .type-ko", "스크래치")
        page.click(f"{card} .type-set")
        labelled = f'{card} .type-labelled[data-type="scratch"]'
        page.wait_for_selector(labelled)
        assert page.text_content(labelled) == "Type Scratch (by kim)"
        assert page.query_selector(f"{card} .type-form") is None
        types = svc.vision_json()["cameras"]["cam1"]["types"]
        assert types["names"]["scratch"] == {"en": "Scratch", "ko": "스크래치"} and types["examples"] == {"scratch": 1}

        # the next similar reject carries the taught type, on the page, in both languages
        Image.fromarray(scratched(101)).save(images / "p0002.png")
        second = _wait(lambda: [e for e in rejects() if e.data["path"].endswith("p0002.png")], 120, "reject 2")[0]
        typed = f'#verdicts li[data-event-id="{second.id}"] .defect-type'
        page.wait_for_selector(f'{typed}[data-type="scratch"]')
        assert page.text_content(typed).startswith("Type: Scratch (")
        assert "unknown" not in (page.get_attribute(typed, "class") or "")
        page.click("#lang-toggle")
        page.wait_for_function("(sel) => document.querySelector(sel).textContent.includes('스크래치')", arg=typed)
        assert "스크래치" in page.text_content(labelled)
        page.click("#lang-toggle")

        # the dashboard's station card of the camera's station: tiles, image health and the newest type
        page.goto(app.url + "/")
        vision = '#flow [data-station] .station-vision .vision-cam[data-camera="cam1"]'
        page.wait_for_selector(f'{vision} .vision-type[data-type="scratch"]')
        assert page.text_content(f"{vision} .vision-type") == "last defect: Scratch"
        assert page.text_content(f"{vision} .vision-tiles") == "inspected in 1 tile(s)"
        # (two images so far: the image checks wait for a full window of images)
        assert page.get_attribute(f"{vision} .vision-health", "data-state") == "waiting"
        assert page.text_content(f"{vision} .vision-health") == "image health: waiting for images"
        page.click("#lang-toggle")
        page.wait_for_function("(sel) => document.querySelector(sel).textContent === '최근 불량: 스크래치'",
                               arg=f"{vision} .vision-type")
    # the one refused request (the type without its Korean name) is the only error the browser saw
    assert [e for e in errors if "409" not in e] == [] and len(errors) == 1, errors
