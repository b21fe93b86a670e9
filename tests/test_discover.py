"""`axline discover` against the virtual factory's real OPC UA server."""

from __future__ import annotations

import asyncio

import pytest

from axline.discover import (
    discover_opcua,
    draft_plant,
    guess_unit,
    inventory_html,
    inventory_markdown,
    parse_duration,
)
from axline.plant import parse_plant
from axline.sim.line import VirtualLine
from axline.sim.server import SimServer


async def test_browse_listen_and_draft_a_valid_plant_file(port):
    endpoint = f"opc.tcp://127.0.0.1:{port}/axline/sim"
    line = VirtualLine(seed=3, start_ns=1_767_225_600 * 10**9, faults=None, render_images=False)
    sim = SimServer(line, endpoint=endpoint, speed=10)
    task = asyncio.create_task(sim.run())
    await sim.ready.wait()
    try:
        sim_before = line.now_ns
        signals, info = await discover_opcua(endpoint, listen_s=2.0)
        sim_s = (line.now_ns - sim_before) / 1e9  # how far the simulator got meanwhile (slower when busy)
    finally:
        sim.stop()
        await task
    assert len(signals) == len(line.tags)
    by_name = {(s.machine, s.name): s for s in signals}
    vib = by_name[("cnc/cnc1", "vibration_rms")]
    assert vib.unit == "mm/s" and (vib.lo, vib.hi) == (0.0, 40.0) and vib.dtype == "Double"
    # 5 Hz simulated: the updates seen follow the simulator's own pace, not the wall clock
    assert sim_s > 0 and len(vib.times) >= 0.15 * 5 * sim_s
    assert by_name[("vision/camera1", "diverter")].writable
    assert not by_name[("press/press1", "oil_temp")].writable
    text = draft_plant(signals, info)
    plant = parse_plant(text, "draft-plant.yaml")  # the draft is a valid plant file as written
    tags = {t.path: t for t in plant.all_tags()}
    assert len(tags) == len(line.tags)
    t = tags["site1/area1/line1/cnc/cnc1/vibration_rms"]
    assert t.unit == "mm/s" and t.source.address == vib.address
    md = inventory_markdown(signals, info)
    assert "## cnc/cnc1" in md and "vibration_rms" in md
    assert "데이터 준비도" in inventory_html(signals, info)


def test_unit_guessing_and_durations():
    assert guess_unit("°C") == "degC" and guess_unit("KW") == "kW" and guess_unit("furlongs") == ""
    assert parse_duration("30s") == 30 and parse_duration("2m") == 120 and parse_duration("500ms") == 0.5
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")
