"""`axline demo --headless` as a user runs it: a separate simulator process, real OPC UA, a report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a first run teaches the vision station (minutes on a busy 2-core machine)
def test_headless_demo_writes_a_truthful_report(tmp_path):
    report = tmp_path / "report.json"
    data = tmp_path / "data"
    proc = subprocess.run(
        # stops on simulated time and parts inspected, not wall time: on a busy machine it just takes longer
        # (the conveyor waits on each verdict, so a slow inspector means fewer parts per simulated second)
        [sys.executable, "-m", "axline.cli", "demo", "--headless", "--duration", "800", "--until-simulated-s", "1000",
         "--until-inspected", "25", "--speed", "40", "--warmup-s", "240", "--port", "0", "--report", str(report), "--data-dir", str(data)],
        capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
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
    assert "axline demo:" in proc.stdout and "dashboard ok" in proc.stdout
    # the vision station inspects every part and the PLC obeys
    v = r["inspection"]
    assert v is not None, "the vision station did not run"
    assert v["inspected"] >= r["images_received"] - 2 and v["latency_ms"]["n"] > 5
    assert v["parts_finished"] > 20
    events = r["events"]
    # (the report waits for the event log to store what was raised; an image still being inspected when the
    # demo stops may have no event yet)
    assert 0 <= v["inspected"] - (events.get("inspection", 0) + events.get("defect", 0)) <= 1


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
