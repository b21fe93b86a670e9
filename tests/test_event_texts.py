"""Every event code the server can emit has a Korean and an English text in the catalog the browser reads,
so the dashboard's event list never falls back to the English ``message``."""

from __future__ import annotations

import re
from pathlib import Path

from axline import i18n, spc
from axline.inspect import health

SRC = Path(__file__).resolve().parents[1] / "src" / "axline"
# offline tools that write their own event logs, not the server's
NOT_SERVER = ("bench", "optimize")

LITERAL = re.compile(r"""\bcode=["']([a-z_]+\.[a-z0-9_.]+)["']""")
CALL = re.compile(r"""\b(?:\w*_event|_open_sensor_alarm)\(\s*["']([a-z_]+\.[a-z0-9_.]+)["']""")
FSTRING = re.compile(r"""\bcode=f(["'])(.+?)\1""")


def _alarm_actions() -> set[str]:
    text = (SRC / "app" / "alarm_routes.py").read_text(encoding="utf-8")
    return set(re.findall(r'_act\(request, "(\w+)"', text))


# how each f-string code expands; a new pattern must be added here (the test says so)
EXPANSIONS = {
    "alarm.{action}": lambda: {f"alarm.{a}" for a in _alarm_actions()},
    "spc.rule{rule}": lambda: {f"spc.rule{r}" for r in spc.RULE_TEXT},
    "inspection.{result['verdict']}": lambda: {"inspection.pass", "inspection.reject"},
    "camera.health.{kind}": lambda: {f"camera.health.{k}{end}" for k in health.KINDS for end in ("", ".cleared")},
}


def server_event_codes() -> set[str]:
    codes: set[str] = set()
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] in NOT_SERVER:
            continue
        text = path.read_text(encoding="utf-8")
        codes.update(LITERAL.findall(text))
        codes.update(CALL.findall(text))
        for _, pattern in FSTRING.findall(text):
            assert pattern in EXPANSIONS, f"{path}: event code f-string {pattern!r}: add its codes to EXPANSIONS"
            codes.update(EXPANSIONS[pattern]())
    return codes


def browser_catalog() -> dict[str, set[str]]:
    """Keys per language of the catalog the browser is served (axline/i18n/*.json)."""
    return {lang: set(i18n.catalog(lang)) for lang in i18n.LANGS}


def test_the_code_scan_finds_the_known_codes():
    codes = server_event_codes()
    assert {"alarm.ack", "alarm.shelve", "spc.rule4", "spc.rule8", "report.shift", "history.export",
            "spc.error", "report.error", "knowhow.error", "audit.capacity", "system.disk_full"} <= codes
    cat = browser_catalog()
    assert "event.anomaly.sensor" in cat["en"] and "event.anomaly.sensor" in cat["ko"]


def test_every_server_event_code_has_korean_and_english_text():
    cat = browser_catalog()
    codes = server_event_codes()
    for lang in ("en", "ko"):
        missing = sorted(c for c in codes if f"event.{c}" not in cat[lang])
        assert missing == [], f"event texts missing in {lang}: {missing}"


def test_every_spc_rule_has_an_alarm_name_in_both_languages():
    cat = browser_catalog()
    for lang in ("en", "ko"):
        missing = [r for r in spc.RULE_TEXT if f"alarm.code.spc.rule{r}" not in cat[lang]]
        assert missing == [], f"alarm names missing in {lang} for SPC rules {missing}"
