"""Quality charts from the historian, per shift and per lot, and the live SPC watcher raising rule
violations on a drifting bore as alarm events."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from _fake_service import NS, T0, open_test_historian
from _quality_fake import BORE, CNC, QualityFakeService
from axline.app.server import create_app
from axline.quality import SpcWatcher, chart_report, quality_tags


@pytest.fixture
def drifting(tmp_path):
    hist = open_test_historian(tmp_path)
    svc = QualityFakeService(hist, history_s=1200, drift_step=40, tick_s=10)
    yield svc
    hist.close()


def test_watcher_learns_limits_then_raises_the_drift_once_per_pattern(drifting):
    svc = drifting
    w = SpcWatcher(svc, baseline_points=50)
    assert quality_tags(svc.plant_json())[0]["path"] == BORE
    assert w.step() == []  # learns the limits from the history before the drift
    assert w.status()["tags"][BORE]["limits"]["center"] == pytest.approx(25.0, abs=0.003)
    events = []
    for _ in range(30):  # in control: 30 s, three parts
        svc.tick()
    events += w.step()
    assert events == []
    for _ in range(60):  # the tool wears: six parts drifting down
        svc.tick()
        events += w.step()
    assert events, "the drift raised no SPC event"
    first = events[0]
    assert first.kind == "alarm" and first.code.startswith("spc.rule") and first.source == CNC
    assert first.data["tag"] == BORE and first.data["value"] < first.data["center"]
    assert first.ts >= T0 + 40 * NS
    # a pattern that goes on is one event, not one per point
    codes = [e.code for e in events]
    assert len(codes) == len(set(codes)), codes


async def test_chart_api_limits_violations_and_capability_per_shift_and_lot(tmp_path):
    hist = open_test_historian(tmp_path)
    svc = QualityFakeService(hist, history_s=3000, drift_step=None, tick_s=10)
    try:
        for _ in range(600):
            svc.tick()
        svc.drift_step = 610  # the tool starts to wear at the start of part 61, after the baseline
        for _ in range(200):
            svc.tick()
        client = TestClient(TestServer(create_app(svc)))
        await client.start_server()
        try:
            start, end = T0 - 3000 * NS, svc.now_ns() + 1
            resp = await client.get(f"/api/quality/chart?tag={BORE}&from={start}&to={end}"
                                    f"&baseline_from={start}&baseline_to={T0}")
            assert resp.status == 200, await resp.text()
            rep = await resp.json()
            assert rep["limits"]["points"] == 300 and rep["spec"]["usl"] == 25.02
            assert len(rep["points"]["x"]) == 381
            # the drift is caught within six parts of its start
            after = [v for v in rep["violations"] if v["ts"] >= T0 + 610 * NS]
            assert after and after[0]["ts"] <= T0 + 670 * NS and after[0]["value"] < rep["limits"]["center"]
            assert rep["capability"]["cpk"] is not None and rep["capability"]["out_of_spec"] > 0
            assert len(rep["by_lot"]) >= 12  # a changeover every 300 s
            assert sum(g["n"] for g in rep["by_lot"]) == 381
            assert sum(g["n"] for g in rep["by_shift"]) == 381
            resp = await client.get(f"/api/quality/chart?tag={BORE}&from={start}&to={end}&chart=xbar_r&n=5")
            xbar = await resp.json()
            assert resp.status == 200, xbar
            assert xbar["n"] == 5 and len(xbar["points"]["x"]) == 381 // 5
            assert xbar["limits"]["points"] == 20  # default baseline: a quarter of the window, >= 20 subgroups
            bad = await client.get(f"/api/quality/chart?tag={BORE}&from={start}&to={end}"
                                   f"&baseline_from={start}&baseline_to={start + 10 * NS}")
            assert bad.status == 400 and "at least 20" in (await bad.json())["error"]
            assert (await client.get("/api/quality/chart?tag=nope")).status == 400
            tags = await (await client.get("/api/quality/tags")).json()
            assert [t["path"] for t in tags["tags"]] == [BORE]
        finally:
            await client.close()
    finally:
        hist.close()


def test_chart_report_refuses_unknown_chart(drifting):
    with pytest.raises(ValueError, match="chart must be one of"):
        chart_report(drifting.historian, drifting.plant_json(), BORE, T0 - 600 * NS, T0, chart="cusum")


def test_learnt_limits_survive_a_restart_so_a_drift_does_not_become_the_baseline(tmp_path):
    hist = open_test_historian(tmp_path / "h")
    svc = QualityFakeService(hist, history_s=1200, drift_step=40, tick_s=10)
    limits_file = tmp_path / "data" / "spc_limits.json"
    try:
        w = SpcWatcher(svc, baseline_points=50, limits_file=limits_file)
        w.step()
        learnt = w.status()["tags"][BORE]["limits"]
        assert learnt["center"] == pytest.approx(25.0, abs=0.003) and limits_file.exists()
        for _ in range(120):  # the tool wears: a dozen parts drifting down
            svc.tick()
        # a restart in the middle of the drift: the limits are the learnt ones, and the drift is raised
        again = SpcWatcher(svc, baseline_points=50, limits_file=limits_file)
        again.step()
        assert again.status()["tags"][BORE]["limits"] == learnt
        events = []
        for _ in range(60):
            svc.tick()
            events += again.step()
        assert any(e.code.startswith("spc.rule") for e in events)
        # without the file a restart would take the drift as its baseline
        fresh = SpcWatcher(svc, baseline_points=50, limits_file=tmp_path / "other.json")
        fresh.step()
        assert fresh.status()["tags"][BORE]["limits"]["center"] < learnt["center"] - 0.005
    finally:
        hist.close()


def test_damaged_limits_file_is_a_clear_error(tmp_path):
    hist = open_test_historian(tmp_path / "h")
    svc = QualityFakeService(hist, history_s=600, drift_step=None, tick_s=10)
    bad = tmp_path / "spc_limits.json"
    bad.write_text("{not json")
    try:
        with pytest.raises(RuntimeError, match="delete the file"):
            SpcWatcher(svc, baseline_points=50, limits_file=bad).step()
    finally:
        hist.close()
