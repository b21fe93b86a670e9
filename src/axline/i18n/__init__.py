"""User-facing text in Korean and English, by key: the one catalog the server, the command line and the
browser all read.

``en.json`` and ``ko.json`` hold the same keys; a text's ``{name}`` placeholders are filled from keyword
arguments. The dashboard gets both tables from ``GET /i18n/catalog.js`` (:func:`catalog_js`)::

    >>> text("lang.toggle", "en")
    '한국어'
    >>> text("acct.added", "en", name="kim")
    'kim added.'
    >>> both("acct.added", name="kim")["ko"]
    'kim을(를) 추가했습니다.'
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

LANGS = ("en", "ko")
_DIR = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    """The table of ``lang`` (``"en"`` or ``"ko"``): key -> text with ``{name}`` placeholders."""
    if lang not in LANGS:
        raise ValueError(f"language must be one of {', '.join(LANGS)}, got {lang!r}")
    with open(_DIR / f"{lang}.json", encoding="utf-8") as f:
        table = json.load(f)
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ValueError(f"{lang}.json must map keys to texts")
    return table


def placeholders(template: str) -> set[str]:
    """The ``{name}`` placeholders in a catalog text."""
    return set(_PLACEHOLDER.findall(template))


def has(key: str) -> bool:
    """Whether ``key`` is in the catalog."""
    return key in catalog("en")


def text(key: str, lang: str = "en", /, **params: Any) -> str:
    """The text of ``key`` in ``lang`` with its placeholders filled from ``params``.

    An unknown key raises ``KeyError``; a placeholder without a value stays as ``{name}``."""
    template = catalog(lang)[key]

    def fill(m: re.Match) -> str:
        name = m.group(1)
        if name not in params:
            return m.group(0)
        value = params[name]
        return value.text(lang) if isinstance(value, Phrase) else str(value)

    return _PLACEHOLDER.sub(fill, template)


def both(key: str, /, **params: Any) -> dict[str, str]:
    """``{"en": ..., "ko": ...}``: the text of ``key`` in each language (for names and stored messages)."""
    return {lang: text(key, lang, **params) for lang in LANGS}


def pair(key: str, /, **params: Any) -> str:
    """``"English / 한국어"`` in one line, for the command line and errors read by either reader."""
    return f"{text(key, 'en', **params)} / {text(key, 'ko', **params)}"


def terminal_language() -> str:
    """The command line's language: ``AXLINE_LANG``, else the locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``)."""
    for name in ("AXLINE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            return "ko" if value.lower().startswith("ko") else "en"
    return "en"


def say(key: str, /, **params: Any) -> str:
    """The text of ``key`` in the command line's language (:func:`terminal_language`)."""
    return text(key, terminal_language(), **params)


def language(value: str | None, default: str = "en") -> str:
    """``"ko"`` or ``"en"`` from a ``lang`` parameter or an ``Accept-Language`` header; else ``default``."""
    if not value:
        return default
    first = value.split(",")[0].strip().lower()
    if first.startswith("ko"):
        return "ko"
    if first.startswith("en"):
        return "en"
    return default


def error(kind: type[Exception], key: str, /, **params: Any) -> Exception:
    """An exception of type ``kind`` with the English text of ``key``; it carries ``key`` and ``params`` so that
    whoever shows it (the web app) can put it in the reader's language."""
    exc = kind(text(key, "en", **params))
    exc.key, exc.params = key, params  # type: ignore[attr-defined]
    return exc


class Phrase:
    """A catalog text used as a placeholder value of another text: it is put in that text's language.
    ``Phrase(None)`` is an empty phrase."""

    def __init__(self, key: str | None, /, **params: Any) -> None:
        self.key = key
        self.params = params

    def text(self, lang: str = "en") -> str:
        """The phrase in ``lang`` ("" for the empty phrase)."""
        return text(self.key, lang, **self.params) if self.key else ""

    def __repr__(self) -> str:
        return f"Phrase({self.key!r})"


class Message(Exception):
    """An error whose text comes from the catalog: ``key`` and its ``params``; ``str()`` is the English text,
    ``text(lang)`` the text in either language."""

    def __init__(self, key: str, /, **params: Any) -> None:
        self.key = key
        self.params = params
        super().__init__(text(key, "en", **params))

    def text(self, lang: str = "en") -> str:
        """The message in ``lang``."""
        return text(self.key, lang, **self.params)

    def pair(self) -> str:
        """The message in English and Korean, on one line."""
        return pair(self.key, **self.params)


@functools.cache
def catalog_js() -> tuple[str, str]:
    """The browser's copy of both tables as a script (``window.AxCatalog``) and its ETag."""
    tables = {lang: catalog(lang) for lang in LANGS}
    body = ("/* axline text in Korean and English (generated from axline/i18n/*.json). */\n"
            "window.AxCatalog = " + json.dumps(tables, ensure_ascii=False, sort_keys=True) + ";\n")
    return body, '"' + hashlib.sha256(body.encode("utf-8")).hexdigest()[:20] + '"'
