"""OpenCV camera source triggered by a PLC tag, through the service's bus (a video file stands in for
the USB camera: OpenCV opens both with the same VideoCapture)."""

from __future__ import annotations

import numpy as np
import pytest

from _wait import wait_for  # polled every 0.05 s here: each look reads the historian
from axline.batch import Batch
from axline.plant import PlantConfigError, parse_plant
from axline.service import Service

cv2 = pytest.importorskip("cv2")
T0 = 1_767_225_600 * 1_000_000_000
TAG = "s1/a1/l1/vision/cam_station/part_present"


def _video(path, frames=10):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert w.isOpened()
    for i in range(frames):
        w.write(np.full((48, 64, 3), 20 * i, np.uint8))
    w.release()


def _plant(tmp_path, device: str, extra: str = "trigger_tag: cam_station/part_present"):
    return parse_plant(f"""
plant: {{site: s1, area: a1}}
lines:
  - id: l1
    assets:
      - id: cam_station
        cell: vision
        kind: vision
        tags: [{{signal: part_present, unit: bool, kind: bool}}]
cameras:
  - {{id: cam1, asset: cam_station, source: opencv, device: "{device}", {extra}}}
""", "plant.yaml", base_dir=str(tmp_path))


async def test_a_rising_trigger_tag_grabs_one_frame(tmp_path):
    video = tmp_path / "line.avi"
    _video(video)
    svc = Service(_plant(tmp_path, str(video)))
    await svc.start(web=False)
    try:
        # 0 -> 1 -> 1 -> 0 -> 1: two rising edges, two frames (each edge waits for its frame, so
        # the two triggers never merge into one however slow the machine is)
        for k, v in enumerate((0, 1, 1, 0, 1)):
            svc.ingest(Batch.from_readings([(TAG, T0 + k * 10**9, float(v))]))
            if k == 1:
                await wait_for(lambda: svc.images_received == 1, 120, "the first frame", poll_s=0.05)
        await wait_for(lambda: svc.images_received == 2, 120, "two frames", poll_s=0.05)
    finally:
        await svc.stop()
    assert svc.images_received == 2  # stopped: no third frame can come
    frames = sorted((tmp_path / "data" / "frames" / "cam1").glob("cam1-*.png"))
    assert len(frames) == 2
    from axline.camera import read_image

    assert read_image(frames[0]).shape == (48, 64, 3)


async def test_a_dead_camera_is_an_event_not_a_crash(tmp_path):
    svc = Service(_plant(tmp_path, str(tmp_path / "no-such-camera.avi")))
    await svc.start(web=False)
    try:
        svc.ingest(Batch.from_readings([(TAG, T0, 0.0), (TAG, T0 + 10**9, 1.0)]))
        await wait_for(lambda: svc.historian.events(kinds=["info"]), 120, "an event", poll_s=0.05)
        ev = svc.historian.events(kinds=["info"])[0]
        assert ev.code == "camera.bad_image" and "cannot open OpenCV device" in ev.message
    finally:
        await svc.stop()


def test_opencv_camera_needs_a_trigger_or_an_interval(tmp_path):
    with pytest.raises(PlantConfigError, match="needs 'trigger_tag'"):
        _plant(tmp_path, "0", extra="pattern: '*.png'")
    assert _plant(tmp_path, "0", extra="interval_s: 2").cameras[0].interval_s == 2.0
