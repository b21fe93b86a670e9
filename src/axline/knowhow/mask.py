"""Masking of personal data in free text before a case is shared or exported.

What is masked: phone numbers, e-mail addresses, Korean names followed by a title or an honorific
(``김철수 반장``, ``박 기사님``), English names after a title (``Mr Smith``), and every name the plant
knows (authors who gave their name, user accounts). :class:`VocabularyMasker` adds a second,
learnt check for shop-floor text where names stand alone (``PIPECO``, ``FOX``): a word unknown to
the vocabulary of the plant's own maintenance text is masked.
"""

from __future__ import annotations

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


class VocabularyMasker:
    """Masks the plant's known sensitive words, and words outside a known vocabulary (learnt from the
    plant's maintenance text) that are not a typo or an abbreviation of a known word (one edit away,
    or the start of one). Numbers, codes with digits and words shorter than ``min_len`` are kept.
    ``min_len`` and ``near`` are chosen on held-out text."""

    def __init__(self, vocabulary: Iterable[str], sensitive: Iterable[str] = (), min_len: int = 3,
                 near: bool = True) -> None:
        self.sensitive = {w.lower() for w in sensitive}
        self.vocab = {w.lower() for w in vocabulary} - self.sensitive
        self.min_len = min_len
        self.near = near
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

    def is_sensitive(self, token: str) -> bool:
        low = token.lower().strip(".,;:()[]'\"")
        if low in self.sensitive:
            return True
        if len(low) < self.min_len or not low.isalpha() or not low.isascii():
            return False
        if low in self.vocab:
            return False
        return not (self.near and self._close_to_known(low))


def _deletes(w: str) -> set[str]:
    return {w[:i] + w[i + 1:] for i in range(len(w))}
