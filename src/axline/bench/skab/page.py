"""The Markdown page of `axline bench skab`, rendered from its JSON."""

from __future__ import annotations

from typing import Any

from axline.bench.common import (
    markdown_table,
    page,
)


def _yes(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _alone(c: dict[str, Any]) -> str:
    """Whether a candidate keeps the budget on each anomaly-free signal alone ('–' if not checked)."""
    per = c.get("anomaly_free_per_signal")
    if per is None:
        return "–"
    over = [f"{x['signal']} {x['per_hour']:.1f}/h" for x in per if not x["within_budget"]]
    return "within budget" if not over else "over: " + ", ".join(over)


def _streams(c: dict[str, Any]) -> str:
    """Faults caught and budget on the selection drifting streams ('–' if not checked)."""
    d = c.get("drifting_selection")
    if d is None:
        return "–"
    return (f"{d['faults_caught']}/{d['faults']} caught, "
            + ("within budget" if d["families_within_budget"] else f"over budget ({d['max_per_hour']:.1f}/h)"))


def render(r: dict[str, Any]) -> str:
    """The Markdown page of a SKAB result (from its JSON alone)."""
    sel = r["default_selection"]
    d, t = sel["default"]["test"], sel["trivial_test"]
    p = r["protocol"]
    max_far = p["max_far"]
    ok_far = d["far"] <= max_far
    rev = sel["reverse"]
    summary = "\n".join([
        f"- Product default (what `axline detect` and `axline train monitor` fit, through the same code): "
        f"`{r['default_detector']}`, latched as in the live service. Chosen on {sel['selected_on']}; rule: "
        f"{sel['rule']}. The selection picked `{sel['selected']}`"
        + (" (the shipped default)." if sel["default_is_selected"] else " — **not** the shipped default."),
        f"- Default on the test groups: F1 {d['f1']:.3f}, FAR {d['far']:.1f} %, MAR {d['mar']:.1f} %, "
        f"NAB standard {d['nab_standard']:.1f} (low FP {d['nab_lowfp']:.1f}, low FN {d['nab_lowfn']:.1f}).",
        f"- Trivial detector (everything is an anomaly) on the same test parts: F1 {t['f1']:.3f} at FAR "
        f"{t['far']:.0f} %. Beat it with FAR <= {max_far:g} %: {'yes' if ok_far and d['f1'] > t['f1'] else 'no'}.",
        f"- Goal F1 >= 0.85 at FAR <= {max_far:g} %: {_yes(ok_far and d['f1'] >= 0.85)} (F1 {d['f1']:.3f}, "
        f"FAR {d['far']:.1f} %). Goal changepoint NAB standard >= 40: {_yes(d['nab_standard'] >= 40)} "
        f"({d['nab_standard']:.1f}).",
        f"- Check of the choice, reversed (chosen on {rev['selected_on']}): `{rev['selected']}`, F1 "
        f"{rev['on_' + 'valve1']['f1']:.3f} / FAR {rev['on_valve1']['far']:.1f} % on valve1.",
        f"- Default on all {sel['default_all_files']['files']} runs (includes the selection group, for "
        f"comparison with the published figures only): F1 {sel['default_all_files']['f1']:.3f}, FAR "
        f"{sel['default_all_files']['far']:.1f} %, NAB standard {sel['default_all_files']['nab_standard']:.1f}.",
    ])
    cand = markdown_table(
        ["candidate", "anomaly-free alarms/h", "in alarm", "each signal alone", "selection streams",
         "valve1 F1", "valve1 FAR %", "valve1 NAB", "test F1", "test FAR %", "test NAB"],
        [[("**" + c["label"] + "**") if c["label"] == r["default_detector"] else c["label"],
          c["anomaly_free"]["per_hour"], c["anomaly_free"]["in_alarm"], _alone(c), _streams(c),
          c["select"]["f1"], c["select"]["far"], c["select"]["nab_standard"],
          c["test"]["f1"], c["test"]["far"], c["test"]["nab_standard"]] for c in sel["candidates"]])
    out_rows: list[list[Any]] = []
    for x in r["detectors"]:
        out_rows.append([f"axline library {x['name']}", x["f1"], x["far"], x["mar"], x["nab_standard"],
                         x["nab_lowfp"], x["nab_lowfn"], x["train_s"], round(x["score_samples_per_s"]),
                         round(x["score_one_samples_per_s"])])
    a = sel["default_all_files"]
    out_rows.insert(0, [f"**axline default** {r['default_detector']}", a["f1"], a["far"], a["mar"],
                        a["nab_standard"], a["nab_lowfp"], a["nab_lowfn"], None, None, None])
    tr = r["trivial_all_anomaly"]
    out_rows.append(["trivial: everything is an anomaly", tr["f1"], tr["far"], tr["mar"], tr["nab_standard"],
                     tr["nab_lowfp"], tr["nab_lowfn"], None, None, None])
    cp = {c["name"]: c for c in r["published_changepoint"]}
    for o in r["published_outlier"]:
        c = cp.get(o["name"], {})
        out_rows.append([f"published {o['name']}", o["f1"], o["far"], o["mar"], c.get("nab_standard"),
                         c.get("nab_lowfp"), c.get("nab_lowfn"), None, None, None])
    names = {o["name"] for o in r["published_outlier"]}
    for c in r["published_changepoint"]:
        if c["name"] not in names:
            out_rows.append([f"published {c['name']}", None, None, None, c["nab_standard"], c["nab_lowfp"],
                             c["nab_lowfn"], None, None, None])
    table = markdown_table(
        ["detector", "F1", "FAR %", "MAR %", "NAB std", "NAB lowFP", "NAB lowFN", "train s (400 rows)",
         "score samples/s (batch, 8 signals)", "score_one samples/s"], out_rows)
    library = (f"""- Library rows (all {p['files']} runs): each detector kind's parameters are chosen on the anomaly-free
  run only: threshold `level + factor x spread` of the scores on the file's own fitting rows, `factor`
  for a pooled false-alarm rate of {100 * p['calib_far']:.0f} % on 1,150-row pieces of the anomaly-free run,
  the smoothing window and one parameter by F1 on synthetic faults injected there, among candidates
  whose false-alarm rate there stayed within {p['synthetic_far_budget']:.0f} % (JSON:
  `selection_on_anomaly_free`). Rows suffixed `-nofloor` do not floor each signal's scale at its
  normal drift measured on the anomaly-free run. Latch released at {p['latch_off_ratio']} of the way from
  the normal level to the threshold.
""" if r["detectors"] else "")
    notes = f"""- Protocol: SKAB's own. {p['files']} labelled runs; the first {p['fit_rows']} rows of each fit the
  detector, the remaining {p['test_rows']} rows are scored (no shuffling). F1 = TP / (TP + (FP + FN)/2),
  FAR = FP / (FP + TN), MAR = FN / (FN + TP), pooled over the runs. Changepoints are the edges of the
  predicted (latched) mask, scored with SKAB's NAB variant ({p['nab_window_s']} s window to the right of each
  true changepoint, first detection per window).
- Default and its candidates: `fit_monitor` fits on the first 70 % of the {p['fit_rows']} fitting rows and
  sets the threshold on the other 30 % for the candidate's false-alarm rate (times `margin` above the
  normal level); `OnlineMonitor` then scores the rest row by row: its latch raises an alarm after
  `min_on` samples above the threshold and clears it after `release` samples below the release level,
  and it learns each signal's level online (`adapt` = time constants while normal / while alarming, in
  multiples of the fitted rows). Labels of the test groups are used for scoring only.
- "each signal alone": the candidate fitted on one anomaly-free signal at a time (as `axline detect`
  runs on a single column); "selection streams": step faults caught and the alarm budget on the
  drifting streams of `axline bench alarms` made with other seeds than the ones that benchmark
  reports; both checked in the rule's rank order until a candidate qualifies ("–": not reached).
{library}- "published" rows are quoted from SKAB's README leaderboard, not re-run here."""
    if r["detectors"]:
        notes += "\n" + """- Speed: train time is one fit on 400 rows x 8 signals; batch rate is `score()` on 100,000 rows x 8
  signals (tiled anomaly-free data, best of three runs); streaming rate is `score_one()` per sample."""
    return page("SKAB benchmark (outliers and changepoints)", [
        ("Summary", summary),
        ("Choosing the product default (valve1 chooses, the other groups are the test)", cand),
        (f"All {p['files']} runs: default" + (", library detectors" if r["detectors"] else "")
         + ", trivial and published", table),
        ("Notes", notes),
    ], r)
