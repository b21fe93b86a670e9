"""Security in headless Chromium (Playwright with Debian's chromium): login, lockout, pages by role,
and a write attempted from another site while an engineer is logged in."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from _auth import PASSWORD
from _browser import log_in, new_page
from _fake_service import LINE
from _wait import wait_until
from test_dashboard_browser import AppThread

pytestmark = pytest.mark.browser
SPINDLE = f"{LINE}/cnc/cnc1/spindle_temp"


def _page(browser, errors: list[str], locale: str = "en-US"):
    """A page that records the page's errors (refused requests show in the console, as they should)."""
    return new_page(browser, errors, locale, {"width": 1280, "height": 800}, console=False)


def _wait_text(page, selector: str, text: str) -> None:
    """Wait (up to the page's generous default) until ``selector`` shows ``text``; a page that never
    translates fails here."""
    page.wait_for_function("([sel, text]) => (document.querySelector(sel)?.textContent || '').includes(text)",
                           arg=[selector, text])


def test_login_and_lockout_in_korean(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, users={"kim": "operator"}) as app:
        page = _page(browser, errors, locale="ko-KR")
        page.goto(app.url + "/")
        assert page.url.endswith("/login") and page.text_content("h1") == "로그인"
        for i in range(5):
            page.fill("#username", "kim")
            page.fill("#password", f"wrong-password-{i}")
            page.click("button[type=submit]")
            page.wait_for_selector("#login-error", state="visible")
        # the page comes back with the message shown in English markup; its script then translates it
        _wait_text(page, "#login-error", "틀렸습니다")
        assert "틀렸습니다" in page.text_content("#login-error")
        # the sixth try, even with the right password, finds the account locked
        page.fill("#username", "kim")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#login-locked", state="visible")
        _wait_text(page, "#login-locked", "잠겼습니다")
        assert "잠겼습니다" in page.text_content("#login-locked")
        assert not page.is_visible("#login-error")
        # an admin unlocks it; then the login works and the dashboard shows a log-out button
        app.security.accounts.unlock("kim")
        log_in(page, app.url, "kim")
        page.wait_for_function("() => document.querySelector('#stream-state').dataset.state === 'live'")
        assert page.is_visible("#logout-form")
        results = [e["result"] for e in app.security.audit.tail(20, action="login")]
        assert results[::-1] == ["bad"] * 5 + ["locked", "ok"]
        page.click("#logout-form button")
        page.wait_for_url("**/login")
        page.goto(app.url + "/api/me")
        assert "login required" in page.text_content("body")
    assert errors == []


def test_pages_by_role(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, users={"park": "viewer", "root": "admin"}) as app:
        viewer = _page(browser, errors)
        log_in(viewer, app.url, "park")
        viewer.wait_for_function("() => document.querySelector('#stream-state').dataset.state === 'live'")
        # a viewer sees the dashboard, but a review is refused by the server and the page says so
        item = f'#events li[data-event-id="{app.service.inspection_id}"]'
        viewer.click(f"{item} button[data-verdict=confirmed]")
        viewer.wait_for_selector("#banner:not([hidden])")
        assert "operator" in viewer.text_content("#banner")
        assert app.service.feedback_calls == []
        resp = viewer.goto(app.url + "/audit")
        assert resp.status == 403 and "role admin required" in viewer.text_content("body")
        # the admin's audit page lists the viewer's refused review, newest first, and verifies the chain
        admin = _page(browser, errors)
        log_in(admin, app.url, "root")
        admin.goto(app.url + "/audit")
        admin.wait_for_selector("#audit-table tr[data-seq]")
        rows = admin.eval_on_selector_all("#audit-table tr[data-seq]", "rs => rs.map(r => r.textContent)")
        assert any("park" in r and "http.denied" in r and "role operator required" in r for r in rows)
        admin.click("#audit-verify")
        admin.wait_for_function("() => document.querySelector('#audit-verdict').textContent.includes('intact')")
        admin.click("#lang-toggle")
        assert admin.text_content("h2") == "감사 기록"
    assert errors == []


class _Evil(BaseHTTPRequestHandler):
    """Another site: its page tries to write to the dashboard with the visitor's session."""

    target = ""

    def do_GET(self):  # noqa: N802 - http.server's name
        body = f"""<!doctype html><html><body>
<form id="f" method="post" action="{self.target}/api/write" enctype="text/plain">
<input name='{{"path":"{SPINDLE}","value":1,"x":"' value='"}}'></form>
<script>
fetch("{self.target}/api/write", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{path: "{SPINDLE}", value: 2}})}})
  .finally(() => {{ document.title = "sent"; document.getElementById("f").submit(); }});
</script></body></html>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):  # quiet
        pass


def test_a_cross_site_write_is_refused(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, users={"kim": "engineer"}) as app:
        app.service.security = app.security
        page = _page(browser, errors)
        log_in(page, app.url, "kim")
        page.wait_for_function("() => document.querySelector('#stream-state').dataset.state === 'live'")
        # the same engineer may write from the dashboard's own origin
        ok = page.evaluate(f"""() => fetch('/api/write', {{method: 'POST', headers: {{'Content-Type':
            'application/json'}}, body: JSON.stringify({{path: '{SPINDLE}', value: 61.5}})}}).then(r => r.status)""")
        assert ok == 200 and app.service.writes == [(SPINDLE, 61.5, "kim")]
        _Evil.target = app.url
        evil = ThreadingHTTPServer(("127.0.0.1", 0), _Evil)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            # another site (localhost is not 127.0.0.1 to the browser), in the same browser session
            page.goto(f"http://localhost:{evil.server_address[1]}/")

            def refused() -> list[dict]:
                return [e for e in app.security.audit.tail(50, action="http.denied") if e["target"] == "POST /api/write"]

            wait_until(lambda: len(refused()) >= 2, 120, "both cross-site attempts to reach the server")
        finally:
            evil.shutdown()
        assert app.service.writes == [(SPINDLE, 61.5, "kim")]  # nothing more was written
        assert all(e["result"].startswith("refused:") for e in refused())


def test_account_page_password_and_roles(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, users={"kim": "engineer", "root": "admin"}) as app:
        kim = _page(browser, errors)
        log_in(kim, app.url, "kim")
        kim.goto(app.url + "/account")
        kim.wait_for_function("() => document.querySelector('#acct-who').textContent.includes('kim')")
        assert kim.is_hidden("#users-card")  # only admins see the users
        kim.fill("#pw-old", PASSWORD)
        kim.fill("#pw-new", "password")  # a common one: refused, and the page says why
        kim.fill("#pw-again", "password")
        kim.click("#pw-form button[type=submit]")
        kim.wait_for_function("() => document.querySelector('#acct-msg').textContent.includes('common')")
        kim.fill("#pw-old", PASSWORD)
        kim.fill("#pw-new", "morning-shift-lathe-2")
        kim.fill("#pw-again", "morning-shift-lathe-2")
        kim.click("#pw-form button[type=submit]")
        kim.wait_for_function("() => document.querySelector('#acct-msg').textContent.includes('changed')")
        assert app.security.accounts.authenticate("kim", "morning-shift-lathe-2").ok
        # the admin lowers kim to viewer: kim's session ends at once
        admin = _page(browser, errors, locale="ko-KR")
        log_in(admin, app.url, "root")
        admin.goto(app.url + "/account")
        admin.wait_for_selector('#users-table tr[data-user="kim"]')
        admin.select_option('#users-table tr[data-user="kim"] select.role-select', "viewer")
        admin.wait_for_function("() => document.querySelector('#acct-msg').textContent.includes('kim')")
        assert app.security.accounts.get("kim").role == "viewer"
        resp = kim.goto(app.url + "/api/me")
        assert resp.status == 401
        assert [e["action"] for e in app.security.audit.tail(5, action="user.")] == ["user.role"]
    assert errors == []


def test_inspection_review_page_takes_an_operators_verdict(browser, tmp_path):
    errors: list[str] = []
    with AppThread(tmp_path, users={"kim": "operator"}) as app:
        kim = _page(browser, errors)
        log_in(kim, app.url, "kim")
        kim.wait_for_url(app.url + "/")
        kim.goto(app.url + "/inspection")
        item = f'#verdicts li[data-event-id="{app.service.inspection_id}"]'
        kim.click(f"{item} button[data-verdict=confirmed]")
        kim.wait_for_selector(f"{item} .ack")
        assert kim.text_content(f"{item} .ack") == "Confirmed"
        assert [c[0] for c in app.service.feedback_calls] == [app.service.inspection_id]
        assert kim.is_visible("#logout-form")  # the page's header is the shared one
    assert errors == []
