"""The shift handover report: content from the historian, HTML and PDF in Korean and English, kept
in the event log on demand and at each shift end."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from _fake_service import NS, T0, open_test_historian
from _quality_fake import BORE, CNC, QualityFakeService
from axline.alarms import lifecycle as lc
from axline.app.server import create_app
from axline.report.keeper import ShiftReportKeeper
from axline.report.render import to_html, to_pdf
from axline.report.shift import build_report, shift_window

# T0 is 2026-05-29 05:26:40 in Seoul: shift C (22:00 - 06:00) is in progress
C_START = T0 - (7 * 3600 + 26 * 60 + 40) * NS


@pytest.fixture
def svc(tmp_path):
    h = open_test_historian(tmp_path)
    s = QualityFakeService(h, history_s=3000, tick_s=10, drift_step=-600)
    yield s
    h.close()


def _ack_the_alarm(svc):
    ev = next(e for e in svc.historian.events(kinds=["alarm"]) if e.id == svc.alarm_id)
    svc.historian.update_event(ev.id, **lc.acknowledge(ev, "kim", T0, "spindle mount tightened"))


def test_shift_window_follows_the_plant_shifts(svc):
    assert shift_window(svc.plant_json(), "line1", T0) == ("C", C_START, C_START + 8 * 3600 * NS)


def test_report_content(svc):
    _ack_the_alarm(svc)
    rep = build_report(svc.historian, svc.plant_json(), "line1", T0 - 3000 * NS, T0 + 1, T0, "C", "kim")
    k = rep["kpi"]
    # 3000 s of history: 300 parts, one reject in 40, a 10 s changeover opening every 300 s lot
    assert k["parts_total"] == 300 and k["parts_rejected"] == 7 + 1 and k["parts_good"] == 292
    assert k["availability"] == pytest.approx(1 - 100 / 3000, abs=0.002)
    assert k["losses_min"]["availability"] == pytest.approx(100 / 60, abs=0.05)
    assert k["losses_min"]["quality"] == pytest.approx(9.0 * 8 / 60)
    assert rep["downtime"][0]["asset"] == CNC and rep["downtime"][0]["state"] == "changeover"
    assert rep["downtime"][0]["stops"] == 11  # every 300 s from T0 - 3000 s, the last one starting at T0
    assert rep["alarms"]["total"] == 1 and rep["alarms"]["acknowledged"] == 1
    assert rep["alarms"]["items"][0]["ack"]["note"] == "spindle mount tightened"
    # the drifting bore: out-of-spec parts are rejects by type, measured quality has its Cpk
    oos = next(r for r in rep["rejects"] if r["type"] == "out_of_spec")
    assert oos["source"] == BORE and oos["count"] == rep["quality"][0]["out_of_spec"] > 0
    assert rep["open_total"] == 1 and rep["open_items"][0]["state"] == "acknowledged"
    html_ko = to_html(rep, "ko")
    assert "교대 인수인계 보고서" in html_ko and "spindle mount tightened" in html_ko and "보어 직경" in html_ko
    html_en = to_html(rep, "en")
    assert "Shift handover report" in html_en and "Top downtime reasons" in html_en
    pdf = to_pdf(rep, "ko")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert b"NanumGothic" in pdf and b"/FontFile2" in pdf  # the Hangul font is embedded (subset)


async def test_report_api_roles_and_event_log(svc):
    from test_alarms import OP, SEC, VIEWER

    app = create_app(svc, security=SEC)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert (await client.post("/api/reports/shift", json={"line": "line1"}, headers=VIEWER)).status == 403
        resp = await client.post("/api/reports/shift", json={"line": "nope"}, headers=OP)
        assert resp.status == 400 and "line1" in (await resp.json())["error"]
        resp = await client.post("/api/reports/shift", json={"line": "line1"}, headers=OP)
        assert resp.status == 200, await resp.text()
        made = await resp.json()
        assert made["shift"] == "C" and made["from"] == C_START
        kept = svc.historian.events(kinds=["report"])
        assert len(kept) == 1 and kept[0].data["user"] == "kim" and kept[0].data["report"]["shift"] == "C"
        listed = (await (await client.get("/api/reports", headers=VIEWER)).json())["reports"]
        assert [r["id"] for r in listed] == [made["id"]] and listed[0]["complete"] is False
        resp = await client.get(made["html"], headers=VIEWER)
        assert resp.status == 200 and "교대 인수인계 보고서" not in await resp.text()  # the test plant is English
        resp = await client.get(made["html"] + "?lang=ko", headers=VIEWER)
        assert "교대 인수인계 보고서" in await resp.text()
        resp = await client.get(made["pdf"], headers=VIEWER)
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/pdf"
        assert (await resp.read()).startswith(b"%PDF-")
        assert (await client.get(f"/reports/{svc.alarm_id}.html", headers=VIEWER)).status == 404
    finally:
        await client.close()


def test_a_report_is_kept_when_a_shift_ends(svc):
    keeper = ShiftReportKeeper(svc)
    assert keeper.due() == []  # notes where it is
    svc._now = C_START + 8 * 3600 * NS + 5 * NS  # shift C has just ended
    svc.tick()
    due = keeper.due()
    assert [(e.kind, e.data["shift"], e.data["from"]) for e in due] == [("report", "C", C_START)]
    assert due[0].data["report"]["complete"] is True
    for e in due:
        svc.historian.add_event(e)
    assert keeper.due() == []  # once per shift


def test_a_shift_report_that_fails_to_build_is_made_at_the_next_check(svc):
    keeper = ShiftReportKeeper(svc)
    keeper.due()
    svc._now = C_START + 8 * 3600 * NS + 5 * NS  # shift C has just ended ...
    svc.tick()
    real = svc.historian.query

    def away(*a, **k):
        raise ConnectionError("historian restarting")

    svc.historian.query = away  # ... while the historian is away
    assert keeper.due() == []
    assert [type(e) for e in keeper._failures] == [ConnectionError]
    svc.historian.query = real
    svc._now += 60 * NS
    due = keeper.due()
    assert [(e.data["shift"], e.data["from"]) for e in due] == [("C", C_START)]
    assert keeper._failures == []
    for e in due:
        svc.historian.add_event(e)
        keeper.stored(e)
    assert keeper.pending == {} and keeper.kept == 1
    assert keeper.due() == []


def test_spc_alarms_read_in_the_report_language():
    from axline import i18n, spc
    from axline.report.render import Renderer

    for lang in ("en", "ko"):
        assert all(f"report.code.spc.rule{r}" in i18n.catalog(lang) for r in spc.RULE_TEXT), lang
    report = {"timezone": "Asia/Seoul", "names": {BORE: {"en": "Bore diameter", "ko": "보어 직경"}}}
    alarm = {"code": "spc.rule4", "source": CNC, "message": f"{BORE}: SPC rule 4 (alternating), value 25.01",
             "data": {"tag": BORE, "rule": 4, "value": 25.0123}}
    ko = Renderer(report, "ko").alarm_text(alarm)
    assert "보어 직경: SPC 규칙 4: 교대 변동 (25.0123)" in ko and "alternating" not in ko
    assert "Bore diameter: SPC rule 4: alternating" in Renderer(report, "en").alarm_text(alarm)
    bare = dict(alarm, code="spc.rule7", data={"rule": 7})  # no tag recorded: still in Korean, not the English message
    assert Renderer(report, "ko").alarm_text(bare).endswith("SPC 규칙 7: 15점 연속 1σ 안")
