"""The dashboard page in headless Chromium (Playwright) against the app on a FakeService.

Skipped only when no Chromium is installed (set AXLINE_CHROMIUM to its path if it is not on PATH).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from _app_thread import AppInThread
from _auth import PASSWORD, add_user, make_security
from _browser import log_in, new_page
from _fake_service import LINE, LINE2, FakeService, open_test_historian
from axline.app.server import create_app, start_site

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/axline_dashboard.png")
SPINDLE = f"{LINE}/cnc/cnc1/spindle_temp"
CNC = f"{LINE}/cnc/cnc1"
VIEWPORT = {"width": 1366, "height": 768}


class AppThread(AppInThread):
    """The app and a ticking FakeService on 127.0.0.1 in a background thread with its own loop."""

    def __init__(self, tmp_dir: Path, users: dict[str, str] | None = None, lines: int = 1, **settings) -> None:
        super().__init__()
        self.tmp_dir = tmp_dir
        self.security = make_security(**settings)
        for name, role in (users or {}).items():
            add_user(self.security, name, role)
        self.lines = lines

    def _service(self) -> FakeService:
        """The service the app shows (on ``self.historian``)."""
        return FakeService(self.historian, tick_s=0.25, lines=self.lines)

    async def _start(self) -> None:
        self.historian = open_test_historian(self.tmp_dir)
        self.service = self._service()
        self.runner, self.port = await start_site(
            create_app(self.service, security=self.security), "127.0.0.1", 0
        )
        self.feeder = asyncio.create_task(self.service.run())

    async def _stop(self) -> None:
        self.feeder.cancel()
        await super()._stop()

    def _close(self) -> None:
        self.historian.close()


def _blue_pixels(page, selector: str) -> int:
    """Pixels of the trend-line colour drawn on the first canvas under ``selector``."""
    return page.evaluate(
        """(sel) => {
            const c = document.querySelector(sel + ' canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 150 && d[i] < 90 && d[i + 3] > 200) n++;
            return n;
        }""",
        selector,
    )


def test_dashboard_live_page(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, users={"kim": "operator"}) as app:
        page = new_page(browser, errors, viewport=VIEWPORT)
        log_in(page, app.url, "kim")
        page.wait_for_function("() => document.querySelector('#stream-state').dataset.state === 'live'")
        # KPI tile shows a number
        page.wait_for_function("() => /\\d/.test(document.querySelector('#kpi-oee').textContent)")
        assert page.text_content("#kpi-oee").strip() == "78.0%"
        # one box per asset, in flow order, with a state colour from /api/status
        stations = page.eval_on_selector_all("[data-station]", "els => els.map(e => e.dataset.station)")
        assert stations == [a["path"] for a in app.service.plant["lines"][0]["assets"]]
        assert page.get_attribute(f'[data-station="{CNC}"]', "data-tone") in ("ok", "bad")
        # a live value changes
        value = f'#flow [data-tag="{SPINDLE}"]'
        first = page.text_content(value)
        page.wait_for_function(
            "([sel, v]) => { const t = document.querySelector(sel).textContent; "
            "return t !== v && t !== '—'; }",
            arg=[value, first],
        )
        # trends drawn from /api/series history
        page.wait_for_function("() => document.querySelectorAll('#trends [data-trend]').length === 7")
        assert _blue_pixels(page, f'[data-trend="{SPINDLE}"]') > 50
        # events: newest first, contribution bars on the alarm, heat map + feedback on the inspection
        kinds = page.eval_on_selector_all("#events li[data-kind]", "els => els.map(e => e.dataset.kind)")
        assert kinds == ["inspection", "alarm"]
        assert page.locator(f'#events li[data-event-id="{app.service.alarm_id}"] .contrib-row').count() == 3
        assert page.locator("#events li[data-kind=inspection] img.heatmap").count() == 1
        alarm_text = page.text_content(f'#events li[data-event-id="{app.service.alarm_id}"] .event-msg')
        assert alarm_text == "Unusual pattern on CNC machining, mostly Vibration (score 7.2)"
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.click(f'#events li[data-event-id="{app.service.inspection_id}"] button[data-verdict=confirmed]')
        page.wait_for_selector(f'#events li[data-event-id="{app.service.inspection_id}"] .ack-confirmed')
        # the reviewer is the logged-in user
        assert app.service.feedback_calls == [(app.service.inspection_id, "confirmed", "kim")]
        # clicking a station filters the trends to it, clicking again shows all
        page.click(f'[data-station="{CNC}"]')
        trends = page.eval_on_selector_all("#trends [data-trend]", "els => els.map(e => e.dataset.trend)")
        assert trends == [f"{CNC}/spindle_temp", f"{CNC}/vibration_rms", f"{CNC}/power"]
        page.click(f'[data-station="{CNC}"]')
        assert page.locator("#trends [data-trend]").count() == 7
        # language: English -> Korean (remembered across a reload) -> English
        assert page.text_content("#trends-heading") == "Live trends"
        page.click("#lang-toggle")
        assert page.text_content("#trends-heading") == "실시간 트렌드"
        assert page.text_content("#lang-toggle") == "English"
        assert page.get_attribute("html", "lang") == "ko"
        assert "주축 온도" in page.text_content(f'[data-station="{CNC}"]')
        page.reload()
        page.wait_for_function("() => /\\d/.test(document.querySelector('#kpi-oee').textContent)")
        assert page.text_content("#events-heading") == "이벤트"
        alarm_text = page.text_content(f'#events li[data-event-id="{app.service.alarm_id}"] .event-msg')
        assert alarm_text == "CNC 가공 이상 패턴 — 주요 신호 진동 (점수 7.2)"
        assert page.text_content(f'#events li[data-event-id="{app.service.inspection_id}"] .ack') == "확인됨"
        page.screenshot(path=str(SCREENSHOT.with_name("axline_dashboard_ko.png")), full_page=True)
        page.click("#lang-toggle")
        assert page.text_content("#trends-heading") == "Live trends"
        assert page.text_content("#events-heading") == "Events"
        page.close()
    assert errors == []


def test_login_then_dashboard(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, users={"admin": "admin"}) as app:
        page = new_page(browser, errors, locale="ko-KR", viewport=VIEWPORT)
        page.goto(app.url + "/")
        assert page.url.endswith("/login")
        assert page.text_content("h1") == "로그인"  # default language from the browser
        page.fill("#username", "admin")
        page.fill("#password", "wrong-password")
        page.click("button[type=submit]")
        page.wait_for_selector("#login-error", state="visible")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_function("() => document.querySelector('#stream-state').dataset.state === 'live'")
        assert page.url == app.url + "/"
        assert page.is_visible("#logout-form")
        # the one failed login is the page's 401, which Chromium logs as a console error
        assert [e for e in errors if "401" not in e] == []
    # the server is gone: the page says so instead of showing stale data as live
    page.wait_for_function("() => document.querySelector('#stream-state').dataset.state !== 'live'")
    assert page.text_content("#stream-state-text") in ("재연결 중…", "연결 끊김")
    page.close()


def test_line_selector(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, lines=2) as app:
        page = new_page(browser, errors, viewport=VIEWPORT)
        page.goto(app.url + "/")
        page.wait_for_function("() => /\\d/.test(document.querySelector('#kpi-oee').textContent)")
        assert page.is_visible("#line-select")
        assert page.eval_on_selector_all("#line-select option", "els => els.map(e => e.textContent)") == [
            "Line 1",
            "Line 2",
        ]
        page.select_option("#line-select", "line2")
        page.wait_for_function("() => document.querySelector('#kpi-oee').textContent === '50.0%'")
        stations = page.eval_on_selector_all("[data-station]", "els => els.map(e => e.dataset.station)")
        assert stations == [a["path"] for a in app.service.plant["lines"][1]["assets"]]
        assert all(s.startswith(LINE2 + "/") for s in stations)
        assert page.get_attribute(f'[data-station="{LINE2}/cnc/cnc1"]', "data-tone") == "bad"
        assert page.text_content("#kpi-energy") == "—"
        assert page.text_content("#kpi-takt-flag") == "over takt"
        # the line-1 events are not listed under line 2
        assert page.locator("#events li[data-kind]").count() == 0
        value = f'#flow [data-tag="{LINE2}/cnc/cnc1/spindle_temp"]'
        page.wait_for_function("(sel) => /\\d/.test(document.querySelector(sel).textContent)", arg=value)
        page.close()
    assert errors == []
