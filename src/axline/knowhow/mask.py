"""Masking of personal data in free text before a case is shared or exported.

What is masked: phone numbers, e-mail addresses, Korean names followed by a title or an honorific
(``김철수 반장``, ``박 기사님``), English names after a title (``Mr Smith``), and every name the plant
knows (authors who gave their name, user accounts). :class:`VocabularyMasker` adds a second,
learnt check for shop-floor text where names stand alone (``PIPECO``, ``FOX``, ``J
Rinachi``): its sensitive words, vocabulary and options are learnt from labelled maintenance text.
:func:`mask_text` uses the one shipped in the package (learnt from MaintNorm's training and validation
splits by ``axline bench knowhow``; Korean words are left to the rules).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

MASK_NAME = "[이름/name]"
MASK_PHONE = "[전화/phone]"
MASK_EMAIL = "[메일/email]"

_PHONE = re.compile(
    r"(?<![0-9A-Za-z-])(?:\+?82[-\s.]?|0)(?:1[016789]|2|[3-6][1-5]|70)[-\s.)]?\d{3,4}[-\s.]?\d{4}(?![0-9A-Za-z-])"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SURNAMES = ("김이박최정강조윤장임한오서신권황안송류전홍고문양손배백허유남심노하곽성차주우구민진나지엄채원천방공현함변염여추도석선설마길연위표명기반왕금옥육인맹제모탁국어은편용")
_TITLES = ("씨", "님", "반장", "조장", "직장", "계장", "과장", "대리", "주임", "기사", "부장", "차장", "팀장", "사원",
           "선배", "선임", "책임", "수석", "이사", "사장", "공장장", "소장", "주무관", "기장", "형님", "형", "군", "양")
_TITLE_SET = frozenset(_TITLES) | {"반장님", "기사님", "과장님", "부장님", "차장님", "팀장님", "이사님", "사장님"}
_KO_NAME = re.compile(
    r"(?<![\uac00-\ud7a3])([" + _SURNAMES + r"][\uac00-\ud7a3]{1,2})\s?(?=(?:" + "|".join(
        sorted(_TITLES, key=len, reverse=True)) + r")(?:님|이|가|은|는|을|를|에게|한테|께|과|와|의|도|\b|\s|$|[,.)]))"
)
_EN_TITLED = re.compile(r"\b(Mr|Mrs|Ms|Miss|Dr|Mister)\.?\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)")


def personal_spans(text: str, known_names: Iterable[str] = (), masker: VocabularyMasker | None = None,
                   ) -> list[tuple[int, int, str]]:
    """Where personal data is in ``text``: sorted, non-overlapping (start, end, marker) spans. ``masker``:
    the learnt check for names standing alone in shop-floor text (default: the one shipped with axline,
    see :func:`default_masker`)."""
    if not text:
        return []
    found: list[tuple[int, int, str]] = []
    found += [(m.start(), m.end(), MASK_EMAIL) for m in _EMAIL.finditer(text)]
    found += [(m.start(), m.end(), MASK_PHONE) for m in _PHONE.finditer(text)]
    for name in sorted({x.strip() for x in known_names if x and len(x.strip()) >= 2}, key=len, reverse=True):
        pat = re.compile(r"(?<![\w])" + re.escape(name) + r"(?![a-zA-Z])")
        found += [(m.start(), m.end(), MASK_NAME) for m in pat.finditer(text)]
    found += [(m.start(1), m.end(1), MASK_NAME) for m in _KO_NAME.finditer(text) if m.group(1) not in _TITLE_SET]
    found += [(m.start(2), m.end(2), MASK_NAME) for m in _EN_TITLED.finditer(text)]
    masker = default_masker() if masker is None else masker
    toks = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
    for i, (a, _, tok) in enumerate(toks):
        if not tok.isascii():
            continue
        prev = toks[i - 1][2] if i else ""
        nxt = toks[i + 1][2] if i + 1 < len(toks) else ""
        if masker.is_sensitive(tok, prev, nxt):
            core = tok.strip(_PUNCT)
            if core:
                a += tok.index(core)
                found.append((a, a + len(core), MASK_NAME))
    found.sort(key=lambda s: (s[0], -s[1]))
    out: list[tuple[int, int, str]] = []
    for s in found:  # the first (and longest) of overlapping spans wins
        if out and s[0] < out[-1][1]:
            continue
        out.append(s)
    return out


def mask_text(text: str, known_names: Iterable[str] = (), masker: VocabularyMasker | None = None) -> tuple[str, int]:
    """``text`` with personal data replaced by markers, and how many were replaced."""
    if not text:
        return text or "", 0
    spans = personal_spans(text, known_names, masker)
    parts, at = [], 0
    for a, b, marker in spans:
        parts += [text[at:a], marker]
        at = b
    parts.append(text[at:])
    return "".join(parts), len(spans)


_TOKEN = re.compile(r"\S+")
_PUNCT = ".,;:()[]'\""
MASKER_FILE = "knowhow_masker.json"


@functools.lru_cache(maxsize=1)
def default_masker() -> VocabularyMasker:
    """The masker shipped in ``axline/data/knowhow_masker.json``: learnt from MaintNorm's training and
    validation splits (MIT licence, NLP-TLP Group 2024) by ``axline bench knowhow`` with the options it
    chose by cross-validation there (see benchmarks/knowhow.md). Read once."""
    import json
    from importlib.resources import files

    raw = json.loads(files("axline.data").joinpath(MASKER_FILE).read_text(encoding="utf-8"))
    return VocabularyMasker.from_json(raw)


_SPLIT = re.compile(r"[&/+]")
_CALENDAR = frozenset("""january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday""".split())


@functools.lru_cache(maxsize=8)
def given_names(top: int) -> frozenset[str]:
    """The ``top`` most common US census first names of men and of women, lower case (from the ``names``
    package's data files; empty when it is not installed). Month and day names are left out."""
    if top <= 0:
        return frozenset()
    try:
        from importlib.resources import files

        base = files("names")
    except ModuleNotFoundError:
        return frozenset()
    out: set[str] = set()
    for f in ("dist.male.first", "dist.female.first"):
        rows = base.joinpath(f).read_text(encoding="ascii").split("\n")
        out.update(r.split()[0].lower() for r in rows[:top] if r.strip())
    return frozenset(out - _CALENDAR)


class VocabularyMasker:
    """Masks the plant's known sensitive words, and words outside a known vocabulary (learnt from the
    plant's maintenance text) that are not a typo or an abbreviation of a known word (one edit away,
    or the start of one). Numbers, codes with digits and words shorter than ``min_len`` are kept.
    Optional checks for words outside the vocabulary: a common first name (``names``); a word joined
    from parts (``A&B``, ``A/B``) with a sensitive or name part, or the start of a known sensitive word
    (``parts``); a word right after one of ``left`` or right before one of ``right`` (context words
    learnt from labelled text); a single letter before a sensitive word, a first name or a capitalised
    word outside the vocabulary (an initial: ``J Rinachi``, ``initials``). The options are chosen on held-out text."""

    def __init__(self, vocabulary: Iterable[str], sensitive: Iterable[str] = (), min_len: int = 3,
                 near: bool = True, *, names: Iterable[str] = (), parts: bool = False,
                 left: Iterable[str] = (), right: Iterable[str] = (), initials: bool = False) -> None:
        self.sensitive = {w.lower() for w in sensitive}
        self.vocab = {w.lower() for w in vocabulary} - self.sensitive
        self.min_len = min_len
        self.near = near
        self.names = frozenset(n.lower() for n in names)
        self.parts = parts
        self.left = frozenset(w.lower() for w in left)
        self.right = frozenset(w.lower() for w in right)
        self.initials = initials
        self._sens_prefixes = {w[:k] for w in self.sensitive if w.isalpha() for k in range(4, len(w))}
        self._prefixes: set[str] = set()
        self._deletes: set[str] = set()
        if near:
            for w in self.vocab:
                if w.isalpha():
                    self._prefixes.update(w[:k] for k in range(3, len(w)))
                    self._deletes.update(_deletes(w))

    def _initial_of(self, w: str) -> bool:
        """Whether a single letter before ``w`` is an initial: ``w`` is a sensitive word, a first name, or a
        capitalised word (``Rinachi``) outside the vocabulary."""
        low = w.lower()
        if len(w) < 2 or not w.isalpha() or not w.isascii():
            return False
        return low in self.sensitive or low in self.names or (w[0].isupper() and w[1:].islower() and low not in self.vocab)

    def to_json(self) -> dict[str, Any]:
        """What the masker learnt, as JSON (first names inside the vocabulary are left out: never used)."""
        return {"sensitive": sorted(self.sensitive), "vocabulary": sorted(self.vocab), "min_len": self.min_len,
                "near": self.near, "names": sorted(self.names - self.vocab), "parts": self.parts,
                "left": sorted(self.left), "right": sorted(self.right), "initials": self.initials}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> VocabularyMasker:
        """The masker :meth:`to_json` wrote."""
        return cls(raw["vocabulary"], raw["sensitive"], min_len=raw["min_len"], near=raw["near"], names=raw["names"],
                   parts=raw["parts"], left=raw["left"], right=raw["right"], initials=raw["initials"])

    def _close_to_known(self, w: str) -> bool:
        if w in self._prefixes:
            return True
        return any(d in self.vocab or d in self._deletes for d in _deletes(w)) or w in self._deletes

    def is_sensitive(self, token: str, prev: str = "", next: str = "") -> bool:
        """Whether ``token`` (between ``prev`` and ``next`` in its text) is to be masked."""
        low = _clean(token)
        if low in self.sensitive:
            return True
        if self.initials and len(low) == 1 and low.isalpha() and low.isascii() and low not in "aix" \
                and self._initial_of(next.strip(_PUNCT)):
            return True
        if not low or low in self.vocab or any(c.isdigit() for c in low):
            return False
        if self.names and len(low) >= 3 and low in self.names:
            return True
        if self.parts:
            if low in self._sens_prefixes:
                return True
            bits = [b for b in _SPLIT.split(low) if len(b) >= 3]
            if len(bits) > 1 and any(b in self.sensitive or b in self.names for b in bits):
                return True
        if (self.left or self.right) and low.isalpha() and (_clean(prev) in self.left or _clean(next) in self.right):
            return True
        if len(low) < self.min_len or not low.isalpha() or not low.isascii():
            return False
        return not (self.near and self._close_to_known(low))


def _clean(token: str) -> str:
    return token.lower().strip(".,;:()[]'\"")


def learn_masker(texts: Iterable[Iterable[tuple[str, bool]]], *, vocabulary: Iterable[str] = (),
                 min_share: float = 0.0, context_min: int = 0, **options) -> VocabularyMasker:
    """A masker from labelled text (each text a list of (token, is sensitive)): the vocabulary of the
    words not marked (and ``vocabulary``), the words marked sensitive in at least ``min_share`` of their uses, and (when
    ``context_min`` > 0) the words next to a sensitive word at least ``context_min`` times and in at
    least a fifth of their uses."""
    from collections import Counter

    sens, plain = Counter(), Counter()
    before, after, seen = Counter(), Counter(), Counter()
    for text in texts:
        text = list(text)
        for i, (tok, is_s) in enumerate(text):
            low = _clean(tok)
            (sens if is_s else plain)[low] += 1
            seen[low] += 1
            if is_s:
                if i > 0 and not text[i - 1][1]:
                    before[_clean(text[i - 1][0])] += 1
                if i + 1 < len(text) and not text[i + 1][1]:
                    after[_clean(text[i + 1][0])] += 1
    sensitive = {w for w, n in sens.items() if n / (n + plain[w]) >= min_share}

    def cues(c: Counter) -> set[str]:
        if context_min <= 0:
            return set()
        return {w for w, n in c.items() if n >= context_min and n / seen[w] >= 0.2 and w.isalpha()}

    return VocabularyMasker(set(plain) | {_clean(w) for w in vocabulary}, sensitive, left=cues(before), right=cues(after), **options)


def _deletes(w: str) -> set[str]:
    return {w[:i] + w[i + 1:] for i in range(len(w))}
