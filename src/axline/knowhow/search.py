"""Ranking cases for a query: words, shop-floor concepts, meaning, signal pattern and feedback.

Five scores per case, each in 0..1, are added with weights:

* ``semantic``: cosine of multilingual sentence embeddings (across Korean and English);
* ``bilingual``: the same cosine after both texts are extended with the English and Korean names of
  the glossary concepts they mention (``주축 소음`` -> ``주축 소음 / spindle noise / 스핀들 소음``),
  which pulls a Korean text and its English counterpart together;
* ``words``: BM25 over words (English stems, Korean words and their two-syllable pieces), divided by
  the best case's score for this query;
* ``concepts``: BM25 over glossary concepts (one id for ``베어링``, ``베아링`` and ``bearing``), the
  lexical bridge between the languages, divided likewise;
* ``signals``: the symptom snapshot's similarity to the alarm's (see :mod:`signals`);
* ``asset``: 1 when the case is about the asked-for asset;

plus ``feedback``: (helpful - not helpful) / (votes + 2) from "did this help?". The weights and the
logistic map from score to confidence are chosen on the tuning half of the development set by
``axline bench knowhow`` (it prints them); the defaults below are its choice.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axline.knowhow.embed import DIM, Embedder
from axline.knowhow.signals import same_asset, similarity
from axline.knowhow.text import Glossary, analyser

EMB_LEN = 2 * DIM  # stored per case: the plain embedding, then the concept-extended one

# The text weights (semantic, bilingual, words, concepts) are the grid point `axline bench knowhow`
# chooses on the dev set's tuning split (benchmarks/knowhow.md, section (a)). The signals, asset and
# feedback weights are set by hand, not tuned: the dev set has no signal patterns and no feedback;
# the bench's recurrence test (b) runs with them as they are.
DEFAULT_WEIGHTS: dict[str, float] = {"semantic": 0.5, "bilingual": 1.0, "words": 0.0, "concepts": 0.5,
                                     "signals": 1.0, "asset": 0.2, "feedback": 0.3}
# confidence of a text match = 1 / (1 + exp(-(a * score + b))), score without signals, asset and feedback
DEFAULT_CONFIDENCE = (6.15, -7.38)
_TEXT_PARTS = ("semantic", "bilingual", "words", "concepts")
MAX_TOP = 50
_MAX_ASSET_MASKS = 64
_blas = threading.local()


def _one_blas_thread():
    """A context in which NumPy's BLAS uses one thread (``threadpoolctl``; a no-op context without it)."""
    ctl = getattr(_blas, "ctl", None)
    if ctl is None:
        try:
            from threadpoolctl import ThreadpoolController

            ctl = _blas.ctl = ThreadpoolController()
        except ImportError:
            ctl = _blas.ctl = False
    if ctl is False:
        import contextlib

        return contextlib.nullcontext()
    return ctl.limit(limits=1, user_api="blas")
_HANGUL_WORD = re.compile(r"[\uac00-\ud7a3]+")


class _Bm25:
    """BM25 with incremental add and remove; postings per term as NumPy arrays built on demand."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.post: dict[str, dict[int, int]] = {}
        self._arr: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.doclen: dict[int, int] = {}
        self.total = 0
        self._dl = np.zeros(64)  # document length per slot (capacity grows by doubling)

    def add(self, doc: int, terms: list[str]) -> None:
        for t, tf in Counter(terms).items():
            self.post.setdefault(t, {})[doc] = tf
            self._arr.pop(t, None)
        self.doclen[doc] = len(terms)
        self.total += len(terms)
        if doc >= len(self._dl):
            grown = np.zeros(max(2 * len(self._dl), doc + 1))
            grown[: len(self._dl)] = self._dl
            self._dl = grown
        self._dl[doc] = len(terms)

    def remove(self, doc: int, terms: list[str]) -> None:
        for t in set(terms):
            p = self.post.get(t)
            if p is not None and p.pop(doc, None) is not None:
                self._arr.pop(t, None)
                if not p:
                    del self.post[t]
        self.total -= self.doclen.pop(doc, 0)

    def ideal(self, q_terms: list[str]) -> float:
        """The score of a document of average length holding each query term once: the sum of the
        query terms' idf (a term no case has counts with the highest idf)."""
        n = len(self.doclen)
        return sum(math.log(1 + (n - len(self.post.get(t, ())) + 0.5) / (len(self.post.get(t, ())) + 0.5))
                   for t in set(q_terms)) if n else 0.0

    def scores(self, q_terms: list[str], n_docs: int) -> np.ndarray:
        out = np.zeros(n_docs)
        n = len(self.doclen)
        if not n:
            return out
        avg = max(self.total / n, 1e-9)
        for t in set(q_terms):
            p = self.post.get(t)
            if not p:
                continue
            arr = self._arr.get(t)
            if arr is None:
                arr = (np.fromiter(p.keys(), dtype=np.int64, count=len(p)),
                       np.fromiter(p.values(), dtype=np.float64, count=len(p)))
                self._arr[t] = arr
            idx, tf = arr
            idf = math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5))
            dl = self._dl[idx]
            out[idx] += idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * dl / avg))
        return out


@dataclass
class _Doc:
    id: str
    asset: str
    state: str
    language: str
    words: list[str]
    concepts: list[str]
    snapshot: dict[str, Any] = field(default_factory=dict)


class CaseIndex:
    """The in-memory search index of a case base (rebuilt from the store on start; embeddings are
    stored with the cases, so a restart does not re-encode them)."""

    def __init__(self, glossary: Glossary | None = None, *, analyser_name: str = "bigram",
                 weights: dict[str, float] | None = None, confidence: tuple[float, float] | None = None,
                 embedder: Embedder | None = None, norm: str = "max", word_index: bool | None = None) -> None:
        if norm not in ("max", "ideal"):
            raise ValueError(f"norm must be 'max' or 'ideal', got {norm!r}")
        self.norm = norm
        self.glossary = glossary or Glossary()
        self.analyse = analyser(analyser_name)
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.confidence_ab = confidence or DEFAULT_CONFIDENCE
        self.embedder = embedder or Embedder()
        # the word BM25 index costs memory; kept only when its weight counts (or asked for)
        self.word_index = self.weights.get("words", 0.0) > 0 if word_index is None else word_index
        self.lock = threading.RLock()
        self.docs: list[_Doc | None] = []
        self.pos: dict[str, int] = {}
        self.emb = np.zeros((0, EMB_LEN), dtype=np.float32)
        self.bm25_w = _Bm25()
        self.bm25_c = _Bm25()
        self.feedback: dict[str, tuple[int, int]] = {}
        self.by_signal: dict[str, set[int]] = {}  # signal name -> slots whose snapshot names it
        self._masks: dict[tuple[str, ...] | None, np.ndarray] = {}  # states -> slots in them (cache)

    # -- building -------------------------------------------------------------------------------
    @staticmethod
    def case_text(case: dict[str, Any]) -> str:
        """The searchable text of a case: title, symptom, cause, action, parts and tags."""
        parts = [case.get(k) or "" for k in ("title", "symptom", "cause", "action")]
        parts += list(case.get("parts") or []) + list(case.get("tags") or [])
        return "\n".join(p for p in parts if p)

    def extended(self, text: str) -> str:
        """``text`` followed by the English and the Korean names of the concepts it mentions."""
        cs = self.glossary.concepts(text)
        if not cs:
            return text
        return "\n".join((text, " ".join(self.glossary.label(c, "en") for c in cs),
                          " ".join(self.glossary.label(c, "ko") for c in cs)))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """(n, 1024): each text's embedding, then its concept-extended text's (a text that mentions no
        concept is its own extension: encoded once)."""
        if not texts:
            return np.zeros((0, EMB_LEN), dtype=np.float32)
        ext = [self.extended(t) for t in texts]
        todo = list(texts) + [e for t, e in zip(texts, ext, strict=True) if e != t]
        enc = self.embedder.encode(todo)
        out = np.empty((len(texts), EMB_LEN), dtype=np.float32)
        out[:, :DIM] = enc[: len(texts)]
        j = len(texts)
        for i, (t, e) in enumerate(zip(texts, ext, strict=True)):
            if e != t:
                out[i, DIM:] = enc[j]
                j += 1
            else:
                out[i, DIM:] = enc[i]
        return out

    def encode_case(self, case: dict[str, Any]) -> np.ndarray:
        """The embedding of a case's text."""
        return self.encode_texts([self.case_text(case)])[0]

    def add(self, case: dict[str, Any], embedding: np.ndarray | None = None) -> np.ndarray:
        """Add or replace a case; returns its embedding (computed when not given)."""
        text = self.case_text(case)
        if embedding is None or len(embedding) != EMB_LEN:
            embedding = self.encode_texts([text])[0]
        words, concepts = self.analyse(text), self.glossary.concepts(text)
        with self.lock:
            if case["id"] in self.pos:
                self.remove(case["id"])
            i = len(self.docs)
            self.docs.append(_Doc(case["id"], case.get("asset") or "", case.get("state") or "draft",
                                  case.get("language") or "", sorted(set(words)), concepts,
                                  case.get("snapshot") or {}))
            self.pos[case["id"]] = i
            self._masks.clear()
            self.emb = _append_row(self.emb, embedding)
            if self.word_index:
                self.bm25_w.add(i, words)
            self.bm25_c.add(i, concepts)
            for name in (case.get("snapshot") or {}).get("signals") or {}:
                self.by_signal.setdefault(name, set()).add(i)
        return np.asarray(embedding, dtype=np.float32)

    def add_many(self, cases: list[dict[str, Any]], embeddings: list[np.ndarray | None] | None = None) -> np.ndarray:
        """Add many cases; missing embeddings are computed in one batch (much faster than one by one)."""
        embeddings = list(embeddings) if embeddings is not None else [None] * len(cases)
        todo = [i for i, e in enumerate(embeddings) if e is None or len(e) != EMB_LEN]
        if todo:
            enc = self.encode_texts([self.case_text(cases[i]) for i in todo])
            for j, i in enumerate(todo):
                embeddings[i] = enc[j]
        for c, e in zip(cases, embeddings, strict=True):
            self.add(c, e)
        return np.array(embeddings, dtype=np.float32).reshape(len(cases), EMB_LEN)

    def remove(self, case_id: str) -> bool:
        """Drop case ``case_id`` from the index; whether it was there."""
        with self.lock:
            i = self.pos.pop(case_id, None)
            if i is None:
                return False
            d = self.docs[i]
            if self.word_index:
                self.bm25_w.remove(i, d.words)
            self.bm25_c.remove(i, d.concepts)
            for name in (d.snapshot or {}).get("signals") or {}:
                self.by_signal.get(name, set()).discard(i)
            self.docs[i] = None
            self._masks.clear()
            self.emb[i] = 0.0  # the vector is gone from memory too
            return True

    def set_state(self, case_id: str, state: str) -> None:
        """Change the state (draft, approved, retired) of case ``case_id`` in the index."""
        with self.lock:
            i = self.pos.get(case_id)
            if i is not None and self.docs[i] is not None:
                self.docs[i].state = state
                self._masks.clear()

    def __len__(self) -> int:
        return len(self.pos)

    # -- ranking --------------------------------------------------------------------------------
    def components(self, text: str, snapshot: dict[str, Any] | None = None, asset: str = "",
                   q_emb: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Each score for every slot of the index (0 for removed slots)."""
        n = len(self.docs)
        comp: dict[str, np.ndarray] = {}
        text = text or ""
        if text.strip():
            if q_emb is None:
                q_emb = self.encode_texts([text])[0]
            q_emb = np.asarray(q_emb, dtype=np.float32)
            with _one_blas_thread():  # on a busy 2-core PC, BLAS threads only fight each other
                comp["semantic"] = np.clip(self.emb[:, :DIM] @ q_emb[:DIM], 0.0, 1.0) if n else np.zeros(0)
                comp["bilingual"] = np.clip(self.emb[:, DIM:] @ q_emb[DIM:], 0.0, 1.0) if n else np.zeros(0)
            for name, bm, terms in (
                ("words", self.bm25_w, self.analyse(text)),
                ("concepts", self.bm25_c, self.glossary.concepts(text)),
            ):
                s = bm.scores(terms, n)
                if self.norm == "ideal":
                    ideal = bm.ideal(terms)
                    comp[name] = np.minimum(s / ideal, 1.0) if ideal > 0 else s
                else:
                    top = s.max() if n else 0.0
                    comp[name] = s / top if top > 0 else s
        else:
            for name in ("semantic", "bilingual", "words", "concepts"):
                comp[name] = np.zeros(n)
        sig = np.zeros(n)
        if snapshot:
            slots: set[int] = set()
            for name in snapshot.get("signals") or {}:
                slots |= self.by_signal.get(name, set())
            for i in slots:
                d = self.docs[i]
                if d is not None and d.snapshot:
                    sig[i] = similarity(snapshot, d.snapshot)[0]
        comp["signals"] = sig
        comp["asset"] = self._asset_mask(asset) if asset else np.zeros(n)
        fb = np.zeros(n)
        for cid, (h, u) in self.feedback.items():  # only the cases that got votes
            i = self.pos.get(cid)
            if i is not None:
                fb[i] = (h - u) / (h + u + 2)
        comp["feedback"] = fb
        return comp

    def _asset_mask(self, asset: str) -> np.ndarray:
        """1.0 for the slots about ``asset`` (computed per distinct asset path, kept until the index
        changes; at most ``_MAX_ASSET_MASKS`` kept)."""
        key = ("asset", asset)
        m = self._masks.get(key)
        if m is None or len(m) != len(self.docs):
            paths = {d.asset for d in self.docs if d is not None}
            hit = {p for p in paths if same_asset(asset, p)}
            m = np.array([1.0 if d is not None and d.asset in hit else 0.0 for d in self.docs])
            if sum(1 for k in self._masks if k and k[0] == "asset") >= _MAX_ASSET_MASKS:
                for k in [k for k in self._masks if k and k[0] == "asset"]:
                    del self._masks[k]
            self._masks[key] = m
        return m

    def fuse(self, comp: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
        """The weighted sum of the score components ``comp``."""
        w = weights or self.weights
        n = len(self.docs)
        total = np.zeros(n)
        for k, arr in comp.items():
            total += w.get(k, 0.0) * arr
        return total

    def confidence(self, score: float) -> float:
        """A score as a confidence between 0 and 1 (a fitted logistic curve)."""
        a, b = self.confidence_ab
        return 1.0 / (1.0 + math.exp(-(a * score + b)))

    def search(self, text: str = "", *, snapshot: dict[str, Any] | None = None, asset: str = "", top: int = 5,
               states: tuple[str, ...] | None = None, explain_lang: str | None = None) -> list[dict[str, Any]]:
        """The best ``top`` cases, best first: id, score, confidence and why."""
        if not isinstance(top, int) or not 1 <= top <= MAX_TOP:
            raise ValueError(f"top must be an integer from 1 to {MAX_TOP}, got {top!r}")
        with self.lock:
            n = len(self.docs)
            if not n or not self.pos:
                return []
            comp = self.components(text, snapshot, asset)
            total = self.fuse(comp)
            # a case with no evidence at all (score 0) is never suggested
            alive = self._masks.get(states)
            if alive is None or len(alive) != n:
                alive = np.array([d is not None and (states is None or d.state in states) for d in self.docs])
                self._masks[states] = alive
            alive = alive & (total > 0)
            total = np.where(alive, total, -np.inf)
            k = min(top, int(alive.sum()))
            if k <= 0:
                return []
            best = np.argpartition(-total, k - 1)[:k]
            best = best[np.argsort(-total[best], kind="stable")]
            lang = explain_lang or (("ko" if _HANGUL_WORD.search(text or "") else "en") if text else "en")
            q_words = set(self.analyse(text)) if text else set()
            q_full = set(_HANGUL_WORD.findall(text or ""))
            q_concepts = self.glossary.concepts(text) if text else []
            out = []
            for i in best.tolist():
                d = self.docs[i]
                why: dict[str, Any] = {"semantic": round(float(comp["semantic"][i]), 3),
                                       "bilingual": round(float(comp["bilingual"][i]), 3)}
                dw = set(d.words)
                why["words"] = sorted(t for t in q_words & dw if not _HANGUL_WORD.fullmatch(t) or t in q_full)[:8]
                dc = set(d.concepts)
                why["concepts"] = [self.glossary.label(c, lang) for c in q_concepts if c in dc][:8]
                if snapshot:
                    s, shared = similarity(snapshot, d.snapshot)
                    why["signals"] = shared[:6]
                    why["signal_match"] = round(s, 3)
                if asset:
                    why["same_asset"] = bool(comp["asset"][i])
                fb = self.feedback.get(d.id)
                if fb:
                    why["feedback"] = {"helpful": fb[0], "not_helpful": fb[1]}
                score = float(total[i])
                text_score = sum(self.weights.get(k, 0.0) * float(comp[k][i]) for k in _TEXT_PARTS)
                conf = self.confidence(text_score) if (text or "").strip() else 0.0
                if snapshot:  # a signal match raises it: 1 - (1 - text) x (1 - signal similarity)
                    conf = 1 - (1 - conf) * (1 - float(comp["signals"][i]))
                out.append({"id": d.id, "score": round(score, 4), "confidence": round(conf, 3),
                            "state": d.state, "asset": d.asset, "language": d.language, "why": why})
            return out


def _append_row(mat: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Append with amortised doubling (the array's capacity grows, its view is exact)."""
    row = np.asarray(row, dtype=np.float32).reshape(1, EMB_LEN)
    return np.concatenate([mat, row], axis=0) if len(mat) < 64 else _grow(mat, row)


def _grow(mat: np.ndarray, row: np.ndarray) -> np.ndarray:
    base = mat.base if isinstance(mat.base, np.ndarray) and mat.base.ndim == 2 else None
    n = len(mat)
    if base is not None and base.shape[0] > n and np.shares_memory(base, mat):
        base[n] = row[0]
        return base[: n + 1]
    cap = np.zeros((n * 2, EMB_LEN), dtype=np.float32)
    cap[:n] = mat
    cap[n] = row[0]
    return cap[: n + 1]
