"""The proof-of-value report against the running service: the virtual factory over OPC UA -> service ->
historian -> ``GET /api/reports/value``. The figures the route answers match a recomputation from the
service's own historian; a viewer may not read the report; a bad range answers 400 with what to do, in the
reader's language through its catalog key."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np
import pytest

from _auth import make_security, token_headers
from axline import i18n
from axline.app.server import create_app, start_site
from axline.connect.base import CONNECTED
from axline.demo import demo_plant
from axline.service import Service
from axline.sim.line import VirtualLine
from axline.sim.server import SimServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
START = 1_767_225_600 * 1_000_000_000  # 2026-01-01 09:00 Asia/Seoul (the demo plant's time zone)
H = 3600 * 1_000_000_000
P = "changwon/plant1/line1"
T = f"{P}/line/totals"
# plant-local hours: the first two hours of the virtual line's run
BASELINE, PERIOD = "2026-01-01T09:00..2026-01-01T10:00", "2026-01-01T10:00..2026-01-01T11:00"
B0, B1, P1 = START, START + H, START + 2 * H


async def _wait(cond, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.5)


def _increase(h, tag: str, edges: np.ndarray) -> np.ndarray:
    """Per hour between ``edges``: the counter's last reading before each edge (the first reading of the run
    for an edge before it), differenced."""
    s = h.query([tag], int(edges[0]) - H, int(edges[-1]))[tag]
    assert len(s) > 100 and (s.quality == 0).all()
    k = np.maximum(np.searchsorted(s.ts, edges, side="left") - 1, 0)
    return np.diff(s.value[k])


@pytest.fixture
async def running(tmp_path, port):
    endpoint = f"opc.tcp://127.0.0.1:{port}/axline/sim"
    line = VirtualLine(seed=5, start_ns=START, faults=None, render_images=False, changeover_interval_s=None)
    # a hundred times real time: as fast as the service on a small PC takes every reading over OPC UA
    sim = SimServer(line, endpoint=endpoint, speed=100.0, tick_s=1.0)
    sim_task = asyncio.create_task(sim.run())
    await sim.ready.wait()
    svc = Service(demo_plant(tmp_path, endpoint))
    await svc.start(web=False)
    sec = make_security()
    app = create_app(svc, security=sec)
    runner, bound = await start_site(app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{bound}"
    try:
        await _wait(lambda: svc.connectors["sim"].state == CONNECTED, 300, "the connector")
        yield svc, sec, url, line
    finally:
        await runner.cleanup()
        await svc.stop()
        sim.stop()
        await sim_task


async def test_value_report_from_the_running_service(running):
    svc, sec, url, line = running
    eng = {**token_headers(sec, "kim", "engineer"), "Origin": url}
    viewer = {**token_headers(sec, "ann", "viewer"), "Origin": url}
    # two simulated hours and a bit in the historian, so that the last hour has a reading after its end
    good_tag = f"{T}/parts_good"
    await _wait(lambda: svc.historian.latest([good_tag]).get(good_tag, (0,))[0] > P1 + 60 * 1_000_000_000, 600,
                "two simulated hours in the service's historian")
    q = {"baseline": BASELINE, "period": PERIOD, "gas_price": "900", "electricity_price": "150",
         "investment": "20000000"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/api/reports/value", params={**q, "format": "json"}, headers=eng) as r:
            assert r.status == 200, await r.text()
            rep = await r.json()
        # a viewer may not read it (money, and it reads every hour of both periods)
        async with http.get(url + "/api/reports/value", params={**q, "format": "json"}, headers=viewer) as r:
            assert r.status == 403 and "engineer" in (await r.json())["error"]
        # a range that ends before it starts: 400, what went wrong and what to do, keyed for both languages
        async with http.get(url + "/api/reports/value", headers=eng,
                            params={**q, "period": "2026-01-01T14:00..2026-01-01T12:00"}) as r:
            assert r.status == 400
            body = await r.json()
        assert body["code"] == "err.value.ends_before" and "ends before" in body["error"]
        assert "FROM..TO" in body["hint"]
        assert "끝이 시작보다 앞섭니다" in i18n.text(body["code"], "ko", **body["params"])
        async with http.get(url + "/api/reports/value", headers=eng, params={"baseline": "2026-01-01"}) as r:
            assert r.status == 400 and (await r.json())["code"] == "err.value.missing"
        async with http.get(url + "/api/reports/value", headers=eng, params={**q, "baseline": "yesterday"}) as r:
            assert r.status == 400 and (await r.json())["code"] == "err.value.window_form"
        async with http.get(url + "/api/reports/value", headers=eng, params={**q, "gas_price": "-3"}) as r:
            assert r.status == 400 and (await r.json())["code"] == "err.value.bad_number"
        # the same report as pages: Korean HTML, English PDF
        async with http.get(url + "/api/reports/value", params={**q, "lang": "ko"}, headers=eng) as r:
            assert r.status == 200 and r.content_type == "text/html"
            page = await r.text()
            assert "'sha256-" in r.headers["Content-Security-Policy"]
        assert "성과 보고서" in page and "양품당 가스" in page and page.count("<tr data-figure=") == 8
        async with http.get(url + "/api/reports/value", params={**q, "lang": "en", "format": "pdf"}, headers=eng) as r:
            assert r.status == 200 and r.content_type == "application/pdf"
            assert (await r.read()).startswith(b"%PDF")

    assert rep["baseline"] == [B0, B1] and rep["period"] == [B1, P1]
    ln = rep["lines"][0]
    figs = {f["key"]: f for f in ln["figures"]}
    h = svc.historian
    for (lo, hi), side in (((B0, B1), "before"), ((B1, P1), "after")):
        edges = np.arange(lo, hi + 1, H)
        good = _increase(h, f"{T}/parts_good", edges)
        total = _increase(h, f"{T}/parts_total", edges)
        gas = _increase(h, f"{T}/gas", edges)
        assert good.min() > 0, "the line made parts every hour"
        assert figs["good_per_hour"][side]["mean"] == pytest.approx(np.mean(good), rel=1e-9)
        assert figs["fpy"][side]["mean"] == pytest.approx(np.mean(good / total), rel=1e-9)
        assert figs["gas_per_good"][side]["mean"] == pytest.approx(np.mean(gas / good), rel=1e-9)
        assert ln["totals"][side]["parts_good"] == pytest.approx(good.sum())
        assert figs["good_per_hour"][side]["n"] == 1
    g, e = figs["gas_per_good"], figs["energy_per_good"]
    per_part = (g["before"]["mean"] - g["after"]["mean"]) * 900.0 + (e["before"]["mean"] - e["after"]["mean"]) * 150.0
    m = ln["money"]
    assert m["currency"] == "KRW" and m["per_good_part"] == pytest.approx(per_part)
    assert m["per_year"] == pytest.approx(12 * m["per_month"])
