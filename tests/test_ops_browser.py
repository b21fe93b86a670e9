"""The operations pages in headless Chromium (Playwright): alarms (acknowledge, shelve, expiry, on a
phone), the history explorer (zoom, export), quality charts (a rule firing on a drift), the shift
report. Korean and English."""

from __future__ import annotations

import os

import pytest

from _fake_service import LINE, NS
from test_dashboard_browser import CHROMIUM_ARGS, AppThread, chromium_path

pytestmark = pytest.mark.browser
CNC = f"{LINE}/cnc/cnc1"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    exe = chromium_path()
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no Chromium installed: scripts/ensure-services.sh installs it")
        pytest.skip("no Chromium installed (apt-get install chromium, or set AXLINE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser, errors: list[str], locale: str = "en-US", viewport: dict | None = None, **kw):
    ctx = browser.new_context(viewport=viewport or {"width": 1366, "height": 900}, locale=locale, **kw)
    page = ctx.new_page()
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.set_default_timeout(10000)
    return page


def test_alarm_acknowledge_shelve_and_expiry_in_english_and_korean(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path) as app:
        svc = app.service
        aid = svc.alarm_id
        item = f'#alarm-list li[data-alarm-id="{aid}"]'
        page = _page(browser, errors)
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
        audits = [e for e in svc.historian.events(kinds=["audit"]) if e.code == "alarm.ack"]
        assert len(audits) == 1 and audits[0].data["user"] == "local"
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
        page.wait_for_function(f"() => document.querySelector('{item}').dataset.state === 'acknowledged'",
                               timeout=15000)
        assert page.text_content(f"{item} .alarm-state") == "확인됨"
        # the performance table rates the position
        page.wait_for_selector("#perf-positions [data-rating]")
        assert page.text_content("#perf-positions [data-rating]") == "수용 가능"
        page.close()
    assert errors == []


def test_alarms_work_on_a_phone(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path) as app:
        aid = app.service.alarm_id
        item = f'#alarm-list li[data-alarm-id="{aid}"]'
        page = _page(browser, errors, locale="ko-KR", viewport=PHONE, is_mobile=True, has_touch=True)
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
