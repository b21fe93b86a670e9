"""Code, comments, docs and page renderers speak of the product: no words about how it was built (tickets,
who asked for what, working folders), which mean nothing to a reader of the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# generated benchmark pages repeat what their run recorded; their renderers live in src/ and are checked
PLACES = ("src", "tests", "docs")
FILES = ("README.md", "Makefile", "pyproject.toml")
WORDS = re.compile(
    r"\bthe issue\b|\bissue ?#?\d+|\bissue text\b|\bthe lead\b|\bhelper (?:session|engineer)s?\b"
    r"|\bticket\b|/work/wt/|\.\./shared/DESIGN",
    re.IGNORECASE,
)


def offending_lines(text: str) -> list[str]:
    """The lines of ``text`` that use a process word."""
    return [line.strip() for line in text.splitlines() if WORDS.search(line)]


def test_no_process_words():
    found = []
    paths = [p for place in PLACES for p in (ROOT / place).rglob("*") if p.is_file()]
    paths += [ROOT / f for f in FILES if (ROOT / f).exists()]
    for path in sorted(paths):
        if path.suffix not in (".py", ".md", ".js", ".html", ".css", ".json", ".yaml", ".toml", "") or \
                path.name == Path(__file__).name or "__pycache__" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(ROOT)}: {line[:120]}" for line in offending_lines(text)]
    assert found == [], "words about the making, not the product:\n" + "\n".join(found)


def test_the_check_sees_what_it_must():
    assert offending_lines("x = 1  # as the issue says\ny = 2  # the login session ends\n") == [
        "x = 1  # as the issue says"]
    assert offending_lines("pressure by hand (issue text)") and offending_lines("see issue 11")
    assert not offending_lines("the certificate issuer; end this session; a reviewer confirms the verdict")
