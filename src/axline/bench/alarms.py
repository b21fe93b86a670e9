"""Alarm budget of the default detector: ``axline bench alarms --json out.json``.

A real stream drifts, shifts level and has daily cycles. This benchmark fits the product's default
detector (``axline.monitor.defaults``: ``fit_monitor`` + ``OnlineMonitor``, as `axline detect`
and the live service run it) on a short window at the start of each stream and counts the alarms
it raises afterwards, against an ISA-18.2-style budget: on average at most 6 alarms per hour per
stream family, and no flood of more than 10 alarms in 10 minutes. Streams:

- SKAB's anomaly-free run (a real water-pump testbed, 1 Hz, about 2.6 h): each of its 8 signals
  alone (univariate, one family each) and all 8 together; fitted on the first 400 rows.
- Long drifting streams made here (``drifting_stream``): 3 days at 10 s of four families
  (temperature with a daily cycle, random-walk drift and set-point shifts; pressure with level
  shifts; vibration with slow wear; flow with daily and 8-hour cycles), 3 seeds each, fitted on
  the first 2 hours. On the second and third day each stream gets 6 step faults (8 noise sigmas,
  20-40 minutes): an alarm onset within a fault (or 10 minutes after it) detects it, every other
  onset is a false alarm. Detection shows the budget is not kept by never alarming.

The previous `axline detect` default (PCA, threshold at the 1 % quantile of held-out fit rows, an
alarm on every crossing) runs on the same streams for comparison.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from axline.bench.common import bench_header, markdown_table, page, peak_rss_mb, publish, require_dir
from axline.bench.skab import FIT_ROWS, SIGNALS, load_skab
from axline.bench.streams import (
    BUDGET_PER_HOUR,
    DAYS,
    FAULT_SIGMA,
    FAULTS_PER_STREAM,
    FIT_H,
    FLOOD,
    GRACE_S,
    SEEDS,
    STEP_S,
    alarm_stats,
    drifting_rows,
    family_row,
    run_monitor,
)
from axline.monitor.defaults import DEFAULT, MonitorConfig

PREVIOUS = MonitorConfig(detector="pca", params={"smooth": 1}, far=0.01, min_on=1, release=1)


def evaluate(config: MonitorConfig, free_X: np.ndarray, free_t: np.ndarray) -> list[dict[str, Any]]:
    """Per family rows for one configuration."""
    rows = []
    t_free = free_t[FIT_ROWS:]
    for j, sig in enumerate(SIGNALS):
        rows.append(family_row(f"SKAB {sig}", [alarm_stats(run_monitor(config, free_X[:, [j]], FIT_ROWS, [sig]), t_free)]))
    rows.append(family_row("SKAB all 8 signals", [alarm_stats(run_monitor(config, free_X, FIT_ROWS, SIGNALS), t_free)]))
    return rows + drifting_rows(config, SEEDS)


def run(args: argparse.Namespace) -> int:
    """Run both configurations on all streams; write the JSON and the page rendered from it."""
    t0 = time.perf_counter()
    result = bench_header("alarms")
    _, free = load_skab(require_dir(args.data, "SKAB"))
    free_t = (free.ts - free.ts[0]) / 1e9
    default_rows = evaluate(DEFAULT, free.X, free_t)
    previous_rows = evaluate(PREVIOUS, free.X, free_t)
    mean_default = float(np.mean([r["per_hour"] for r in default_rows]))
    result.update({
        "default_detector": DEFAULT.label(), "default_config": DEFAULT.as_dict(),
        "previous_detector": PREVIOUS.label(), "previous_config": PREVIOUS.as_dict(),
        "budget": {"per_hour": BUDGET_PER_HOUR, "flood_in_10_min": FLOOD},
        "streams": {"skab_fit_rows": FIT_ROWS, "days": DAYS, "step_s": STEP_S, "fit_hours": FIT_H,
                    "seeds": list(SEEDS), "faults_per_stream": FAULTS_PER_STREAM, "fault_sigma": FAULT_SIGMA,
                    "grace_s": GRACE_S},
        "default": default_rows,
        "previous": previous_rows,
        "default_mean_per_hour": round(mean_default, 3),
        "default_all_within_budget": all(r["within_budget"] for r in default_rows),
    })
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    publish(result, args.json, args.table, render)
    print(f"default {DEFAULT.label()}: {mean_default:.2f} alarms/h on average over families; "
          f"all within budget: {result['default_all_within_budget']}")
    return 0


def render(r: dict[str, Any]) -> str:
    """The Markdown page of an alarm-budget result (from its JSON alone)."""
    b = r["budget"]
    prev = {p["family"]: p for p in r["previous"]}
    over = [x["family"] for x in r["default"] if not x["within_budget"]]
    caught = sum(x["faults_caught"] for x in r["default"])
    faults = sum(x["faults"] for x in r["default"])
    summary = "\n".join([
        f"- Default `{r['default_detector']}`: {r['default_mean_per_hour']:.2f} alarms per hour on average over "
        f"the {len(r['default'])} stream families (budget: <= {b['per_hour']:g} on average: "
        f"{'met' if r['default_mean_per_hour'] <= b['per_hour'] else 'NOT met'}); most alarms in any 10 minutes "
        f"{max(x['max_in_10_min'] for x in r['default'])} (flood limit {b['flood_in_10_min']}). "
        + ("Every family on its own is within budget." if r["default_all_within_budget"] else
           "Families over budget on their own: " + ", ".join(
               f"{x['family']} ({x['per_hour']:.2f}/h, {x['max_in_10_min']} in 10 min)"
               for x in r["default"] if x["family"] in over) + "."),
        f"- Step faults injected into the drifting streams caught by an alarm: {caught} of {faults}.",
        f"- Previous `axline detect` default `{r['previous_detector']}` (alarm on every crossing): "
        f"{np.mean([p['per_hour'] for p in r['previous']]):.1f} alarms per hour on average; "
        f"{sum(not p['within_budget'] for p in r['previous'])} of {len(r['previous'])} families over budget.",
    ])
    rows = [[x["family"], x["streams"], x["hours"], x["per_hour"], x["false_per_hour"], x["max_in_10_min"],
             x["in_alarm_normal"], f"{x['faults_caught']}/{x['faults']}" if x["faults"] else "–",
             "yes" if x["within_budget"] else "**no**", prev[x["family"]]["per_hour"],
             prev[x["family"]]["max_in_10_min"]] for x in r["default"]]
    table = markdown_table(["stream family", "streams", "hours scored", "alarms/h", "false alarms/h",
                            "most in 10 min", "share of normal time in alarm", "faults caught",
                            "within budget", "previous default alarms/h", "previous most in 10 min"], rows)
    s = r["streams"]
    notes = __doc__.split("\n\n", 1)[1].strip() + (
        f"\n\nSettings of this run: SKAB fitted on {s['skab_fit_rows']} rows; drifting streams {s['days']} days "
        f"at {s['step_s']:g} s, fitted on the first {s['fit_hours']:g} h, seeds {', '.join(map(str, s['seeds']))}; "
        f"{s['faults_per_stream']} faults per stream of {s['fault_sigma']:g} sigma; an onset up to "
        f"{s['grace_s']:g} s after a fault still counts for it. The default's parameters were chosen by "
        "`axline bench skab` (SKAB valve1, the anomaly-free run and drifting streams made as here but with "
        "other seeds), not on these streams.")
    return page("Alarm budget of the default detector", [
        ("Summary", summary), ("Per stream family", table), ("Protocol", notes)], r)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``axline bench alarms``."""
    parser.add_argument("--data", default="../shared/datasets/SKAB", help="SKAB folder (holding data/)")
    parser.add_argument("--json", default="benchmarks/alarms.json", help="write the results as JSON here")
    parser.add_argument("--table", default="benchmarks/alarms.md", help="write the Markdown page here")


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m axline.bench.alarms", description=__doc__.splitlines()[0])
    add_arguments(_p)
    raise SystemExit(run(_p.parse_args()))
