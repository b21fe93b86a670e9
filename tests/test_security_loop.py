"""Per-request security work stays off the asyncio loop: the login page is read once, the accounts
file is looked at at most once a second and re-read in a worker, the audit export is streamed."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from _auth import add_user, client_as, make_security, start_client
from _fake_service import FakeService, open_test_historian
from axline.app.accounts import AccountStore
from axline.app.server import create_app


@pytest.fixture
def app(tmp_path):
    historian = open_test_historian(tmp_path)
    svc = FakeService(historian, tick_s=10, history_s=10)
    sec = make_security()
    add_user(sec, "root", "admin")
    yield create_app(svc, security=sec)
    historian.close()


async def test_the_login_page_is_not_read_from_disk_per_request(app, monkeypatch):
    reads: list[str] = []
    real = Path.read_text

    def spy(self, *a, **k):
        reads.append(self.name)
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", spy)
    c = await start_client(app)
    try:
        for _ in range(3):
            r = await c.get("/login")
            assert r.status == 200 and "password" in (await r.text()).lower()
    finally:
        await c.close()
    assert "login.html" not in reads


async def test_accounts_file_is_stat_at_most_once_a_second_and_read_off_the_loop(tmp_path, monkeypatch):
    server = AccountStore(tmp_path / "a.json", refresh_s=3600)
    server.add("kim", "viewer", "correct horse battery 7")
    stats = 0
    real_stamp = server._file_stamp

    def count():
        nonlocal stats
        stats += 1
        return real_stamp()

    monkeypatch.setattr(server, "_file_stamp", count)
    for _ in range(50):
        assert server.get("kim") is not None
    assert stats <= 1
    # another process changes the file: seen after the interval, read in a worker thread
    AccountStore(tmp_path / "a.json").set_role("kim", "engineer")
    readers: list[str] = []
    real_reload = server._reload

    def reload(force: bool = False):
        readers.append(threading.current_thread().name)
        real_reload(force)

    monkeypatch.setattr(server, "_reload", reload)
    server.refresh_s = 0.0
    deadline = time.monotonic() + 120
    while server.get("kim").role != "engineer":
        assert time.monotonic() < deadline, "the change was never picked up"
        await asyncio.sleep(0.01)
    assert readers and threading.main_thread().name not in readers


async def test_a_broken_accounts_file_keeps_the_accounts_and_is_counted(tmp_path):
    server = AccountStore(tmp_path / "a.json", refresh_s=0.0)
    server.add("kim", "viewer", "correct horse battery 7")
    (tmp_path / "a.json").write_text("{not json", encoding="utf-8")
    deadline = time.monotonic() + 120
    while server.reload_errors == 0:
        assert server.get("kim") is not None  # still served from what was read before
        assert time.monotonic() < deadline, "the broken file was never noticed"
        await asyncio.sleep(0.01)
    assert "JSONDecodeError" in server.last_reload_error


async def test_the_audit_export_is_streamed(app):
    from axline.app.security import SECURITY_KEY

    audit = app[SECURITY_KEY].audit
    for i in range(1200):
        audit.record("root", "test.entry", f"t{i}")
    admin = await client_as(app, "admin", name="root")
    try:
        r = await admin.get("/api/audit/export?format=jsonl")
        assert r.status == 200 and r.headers.get("Transfer-Encoding") == "chunked"
        assert r.headers["Content-Disposition"].endswith('filename="axline-audit.jsonl"')
        lines = (await r.text()).splitlines()
        assert sum('"test.entry"' in ln for ln in lines) == 1200
        r = await admin.get("/api/audit/export?format=syslog")
        assert r.status == 200 and (await r.text()).startswith("<")
    finally:
        await admin.close()
