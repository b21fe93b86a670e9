"""Masking of personal data in free text before a case is shared or exported.

What is masked: phone numbers, e-mail addresses, Korean names followed by a title or an honorific
(``김철수 반장``, ``박 기사님``), English names after a title (``Mr Smith``), and every name the plant
knows (authors who gave their name, user accounts). :class:`VocabularyMasker` adds a second,
learnt check for shop-floor text where names stand alone (``PIPECO``, ``FOX``): a word unknown to
the vocabulary of the plant's own maintenance text is masked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

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


def mask_text(text: str, known_names: Iterable[str] = ()) -> tuple[str, int]:
    """``text`` with personal data replaced by markers, and how many were replaced."""
    if not text:
        return text or "", 0
    n = 0

    def sub(pattern: re.Pattern, repl, s: str) -> str:
        nonlocal n
        s, k = pattern.subn(repl, s)
        n += k
        return s

    out = sub(_EMAIL, MASK_EMAIL, text)
    out = sub(_PHONE, MASK_PHONE, out)
    for name in sorted({x.strip() for x in known_names if x and len(x.strip()) >= 2}, key=len, reverse=True):
        out = sub(re.compile(r"(?<![\w])" + re.escape(name) + r"(?![a-zA-Z])"), MASK_NAME, out)
    def ko_name(m: re.Match) -> str:
        nonlocal n
        if m.group(1) in _TITLE_SET:
            return m.group(0)
        n += 1
        return MASK_NAME

    out = _KO_NAME.sub(ko_name, out)
    out = sub(_EN_TITLED, lambda m: f"{m.group(1)} {MASK_NAME}", out)
    return out, n


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
    learnt from labelled text). The options are chosen on held-out text."""

    def __init__(self, vocabulary: Iterable[str], sensitive: Iterable[str] = (), min_len: int = 3,
                 near: bool = True, *, names: Iterable[str] = (), parts: bool = False,
                 left: Iterable[str] = (), right: Iterable[str] = ()) -> None:
        self.sensitive = {w.lower() for w in sensitive}
        self.vocab = {w.lower() for w in vocabulary} - self.sensitive
        self.min_len = min_len
        self.near = near
        self.names = frozenset(n.lower() for n in names)
        self.parts = parts
        self.left = frozenset(w.lower() for w in left)
        self.right = frozenset(w.lower() for w in right)
        self._sens_prefixes = {w[:k] for w in self.sensitive if w.isalpha() for k in range(4, len(w))}
        self._prefixes: set[str] = set()
        self._deletes: set[str] = set()
        if near:
            for w in self.vocab:
                if w.isalpha():
                    self._prefixes.update(w[:k] for k in range(3, len(w)))
                    self._deletes.update(_deletes(w))

    def _close_to_known(self, w: str) -> bool:
        if w in self._prefixes:
            return True
        return any(d in self.vocab or d in self._deletes for d in _deletes(w)) or w in self._deletes

    def is_sensitive(self, token: str, prev: str = "", next: str = "") -> bool:
        """Whether ``token`` (between ``prev`` and ``next`` in its text) is to be masked."""
        low = _clean(token)
        if low in self.sensitive:
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
