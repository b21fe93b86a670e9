"""The operations pages in headless Chromium (Playwright): alarms (acknowledge, shelve, expiry, on a
phone), the history explorer (zoom, export), quality charts (a rule firing on a drift), the shift
report. Korean and English."""

from __future__ import annotations

import time

import pytest

from _browser import log_in, new_page
from _fake_service import LINE, NS
from _quality_fake import BORE, QualityFakeService
from test_dashboard_browser import AppThread

pytestmark = pytest.mark.browser
CNC = f"{LINE}/cnc/cnc1"
PHONE = {"width": 390, "height": 844}


class QualityAppThread(AppThread):
    """The app on a service whose bore starts drifting ``drift_after`` plant seconds after start."""

    def __init__(self, tmp_dir, drift_after: int = 8, users: dict[str, str] | None = None) -> None:
        super().__init__(tmp_dir, users=users)
        self.drift_after = drift_after

    def _service(self) -> QualityFakeService:
        return QualityFakeService(self.historian, tick_s=0.1, history_s=900,
                                  drift_step=self.drift_after, drift_per_part=0.008)


def test_alarm_acknowledge_shelve_and_expiry_in_english_and_korean(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, users={"kim": "operator"}) as app:
        svc = app.service
        aid = svc.alarm_id
        item = f'#alarm-list li[data-alarm-id="{aid}"]'
        page = new_page(browser, errors)
        log_in(page, app.url, "kim")
        page.goto(app.url + "/alarms")
        page.wait_for_selector(item)
        assert page.get_attribute(item, "data-state") == "active"
        assert page.text_content(f"{item} .alarm-state") == "Active"
        assert page.text_content(f"{item} .alarm-msg") == "Unusual pattern on CNC machining, mostly Vibration (score 7.2)"
        # one click, with a note
        page.fill(f"{item} .note-input", "Tightened the spindle mount")
        page.click(f"{item} button[data-act=ack]")
        page.wait_for_function(f"() => document.querySelector('{item}').dataset.state === 'acknowledged'")
        assert "Tightened the spindle mount" in page.text_content(f"{item} .alarm-ack")
        assert page.get_attribute(f"{item} a.kh-link", "href") == f"/knowhow?event={aid}"
        audits = [e for e in svc.historian.events(kinds=["audit"]) if e.code == "alarm.ack"]
        assert len(audits) == 1 and audits[0].data["user"] == "kim"
        # shelving needs a reason
        page.click(f"{item} button[data-act=shelve]")
        page.wait_for_selector("#msg.bad")
        assert "reason" in page.text_content("#msg")
        page.fill(f"{item} .note-input", "Sensor being replaced")
        page.select_option(f"{item} .shelve-minutes", "15")
        page.click(f"{item} button[data-act=shelve]")
        page.wait_for_function(f"() => document.querySelector('{item}').dataset.state === 'shelved'")
        assert "Sensor being replaced" in page.text_content(f"{item} .alarm-shelved")
        # Korean
        page.click("#lang-toggle")
        assert page.text_content(f"{item} .alarm-state") == "보류"
        assert page.text_content("#alarms-heading") == "알람"
        # plant time passes the end of the shelve: the alarm comes back by itself
        svc._now += 16 * 60 * NS
        page.wait_for_function(f"() => document.querySelector('{item}').dataset.state === 'acknowledged'")
        assert page.text_content(f"{item} .alarm-state") == "확인됨"
        # the performance table rates the position
        page.wait_for_selector("#perf-positions [data-rating]")
        assert page.text_content("#perf-positions [data-rating]") == "수용 가능"
        page.close()
    assert errors == []


def test_alarms_work_on_a_phone(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, users={"kim": "operator"}) as app:
        aid = app.service.alarm_id
        item = f'#alarm-list li[data-alarm-id="{aid}"]'
        page = new_page(browser, errors, locale="ko-KR", viewport=PHONE, is_mobile=True, has_touch=True)
        log_in(page, app.url, "kim")
        page.goto(app.url + "/alarms")
        page.wait_for_selector(item)
        # nothing wider than the screen; the acknowledge button is a real touch target
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width
        box = page.locator(f"{item} button[data-act=ack]").bounding_box()
        assert box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert page.text_content(f"{item} button[data-act=ack]") == "확인"
        page.tap(f"{item} button[data-act=ack]")
        page.wait_for_function(f"() => document.querySelector('{item}').dataset.state === 'acknowledged'")
        page.screenshot(path="/tmp/axline_alarms_phone.png", full_page=True)
        page.close()
    assert errors == []


def test_spc_rule_fires_on_a_simulated_drift(browser, tmp_path):
    errors: list[str] = []
    with QualityAppThread(tmp_path) as app:
        page = new_page(browser, errors, locale="ko-KR")
        page.goto(app.url + "/quality")
        page.wait_for_function("() => document.body.dataset.violations !== undefined")
        assert page.text_content("#quality-heading") == "품질 관리도"
        assert page.input_value("#q-tag") == BORE
        assert page.text_content("#q-cap [data-stat=cpk] .v") not in ("", "–")
        # the live watcher raises the drift as an alarm event within a few parts
        def spc_alarms():
            return [e for e in app.service.historian.events(kinds=["alarm"]) if e.code.startswith("spc.rule")]

        deadline = time.monotonic() + 120
        while not spc_alarms():
            assert time.monotonic() < deadline, "no SPC alarm 120 s after the drift began"
            page.wait_for_timeout(200)
        first = spc_alarms()[-1]
        assert first.data["tag"] == BORE and first.data["value"] < first.data["center"]
        # the chart shows the violations too, numbered by rule
        page.click("#q-refresh")
        page.wait_for_function("() => Number(document.body.dataset.violations) > 0")
        assert page.locator("#q-viol tr").count() > 1
        page.screenshot(path="/tmp/axline_quality.png", full_page=True)
        page.click("#lang-toggle")
        assert page.text_content("#quality-heading") == "Quality charts"
        page.goto(app.url + "/alarms")
        page.wait_for_selector("#alarm-list li[data-alarm-id]")
        texts = page.eval_on_selector_all("#alarm-list .alarm-msg", "els => els.map(e => e.textContent)")
        assert any("Bore diameter" in x for x in texts), texts
        page.close()
    assert errors == []


def test_history_explorer_zoom_compare_and_export(browser, tmp_path):
    errors: list[str] = []
    spindle, power = f"{CNC}/spindle_temp", f"{CNC}/power"
    with AppThread(tmp_path) as app:
        now = app.service.now_ns()
        start = now - 600 * NS
        page = new_page(browser, errors)
        page.goto(f"{app.url}/history?tags={spindle},{power}&from={start}&to={now}")
        page.wait_for_function("() => /^\\d+$/.test(document.body.dataset.drawn || '')")
        assert page.locator("#h-charts figure[data-tag]").count() == 2
        assert float(page.evaluate("() => document.body.dataset.drawMs")) > 0
        # drag across the middle of the first chart: the period narrows to what was selected
        box = page.locator(f'canvas[data-tag="{spindle}"]').bounding_box()
        drawn = page.evaluate("() => document.body.dataset.drawn")
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 40, steps=5)
        page.mouse.up()
        page.wait_for_function("(d) => document.body.dataset.drawn !== d && /^\\d+$/.test(document.body.dataset.drawn)",
                               arg=drawn)
        q = page.evaluate("() => Object.fromEntries(new URLSearchParams(location.search))")
        span = int(q["to"]) - int(q["from"])
        assert 60 * NS < span < 180 * NS, span
        assert start < int(q["from"]) < int(q["to"]) < now
        # compare with the period before: a second (grey, dashed) series is fetched and drawn
        drawn = page.evaluate("() => document.body.dataset.drawn")  # read before the change: it may redraw at once
        page.select_option("#h-compare", "prev")
        page.wait_for_function("(d) => document.body.dataset.drawn !== d", arg=drawn)
        page.wait_for_function("() => /^\\d+$/.test(document.body.dataset.drawn)")
        # zoom out returns to the period before the zoom
        page.click("#h-zoomout")
        page.wait_for_function(f"() => new URLSearchParams(location.search).get('from') === '{start}'")
        # export what is shown, to CSV and to Excel
        with page.expect_download() as dl:
            page.click("#h-csv")
        text = open(dl.value.path(), encoding="utf-8-sig").read()
        lines = text.splitlines()
        assert lines[0].startswith("time,time_utc,CNC machining Spindle temperature [degC]")
        assert len(lines) > 100
        with page.expect_download() as dl:
            page.click("#h-xlsx")
        assert dl.value.suggested_filename.endswith(".xlsx")
        # Korean
        page.click("#lang-toggle")
        assert page.text_content("#history-heading") == "이력 탐색"
        assert "주축 온도" in page.text_content(f'figure[data-tag="{spindle}"] figcaption')
        page.screenshot(path="/tmp/axline_history.png", full_page=True)
        page.close()
    assert errors == []


def test_shift_report_made_and_opened_in_the_plant_language(browser, tmp_path):
    errors: list[str] = []
    with QualityAppThread(tmp_path, drift_after=10**9, users={"kim": "operator"}) as app:
        app.service.plant["language"] = "ko"
        page = new_page(browser, errors)  # an English browser; the report follows the plant
        log_in(page, app.url, "kim")
        page.goto(app.url + "/reports")
        page.wait_for_selector("#r-list tr")
        assert page.text_content("#reports-heading") == "Shift handover reports"
        page.click("#r-make")
        page.wait_for_function("() => document.body.dataset.lastReport !== undefined")
        rid = page.evaluate("() => document.body.dataset.lastReport")
        row = f'#r-list tr[data-report-id="{rid}"]'
        page.wait_for_selector(row)
        assert "in progress" in page.text_content(row)
        with page.context.expect_page() as popup:
            page.click(f"{row} a.r-html")
        report = popup.value
        report.wait_for_load_state()
        assert report.text_content("h1") == "교대 인수인계 보고서"
        assert report.locator(".kpi").count() == 5
        assert "%" in report.text_content('.kpi[data-kpi="0"] .v')
        report.screenshot(path="/tmp/axline_shift_report.png", full_page=True)
        pdf = page.request.get(f"{app.url}/reports/{rid}.pdf")
        assert pdf.ok and pdf.body().startswith(b"%PDF-")
        kept = app.service.historian.events(kinds=["report"])
        assert [e.id for e in kept] == [int(rid)] and kept[0].data["user"] == "kim"
        page.click("#lang-toggle")
        assert page.text_content("#reports-heading") == "교대 인수인계 보고서"
        page.close()
    assert errors == []


def test_wall_screen_rotates_lines_in_large_type_without_controls(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, lines=2) as app:
        page = new_page(browser, errors, viewport={"width": 1920, "height": 1080})
        page.goto(app.url + "/wall?rotate=1&lang=ko")
        page.wait_for_function("() => document.body.dataset.line === 'line1'")
        page.wait_for_function("() => /%/.test(document.querySelector('#w-oee').textContent)")
        assert page.text_content("#w-oee") == "78.0%"
        assert page.text_content("#w-line") == "1라인"
        assert page.locator("button, input, select, a").count() == 0
        size = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('#w-oee')).fontSize)")
        assert size >= 100, size  # readable across the shop floor
        page.wait_for_function("() => document.body.dataset.line === 'line2'")
        page.wait_for_function("() => document.querySelector('#w-oee').textContent === '50.0%'")
        assert page.locator("#w-stations [data-station]").count() == 4
        page.wait_for_function("() => document.body.dataset.line === 'line1'")
        page.screenshot(path="/tmp/axline_wall.png")
        page.close()
    assert errors == []


def test_line_dashboard_fits_a_phone(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path) as app:
        page = new_page(browser, errors, locale="ko-KR", viewport=PHONE, is_mobile=True, has_touch=True)
        page.goto(app.url + "/")
        page.wait_for_function("() => /\\d/.test(document.querySelector('#kpi-oee').textContent)")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        boxes = [page.locator(f"[data-station='{p}']").bounding_box()
                 for p in page.eval_on_selector_all("[data-station]", "els => els.map(e => e.dataset.station)")]
        assert all(b["x"] >= 0 and b["x"] + b["width"] <= PHONE["width"] for b in boxes)
        assert len({round(b["x"]) for b in boxes}) == 1  # stacked, not squeezed side by side
        page.tap("#nav-alarms")
        page.wait_for_selector("#alarm-list li[data-alarm-id]")
        page.close()
    assert errors == []


def test_dashboard_acknowledges_an_alarm_through_its_life_cycle(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, users={"kim": "operator"}) as app:
        svc = app.service
        aid = svc.alarm_id
        item = f'#events li[data-event-id="{aid}"]'
        page = new_page(browser, errors)
        log_in(page, app.url, "kim")
        page.goto(app.url + "/")
        page.wait_for_selector(f"{item} button[data-act=ack]")
        assert page.locator(f"{item} button[data-verdict]").count() == 0  # no verdicts on an alarm
        page.click(f"{item} button[data-act=ack]")
        page.wait_for_selector(f"{item} .ack-acknowledged")
        assert svc.historian.event(aid).ack == "acknowledged" and svc.feedback_calls == []
        audits = [e for e in svc.historian.events(kinds=["audit"]) if e.code == "alarm.ack"]
        assert len(audits) == 1 and audits[0].data["user"] == "kim"
        page.click("#lang-toggle")
        assert page.text_content(f"{item} .ack") == "확인함"
        page.close()
    assert errors == []


def test_the_operations_pages_share_one_header_with_language_switch_and_log_out(browser, tmp_path):
    from axline import i18n

    errors: list[str] = []
    with AppThread(tmp_path, users={"kim": "viewer"}) as app:
        page = new_page(browser, errors)
        log_in(page, app.url, "kim")
        for name in ("alarms", "history", "quality", "reports"):
            page.goto(f"{app.url}/{name}")
            assert page.get_attribute(".ops-nav a.current", "href") == f"/{name}"
            assert page.is_visible("#logout-form")
        page.click("#lang-toggle")
        ko = i18n.text("nav.history", "ko")
        page.wait_for_function(f"() => document.querySelector('.ops-nav a[href=\"/history\"]').textContent === '{ko}'")
        page.goto(f"{app.url}/alarms")  # the language stays with the reader from page to page
        page.wait_for_function(f"() => document.querySelector('.ops-nav a[href=\"/history\"]').textContent === '{ko}'")
        page.click("#logout-form button")
        page.wait_for_url("**/login")
    assert errors == []
