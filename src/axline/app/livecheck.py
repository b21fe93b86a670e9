"""Is the dashboard alive? Load the page and check that it shows live values that change.

With a headless Chromium (``AXLINE_CHROMIUM`` or ``chromium`` on the PATH) and Playwright (the
dev extra), the page is rendered in the browser and the texts of the line view's live values
(``#flow [data-tag]``) must show numbers and then change. Without them, the check falls back to
HTTP: the page must be served and two reads of ``/api/latest`` must differ; the result says which
method was used.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

__all__ = ["check_dashboard_live", "chromium_path"]

_VALUES_JS = "() => Array.from(document.querySelectorAll('#flow [data-tag]')).map(e => e.textContent)"


def chromium_path() -> str | None:
    """The Chromium to use: ``AXLINE_CHROMIUM`` if it exists, else ``chromium`` on the PATH."""
    env = os.environ.get("AXLINE_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


async def _browser_check(url: str, exe: str, timeout_s: float, user: str | None, password: str | None
                         ) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    out: dict[str, Any] = {"method": "browser"}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=exe, headless=True,
                                           args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = await browser.new_page()
            page.set_default_timeout(timeout_s * 1000)
            if user and password:  # the session cookie lands in the page's context
                r = await page.context.request.post(url + "login", data={"username": user, "password": password},
                                                    headers={"Origin": url.rstrip("/")})
                out["login"] = r.ok
            resp = await page.goto(url)
            out["page"] = bool(resp and resp.ok)
            await page.wait_for_function(
                "() => Array.from(document.querySelectorAll('#flow [data-tag]')).some(e => /\\d/.test(e.textContent))")
            first = await page.evaluate(_VALUES_JS)
            out["values_shown"] = sum(any(c.isdigit() for c in t) for t in first)
            await page.wait_for_function(
                "(before) => { const now = Array.from(document.querySelectorAll('#flow [data-tag]'))"
                ".map(e => e.textContent); return now.some((t, i) => /\\d/.test(t) && t !== before[i]); }",
                arg=first)
            out["values_changed"] = True
        finally:
            await browser.close()
    return out


async def _http_check(url: str, timeout_s: float, user: str | None, password: str | None) -> dict[str, Any]:
    import aiohttp

    out: dict[str, Any] = {"method": "http (no headless browser found: values read from the API, not rendered)"}
    connector = aiohttp.TCPConnector(ssl=False) if url.startswith("https") else None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), connector=connector,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        if user and password:
            async with s.post(url + "login", json={"username": user, "password": password},
                              headers={"Origin": url.rstrip("/")}) as r:
                out["login"] = r.status == 200
        async with s.get(url) as r:
            out["page"] = r.status == 200 and "<html" in (await r.text()).lower()

        async def latest() -> dict[str, Any]:
            async with s.get(url + "api/latest") as r:
                return await r.json() if r.status == 200 else {}

        first = await latest()
        t0 = time.monotonic()
        changed = False
        while time.monotonic() - t0 < timeout_s and not changed:
            await asyncio.sleep(1.0)
            changed = (await latest()) != first
        out["values_shown"] = len(first.get("values", first)) if isinstance(first, dict) else 0
        out["values_changed"] = changed
    return out


async def check_dashboard_live(url: str, user: str | None = None, password: str | None = None,
                               timeout_s: float = 30.0) -> dict[str, Any]:
    """``ok`` when the page is served and shows live values that change within ``timeout_s``."""
    exe = chromium_path()
    try:
        import playwright.async_api  # noqa: F401

        have_pw = True
    except ImportError:
        have_pw = False
    try:
        if exe and have_pw:
            out = await _browser_check(url, exe, timeout_s, user, password)
        else:
            out = await _http_check(url, timeout_s, user, password)
    except Exception as e:  # noqa: BLE001 - the check's failure is its result, with the reason
        out = {"method": "browser" if exe and have_pw else "http", "error": f"{type(e).__name__}: {e}"}
    out["ok"] = bool(out.get("page") and out.get("values_shown") and out.get("values_changed")
                     and out.get("login", True))
    return out
