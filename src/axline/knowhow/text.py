"""Text analysis for the case search: language, words, and the shop-floor concepts a text mentions.

Korean is cut into words and two-syllable pieces of each word (``베어링에서`` -> ``베어링에서``,
``베어``, ``어링``, ``링에``, ``에서``): a two-syllable Korean word is found inside longer inflected
forms without a morpheme model (SQLite FTS5 trigrams miss them). When ``kiwipiepy`` is installed, the
``morph`` analyser uses its morphemes instead (about 290 MB of memory more; see ``axline bench
knowhow``). English words are lower-cased and reduced to a crude stem (``bearings`` -> ``bearing``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from axline.knowhow.glossary import CONCEPTS

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN = re.compile(r"[A-Za-z]")
_WORD = re.compile(r"[\uac00-\ud7a3]+|[A-Za-z][A-Za-z0-9\-]*|[0-9]+(?:\.[0-9]+)?")
_EN_STOP = frozenset(
    "a an the of on in at to for from by with and or but is are was were be been it its this that these those "
    "there then than as after before when while into out up down over under again not no yes we i you he she "
    "they them our my his her their do did does done has have had so very just also all any some".split()
)
_KO_STOP = frozenset(("그리고", "그래서", "하지만", "그런데", "있음", "없음", "했음", "하고", "해서", "에서", "으로"))


def detect_language(text: str) -> str:
    """``ko`` when Hangul makes up at least a fifth of the letters, else ``en``."""
    ko = len(_HANGUL.findall(text or ""))
    en = len(_LATIN.findall(text or ""))
    return "ko" if ko and ko * 5 >= (ko + en) else "en"


def stem_en(word: str) -> str:
    """A crude English stem: enough to make ``leaks``, ``leaking`` and ``leaked`` meet."""
    w = word.lower()
    for _ in range(2):  # twice, so that the stem of a stem is itself ("bearings" -> "bearing" -> "bear")
        for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
            if len(w) > len(suffix) + 2 and w.endswith(suffix) and not w.endswith("ss"):
                w = w[: -len(suffix)] + keep
                break
    return w


def words(text: str) -> list[str]:
    """Word tokens: English stems, Korean words and their two-syllable pieces, numbers."""
    out: list[str] = []
    for tok in _WORD.findall(text or ""):
        if _HANGUL.match(tok):
            if tok in _KO_STOP:
                continue
            out.append(tok)
            if len(tok) > 2:
                out.extend(tok[i : i + 2] for i in range(len(tok) - 1))
        elif tok[0].isdigit():
            out.append(tok)
        else:
            low = tok.lower()
            if low in _EN_STOP or len(low) < 2:
                continue
            out.append(stem_en(low))
    return out


class _MorphAnalyser:
    """Korean morphemes with kiwipiepy (optional); English as in :func:`words`."""

    _lock = threading.Lock()
    _kiwi = None

    @classmethod
    def kiwi(cls):
        with cls._lock:
            if cls._kiwi is None:
                from kiwipiepy import Kiwi  # optional: pip install kiwipiepy

                cls._kiwi = Kiwi(num_workers=0)
            return cls._kiwi

    @classmethod
    def words(cls, text: str) -> list[str]:
        out: list[str] = []
        for tok in cls.kiwi().tokenize(text or ""):
            tag = tok.tag
            if tag.startswith(("NN", "VV", "VA", "XR", "SN")):
                out.append(tok.form)
            elif tag == "SL":
                low = tok.form.lower()
                if low not in _EN_STOP and len(low) > 1:
                    out.append(stem_en(low))
        return out


def analyser(name: str):
    """The word analyser called ``name``: ``bigram`` (default, no model) or ``morph`` (kiwipiepy)."""
    if name == "bigram":
        return words
    if name == "morph":
        return _MorphAnalyser.words
    raise ValueError(f"text analyser must be 'bigram' or 'morph', got {name!r}")


class Glossary:
    """Finds the concepts of :mod:`axline.knowhow.glossary` (plus a plant's own) in a text."""

    def __init__(self, extra: dict[str, dict[str, Iterable[str]]] | None = None) -> None:
        concepts: dict[str, tuple[list[str], list[str]]] = {
            cid: (list(en), list(ko)) for cid, (en, ko) in CONCEPTS.items()
        }
        for cid, entry in (extra or {}).items():
            if not isinstance(entry, dict):
                raise ValueError(f"glossary {cid}: expected {{en: [...], ko: [...]}}, got {entry!r}")
            en, ko = concepts.setdefault(str(cid), ([], []))
            en.extend(str(w) for w in entry.get("en", []) or [])
            ko.extend(str(w) for w in entry.get("ko", []) or [])
        self.labels: dict[str, tuple[str, str]] = {}
        self._en_single: dict[str, set[str]] = {}  # stem -> concepts
        self._en_phrase: list[tuple[tuple[str, ...], str]] = []
        self._ko_sub: list[tuple[str, str]] = []
        self._ko_token: dict[str, set[str]] = {}
        for cid, (en, ko) in concepts.items():
            self.labels[cid] = (en[0] if en else cid, ko[0] if ko else cid)
            for w in en:
                stems = tuple(stem_en(p) for p in re.findall(r"[a-z0-9]+", w.lower()))
                if len(stems) == 1:
                    self._en_single.setdefault(stems[0], set()).add(cid)
                elif stems:
                    self._en_phrase.append((stems, cid))
            for w in ko:
                w = w.lower()
                if len(w.replace(" ", "")) >= 2:
                    self._ko_sub.append((w, cid))
                else:
                    self._ko_token.setdefault(w, set()).add(cid)

    def concepts(self, text: str) -> list[str]:
        """Concept ids mentioned in ``text``, once each, in order of first mention."""
        low = (text or "").lower()
        found: dict[str, None] = {}
        stems = [stem_en(t) for t in re.findall(r"[a-z][a-z0-9]*|[0-9]+", low)]
        for s in stems:
            for cid in self._en_single.get(s, ()):
                found[cid] = None
        if self._en_phrase:
            joined = " " + " ".join(stems) + " "
            for phrase, cid in self._en_phrase:
                if " " + " ".join(phrase) + " " in joined:
                    found[cid] = None
        if _HANGUL.search(low):
            for w, cid in self._ko_sub:
                if w in low:
                    found[cid] = None
            for tok in re.findall(r"[\uac00-\ud7a3]+", low):
                for cid in self._ko_token.get(tok, ()):
                    found[cid] = None
        return list(found)

    def label(self, cid: str, lang: str) -> str:
        """The display name of concept ``cid`` in ``lang``."""
        en, ko = self.labels.get(cid, (cid, cid))
        return ko if lang == "ko" else en


def terms(text: str, glossary: Glossary, analyse=words) -> tuple[list[str], list[str]]:
    """(word terms, concept terms) of a text for the two lexical indexes."""
    return analyse(text), glossary.concepts(text)
