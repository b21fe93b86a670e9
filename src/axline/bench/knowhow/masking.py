"""Masking of names and part numbers, measured on MaintNorm."""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any


# -- (c) masking on MaintNorm ------------------------------------------------------------------------
def _read_norm(path: Path) -> list[list[tuple[str, str]]]:
    texts, cur = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if cur:
                texts.append(cur)
                cur = []
            continue
        raw, _, norm = line.partition("\t")
        cur.append((raw, norm.strip()))
    if cur:
        texts.append(cur)
    return texts


MASK_GRID = {"min_share": (0.0, 0.5), "names": (0, 200, 1000), "parts": (False, True), "context_min": (0, 3)}
MASK_FOLDS = 5


def run_masking(data: Path) -> dict[str, Any]:
    """Name masking on MaintNorm: thresholds chosen on validation, scored on test."""
    from axline.knowhow.mask import MASK_NAME, VocabularyMasker, given_names, learn_masker, mask_text

    d = data / "data" / "combined"
    if not d.is_dir():
        return {"error": f"{d} not found; pass --maintnorm DIR"}
    train, val, test = (_read_norm(d / f"{s}.norm") for s in ("train", "val", "test"))

    def labelled(texts):
        return [[(raw, norm == "<sensitive>") for raw, norm in t] for t in texts]

    def normal_words(texts) -> set[str]:
        return {w for t in texts for _, norm in t if norm != "<sensitive>" for w in norm.split()}

    ruled_cache: dict[int, str] = {}

    def score(texts, masker) -> dict[str, float]:
        tp = fp = fn = 0
        for text in texts:
            toks = [r for r, _ in text]
            key = id(text)
            if key not in ruled_cache:
                ruled_cache[key] = mask_text(" ".join(toks))[0]
            ruled = ruled_cache[key]
            for i, (raw, norm) in enumerate(text):
                pred = masker.is_sensitive(raw, toks[i - 1] if i else "", toks[i + 1] if i + 1 < len(toks) else "") \
                    or (MASK_NAME in ruled and raw not in ruled)
                truth = norm == "<sensitive>"
                tp += pred and truth
                fp += pred and not truth
                fn += truth and not pred
        return _prf(tp, fp, fn)

    def build(texts, opts):
        return learn_masker(labelled(texts), vocabulary=normal_words(texts), min_share=opts["min_share"],
                            context_min=opts["context_min"], min_len=99, near=False,
                            names=given_names(opts["names"]), parts=opts["parts"])

    # choice of the options: 5-fold cross-validation on train, plus val scored by the masker learnt on train
    folds = [([t for i, t in enumerate(train) if i % MASK_FOLDS != k], [t for i, t in enumerate(train) if i % MASK_FOLDS == k])
             for k in range(MASK_FOLDS)]
    choices = []
    for values in product(*MASK_GRID.values()):
        opts = dict(zip(MASK_GRID, values, strict=True))
        counts = [0, 0, 0]
        for fit, held in folds:
            sc = score(held, build(fit, opts))
            counts = [a + b for a, b in zip(counts, (sc["tp"], sc["fp"], sc["fn"]), strict=True)]
        v = score(val, build(train, opts))
        pooled = _prf(counts[0] + v["tp"], counts[1] + v["fp"], counts[2] + v["fn"])
        choices.append({"options": opts, "cross_validation": _prf(*counts), "val": v, "pooled": pooled})
    ok = [c for c in choices if c["pooled"]["precision"] >= 0.9]
    simple = lambda c: -sum(bool(x) for x in c["options"].values())  # noqa: E731 - fewer options on ties
    best = max(ok or choices, key=lambda c: ((c["pooled"]["recall"], c["pooled"]["f1"]) if ok else
                                             (c["pooled"]["f1"],), simple(c)))
    final = build(train + val, best["options"])
    test_score = score(test, final)
    # the masker before these options: the sensitive words of train and the rules
    vocab, sensitive = set(), set()
    for text in train:
        for raw, norm in text:
            if norm == "<sensitive>":
                sensitive.add(raw)
            else:
                vocab.add(raw)
                vocab.update(norm.split())
    before = score(test, VocabularyMasker(vocab, sensitive, min_len=99, near=False))
    return {"train_texts": len(train), "val_texts": len(val),
            "train_sensitive_tokens": sum(n == "<sensitive>" for t in train for _, n in t),
            "val_sensitive_tokens": sum(n == "<sensitive>" for t in val for _, n in t),
            "test_sensitive_tokens": sum(n == "<sensitive>" for t in test for _, n in t),
            "grid": {k: list(v) for k, v in MASK_GRID.items()}, "folds": MASK_FOLDS, "choices": choices,
            "chosen": best, "final_sensitive_words": len(final.sensitive), "final_vocabulary": len(final.vocab),
            "final_context_words": sorted(final.left | final.right), "test": test_score,
            "test_train_words_and_rules_only": before}


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0}
