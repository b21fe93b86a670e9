"""The know-how flow in headless Chromium: alarm -> (no case yet) -> record what you did on a phone ->
another person approves -> the same alarm pattern again brings the case up with why -> "this helped".

Skipped only when no Chromium is installed (set AXLINE_CHROMIUM to its path if it is not on PATH).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _app_thread import AppInThread
from _auth import make_security, token_headers
from _browser import new_page
from _fake_service import LINE, FakeService, open_test_historian
from axline.app.server import create_app, start_site
from axline.historian.base import Event
from axline.knowhow.base import KnowHow
from axline.knowhow.live import KnowHowLive

pytestmark = pytest.mark.browser
CNC = f"{LINE}/cnc/cnc1"


SEC = make_security()


class KnowHowApp(AppInThread):
    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.tmp = tmp

    def _close(self) -> None:
        self.service.knowhow.close()
        self.historian.close()

    async def _start(self) -> None:
        self.historian = open_test_historian(self.tmp / "h")
        self.service = FakeService(self.historian, tick_s=0.25)
        self.service.knowhow = KnowHowLive(lambda: KnowHow(str(self.tmp / "kh")),
                                           historian=lambda: self.service.historian)
        await self.service.knowhow.start()
        app = create_app(self.service, security=SEC)
        self.runner, self.port = await start_site(app, "127.0.0.1", 0)

    def alarm(self) -> int:
        """A new alarm with the first one's pattern, handed to the know-how base like the service does."""
        ev = Event(ts=self.service.now_ns(), kind="alarm", source=CNC, code="anomaly.sensor", severity="alarm",
                   message="cnc1: unusual vibration_rms (z=8.1)",
                   data={"contributions": {"vibration_rms": 8.1, "spindle_temp": 2.2}})
        eid = self.historian.add_event(ev)
        self.service.knowhow.on_alarm(eid, ev)
        return eid


def _page(browser, errors: list[str], user: str, phone: bool = False):
    """A page of ``user`` ("name:role"), who calls with an API token."""
    size = {"width": 390, "height": 844} if phone else {"width": 1366, "height": 900}
    return new_page(browser, errors, viewport=size, extra_http_headers=token_headers(SEC, *user.split(":")))


def test_alarm_record_approve_suggest(browser, tmp_path):
    errors: list[str] = []
    with KnowHowApp(tmp_path) as app:
        first = app.service.alarm_id
        # the dashboard lists the alarm; no case fits yet
        dash = _page(browser, errors, "kim:operator")
        dash.goto(app.url + "/")
        item = f'#kh-alarms li[data-event="{first}"]'
        dash.wait_for_selector(item)
        assert "No approved case" in dash.text_content(item)
        # "record what you did" opens the phone form pre-filled from the alarm
        href = dash.get_attribute(f"{item} a.kh-record", "href")
        assert href == f"/knowhow?event={first}"
        phone = _page(browser, errors, "kim:operator", phone=True)
        phone.goto(app.url + href)
        phone.wait_for_function("() => document.querySelector('#record-signals').textContent.includes('vibration_rms')")
        assert phone.input_value("textarea[name=symptom]").startswith("cnc1: unusual vibration_rms")
        phone.fill("input[name=title]", "스핀들 베어링 소음")
        phone.fill("textarea[name=cause]", "스핀들 베어링 구리스 부족")
        phone.fill("textarea[name=action]", "베어링 교체, 구리스 주입")
        phone.fill("input[name=repair_min]", "90")
        phone.click("#case-save")
        phone.wait_for_function("() => document.querySelector('#msg').textContent.includes('Saved as draft')")
        cid = phone.text_content("#msg").split("draft ")[1].split(".")[0]
        # an operator sees the draft without an approve button; an approver (not the author) approves
        phone.wait_for_selector(f'#drafts li[data-case="{cid}"]')
        assert phone.locator(f'#drafts li[data-case="{cid}"] button.kh-approve').count() == 0
        boss = _page(browser, errors, "boss:approver")
        boss.goto(app.url + "/knowhow")
        boss.click(f'#drafts li[data-case="{cid}"] button.kh-approve')
        boss.wait_for_function("() => document.querySelector('#msg').textContent.includes('Approved')")
        assert app.service.knowhow.kh.store.get(cid)["state"] == "approved"
        # the same pattern again: the dashboard suggests the case with why and a confidence
        again = app.alarm()
        sel = f'#kh-alarms li[data-event="{again}"] li[data-case="{cid}"]'
        dash.wait_for_selector(sel)
        text = dash.text_content(sel)
        assert "스핀들 베어링 소음" in text and "vibration_rms" in text and "confidence" in text
        dash.click(f"{sel} button.kh-yes")
        dash.wait_for_function(f"() => document.querySelector('{sel}').textContent.includes('Thank you')")
        assert app.service.knowhow.kh.store.feedback_totals()[cid] == (1, 0)
        # Korean
        dash.click("#lang-toggle")
        assert dash.text_content("#kh-heading") == "최근 알람의 해결 사례"
        dash.wait_for_function(f"() => document.querySelector('{sel}').textContent.includes('신뢰도')")
        # a Korean search on the know-how page finds it too
        boss.fill("#search-q", "spindle bearing noise")
        boss.click("#search-form button")
        boss.wait_for_selector(f'#results li[data-case="{cid}"]')
    assert errors == []


class OperatingApp(KnowHowApp):
    """The know-how app plus operating advice learnt from an expert's audited day (tests/test_knowhow_operating)."""

    async def _start(self) -> None:
        from axline.app.audit import AuditLog
        from axline.knowhow import operating as op
        from axline.knowhow.operating_live import OperatingKnowHow
        from test_knowhow_operating import NS, PLANT, T0, expert_day

        (self.tmp / "day").mkdir()
        path, self.day = expert_day(self.tmp / "day", hours=6.0)
        trail = AuditLog(path)
        await super()._start()
        self.service.operating = OperatingKnowHow(
            op.OperatingConfig(experts=frozenset({"kim"})), PLANT, entries=trail.iter_entries,
            historian=lambda: self.day, now_ns=lambda: T0 + int(6 * 3600 * NS), version=trail.size)

    def _close(self) -> None:
        super()._close()
        self.day.close()


def test_operating_advice_on_the_dashboard(browser, tmp_path):
    errors: list[str] = []
    with OperatingApp(tmp_path) as app:
        dash = _page(browser, errors, "kim:operator")
        dash.goto(app.url + "/")
        dash.wait_for_selector('#kh-operating li[data-signal="temp_setpoint"]')
        assert dash.is_visible("#kh-op")
        text = dash.text_content('#kh-operating li[data-signal="temp_setpoint"]')
        assert "temp setpoint" in text and "most alike past moves" in text and "Past episodes" in text
        dash.click('#kh-operating li[data-signal="temp_setpoint"] summary')
        assert "afterwards" in dash.text_content('#kh-operating li[data-signal="temp_setpoint"] .kh-op-episodes')
        dash.click("#lang-toggle")
        dash.wait_for_function("() => document.querySelector('#kh-operating').textContent.includes('비교 기준')")
        # a viewer does not get the advice (the server would refuse it; the page does not ask)
        viewer = _page(browser, errors, "ann:viewer")
        viewer.goto(app.url + "/")
        viewer.wait_for_selector("#kh-alarms li")
        assert not viewer.is_visible("#kh-op")
    assert errors == []
