"""`axline demo --headless` as a user runs it: a separate simulator process, real OPC UA, a report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from axline.sim.camera import DEFECT_KINDS, render_part


def _plant_defects(camera: Path, proc: subprocess.Popen, timeout: float = 1200) -> list[str]:
    """Once the demo's camera sends images, drop a picture of each defect kind in its folder (defects
    are rare on the virtual line; a stray reject signal may divert a good part, which is not asserted)."""
    t0 = time.monotonic()
    while len(list(camera.glob("*.png"))) < 3:
        if proc.poll() is not None or time.monotonic() - t0 > timeout:
            return []
        time.sleep(1.0)
    rng = np.random.default_rng(77)
    names = []
    for kind in DEFECT_KINDS:
        tmp = camera / f"planted-{kind}.tmp"
        Image.fromarray(render_part(rng, kind, size=256)[0]).save(tmp, format="PNG")
        tmp.rename(camera / f"planted-{kind}.png")
        names.append(tmp.stem)
    return names


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a first run teaches the vision station (minutes on a busy 2-core machine)
def test_headless_demo_writes_a_truthful_report(tmp_path):
    report = tmp_path / "report.json"
    data = tmp_path / "data"
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            # stops on simulated time and parts inspected, not wall time: on a busy machine it just takes longer
            # (the conveyor waits on each verdict, so a slow inspector means fewer parts per simulated second)
            [sys.executable, "-m", "axline.cli", "demo", "--headless", "--duration", "800", "--until-simulated-s", "1000",
             "--until-inspected", "25", "--speed", "40", "--warmup-s", "240", "--port", "0", "--report", str(report),
             "--data-dir", str(data)],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )
        try:
            planted = _plant_defects(data / "data" / "camera", proc)
            proc.wait(timeout=1200)
        finally:
            if proc.poll() is None:
                proc.kill()
    stdout = log.read_text()
    assert proc.returncode == 0, stdout
    assert planted, "the demo stopped before its camera sent images"
    r = json.loads(report.read_text())
    assert r["dashboard_ok"] is True
    assert r["tags"] == 52  # the 51 simulated tags and the connector's connection state
    # ~1000 simulated seconds of a 46-tag line sampled at 0.2-1 s
    assert r["readings_stored"] > 40_000
    assert r["parts_total"] > 30
    assert 0 < r["oee"]["line1"] <= 1
    # the camera path works: the demo ran until 25 parts were inspected
    assert r["images_received"] >= 25
    assert r["simulated_s"] > 500
    # the report's numbers agree with the ground truth the simulator wrote
    truth = [json.loads(x) for x in (data / "truth.jsonl").read_text().splitlines() if x.strip()]
    # (the simulator runs on while the service stops: compare up to the report's simulated time)
    start_ns = next(t["start_ns"] for t in truth if t["type"] == "start")
    until = start_ns + r["simulated_s"] * 1e9
    parts = [t for t in truth if t["type"] == "part" and t["end_ns"] <= until]
    assert abs(len(parts) - r["parts_total"]) <= 3
    assert r["faults_injected"] >= 1
    assert r["faults_detected"] >= 1
    assert "axline demo:" in stdout and "dashboard ok" in stdout
    # the vision station inspects every part and the PLC obeys
    v = r["inspection"]
    assert v is not None, "the vision station did not run"
    assert v["inspected"] >= r["images_received"] - 2 and v["latency_ms"]["n"] > 5
    assert v["parts_finished"] > 20
    events = r["events"]
    # (the report waits for the event log to store what was raised; an image still being inspected when the
    # demo stops may have no event yet)
    assert 0 <= v["inspected"] - (events.get("inspection", 0) + events.get("defect", 0)) <= 1
    # the station's health strip (what /api/vision serves) has every check, and the camera kept sending
    assert set(v["health"]) >= {"brightness", "blur", "position", "occlusion", "stopped"}
    assert v["health"]["stopped"] == "ok" and all(s in ("ok", "warn", "waiting") for s in v["health"].values()), v
    # the demo's labelled defect pictures taught their types: its rejects (the planted defects' at least) carry one
    assert v["types"] == sorted(DEFECT_KINDS)
    assert v["reject_events"] >= 1 and v["rejects_typed"] == v["reject_events"], v


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a first run teaches the shaft model (minutes on a busy 2-core machine)
def test_headless_demo_inspects_long_shafts_in_tiles(tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "axline.cli", "demo", "--headless", "--part", "shaft", "--duration", "800",
         "--until-inspected", "8", "--speed", "40", "--warmup-s", "240", "--port", "0", "--report", str(report),
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    v = json.loads(report.read_text())["inspection"]
    assert v is not None, "the vision station did not run"
    # a 1,024 x 256 shaft is judged at its own resolution, in overlapping tiles, not squashed to one square
    assert v["tiles"] == 5
    assert v["inspected"] >= 8 and v["latency_ms"]["n"] >= 8
