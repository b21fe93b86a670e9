"""``GET /api/reports/value`` on a test server (quick; the running service's test is
test_value_report_service.py): who may ask, what a bad request answers, one build at a time."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from _auth import make_security, token_headers
from _fake_service import FakeService, open_test_historian
from axline.app.report_routes import VALUE_LOCK_KEY
from axline.app.server import create_app
from axline.demo import demo_plant

Q = {"baseline": "2026-01-01T09:00..2026-01-01T12:00", "period": "2026-01-01T12:00..2026-01-01T15:00"}


async def test_value_route_roles_errors_and_one_build_at_a_time(tmp_path):
    sec = make_security()
    historian = open_test_historian(tmp_path / "h")
    svc = FakeService(historian, tick_s=0.05, history_s=60)
    client = TestClient(TestServer(create_app(svc, security=sec)))
    await client.start_server()
    eng, viewer = token_headers(sec, "kim", "engineer"), token_headers(sec, "ann", "viewer")

    async def ask(params, headers=eng):
        r = await client.get("/api/reports/value", params=params, headers=headers)
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text()), r

    try:
        status, body, _ = await ask(Q, viewer)
        assert status == 403 and body["code"] == "err.role_required"
        status, body, _ = await ask({"period": Q["period"]})
        assert status == 400 and body["code"] == "err.value.missing" and "baseline=" in body["hint"]
        # a service without a plant file of KPI counters has nothing to compare
        status, body, _ = await ask(Q)
        assert status == 400 and body["code"] == "err.value.no_kpi"
        as_json = svc.plant
        svc.plant_json = lambda: as_json  # the pages keep the fake's plant; the report reads a plant file's
        svc.plant = demo_plant(tmp_path / "plant", "opc.tcp://127.0.0.1:1/unused")
        for params, code in (({**Q, "format": "xml"}, "err.value.bad_format"),
                             ({**Q, "lang": "fr"}, "err.report.bad_lang"),
                             ({**Q, "baseline": "2026-13-01..2026-13-02"}, "err.value.not_iso"),
                             ({**Q, "period": "2026-01-01T12:00..2026-01-01T12:30"}, "err.value.short"),
                             ({**Q, "investment": "-5"}, "err.value.bad_number")):
            status, body, _ = await ask(params)
            assert (status, body["code"]) == (400, code), params
            assert body["error"] and body["hint"]
        lock = client.server.app[VALUE_LOCK_KEY]
        async with lock:  # another report is being built
            status, body, _ = await ask(Q)
            assert status == 429 and body["code"] == "err.value.busy"
        status, body, _ = await ask({**Q, "format": "json"})
        assert status == 200 and body["period"][1] - body["period"][0] == 3 * 3600 * 10**9
        assert [f["before"]["mean"] for f in body["lines"][0]["figures"]] == [None] * 8  # no counters read
        status, page, r = await ask({**Q, "lang": "ko"})
        assert status == 200 and "성과 보고서" in page
        csp = r.headers["Content-Security-Policy"]
        assert "style-src 'sha256-" in csp and "script-src" not in csp and "default-src 'none'" in csp
    finally:
        await client.close()
        historian.close()
