"""The Markdown page of `axline bench knowhow`, rendered from its JSON."""

from __future__ import annotations

import json
from typing import Any

from axline.bench.common import markdown_table, page


def _fmt(m: dict[str, float]) -> list:
    return [m.get("r@1"), m.get("r@3"), m.get("mrr")]


_HEAD = ["retriever", "same R@1", "same R@3", "same MRR", "cross R@1", "cross R@3", "cross MRR"]


def _dev_sections(dev: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for name, tab in dev["tables"].items():
        if "error" in tab:
            rows.append([name, tab["error"], "", "", "", "", ""])
            continue
        rows.append([name, *_fmt(tab["test/same"]), *_fmt(tab["test/cross"])])
    rows_all = [[name, *_fmt(tab["all/same"]), *_fmt(tab["all/cross"])] for name, tab in dev["tables"].items()
                if "error" not in tab]
    return [
        ("(a) Bilingual development set: test split (queries of even-numbered cases)",
         f"{dev['cases']} cases ({dev['near_neighbours']} near neighbours), {dev['queries']} queries "
         f"({dev['queries'] // 2} per split: half same-language, half cross-language).\n\n" + markdown_table(_HEAD, rows)),
        (f"(a) All {dev['queries']} queries (tuning + test split)", markdown_table(_HEAD, rows_all)),
        ("(a) Choices made on the tuning split",
         f"Fusion weights tuned over {dev['grid_points']} grid points (objective: the lower of same- "
         f"and cross-language R@3, then the lower R@1, then the sum of MRR): `{json.dumps(dev['tuned_weights'])}`; "
         f"shipped in `axline.knowhow.search.DEFAULT_WEIGHTS`: "
         f"`{json.dumps(dev['shipped_weights'])}`. Confidence = 1 / (1 + exp(-(a x score + b))) with "
         f"(a, b) = {dev['confidence_ab']} fitted on the tuning split's top-5 results. On the test "
         f"split, top results by confidence: " +
         "; ".join(f"{k}: {v['top1_right']}/{v['queries']} right" for k, v in dev["test_top1_by_confidence"].items()) +
         f". Sentence model: {dev['model_rss_mb']} MB resident, loaded in {dev['model_load_s']} s."),
    ]


def _vfactory_section(rec: dict[str, Any]) -> tuple[str, str]:
    rows = [[k, v["recurrences"], v["in_top3"]] for k, v in rec["by_kind"].items()]
    seeds_txt = "; ".join(f"seed {s['seed']}: {s['faults']} faults, {s['occurrences_alarmed']} alarmed, "
                          f"{s['cases_from_first']} cases from first occurrences, {s['nuisance_cases']} nuisance "
                          f"cases, {s['hits']}/{s['recurrences']} recurrences in top 3" for s in rec["seeds"])
    return ("(b) Virtual factory: recurrence from the signal pattern alone",
            f"recall@3 **{rec['recall@3']}** over {rec['recurrences']} recurrences ({seeds_txt}).\n\n" +
            markdown_table(["fault kind", "recurrences", "case in top 3"], rows))


def _mask_section(m: dict[str, Any]) -> tuple[str, str]:
    if "error" in m:
        return ("(c) Name masking on MaintNorm", m["error"])
    t, b, c = m["test"], m["test_rules_only"], m["chosen"]

    def opts(o: dict[str, Any]) -> str:
        return (f"share >= {o['min_share']}, names {o['names']}, parts {'on' if o['parts'] else 'off'}, "
                f"context {o['context_min'] or 'off'}, initials {'on' if o['initials'] else 'off'}")

    def row(name: str, x: dict[str, Any]) -> list[Any]:
        return [name, x["recall"], x["precision"], x["f1"], x["tp"], x["fp"], x["fn"]]

    table = [row("the product's mask_text with its shipped masker (rules + learnt words and options)", t),
             row("the rules alone (phones, e-mails, titled names)", b)]
    if "test_this_run" in m:
        table.insert(1, row("the masker this run learnt (differs from the shipped one)", m["test_this_run"]))
    rows = [[opts(x["options"]), x["cross_validation"]["recall"], x["cross_validation"]["precision"],
             x["val"]["recall"], x["val"]["precision"], x["pooled"]["recall"], x["pooled"]["precision"]]
            for x in m["choices"]]
    return ("(c) Name masking on MaintNorm (test split, token level)",
            f"{m['test_sensitive_tokens']} `<sensitive>` tokens in the test split ({m['train_sensitive_tokens']} "
            f"in train, {m['val_sensitive_tokens']} in val). Options chosen on {m['folds']}-fold cross-validation "
            f"over train plus val (pooled: highest recall at precision >= 0.9, then F1, then fewer options): "
            f"**{opts(c['options'])}** (pooled recall {c['pooled']['recall']}, precision "
            f"{c['pooled']['precision']}); the final masker learns its words from train + val "
            f"({m['final_sensitive_words']} sensitive words, context words {m['final_context_words'] or 'none'}). "
            f"It ships in the package as `axline/data/{m['shipped_file']}` ({m['shipped_file_bytes']:,} bytes; "
            f"MaintNorm is MIT-licensed); the shipped file "
            f"{'is exactly what this run learnt' if m['shipped_is_this_run'] else 'DIFFERS from what this run learnt'}. "
            f"The test split is scored through the product's `mask_text` (a token counts as masked when a "
            f"masked span covers it).\n\n" +
            markdown_table(["masker", "recall", "precision", "F1", "TP", "FP", "FN"], table) +
            "\n\nOptions tried (share: a word of train is sensitive when marked so in at least this share of its "
            "uses; names: the most common census first names of each sex, outside the vocabulary; parts: "
            "joined words with a sensitive or name part, and starts of known sensitive words; context: words "
            "next to sensitive words at least this often; initials: a single letter before a sensitive word, "
            "a first name or a capitalised word outside the vocabulary):\n\n" +
            markdown_table(["options", "CV recall", "CV precision", "val recall", "val precision",
                            "pooled recall", "pooled precision"], rows))


def _speed_section(s: dict[str, Any]) -> tuple[str, str]:
    return ("(d) Speed", markdown_table(
        ["cases", "import (s)", "cases/s", "reopen (s)", "query p50 (ms)", "query p95 (ms)", "max (ms)",
         "memory growth of the import (MB)"],
        [[s["cases"], s["import_s"], s["import_cases_per_s"], s["reopen_s"], s["p50_ms"], s["p95_ms"],
          s["max_ms"], s["index_import_rss_growth_mb"]]]))


def _operating_section(o: dict[str, Any]) -> tuple[str, str]:
    rows = []
    for sd in o["seeds"]:
        model = (sd["model"] or {}).get("setpoints", {})
        learnt = "; ".join(f"{tag.rsplit('/', 1)[-1]}: on {', '.join(m['based_on'])}, "
                           + (f"k={m['k']}, {m['mode']}" if m["mode"] != "linear" else "ridge line")
                           for tag, m in model.items()) or "nothing"
        rows.append([sd["seed"], sd["hours"], sd["expert_writes"], sd["trainee_writes"], sd["learnt"]["episodes"],
                     sd["held_out_moves"], sd["direction_agreement"], learnt])
    by_sig: dict[str, list[int]] = {}
    for sd in o["seeds"]:
        for r in sd["details"]:
            if r["expert"] != "hold":
                v = by_sig.setdefault(r["signal"], [0, 0])
                v[0] += 1
                v[1] += int(r["advice"] == r["expert"])
    sig_rows = [[k, n, ok, round(ok / n, 3)] for k, (n, ok) in sorted(by_sig.items())]
    return ("(e) Operating know-how: advice learnt from an expert's audited setpoint moves",
            f"Direction agreement with the expert's held-out moves **{o['direction_agreement']}** over "
            f"{o['held_out_moves']} moves; the advice named a direction (not hold) for "
            f"{o.get('coverage', 'n/a')} of them (coverage) and was right on {o.get('agreement_when_advised', 'n/a')} "
            f"of those (always the majority direction of the learnt moves: "
            f"{o['majority_baseline']}); where the expert left a setpoint alone while moving the other, the "
            f"advice said hold {o['hold_agreement']} of {o['held_out_holds']} times. Learnt from the first "
            f"{o['train_fraction']} of each simulated day.\n\n" +
            markdown_table(["seed", "hours", "expert writes", "trainee writes (not learnt)", "episodes learnt",
                            "held-out moves", "direction agreement", "chosen on the learnt episodes"], rows) +
            "\n\n" + markdown_table(["setpoint", "held-out moves", "same direction", "agreement"], sig_rows))


def render(result: dict[str, Any]) -> str:
    """The Markdown page of a run, from its JSON alone."""
    sections: list[tuple[str, str]] = []
    if "dev" in result:
        sections += _dev_sections(result["dev"])
    if "vfactory" in result:
        sections.append(_vfactory_section(result["vfactory"]))
    if "masking" in result:
        sections.append(_mask_section(result["masking"]))
    if "speed" in result:
        sections.append(_speed_section(result["speed"]))
    if "operating" in result:
        sections.append(_operating_section(result["operating"]))
    sections.append(("Protocol", result["protocol"]))
    return page("Veterans' know-how: finding cases again, and operating advice", sections, result)
