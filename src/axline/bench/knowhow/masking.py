"""Masking of names, measured on MaintNorm."""

from __future__ import annotations

from pathlib import Path
from typing import Any


# -- (c) masking on MaintNorm ------------------------------------------------------------------------
def run_masking(data: Path) -> dict[str, Any]:
    """Name masking on MaintNorm's test split: (i) the generic masker axline ships (no plant's words),
    (ii) the masker adapted to the plant's labelled text, here train + val, learnt at run time into a
    temporary case store by the product's ``learn-masker`` path (options by cross-validation on train +
    val), and the rules alone. Test labels only score; nothing is written into the package."""
    import shutil
    import tempfile

    from axline.knowhow.base import KnowHow, read_labelled
    from axline.knowhow.mask import GENERIC_OPTIONS, VocabularyMasker, default_masker
    from axline.knowhow.mask import score_masker as score

    d = data / "data" / "combined"
    if not d.is_dir():
        return {"error": f"{d} not found; pass --maintnorm DIR"}
    train, val, test = (read_labelled(str(d / f"{s}.norm")) for s in ("train", "val", "test"))

    store = tempfile.mkdtemp(prefix="axline-bench-masker-")
    try:
        kh = KnowHow(store)
        try:
            report = kh.learn_masker(train + val, "bench", source="MaintNorm train + val")
            adapted = kh.masker()
        finally:
            kh.close()
    finally:
        shutil.rmtree(store, ignore_errors=True)
    generic = default_masker()
    return {"train_texts": len(train), "val_texts": len(val), "test_texts": len(test),
            "train_sensitive_tokens": sum(s for t in train for _, s in t),
            "val_sensitive_tokens": sum(s for t in val for _, s in t),
            "test_sensitive_tokens": sum(s for t in test for _, s in t),
            "generic_options": dict(GENERIC_OPTIONS), "generic_train_val": score(train + val, generic),
            "adaptation": report,
            # test labels only score
            "test_generic": score(test, generic), "test_adapted": score(test, adapted),
            "test_rules_only": score(test, VocabularyMasker())}
