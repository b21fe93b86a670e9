"""What the browser tests share: Debian's Chromium driven by Playwright, a page that records the
console's and the page's errors, and logging in through the login form.

The module-scoped ``browser`` fixture (in conftest.py) launches Chromium once per test module; where none
is installed the test skips, and under CI=true fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _auth import PASSWORD

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NO_CHROMIUM = "no Chromium installed (apt-get install chromium, or set AXLINE_CHROMIUM)"


def chromium_path() -> str | None:
    """The Chromium to drive: $AXLINE_CHROMIUM, else the one on PATH; None where there is none."""
    env = os.environ.get("AXLINE_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium() -> Iterator[Any]:
    """A headless Chromium for the duration of the generator (skips, or fails under CI, without one)."""
    exe = chromium_path()
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no Chromium installed: scripts/ensure-services.sh installs it (or set AXLINE_CHROMIUM)")
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def new_page(browser: Any, errors: list[str], locale: str = "en-US", viewport: dict | None = None,
             console: bool = True, **kw: Any) -> Any:
    """A page in a fresh context (its own cookies) that adds the page's errors, and with ``console`` the
    console's errors, to ``errors``; ``kw`` go to the context (is_mobile, extra_http_headers, ...)."""
    ctx = browser.new_context(viewport=viewport or {"width": 1366, "height": 900}, locale=locale, **kw)
    page = ctx.new_page()
    if console:
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.set_default_timeout(60000)  # generous: a wait fails only if the thing never happens
    return page


def log_in(page: Any, url: str, name: str, password: str = PASSWORD) -> None:
    """Log in as ``name`` through the login form of the app at ``url``."""
    page.goto(url + "/login")
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("button[type=submit]")
