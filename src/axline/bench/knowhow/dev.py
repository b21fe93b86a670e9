"""Case retrieval on the bilingual dev set: every retriever and their fusion, tuned on one split and scored on the other."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from importlib.resources import files
from itertools import product
from typing import Any

import numpy as np

RETRIEVERS = ("semantic", "bilingual", "words", "concepts")


def load_dev() -> list[dict[str, Any]]:
    """The development cases and queries shipped with the benchmark."""
    text = files("axline.bench").joinpath("data/knowhow_dev.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


# -- (a) retrieval on the dev set -----------------------------------------------------------------
def _queries(dev: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for case in dev:
        split = "tune" if int(case["id"][1:]) % 2 == 1 else "test"
        for q in case["queries"]:
            out.append({"text": q["text"], "relevant": case["id"], "split": split,
                        "cross": q["language"] != case["language"], "language": q["language"]})
    return out


def _metrics(ranks: list[int]) -> dict[str, float]:
    n = len(ranks)
    if not n:
        return {"n": 0}
    return {"n": n, "r@1": round(sum(r <= 1 for r in ranks) / n, 3), "r@3": round(sum(r <= 3 for r in ranks) / n, 3),
            "mrr": round(sum(1.0 / r for r in ranks) / n, 3)}


def _rank_of(scores: np.ndarray, order_ids: list[str], relevant: str) -> int:
    i = order_ids.index(relevant)
    return int(1 + np.sum(scores > scores[i]))  # ties count in the relevant case's favour only once


def _rrf(components: dict[str, np.ndarray], names: tuple[str, ...], k: float = 60.0) -> np.ndarray:
    total = np.zeros(len(next(iter(components.values()))))
    for name in names:
        s = components[name]
        order = np.argsort(-s, kind="stable")
        ranks = np.empty(len(s))
        ranks[order] = np.arange(1, len(s) + 1)
        total += 1.0 / (k + ranks)
    return total


def _score_table(comps: list[dict[str, np.ndarray]], queries: list[dict[str, Any]], ids: list[str],
                 fuse) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    ranks = [_rank_of(fuse(c), ids, q["relevant"]) for c, q in zip(comps, queries, strict=True)]
    for split in ("tune", "test", "all"):
        for kind in ("same", "cross"):
            sel = [r for r, q in zip(ranks, queries, strict=True)
                   if (split == "all" or q["split"] == split) and q["cross"] == (kind == "cross")]
            out[f"{split}/{kind}"] = _metrics(sel)
    return out


def _objective(table: dict[str, dict[str, float]], split: str = "tune") -> tuple:
    s, c = table[f"{split}/same"], table[f"{split}/cross"]
    return (min(s["r@3"], c["r@3"]), min(s["r@1"], c["r@1"]), s["mrr"] + c["mrr"])


def run_dev(analyser_names: list[str]) -> dict[str, Any]:
    """Search quality on the development set for each analyser, with the weights fitted on it."""
    from axline.knowhow.base import KnowHow
    from axline.knowhow.embed import Embedder
    from axline.knowhow.search import DEFAULT_WEIGHTS

    dev = load_dev()
    queries = _queries(dev)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    Embedder._get()
    model_load_s = time.perf_counter() - t0
    model_mb = _rss_mb() - rss0
    results: dict[str, Any] = {"cases": len(dev), "queries": len(queries),
                               "near_neighbours": sum(1 for c in dev if c["group"] != "misc"),
                               "model_load_s": round(model_load_s, 2), "model_rss_mb": round(model_mb, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        kh = KnowHow(os.path.join(tmp, "dev"), word_index=True)  # to score the word retriever alone
        rows = [{k: c[k] for k in ("id", "title", "symptom", "cause", "action", "asset", "language")} for c in dev]
        kh.import_rows(rows, "bench")
        ids = [d.id for d in kh.index.docs]
        q_emb = kh.index.encode_texts([q["text"] for q in queries])
        comps = [kh.index.components(q["text"], q_emb=e) for q, e in zip(queries, q_emb, strict=True)]
        tables: dict[str, Any] = {}
        for name in RETRIEVERS:
            tables[f"{name} alone"] = _score_table(comps, queries, ids, lambda c, n=name: c[n])
        for an in analyser_names:
            if an == "bigram":
                continue
            try:
                from axline.knowhow.text import analyser

                fn = analyser(an)
                fn("워밍업")
            except ImportError as e:
                tables[f"words ({an}) alone"] = {"error": f"not installed: {e}"}
                continue
            from axline.knowhow.search import _Bm25

            bm = _Bm25()
            for i in range(len(kh.index.docs)):
                bm.add(i, fn(kh.index.case_text(rows[i] | {"parts": [], "tags": []})))
            mcomps = [bm.scores(fn(q["text"]), len(ids)) for q in queries]
            tables[f"words ({an}: Korean morphemes) alone"] = _score_table(
                [{"m": m} for m in mcomps], queries, ids, lambda c: c["m"])
        tables["plain RRF of semantic + words"] = _score_table(comps, queries, ids,
                                                               lambda c: _rrf(c, ("semantic", "words")))
        # grid search on the tuning split
        grid = {"semantic": (0.0, 0.5, 1.0), "bilingual": (0.0, 0.5, 1.0), "words": (0.0, 0.1, 0.25, 0.5),
                "concepts": (0.0, 0.25, 0.5, 1.0)}
        best_w, best_obj, tried = None, None, 0
        for ws, wb, ww, wc in product(*grid.values()):
            w = {"semantic": ws, "bilingual": wb, "words": ww, "concepts": wc}
            if not any(w.values()):
                continue
            tab = _score_table(comps, queries, ids, lambda c, w=w: sum(w[k] * c[k] for k in w))
            tried += 1
            obj = _objective(tab)
            if best_obj is None or obj > best_obj:
                best_w, best_obj = w, obj
        tables["combined, weights tuned on the tuning split"] = _score_table(
            comps, queries, ids, lambda c: sum(best_w[k] * c[k] for k in best_w))
        shipped = {k: DEFAULT_WEIGHTS[k] for k in RETRIEVERS}
        tables["combined, shipped weights"] = _score_table(
            comps, queries, ids, lambda c: sum(shipped[k] * c[k] for k in shipped))
        # confidence map: logistic regression of "is the relevant case" on the fused score, tuning split
        xs, ys = [], []
        for c, q in zip(comps, queries, strict=True):
            if q["split"] != "tune":
                continue
            s = sum(best_w[k] * c[k] for k in best_w)
            for i in np.argsort(-s)[:5]:
                xs.append(float(s[i]))
                ys.append(1 if ids[i] == q["relevant"] else 0)
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=10.0).fit(np.array(xs).reshape(-1, 1), np.array(ys))
        conf_ab = (round(float(lr.coef_[0][0]), 2), round(float(lr.intercept_[0]), 2))
        # calibration on the test split: confidence of the top result vs. whether it is right
        a, b = conf_ab
        bins = {"<0.5": [0, 0], "0.5-0.8": [0, 0], ">=0.8": [0, 0]}
        for c, q in zip(comps, queries, strict=True):
            if q["split"] != "test":
                continue
            s = sum(best_w[k] * c[k] for k in best_w)
            i = int(np.argmax(s))
            conf = 1 / (1 + math.exp(-(a * s[i] + b)))
            key = "<0.5" if conf < 0.5 else "0.5-0.8" if conf < 0.8 else ">=0.8"
            bins[key][0] += 1
            bins[key][1] += int(ids[i] == q["relevant"])
        kh.close()
    results.update({"tables": tables, "tuned_weights": best_w, "shipped_weights": shipped,
                    "grid_points": tried, "confidence_ab": conf_ab,
                    "test_top1_by_confidence": {k: {"queries": n, "top1_right": r} for k, (n, r) in bins.items()}})
    return results
