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


MASK_GRID = {"min_share": (0.5,), "names": (0, 200, 1000), "parts": (False, True), "context_min": (0, 3),
             "initials": (False, True)}
MASK_FOLDS = 5
MASKER_SOURCE = {"source": "learnt by axline bench knowhow from MaintNorm (data/combined train + val splits; "
                           "first names from the names package, US census)",
                 "licence": "MaintNorm: MIT License, Copyright (c) 2024 NLP-TLP Group; names: MIT"}


def run_masking(data: Path, write_masker: str | None = None) -> dict[str, Any]:
    """Name masking on MaintNorm: options chosen by cross-validation on train + val, the masker learnt
    from train + val; the product's masker (the one shipped in the package) scored on test."""
    import json

    from axline.knowhow.mask import MASKER_FILE, default_masker, given_names, learn_masker, personal_spans

    d = data / "data" / "combined"
    if not d.is_dir():
        return {"error": f"{d} not found; pass --maintnorm DIR"}
    train, val, test = (_read_norm(d / f"{s}.norm") for s in ("train", "val", "test"))

    def labelled(texts):
        return [[(raw, norm == "<sensitive>") for raw, norm in t] for t in texts]

    def normal_words(texts) -> set[str]:
        return {w for t in texts for _, norm in t if norm != "<sensitive>" for w in norm.split()}

    def score(texts, masker) -> dict[str, float]:
        """Token counts of what the product's masking (rules and ``masker``) hides in each text."""
        tp = fp = fn = 0
        for text in texts:
            toks = [r for r, _ in text]
            joined, starts, at = " ".join(toks), [], 0
            for tok in toks:
                starts.append(at)
                at += len(tok) + 1
            spans = personal_spans(joined, masker=masker)
            for (raw, norm), a in zip(text, starts, strict=True):
                b = a + len(raw)
                pred = any(s < b and e > a for s, e, _ in spans)
                truth = norm == "<sensitive>"
                tp += pred and truth
                fp += pred and not truth
                fn += truth and not pred
        return _prf(tp, fp, fn)

    def build(texts, opts):
        return learn_masker(labelled(texts), vocabulary=normal_words(texts), min_share=opts["min_share"],
                            context_min=opts["context_min"], min_len=99, near=False,
                            names=given_names(opts["names"]), parts=opts["parts"], initials=opts["initials"])

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
    learnt = final.to_json()
    if write_masker:
        with open(write_masker, "w", encoding="utf-8") as f:
            json.dump({**MASKER_SOURCE, **learnt}, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        default_masker.cache_clear()
    shipped = default_masker()
    same = shipped.to_json() == learnt
    from importlib.resources import files

    size = len(files("axline.data").joinpath(MASKER_FILE).read_bytes())
    out = {"train_texts": len(train), "val_texts": len(val),
           "train_sensitive_tokens": sum(n == "<sensitive>" for t in train for _, n in t),
           "val_sensitive_tokens": sum(n == "<sensitive>" for t in val for _, n in t),
           "test_sensitive_tokens": sum(n == "<sensitive>" for t in test for _, n in t),
           "grid": {k: list(v) for k, v in MASK_GRID.items()}, "folds": MASK_FOLDS, "choices": choices,
           "chosen": best, "final_sensitive_words": len(final.sensitive), "final_vocabulary": len(final.vocab),
           "final_context_words": sorted(final.left | final.right), "shipped_file": MASKER_FILE,
           "shipped_file_bytes": size, "shipped_is_this_run": same,
           # the product's mask_text with its shipped masker; test labels only score
           "test": score(test, shipped),
           "test_rules_only": score(test, learn_masker([], min_len=99, near=False))}
    if not same:
        out["test_this_run"] = score(test, final)
    return out


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0}
