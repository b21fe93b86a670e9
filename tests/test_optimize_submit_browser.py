"""An engineer's own setpoints, proposed from the optimiser page in headless Chromium, go through the
same loop as the advisor's: another person approves, axline writes them through the audited path,
verifies after settling and keeps or rolls back, every step on the proposal's audit trail."""

from __future__ import annotations

import pytest

from test_dashboard_browser import log_in
from test_optimize_browser import O2, PlantThread, _page, browser  # noqa: F401  (the module's browser fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DONE = "['kept', 'rolled_back'].includes(document.querySelector('.opt-proposal').dataset.status)"


def test_engineer_proposes_own_setpoints_and_they_are_approved_applied_and_verified(browser, tmp_path):  # noqa: F811
    errors: list[str] = []
    with PlantThread(tmp_path, users={"kim": "engineer", "lee": "approver"}) as app:
        eng = _page(browser, errors)
        log_in(eng, app.url, "kim")
        eng.goto(app.url + "/optimize")
        eng.wait_for_function("() => [...document.querySelectorAll('#wi-inputs input')].length === 3 && "
                              "[...document.querySelectorAll('#wi-inputs input')].every(n => n.value !== '')",
                              timeout=60000)
        assert eng.text_content("#wi-submit") == "Propose these setpoints"
        # a move past the trust region is refused, with the reason, and nothing is proposed
        eng.fill(f"#wi-inputs input[data-tag='{O2}']", "1.0")
        eng.click("#wi-submit", timeout=60000)
        eng.wait_for_function("() => !document.getElementById('msg').hidden")
        assert "refused" in eng.text_content("#msg")
        assert eng.locator(".opt-proposal").count() == 0
        # a move inside it becomes a proposal with kim as its proposer and the twin's opinion as evidence
        eng.fill(f"#wi-inputs input[data-tag='{O2}']", "4.1")
        eng.fill("#wi-note", "less excess air")
        eng.click("#wi-submit", timeout=60000)
        eng.wait_for_selector(".opt-proposal[data-status=proposed]", timeout=120000)
        card = eng.locator(".opt-proposal[data-status=proposed]").first
        assert "kim" in card.text_content() and "4.1" in card.locator(".opt-move").text_content()
        # the approver approves; axline writes, settles, verifies and keeps or rolls back
        apr = _page(browser, errors)
        log_in(apr, app.url, "lee")
        apr.goto(app.url + "/optimize")
        apr.wait_for_selector(".opt-proposal[data-status=proposed] .opt-approve")
        apr.click(".opt-proposal[data-status=proposed] .opt-approve")
        apr.wait_for_function("() => " + DONE, timeout=300000)
        status = apr.get_attribute(".opt-proposal", "data-status")
        steps = apr.locator(".opt-proposal details li").all_text_contents()
        assert any("applied" in s for s in steps) and any(status.replace("_", " ") in s for s in steps), steps
        assert any("less excess air" in s for s in steps), steps
        events = app.service.historian.events(limit=500)
        writes = [e for e in events if e.kind == "write"]
        assert writes and {e.data["user"] for e in writes} == {"lee"}  # written as the approver, audited
        o2_writes = [e for e in writes if O2 in str(e.data)]
        assert o2_writes, [e.data for e in writes]
        assert any(e.code == "optimize.approved" for e in events if e.kind == "optimize")
        if status == "rolled_back":  # then the old value was written back, and why is recorded
            assert len(o2_writes) >= 2
            assert apr.locator(".opt-proposal .opt-reason").count() == 1
        # Korean
        apr.click("#lang-toggle")
        apr.wait_for_function("() => document.getElementById('wi-submit').textContent === '이 설정값으로 제안'")
    refused = [e for e in errors if "status of 400" in e]  # the refused submission above, and only that
    assert len(refused) == 1 and len(errors) == 1, errors
