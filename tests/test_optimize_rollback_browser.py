"""A change that breaks a constraint, followed in headless Chromium to its automatic rollback: an
engineer proposes a cooler furnace from the optimiser page, another person approves it there, axline
writes it, sees the hardness fall below its limit and writes the old setpoint back; the page shows the
proposal rolled back with the reason, and the audit page shows both writes under the approver's name."""

from __future__ import annotations

import pytest

from _browser import log_in, new_page
from _wait import wait_until
from test_optimize_browser import PlantThread
from test_optimize_service import START, TEMP

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

ROLLED_BACK = ".opt-proposal[data-status=rolled_back]"


class Plant(PlantThread):
    """The optimiser's virtual plant (simulator at ten times real time, short settling and verification
    windows); it may stop while a change is settling on a loaded machine, which takes longer than an
    idle app's stop."""

    cleanup_timeout_s = 120.0


def test_a_change_that_breaks_hardness_is_rolled_back_and_the_pages_show_it(browser, tmp_path):
    errors: list[str] = []
    with Plant(tmp_path, users={"kim": "engineer", "lee": "approver", "ada": "admin"}) as app:
        eng = new_page(browser, errors)
        log_in(eng, app.url, "kim")
        eng.goto(app.url + "/optimize")
        eng.wait_for_function("() => [...document.querySelectorAll('#wi-inputs input')].length === 3 && "
                              "[...document.querySelectorAll('#wi-inputs input')].every(n => n.value !== '')",
                              timeout=120000)
        # readings at today's setpoints for the baseline the change is judged against (plant time)
        wait_until(lambda: app.line.now_ns > START + 300 * 1_000_000_000, 300, "five simulated minutes")
        # the engineer proposes a cooler furnace, the same belt and air: the largest step allowed
        eng.fill(f"#wi-inputs input[data-tag='{TEMP}']", "830")
        eng.fill("#wi-note", "cooler, same belt")
        eng.click("#wi-submit")
        eng.wait_for_selector(".opt-proposal[data-status=proposed]", timeout=120000)
        card = eng.locator(".opt-proposal[data-status=proposed]").first
        assert "kim" in card.text_content() and "830" in card.locator(".opt-move").text_content()
        # another person approves it on the page
        apr = new_page(browser, errors)
        log_in(apr, app.url, "lee")
        apr.goto(app.url + "/optimize")
        apr.click(".opt-proposal[data-status=proposed] .opt-approve")
        # written, settled, checked: the hardness breaks, and axline writes the old setpoint back itself
        apr.wait_for_selector(ROLLED_BACK, timeout=600000)
        reason = apr.text_content(f"{ROLLED_BACK} .opt-reason")
        assert reason.startswith("Why: ") and "hardness" in reason, reason
        assert apr.text_content(f"{ROLLED_BACK} .opt-status") == "Rolled back"
        steps = apr.locator(f"{ROLLED_BACK} details li").all_text_contents()
        assert any("applied (lee)" in s for s in steps) and any("rolled back (lee)" in s for s in steps), steps
        # the engineer's page follows on its own (it polls): no reload
        eng.wait_for_selector(ROLLED_BACK, timeout=60000)
        assert "hardness" in eng.text_content(f"{ROLLED_BACK} .opt-reason")
        # the audit page: the write and the rollback write, both by the approver, both done
        adm = new_page(browser, errors)
        log_in(adm, app.url, "ada")
        adm.goto(app.url + "/audit")
        adm.wait_for_selector("#audit-table tr[data-seq]")
        cols = adm.eval_on_selector_all("#audit-table tr:first-child th", "hs => hs.map(h => h.textContent)")
        rows = [dict(zip(cols, r, strict=True)) for r in adm.eval_on_selector_all(
            "#audit-table tr[data-seq]", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")]
        writes = [r for r in reversed(rows) if r["Action"] == "tag.write" and r["Result"] == "ok"]  # oldest first
        assert [(w["Who"], w["Target"], float(w["New"])) for w in writes] == [("lee", TEMP, 830.0),
                                                                              ("lee", TEMP, 850.0)], rows
        # the same through the API
        api = adm.evaluate("""async () => (await (await fetch('/api/audit?action=tag.write&who=lee',
            {credentials: 'same-origin'})).json()).entries""")
        assert [(e["target"], e["new"]) for e in reversed(api) if e["result"] == "ok"] == [(TEMP, 830.0),
                                                                                            (TEMP, 850.0)], api
        # Korean
        apr.click("#lang-toggle")
        apr.wait_for_function("() => document.querySelector("
                              f"'{ROLLED_BACK} .opt-status').textContent === '되돌림'")
        assert apr.text_content(f"{ROLLED_BACK} .opt-reason").startswith("사유: ")
    assert not errors, errors
