"""The proof-of-value report on the reports page, in headless Chromium: the service (the demo plant, its
historian holding five hours of the virtual line with a setpoint change after three) builds it when an
engineer asks on the page; the figure table shows in English and in Korean with the numbers the route
gives, the PDF link answers a PDF, a bad range says what to do, and a viewer is refused."""

from __future__ import annotations

import pytest

from _app_thread import AppInThread
from _auth import add_user, make_security
from _browser import log_in, new_page
from axline.app.server import create_app, start_site
from axline.demo import demo_plant
from axline.historian import Event, open_historian
from axline.report.value import _fmt
from axline.service import Service
from axline.sim.line import VirtualLine

pytestmark = pytest.mark.browser
START = 1_767_225_600 * 1_000_000_000  # 2026-01-01 09:00 Asia/Seoul
P = "changwon/plant1/line1"
A = f"{P}/furnace/furnace1"
BASELINE, PERIOD = "2026-01-01T10:00..2026-01-01T12:00", "2026-01-01T12:00..2026-01-01T14:00"
ROW = '#v-report tr[data-figure="gas_per_good"]'


class ValueAppThread(AppInThread):
    """The service of the demo plant (its connector reaches nothing) on a historian filled beforehand."""

    def __init__(self, tmp_dir, users: dict[str, str]) -> None:
        super().__init__()
        self.tmp_dir = tmp_dir
        self.security = make_security()
        for name, role in users.items():
            add_user(self.security, name, role)

    async def _start(self) -> None:
        plant = demo_plant(self.tmp_dir, "opc.tcp://127.0.0.1:1/unused")
        line = VirtualLine(seed=31, start_ns=START, faults=None, render_images=False, changeover_interval_s=None)
        with open_historian(plant.historian, base_dir=plant.base_dir) as h:
            for minute in range(5 * 60):
                if minute == 3 * 60:  # less excess air from the fourth hour on
                    line.write(f"{A}/o2_setpoint", 3.4)
                    h.add_event(Event(ts=line.now_ns, kind="optimize", source=A, code="optimize.kept",
                                      message="proposal 1: kept", data={"user": "lee"}))
                h.append(line.step(60.0))
        self.service = Service(plant)
        await self.service.start(web=False)
        self.runner, self.port = await start_site(create_app(self.service, security=self.security), "127.0.0.1", 0)

    async def _stop(self) -> None:
        await super()._stop()
        await self.service.stop()


def _show(page, baseline: str, period: str, lang: str) -> None:
    page.fill("#v-baseline", baseline)
    page.fill("#v-period", period)
    page.select_option("#v-lang", lang)
    page.click("#v-show")


def test_value_report_on_the_reports_page_in_english_and_korean(browser, tmp_path):
    errors: list[str] = []
    with ValueAppThread(tmp_path, users={"kim": "engineer", "ann": "viewer"}) as app:
        page = new_page(browser, errors)
        log_in(page, app.url, "kim")
        page.goto(app.url + "/reports")
        page.wait_for_selector("#v-form")
        assert page.text_content("#value-heading") == "Proof of value"
        page.fill("#v-gas", "900")
        _show(page, BASELINE, PERIOD, "en")
        page.wait_for_function("() => document.body.dataset.valueReport === 'en'")
        assert page.locator("#v-report tr[data-figure]").count() == 8
        cells = page.locator(f"{ROW} td").all_text_contents()
        # the same figures as the route's own answer
        rep = page.request.get(f"{app.url}/api/reports/value?baseline={BASELINE}&period={PERIOD}&gas_price=900"
                               "&format=json").json()
        gas = next(f for f in rep["lines"][0]["figures"] if f["key"] == "gas_per_good")
        assert cells[:3] == ["Gas per good part", _fmt(gas["before"]["mean"], gas["unit"]),
                             _fmt(gas["after"]["mean"], gas["unit"])]
        assert gas["after"]["mean"] < gas["before"]["mean"]
        assert "optimize.kept" in page.text_content("#v-report")
        # opened alone, the report keeps its own style sheet (allowed by its hash, nothing else is)
        with page.context.expect_page() as popup:
            page.click("#v-open")
        alone = popup.value
        alone.wait_for_selector("tr[data-figure]")
        assert alone.eval_on_selector("th", "e => getComputedStyle(e).backgroundColor") == "rgb(241, 245, 249)"
        alone.close()
        pdf = page.request.get(app.url + page.get_attribute("#v-pdf", "href"))
        assert pdf.ok and pdf.body().startswith(b"%PDF-")
        # Korean: the report and the page
        _show(page, BASELINE, PERIOD, "ko")
        page.wait_for_function("() => document.body.dataset.valueReport === 'ko'")
        assert page.locator(f"{ROW} td").first.text_content() == "양품당 가스"
        assert "성과 보고서" in page.text_content("#v-report h1")
        # a range that ends before it starts: what went wrong, and what to do, in the page's language
        _show(page, BASELINE, "2026-01-01T14:00..2026-01-01T12:00", "en")
        page.wait_for_selector("#msg.bad")
        assert "ends before it starts" in page.text_content("#msg") and "FROM..TO" in page.text_content("#msg")
        assert page.locator("#v-report tr").count() == 0
        page.click("#lang-toggle")
        assert page.text_content("#value-heading") == "성과 보고서"
        page.click("#v-show")
        page.wait_for_function("() => document.querySelector('#msg').textContent.includes('앞섭니다')")
        page.close()
        # a viewer sees the page but may not have the report
        page = new_page(browser, errors, console=False)  # the refused request logs a console error
        log_in(page, app.url, "ann")
        page.goto(app.url + "/reports")
        page.wait_for_selector("#v-form")
        _show(page, BASELINE, PERIOD, "en")
        page.wait_for_selector("#msg.bad")
        assert "role engineer required" in page.text_content("#msg")
        page.close()
    # the browser logs each refused request (the bad range above); nothing else may go wrong
    assert [e for e in errors if "status of 400 (Bad Request)" not in e] == []
