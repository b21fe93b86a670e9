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
    ad = m["adaptation"]
    c = ad["chosen"]

    def opts(o: dict[str, Any]) -> str:
        unknown = "off" if o["min_len"] >= 99 else f">= {o['min_len']} letters"
        return (f"names {o['names']}, parts {'on' if o['parts'] else 'off'}, context {o['context_min'] or 'off'}, "
                f"initials {'on' if o['initials'] else 'off'}, cues {'on' if o['cues'] else 'off'}, "
                f"unknown words {unknown}")

    def row(name: str, x: dict[str, Any]) -> list[Any]:
        return [name, x["recall"], x["precision"], x["f1"], x["tp"], x["fp"], x["fn"]]

    g = m["generic_options"]
    table = [row("(ii) adapted to the plant's labelled text (learnt from train + val by learn-masker)", m["test_adapted"]),
             row("(i) generic, as shipped (no plant's words)", m["test_generic"]),
             row("the rules alone (phones, e-mails, titled names)", m["test_rules_only"])]
    rows = [[opts(x["options"]), x["cross_validation"]["recall"], x["cross_validation"]["precision"],
             x["cross_validation"]["f1"]] for x in ad["choices"]]
    gt = m["generic_train_val"]
    return ("(c) Name masking on MaintNorm (test split, token level)",
            f"{m['test_sensitive_tokens']} `<sensitive>` tokens in the test split ({m['train_sensitive_tokens']} "
            f"in train, {m['val_sensitive_tokens']} in val). (i) The generic masker (first names: the {g['names']} "
            f"most common of each sex; initials {'on' if g['initials'] else 'off'}; cues "
            f"{'on' if g['cues'] else 'off'}) scores recall {gt['recall']}, precision {gt['precision']} on train + "
            f"val. (ii) The adapted masker's options, chosen by {ad['folds']}-fold cross-validation over the "
            f"{ad['texts']} texts of train + val (pooled: highest recall at precision >= {ad['min_precision']}, "
            f"then F1, then fewer options on"
            f"{'' if ad['precision_reached'] else '; no option set reached that precision, so the best F1 was taken'}): "
            f"**{opts(c['options'])}** (cross-validation recall {c['cross_validation']['recall']}, precision "
            f"{c['cross_validation']['precision']}); it then learnt {ad['sensitive_words']} sensitive words, "
            f"{ad['vocabulary']:,} vocabulary words and context words {', '.join(ad['context_words']) or 'none'} from all of "
            f"train + val, into a temporary case store (nothing is written into the package). The test split "
            f"is scored through the product's `mask_text` (a token counts as masked when a masked span covers it).\n\n" +
            markdown_table(["masker", "recall", "precision", "F1", "TP", "FP", "FN"], table) +
            "\n\nOptions tried for the adapted masker (names: the most common census first names of each sex, "
            "outside the plant's vocabulary; parts: joined words with a sensitive or name part, starts of "
            "known sensitive words and words that end with one; context: words next to sensitive words at least this often; initials: a "
            "single letter before a sensitive word, a first name or a capitalised unknown word; cues: an unknown "
            "word after a generic cue such as `by`; unknown words: any word of at least that many letters that "
            "is neither in the plant's vocabulary nor in the general vocabulary, nor one edit from or the start "
            "of a word there):\n\n" +
            markdown_table(["options", "CV recall", "CV precision", "CV F1"], rows))


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
