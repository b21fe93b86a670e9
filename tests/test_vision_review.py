"""The review loop teaches defect types, the station reports them, and its health strip and events work:
camera folder -> inspector -> defect event -> operator confirms and names the type (as the review page
does, over HTTP) -> the next similar reject carries that type; a camera that stops raises an event."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from PIL import Image

from _auth import PASSWORD
from axline.plant import parse_plant
from axline.service import Service

pytestmark = pytest.mark.slow


def texture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64]
    img = 120 + 25 * np.sin((xx + yy) / 3.0 + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 4, (64, 64))
    return np.clip(img, 0, 255).astype(np.uint8)


def scratched(seed: int) -> np.ndarray:
    img = texture(seed)
    img[28:32, 10:54] = 250
    return img


PLANT = textwrap.dedent("""
    plant: {site: changwon, area: plant1, name: {en: Plant, ko: 공장}, timezone: Asia/Seoul}
    historian: {backend: embedded, path: data/historian}
    connectors:
      - {name: plc1, type: opcua, endpoint: "opc.tcp://127.0.0.1:9/none"}
    lines:
      - id: line1
        takt_s: 30
        ideal_cycle_s: 25
        shifts: [{name: A, start: "06:00", hours: 8}]
        assets:
          - id: vision
            cell: vision
            kind: vision
            connector: plc1
            tags: [{signal: state, unit: enum, kind: state}]
    cameras:
      - id: cam1
        asset: vision
        source: folder
        path: images
        pattern: "*.png"
        model: model.axi
        inspection: {expected_interval_s: 1.5, ignore: [[0, 60, 64, 4]]}
""")


async def _wait(cond, timeout, what):
    t0 = time.monotonic()
    while not (value := cond()):
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


async def test_operators_teach_defect_types_and_the_station_reports_them(tmp_path: Path) -> None:
    from axline.inspect.train import train_inspector

    train_inspector([texture(i) for i in range(24)], tmp_path / "model.axi", size=64, scorer="nn",
                    target_frr=0.0, progress=False)
    images = tmp_path / "images"
    images.mkdir()
    plant = parse_plant(PLANT, base_dir=str(tmp_path))
    svc = Service(plant, port=0)
    await svc.start()
    try:
        def defects() -> list:
            return svc.historian.events(kinds=["defect"], limit=100)

        Image.fromarray(scratched(100)).save(images / "p0001.png")
        first = (await _wait(defects, 120, "a reject"))[0]
        assert first.data["verdict"] == "reject" and "defect_type" not in first.data  # no types taught yet
        svc.security.accounts.add("kim", "operator", PASSWORD)
        origin = svc.url.rstrip("/")
        async with aiohttp.ClientSession(headers={"Origin": origin}, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            r = await http.post(svc.url + "login", json={"username": "kim", "password": PASSWORD})
            assert r.status == 200, await r.text()
            body = {"type": "scratch", "names": {"en": "Scratch", "ko": "스크래치"}}
            # a type is only for a confirmed defect
            r = await http.post(f"{svc.url}api/events/{first.id}/defect-type", json=body)
            assert r.status == 409, await r.text()
            r = await http.post(f"{svc.url}api/events/{first.id}/feedback", json={"verdict": "confirmed"})
            assert r.status == 200, await r.text()
            r = await http.post(f"{svc.url}api/events/{first.id}/defect-type", json={"type": "scratch"})
            assert r.status == 409  # a new type needs its names in both languages
            r = await http.post(f"{svc.url}api/events/{first.id}/defect-type", json=body)
            assert r.status == 200, await r.text()
            assert (await r.json())["examples"] == {"scratch": 1}
            r = await http.get(svc.url + "api/vision")
            cam = (await r.json())["cameras"]["cam1"]
            assert cam["types"]["names"]["scratch"] == {"en": "Scratch", "ko": "스크래치"}
            assert set(cam["health"]["checks"]) >= {"brightness", "blur", "position", "occlusion", "stopped"}
        audit = svc.security.audit.tail(20, action="event.defect_type")
        assert audit[0]["who"] == "kim" and audit[0]["new"] == "scratch"
        # each model the station swapped in is a system event, which the value report lists among what changed
        def model_events() -> list:
            found = [e for e in svc.historian.events(kinds=["system"], limit=200) if e.code.startswith("model.")]
            return sorted(found, key=lambda e: (e.ts, e.id)) if len(found) >= 2 else []  # plant time can tie

        models = await _wait(model_events, 60, "the model-change events")
        assert [e.code for e in models] == ["model.inspector_updated", "model.inspector_type_taught"], models
        updated, taught = models
        assert updated.data["version"] == 1 and updated.data["user"] == "kim" and updated.data["learnt"] == "confirmed_reject"
        assert updated.data["event_id"] == taught.data["event_id"] == first.id
        assert taught.data["type"] == "scratch" and taught.data["type_ko"] == "스크래치" and taught.data["examples"] == 1
        from axline.report.value import _changes

        changes = _changes(svc.historian, 0, svc.now_ns() + 1)
        assert [c["what"] for c in changes if c["what"].startswith("model.")] == [e.code for e in models]
        assert all(c["by"] == "kim" for c in changes if c["what"].startswith("model."))
        assert svc.historian.event(first.id).data["defect_type_label"]["type"] == "scratch"

        Image.fromarray(scratched(101)).save(images / "p0002.png")
        second = await _wait(lambda: [e for e in defects() if e.data["path"].endswith("p0002.png")], 120, "reject 2")
        dt = second[0].data["defect_type"]
        assert dt["type"] == "scratch" and dt["known"] and dt["label"]["ko"] == "스크래치"

        # no more images: the camera-stopped check raises a system event with its advice
        stopped = await _wait(lambda: [e for e in svc.historian.events(kinds=["system"], limit=200)
                                       if e.code == "camera.health.stopped"], 120, "camera stopped event")
        assert stopped[0].data["advice"]["ko"] and stopped[0].severity == "warning"
        await _wait(lambda: svc.vision_json()["cameras"]["cam1"]["health"]["checks"]["stopped"]["status"] == "warn",
                    120, "the health strip to show the stopped camera")
        # the dashboard's station card: the camera's tiles, its health (the stopped camera) and the newest type
        card = svc.status_json()["lines"]["line1"]["stations"][plant.cameras[0].asset]["vision"]
        assert [c["camera"] for c in card] == ["cam1"] and card[0]["tiles"] == 1
        assert card[0]["health"]["stopped"] == "warn"
        assert card[0]["last_type"]["type"] == "scratch" and card[0]["last_type"]["label"]["ko"] == "스크래치"
    finally:
        await svc.stop()


def test_a_reject_is_typed_after_its_verdict_when_the_station_asks(tmp_path: Path) -> None:
    """The verdict (what the PLC waits for) can leave the type for later; asked later, it is the same."""
    from axline.inspect.inferencer import Inspector
    from axline.inspect.model import InspectorModel
    from axline.inspect.train import teach_defect_type, train_inspector

    # five held-out goods set the threshold; the parts' raw contrast is kept (no brightness rescaling),
    # so a fresh good texture stays below it
    train_inspector([texture(i) for i in range(24)], tmp_path / "model.axi", size=64, scorer="nn",
                    target_frr=0.0, progress=False, normalize_brightness=False)
    Image.fromarray(scratched(100)).save(tmp_path / "taught.png")
    teach_defect_type(tmp_path / "model.axi", tmp_path / "taught.png", "scratch",
                      {"en": "Scratch", "ko": "스크래치"}, out=tmp_path / "model.axi")
    insp = Inspector(InspectorModel.load(tmp_path / "model.axi"))
    part = scratched(101)
    now = insp.inspect(part)
    later = insp.inspect(part, defect_type=False)
    assert now.verdict == later.verdict == "reject"
    assert later.defect_type is None and now.defect_type["type"] == "scratch"
    assert insp.type_of(part, later) == now.defect_type
    good = insp.inspect(texture(200), defect_type=False)
    assert good.verdict == "pass" and insp.type_of(texture(200), good) is None
