"""The operations pages (and the others served in the same skeleton) share one skeleton: head, header,
navigation with the current page, language switch and the log-out button of a signed-in person; each page
file holds only its own part."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from _auth import client_as, make_security, start_client, token_headers
from _fake_service import FakeService, open_test_historian
from axline.app.ops_pages import OPS_NAV, PAGES, PAGES_DIR
from axline.app.security import SECURITY_KEY
from axline.app.server import create_app


@pytest.fixture
def app(tmp_path):
    historian = open_test_historian(tmp_path)
    yield create_app(FakeService(historian, tick_s=10, history_s=10), security=make_security())
    historian.close()


def _header(html: str) -> str:
    return html[html.index("<header"):html.index("</header>")]


@pytest.mark.parametrize("name", [p for p, _ in OPS_NAV])
async def test_each_page_is_its_own_main_in_the_shared_skeleton(app, name, monkeypatch):
    own = (PAGES_DIR / f"{name}.html").read_text(encoding="utf-8")
    assert "<header" not in own and "<head>" not in own and "ops-nav" not in own, "the skeleton has these"
    reads: list[str] = []
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: reads.append(self.name) or real(self, *a, **k))
    c = await client_as(app, "viewer")
    try:
        r = await c.get(f"/{name}")
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        assert r.headers["Cache-Control"] == "no-store"  # it shows who is signed in
        html = await r.text()
    finally:
        await c.close()
    assert reads == [], "pages are put together when the app is made"
    assert f'data-i18n="{name}.title"' in html
    header = _header(html)
    assert re.findall(r'<a href="/(\w+)" class="nav-link current" aria-current="page"', header) == [name]
    assert [p for p, _ in OPS_NAV] == re.findall(r'<a href="/(\w+)" class="nav-link', header)
    assert 'id="lang-toggle"' in header
    assert re.search(r'<form id="logout-form" method="post" action="/logout">', header)
    # the page's own scripts run after the shared ones, in the head; its main follows the banner
    head = html[:html.index("</head>")]
    assert head.index("/static/ops.js") < head.index(f"/static/{name}.js")
    assert html.index('id="msg"') < html.index('<main class="ops-main">') < html.index("</body>")


async def test_only_a_password_session_gets_the_log_out_button(app):
    c = await start_client(app)
    try:
        r = await c.get("/alarms", headers=token_headers(app[SECURITY_KEY], "robot", "viewer"))
        assert r.status == 200
        assert '<form id="logout-form" method="post" action="/logout" hidden>' in _header(await r.text())
    finally:
        await c.close()


@pytest.mark.parametrize("name", [p for p in PAGES if p not in dict(OPS_NAV)])
async def test_the_other_pages_are_served_in_the_same_skeleton(app, name):
    own = (PAGES_DIR / f"{name}.html").read_text(encoding="utf-8")
    assert "<header" not in own and "<head>" not in own and "ops-nav" not in own, "the skeleton has these"
    c = await client_as(app, "admin")
    try:
        r = await c.get(f"/{name}")
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        html = await r.text()
    finally:
        await c.close()
    page = PAGES[name]
    assert f'<title data-i18n="{page.title_key}">' in html
    header = _header(html)
    assert re.findall(r'<a href="/(\w+)" class="nav-link', header) == [p for p, _ in page.nav]
    current = re.findall(r'<a href="/(\w+)" class="nav-link current" aria-current="page"', header)
    assert current == ([name] if name in dict(page.nav) else [])
    assert 'id="lang-toggle"' in header and 'id="logout-form"' in header
    head = html[:html.index("</head>")]
    assert head.count("/i18n/catalog.js") == 1 and head.index("/static/ops.js") < head.index(f"/static/{name}.js")
    assert html.index('id="msg"') < html.index("<main") < html.index("</body>")


async def test_the_audit_page_is_for_admins_only(app):
    c = await client_as(app, "operator")
    try:
        assert (await c.get("/audit")).status == 403
        assert (await c.get("/account")).status == 200
    finally:
        await c.close()
