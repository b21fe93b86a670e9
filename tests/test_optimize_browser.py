"""The setpoint optimiser page in headless Chromium, on the virtual factory over OPC UA: an engineer
asks the advisor, an approver (another person) approves, the what-if runs on the twin and plots.
Korean and English."""

from __future__ import annotations

import time

import pytest

from _browser import log_in, new_page
from conftest import free_port
from test_dashboard_browser import AppThread
from test_optimize_service import START, A, write_optimize_yaml

pytestmark = [pytest.mark.browser, pytest.mark.slow]
O2 = f"{A}/o2_setpoint"


class PlantThread(AppThread):
    """The real service on the virtual factory (OPC UA), with the optimiser's short windows."""

    def __enter__(self) -> PlantThread:
        self.thread.start()
        if not self.ready.wait(180) or self.error:  # a simulator, a service and a connection: slower than a fake
            raise RuntimeError(f"app did not start: {self.error!r}")
        return self

    async def _start(self) -> None:
        import asyncio

        from axline.app.server import create_app, start_site
        from axline.demo import demo_plant
        from axline.service import Service
        from axline.sim.line import VirtualLine
        from axline.sim.server import SimServer

        endpoint = f"opc.tcp://127.0.0.1:{free_port()}/axline/sim"
        self.line = VirtualLine(seed=5, start_ns=START, faults=None, render_images=False, changeover_interval_s=None)
        self.sim = SimServer(self.line, endpoint=endpoint, speed=10.0)
        self.sim_task = asyncio.create_task(self.sim.run())
        await self.sim.ready.wait()
        write_optimize_yaml(self.tmp_dir, settle_s=120.0, verify_s=240.0)
        # one audit trail for the service's writes and the app's audit page, as `axline serve` has
        self.service = Service(demo_plant(self.tmp_dir, endpoint), security=self.security)
        await self.service.start(web=False)
        self.runner, self.port = await start_site(create_app(self.service, security=self.security), "127.0.0.1", 0)

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.service.stop()
        self.sim.stop()
        await self.sim_task

    def _close(self) -> None:
        """Nothing left to close: the service closed its historian when it stopped."""


def test_ask_approve_and_what_if_in_the_browser(browser, tmp_path):
    errors: list[str] = []
    with PlantThread(tmp_path, users={"kim": "engineer", "lee": "approver"}) as app:
        eng = new_page(browser, errors)
        log_in(eng, app.url, "kim")
        eng.goto(app.url + "/optimize")
        eng.wait_for_function("() => document.querySelectorAll('#opt-decisions tr[data-tag]').length === 3")
        eng.wait_for_function("() => [...document.querySelectorAll('#opt-decisions .opt-now')].every(n => n.textContent !== '–')",
                              timeout=60000)
        assert eng.text_content("#opt-heading") == "Setpoint optimiser"
        # the twin, run ahead: today's setpoints against less excess air, plotted
        eng.fill("#wi-inputs input[data-tag$='o2_setpoint']", "3.5")
        eng.select_option("#wi-hours", "2")
        eng.click("#wi-run")
        eng.wait_for_function("() => document.getElementById('wi-status').dataset.done === '1'", timeout=120000)
        assert eng.locator("#wi-charts canvas").count() == 5
        gas_today = float(eng.text_content("#wi-metrics tr[data-metric=gas_per_good_part] td:nth-child(2)"))
        gas_whatif = float(eng.text_content("#wi-metrics tr[data-metric=gas_per_good_part] .wi-value"))
        assert gas_whatif < gas_today
        # the engineer asks the advisor; the advisor is the proposer
        eng.click("#opt-propose")
        eng.wait_for_function("() => document.querySelector('.opt-proposal[data-status=proposed]') || "
                              "!document.getElementById('msg').hidden", timeout=180000)
        if eng.locator(".opt-proposal[data-status=proposed]").count() == 0:
            # the advisor may find nothing worth a change yet; it says why
            assert "No proposal:" in eng.text_content("#msg")
            # the engineer's own proposal, through the page's session
            status = eng.evaluate("""async (tag) => (await fetch('/api/optimize/furnace1/submit', {method: 'POST',
                headers: {'Content-Type': 'application/json'}, credentials: 'same-origin',
                body: JSON.stringify({x: {[tag]: 4.1}, note: 'less air'})})).status""", O2)
            assert status == 200
            eng.wait_for_selector(".opt-proposal[data-status=proposed]")
        card = eng.locator(".opt-proposal[data-status=proposed]").first
        assert "kim" in card.text_content()
        # the twin's verdict, the expected effect (the card may be drawn first from the live event, then filled)
        card.locator(".opt-evidence li").first.wait_for()
        # an approver who is not the proposer approves
        apr = new_page(browser, errors)
        log_in(apr, app.url, "lee")
        apr.goto(app.url + "/optimize")
        apr.wait_for_selector(".opt-proposal[data-status=proposed] .opt-approve")
        apr.click(".opt-proposal[data-status=proposed] .opt-approve")
        apr.wait_for_function("() => ['approved', 'applying', 'settling', 'verifying', 'kept', 'rolled_back']"
                              ".includes(document.querySelector('.opt-proposal').dataset.status)")
        # Korean
        apr.click("#lang-toggle")
        apr.wait_for_function("() => document.getElementById('opt-heading').textContent === '설정값 최적화'")
        assert "제안" in apr.text_content("#opt-proposals")
        # the approved change is written to the machine, audited under the approver's name (the write and
        # its event follow the approval: wait for them, generously)
        deadline = time.monotonic() + 120
        while not (writes := [e for e in app.service.historian.events(limit=200) if e.kind == "write"]):
            assert time.monotonic() < deadline, "no write to the machine 120 s after the approval"
            apr.wait_for_timeout(200)
        assert {e.data["user"] for e in writes} == {"lee"}
    assert not errors, errors
