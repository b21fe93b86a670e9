"""The text catalog (axline/i18n): both languages hold the same keys with the same placeholders, and every
key the server, the command line, the pages and the scripts use is in it."""

from __future__ import annotations

import ast
import doctest
import json
import re
from pathlib import Path

import pytest

from axline import i18n

SRC = Path(__file__).resolve().parents[1] / "src" / "axline"
STATIC = SRC / "app" / "static"
PAGES = SRC / "app" / "pages"  # the operations pages' skeleton and parts, put together by the server
# calls that take a catalog key: name -> position of the key argument
KEYED_CALLS = {"text": 0, "both": 0, "pair": 0, "say": 0, "Message": 0, "Phrase": 0, "has": 0, "fail": 1,
               "PlantConfigError": 2, "choice": 3, "OptionError": 1, "error": 1, "bad_request": 0,
               "OptimizeError": 0}


def test_both_languages_hold_the_same_keys():
    en, ko = i18n.catalog("en"), i18n.catalog("ko")
    assert sorted(set(en) - set(ko)) == [], "keys without Korean text"
    assert sorted(set(ko) - set(en)) == [], "keys without English text"
    assert len(en) > 400


def test_both_languages_use_the_same_placeholders():
    en, ko = i18n.catalog("en"), i18n.catalog("ko")
    differ = {k: (sorted(i18n.placeholders(en[k])), sorted(i18n.placeholders(ko[k]))) for k in en if k in ko
              and i18n.placeholders(en[k]) != i18n.placeholders(ko[k])}
    assert differ == {}, f"placeholders differ between en and ko: {differ}"


def test_no_text_is_empty_and_korean_is_korean():
    ko = i18n.catalog("ko")
    assert [k for lang in i18n.LANGS for k, v in i18n.catalog(lang).items() if not v.strip()] == []
    # a Korean text has Hangul unless it is a name, a number or a symbol (like "OEE" or "{value}")
    hangul = re.compile("[\uac00-\ud7a3]")
    same = [k for k, v in ko.items() if not hangul.search(v) and re.search(r"[a-z]{4,}", re.sub(r"\{\w+\}", "", v))
            and v == i18n.catalog("en")[k]]
    assert len(same) <= 25, f"Korean texts copied from English: {same}"


def test_the_checks_catch_a_missing_key_and_a_different_placeholder(tmp_path, monkeypatch):
    for lang, table in (("en", {"a": "x {n}", "b": "y"}), ("ko", {"a": "x {m}"})):
        (tmp_path / f"{lang}.json").write_text(json.dumps(table), encoding="utf-8")
    monkeypatch.setattr(i18n, "_DIR", tmp_path)
    i18n.catalog.cache_clear()
    try:
        with pytest.raises(AssertionError, match="without Korean"):
            test_both_languages_hold_the_same_keys()
        with pytest.raises(AssertionError, match="placeholders differ"):
            test_both_languages_use_the_same_placeholders()
    finally:
        i18n.catalog.cache_clear()


def test_text_fills_placeholders_and_refuses_unknown_keys():
    assert i18n.text("acct.added", "ko", name="kim").startswith("kim")
    assert i18n.both("acct.added", name="kim")["en"] == "kim added."
    assert " / " in i18n.pair("acct.added", name="kim")
    with pytest.raises(KeyError):
        i18n.text("no.such.key")
    with pytest.raises(ValueError):
        i18n.catalog("fr")
    assert i18n.language("ko-KR,ko;q=0.9,en;q=0.8") == "ko"
    assert i18n.language("fr") == "en"
    err = i18n.Message("acct.added", name="kim")
    assert str(err) == "kim added." and err.text("ko") != str(err)


def test_the_module_examples_run():
    assert doctest.testmod(i18n).failed == 0


def _python_keys() -> dict[str, str]:
    """Literal catalog keys passed to the catalog functions anywhere in src/axline."""
    found: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name not in KEYED_CALLS or len(node.args) <= KEYED_CALLS[name]:
                continue
            arg = node.args[KEYED_CALLS[name]]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                    and re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+", arg.value):
                found[arg.value] = f"{path.relative_to(SRC)}:{node.lineno}"
    return found


def test_every_key_the_python_code_names_is_in_the_catalog():
    keys = _python_keys()
    assert len(keys) > 50, "the scan finds the keys the code uses"
    missing = {k: where for k, where in keys.items() if not i18n.has(k)}
    assert missing == {}, f"keys used but not in axline/i18n/en.json and ko.json: {missing}"


def test_every_key_the_pages_name_is_in_the_catalog():
    keys: dict[str, str] = {}
    for path in sorted([*STATIC.glob("*.html"), *PAGES.glob("*.html")]):
        for k in re.findall(r'data-i18n(?:-title|-aria-label)?="([^"]+)"', path.read_text(encoding="utf-8")):
            if not k.startswith("$"):  # the skeleton's placeholder for each page's title
                keys[k] = path.name
    for path in sorted(STATIC.glob("*.js")):
        for k in re.findall(r"""\bt\(\s*'([a-z][\w]*(?:\.[\w]+)+)'""", path.read_text(encoding="utf-8")):
            keys[k] = path.name
    assert len(keys) > 200
    missing = {k: where for k, where in keys.items() if not i18n.has(k)}
    assert missing == {}, f"keys the pages use but the catalog lacks: {missing}"


def test_the_browser_is_served_both_tables():
    body, etag = i18n.catalog_js()
    assert body.startswith("/*") and "window.AxCatalog = " in body and etag.startswith('"')
    tables = json.loads(body.split("window.AxCatalog = ", 1)[1].rstrip().rstrip(";"))
    assert tables == {lang: i18n.catalog(lang) for lang in i18n.LANGS}
    for page in [*STATIC.glob("*.html"), *PAGES.glob("*.html")]:
        html = page.read_text(encoding="utf-8")
        if "/static/i18n.js" in html:
            assert html.index("/i18n/catalog.js") < html.index("/static/i18n.js"), page.name


def test_the_web_server_writes_no_error_text_inline():
    """Errors of the web app come from the catalog (bad_request, keyed_error, _json_error with a key), so the
    dashboard shows them in Korean or English."""
    inline = []
    for path in sorted((SRC / "app").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("BadRequest", "error_response") and isinstance(node.args[0], ast.Constant | ast.JoinedStr):
                inline.append(f"{path.name}:{node.lineno}")
    assert inline == [], f"error texts written inline (use bad_request with a catalog key): {inline}"


def test_the_command_line_speaks_the_terminal_language(monkeypatch):
    for name in ("AXLINE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    assert i18n.say("cli.user_removed", name="kim") == "removed kim"
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    assert i18n.say("cli.user_removed", name="kim") == i18n.text("cli.user_removed", "ko", name="kim")
    monkeypatch.setenv("AXLINE_LANG", "en")
    assert i18n.say("cli.user_removed", name="kim") == "removed kim"


def test_the_pages_have_one_catalog():
    """Page texts live in axline/i18n/en.json and ko.json only; a page script adds no tables of its own."""
    extra = sorted(p.name for p in STATIC.glob("i18n*.js") if p.name != "i18n.js")
    assert extra == [], f"move the keys of {extra} into src/axline/i18n/en.json and ko.json, then delete them"
    for page in [*STATIC.glob("*.html"), *PAGES.glob("*.html")]:
        assert "/static/i18n-" not in page.read_text(encoding="utf-8"), page.name
