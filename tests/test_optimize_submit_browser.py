"""An engineer's own setpoints, proposed from the optimiser page in headless Chromium, go through the
same loop as the advisor's: another person approves, axline writes them through the audited path and
watches them settle (then verifies and keeps or rolls back), every step on the proposal's audit trail."""

from __future__ import annotations

import pytest

from _browser import log_in, new_page
from test_optimize_browser import O2, PlantThread

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

# written: settling after the write, then verified, then kept or rolled back (the service test follows a
# change to its verdict; here the page must show the engineer's proposal written through the same loop)
WRITTEN = ("['settling', 'verifying', 'kept', 'rolled_back']"
           ".includes(document.querySelector('.opt-proposal').dataset.status)")


class Plant(PlantThread):
    """The plant of the optimiser's browser test; it stops while a change is settling, so its service
    cancels the loop's watch first: on a loaded machine that takes longer than an idle app's stop."""

    cleanup_timeout_s = 120.0


def test_engineer_proposes_own_setpoints_and_they_are_approved_applied_and_verified(browser, tmp_path):
    errors: list[str] = []
    with Plant(tmp_path, users={"kim": "engineer", "lee": "approver"}) as app:
        eng = new_page(browser, errors)
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
        apr = new_page(browser, errors)
        log_in(apr, app.url, "lee")
        apr.goto(app.url + "/optimize")
        apr.wait_for_selector(".opt-proposal[data-status=proposed] .opt-approve")
        apr.click(".opt-proposal[data-status=proposed] .opt-approve")
        apr.wait_for_function("() => " + WRITTEN, timeout=180000)
        steps = apr.locator(".opt-proposal details li").all_text_contents()
        assert any("approved" in s for s in steps) and any("applied" in s for s in steps), steps
        assert any("less excess air" in s for s in steps), steps
        events = app.service.historian.events(limit=500)
        writes = [e for e in events if e.kind == "write"]
        assert writes and {e.data["user"] for e in writes} == {"lee"}  # written as the approver, audited
        assert any(O2 in str(e.data) for e in writes), [e.data for e in writes]
        assert {"optimize.proposed", "optimize.approved", "optimize.applied"} <= {e.code for e in events
                                                                                  if e.kind == "optimize"}
        # Korean
        apr.click("#lang-toggle")
        apr.wait_for_function("() => document.getElementById('wi-submit').textContent === '이 설정값으로 제안'")
    refused = [e for e in errors if "status of 400" in e]  # the refused submission above, and only that
    assert len(refused) == 1 and len(errors) == 1, errors
