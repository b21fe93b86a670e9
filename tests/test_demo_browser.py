"""The real demo in headless Chromium: virtual factory process -> OPC UA -> service -> browser.

What a new user sees after `make demo`: stations with live state, values that move, KPI tiles,
and the language switch.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _browser import CHROMIUM_ARGS, NO_CHROMIUM, chromium_path

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CNC = "changwon/plant1/line1/cnc/cnc1"


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import urllib.request

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited early: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url + "api/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("demo did not answer")


def test_live_demo_in_the_browser(tmp_path):
    exe = chromium_path()
    if exe is None:
        pytest.skip(NO_CHROMIUM)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "axline.cli", "demo", "--port", str(port), "--speed", "20", "--duration", "90",
         "--no-inspect", "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    errors: list[str] = []
    try:
        _wait_http(url, proc)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="en-US")
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_default_timeout(60000)  # generous: a wait fails only if the thing never happens
            page.goto(url)
            page.wait_for_selector("[data-station]")
            stations = page.eval_on_selector_all("[data-station]", "els => els.map(e => e.dataset.station)")
            assert stations[:5] == [f"changwon/plant1/line1/{a}" for a in
                                    ("press/press1", "cnc/cnc1", "furnace/furnace1", "vision/camera1", "packing/packer1")]
            value = f'#flow [data-tag="{CNC}/spindle_current"]'
            page.wait_for_function("(sel) => /\\d/.test(document.querySelector(sel).textContent)", arg=value)
            first = page.text_content(value)
            page.wait_for_function("([sel, v]) => document.querySelector(sel).textContent !== v", arg=[value, first])
            page.wait_for_function("() => /\\d+\\.\\d%/.test(document.querySelector('#kpi-oee').textContent)",
                                   timeout=120000)
            assert page.text_content("#stream-state").strip()
            page.screenshot(path="/tmp/axline_demo_live.png", full_page=True)
            assert page.text_content("#trends-heading") == "Live trends"
            page.click("#lang-toggle")
            assert page.text_content("#trends-heading") == "실시간 트렌드"
            assert "CNC 가공" in page.text_content(f'[data-station="{CNC}"]')
            page.click("#lang-toggle")
            assert page.text_content("#trends-heading") == "Live trends"
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert errors == []
    # Ctrl-C stops the demo cleanly, with its summary
    assert proc.returncode == 0, out
    assert "axline demo:" in out and Path(tmp_path / "demo" / "data" / "historian").is_dir()
