"""Trained monitors: train from the historian, versions on disk, live alarms on a simulated fault."""

from __future__ import annotations

from importlib.resources import files

import pytest

from axline.cli import main
from axline.historian.base import Event
from axline.historian.embedded import EmbeddedHistorian
from axline.monitor.baseline import monitors_for_plant
from axline.monitor.live import LiveDetectorMonitor, asset_dir, load_current, model_root, train_monitor
from axline.plant import parse_plant
from axline.sim.line import FaultSpec, VirtualLine

START = 1_767_225_600 * 1_000_000_000
CNC = "changwon/plant1/line1/cnc/cnc1"
TRAIN_S = 2400


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """40 fault-free minutes of the virtual line in a historian, then a bearing fault to stream live."""
    base = tmp_path_factory.mktemp("plant")
    text = files("axline.data").joinpath("demo_plant.yaml").read_text(encoding="utf-8")
    (base / "plant.yaml").write_text(text, encoding="utf-8")
    plant = parse_plant(text, "plant.yaml", base_dir=str(base))
    line = VirtualLine(seed=5, start_ns=START, render_images=False, warmup_s=0,
                       faults=[FaultSpec("bearing_wear", "cnc1", start_s=TRAIN_S + 900, duration_s=900)])
    with EmbeddedHistorian(str(base / "data" / "historian"), fsync="none") as h:
        for _ in range(TRAIN_S // 10):
            h.append(line.step(10.0))
    return plant, line, base


def test_train_versions_and_live_alarm_names_the_signal(history):
    plant, line, base = history
    with EmbeddedHistorian(str(base / "data" / "historian")) as h:
        first = train_monitor(plant, h, CNC, START, START + TRAIN_S * 10**9, detector="pca", far=0.001)
        second = train_monitor(plant, h, CNC, START, START + TRAIN_S * 10**9, detector="pca", far=0.001)
    assert (first["version"], second["version"]) == ("v0001", "v0002")
    assert first["rows"] > 1500 and "vibration_rms" in first["columns"]
    root = asset_dir(model_root(plant), CNC)
    assert (root / "current").read_text() == "v0002" and (root / "v0001" / "model.npz").exists()
    det, meta = load_current(plant, CNC)
    assert meta["version"] == "v0002" and det.threshold == pytest.approx(second["threshold"])

    events: list[Event] = []

    def emit(ev):
        ev.id = len(events)
        events.append(ev)
        return ev.id

    def update(eid, **f):
        if f.get("end_ts"):
            events[eid].end_ts = f["end_ts"]

    mons = monitors_for_plant(plant, emit, update)
    live = mons[CNC + "#trained"]
    assert isinstance(live, LiveDetectorMonitor) and mons[CNC].judge_levels is False
    quiet_end = START + (TRAIN_S + 900) * 10**9
    while line.now_ns < START + (TRAIN_S + 1800) * 10**9:
        batch = line.step(2.0)
        for m in mons.values():
            m.update(batch)
    alarms = [e for e in events if e.kind == "alarm" and e.source == CNC and e.code == "anomaly.sensor"]
    assert live.scores > 1000
    caught = [e for e in alarms if e.data["raised_ts"] >= quiet_end]
    assert caught, f"no alarm during the bearing fault; events: {[e.message for e in events]}"
    assert caught[0].data["top"] in ("vibration_rms", "spindle_temp")
    assert caught[0].data["version"] == "v0002" and caught[0].data["contributions"]
    false = [e for e in alarms if e.data["raised_ts"] < quiet_end]
    assert len(false) <= 1  # 15 normal minutes at a 0.1 % per-step false-alarm target


def test_cli_trains_and_explains_mistakes(history, capsys):
    plant, _, base = history
    cfg = str(base / "plant.yaml")
    rc = main(["train", "monitor", "--config", cfg, "--asset", "furnace/furnace1",
               "--from", "2026-01-01T00:00:00", "--to", "2026-01-01T00:40:00", "--detector", "mset"])
    assert rc == 0
    assert "trained mset monitor v0001 for changwon/plant1/line1/furnace/furnace1" in capsys.readouterr().out
    rc = main(["train", "monitor", "--config", cfg, "--asset", "cnc/nope", "--from", "2026-01-01T00:00",
               "--to", "2026-01-01T00:40"])
    assert rc == 2 and "is not an asset of this plant" in capsys.readouterr().err
    rc = main(["train", "monitor", "--config", cfg, "--asset", "cnc/cnc1", "--from", "yesterday",
               "--to", "2026-01-01T00:40"])
    assert rc == 2 and "--from: 'yesterday' is not an ISO 8601 time" in capsys.readouterr().err
