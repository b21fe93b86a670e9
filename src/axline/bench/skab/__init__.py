"""SKAB benchmark: ``axline bench skab --data ../shared/datasets/SKAB --json out.json``.

SKAB's own protocol: each of the 34 labelled CSVs is split, the first 400 rows fit the detector and
the rest are the test part (no shuffling). Outlier metrics are point-wise, pooled over all test
parts; changepoints are the edges of the predicted mask, scored with SKAB's NAB variant (60 s
windows to the right of each true changepoint).

The product's default detector (``axline.monitor.defaults``: the configuration `axline detect`
and `axline train monitor` use, fitted and latched by the same ``fit_monitor``/``monitor_latch``)
is chosen among ``CANDIDATES`` on the ``valve1`` group (16 runs); ``valve2`` and ``other``
(18 runs) are its test. As a check of the choice, the reverse is run too (choose on valve2+other,
report on valve1).

The library rows (every detector kind) choose their parameters on the anomaly-free run only. The threshold
of every file is ``level + factor x spread`` of the detector's scores on that file's own 400
fitting rows; ``factor`` gives a pooled false-alarm rate of ``--calib-far`` on 1,150-row pieces of
the anomaly-free run, and each detector's free parameters are picked by F1 on synthetic faults
injected there (``select_params``). Test labels are used for scoring only.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from axline.bench.common import (
    bench_header,
    peak_rss_mb,
    publish,
    require_dir,
)
from axline.bench.skab.evaluation import (
    BUDGET_IN_ALARM,
    BUDGET_PER_HOUR,
    CONFIGS,
    LATCH_OFF_RATIO,
    SELECT_GROUPS,
    SYNTHETIC_FAR_BUDGET,
    anomaly_free_alarms,
    evaluate,
    evaluate_config,
    normal_drift_scale,
    select_params,
    throughput,
    trivial_all_anomaly,
)
from axline.bench.skab.evaluation import inject_faults as inject_faults
from axline.bench.skab.page import render as render
from axline.bench.skab.runs import FIT_ROWS as FIT_ROWS
from axline.bench.skab.runs import PUBLISHED_CP, PUBLISHED_OUTLIER
from axline.bench.skab.runs import SIGNALS as SIGNALS
from axline.bench.skab.runs import SkabFile as SkabFile
from axline.bench.skab.runs import load_skab as load_skab
from axline.bench.skab.runs import read_skab_csv as read_skab_csv
from axline.bench.streams import drifting_rows
from axline.monitor.defaults import CANDIDATES, DEFAULT, MonitorConfig, OnlineMonitor, fit_monitor


def per_signal_alarms(config: MonitorConfig, free: SkabFile) -> list[dict[str, Any]]:
    """Alarms of ``config`` on each signal of the anomaly-free run alone (a univariate stream, as
    `axline detect` on one column sees it), fitted on its first 400 rows: onsets per hour, the most in
    any 10 minutes, and whether both keep the alarm budget."""
    out = []
    t = free.ts[FIT_ROWS:]
    hours = (t[-1] - t[0] + (t[1] - t[0])) / 3.6e12  # as `axline bench alarms` counts them
    for j, sig in enumerate(SIGNALS):
        X = free.X[:, [j]]
        _, mask = OnlineMonitor(fit_monitor(X[:FIT_ROWS], [sig], config), config).run(X[FIT_ROWS:])
        onsets = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8)]) == 1)
        flood = max((int(np.sum((t[onsets] >= t[i]) & (t[onsets] < t[i] + 600 * 10**9))) for i in onsets),
                    default=0)
        per_h = len(onsets) / hours
        out.append({"signal": sig, "per_hour": round(per_h, 2), "max_in_10_min": flood,
                    "within_budget": bool(per_h <= BUDGET_PER_HOUR and flood <= 10)})
    return out


#: seeds of the drifting streams (``axline bench alarms``) a default candidate is checked on; that
#: benchmark reports on other seeds, so the streams that choose are not the ones that report
SELECT_STREAM_SEEDS = (101, 102, 103)
#: share of the step faults injected into those streams that a default candidate must catch
MIN_FAULTS_CAUGHT = 0.75


def drifting_selection(config: MonitorConfig) -> dict[str, Any]:
    """Alarms and caught step faults of ``config`` on the drifting streams of ``SELECT_STREAM_SEEDS``."""
    fams = drifting_rows(config, SELECT_STREAM_SEEDS)
    faults = sum(f["faults"] for f in fams)
    caught = sum(f["faults_caught"] for f in fams)
    share = caught / faults if faults else 0.0
    within = all(f["within_budget"] for f in fams)
    return {"seeds": list(SELECT_STREAM_SEEDS), "faults": faults, "faults_caught": caught,
            "caught_share": round(share, 4), "families_within_budget": within,
            "max_per_hour": max(f["per_hour"] for f in fams),
            "ok": bool(within and share >= MIN_FAULTS_CAUGHT)}


def choose(rows: list[dict[str, Any]], key: str, max_far: float, free: SkabFile) -> dict[str, Any]:
    """Best F1 (then NAB) among rows whose FAR on ``key`` is within ``max_far`` and that keep the
    alarm budget on the anomaly-free run, all 8 signals together and each signal alone (checked in
    rank order, recorded as ``anomaly_free_per_signal``), and on the selection drifting streams
    while catching at least ``MIN_FAULTS_CAUGHT`` of their step faults (``drifting_selection``);
    else the best of those keeping the budget on each signal; else of those keeping the joint
    budget; else the lowest FAR among those keeping it (else all)."""
    pool = [r for r in rows if r["anomaly_free"]["within_budget"]] or rows
    ok = sorted((r for r in pool if r[key]["far"] <= max_far),
                key=lambda r: (r[key]["f1"], r[key]["nab_standard"]), reverse=True)
    alone = []
    for r in ok:
        cfg = MonitorConfig.from_dict(r["config"])
        if "anomaly_free_per_signal" not in r:
            r["anomaly_free_per_signal"] = per_signal_alarms(cfg, free)
        if not all(x["within_budget"] for x in r["anomaly_free_per_signal"]):
            continue
        alone.append(r)
        if "drifting_selection" not in r:
            r["drifting_selection"] = drifting_selection(cfg)
        if r["drifting_selection"]["ok"]:
            return r
    if alone:
        return alone[0]
    if ok:
        return ok[0]
    return min(pool, key=lambda r: r[key]["far"])


def default_selection(files: list[SkabFile], free: SkabFile, max_far: float) -> dict[str, Any]:
    """Choose the product default on SELECT_GROUPS, report it on the other groups; and the reverse."""
    sel = [f for f in files if f.group in SELECT_GROUPS]
    test = [f for f in files if f.group not in SELECT_GROUPS]
    rows = []
    for cfg in CANDIDATES:
        rows.append({"config": cfg.as_dict(), "label": cfg.label(), "anomaly_free": anomaly_free_alarms(cfg, free),
                     "select": evaluate_config(cfg, sel), "test": evaluate_config(cfg, test)})
        print(f"  {cfg.label():48s} valve1 F1 {rows[-1]['select']['f1']:.3f} FAR {rows[-1]['select']['far']:5.1f} "
              f"free {rows[-1]['anomaly_free']['per_hour']:5.1f}/h {rows[-1]['anomaly_free']['in_alarm']:.2f}",
              flush=True)
    chosen = choose(rows, "select", max_far, free)
    reverse = choose(rows, "test", max_far, free)
    default_row = next((r for r in rows if r["config"] == DEFAULT.as_dict()), None)
    if default_row is None:
        default_row = {"config": DEFAULT.as_dict(), "label": DEFAULT.label(),
                       "anomaly_free": anomaly_free_alarms(DEFAULT, free),
                       "select": evaluate_config(DEFAULT, sel), "test": evaluate_config(DEFAULT, test)}
    if "anomaly_free_per_signal" not in default_row:
        default_row["anomaly_free_per_signal"] = per_signal_alarms(DEFAULT, free)
    if "drifting_selection" not in default_row:
        default_row["drifting_selection"] = drifting_selection(DEFAULT)
    return {
        "selected_on": f"{'+'.join(SELECT_GROUPS)} ({len(sel)} runs), the anomaly-free run and the drifting "
                       f"streams of seeds {', '.join(map(str, SELECT_STREAM_SEEDS))}; test: the other groups "
                       f"({len(test)} runs)",
        "selection_stream_seeds": list(SELECT_STREAM_SEEDS),
        "select_files": [f.name for f in sel],
        "test_files": [f.name for f in test],
        "rule": f"highest F1 among candidates with FAR <= {max_far:g} % on the selection group that keep "
                f"the alarm budget on the anomaly-free run (<= {BUDGET_PER_HOUR:g} alarms per hour, no more "
                f"than 10 in 10 minutes, in alarm <= {100 * BUDGET_IN_ALARM:g} % of the time) with all 8 "
                f"signals together and on each signal alone (<= {BUDGET_PER_HOUR:g} per hour, no more than 10 "
                "in 10 minutes), and on each drifting stream family of seeds "
                f"{', '.join(map(str, SELECT_STREAM_SEEDS))} (as `axline bench alarms` makes them) while "
                f"catching >= {100 * MIN_FAULTS_CAUGHT:g} % of their step faults (ties: NAB standard); the "
                "lowest FAR if none qualifies",
        "candidates": rows,
        "selected": chosen["label"],
        "selected_config": chosen["config"],
        "default": default_row,
        "default_is_selected": chosen["config"] == DEFAULT.as_dict(),
        "reverse": {"selected_on": "the other groups", "selected": reverse["label"],
                    "on_selection_group": reverse["test"], "on_" + "+".join(SELECT_GROUPS): reverse["select"]},
        "default_all_files": evaluate_config(DEFAULT, files),
        "trivial_test": trivial_all_anomaly(test),
    }


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; writes the JSON and the page rendered from it."""
    t_start = time.perf_counter()
    data = require_dir(args.data, "SKAB")
    files, free = load_skab(data)
    result: dict[str, Any] = bench_header("skab")
    print("choosing the product default on valve1:", flush=True)
    selection = default_selection(files, free, args.max_far)
    floors = {"": normal_drift_scale(free), "-nofloor": None}
    if args.floor == "on":
        floors.pop("-nofloor")
    elif args.floor == "off":
        floors.pop("")
    names = list(CONFIGS) if args.detectors == ["all"] else (args.detectors or [])
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"error: unknown detector(s) {unknown}; choose from {list(CONFIGS)}")
    rows: list[dict[str, Any]] = []
    for (suffix, min_scale), base_name in ((f, n) for f in floors.items() for n in names):
        name = base_name + suffix
        kind = CONFIGS[base_name][0]
        params, factor, sel_report = select_params(base_name, free, args.calib_far, min_scale)
        res = evaluate(kind, params, files, factor, min_scale)
        res.update(throughput(kind, params, free))
        res.update({"name": name, "detector": kind, "params": params, "threshold_factor": round(factor, 4),
                    "drift_floor": None if min_scale is None else [round(float(v), 5) for v in min_scale],
                    "selection_on_anomaly_free": sel_report})
        rows.append(res)
        print(f"{name:20s} F1 {res['f1']:.3f} FAR {res['far']:5.1f}% MAR {res['mar']:5.1f}% "
              f"NAB {res['nab_standard']:6.2f}/{res['nab_lowfp']:6.2f}/{res['nab_lowfn']:6.2f} "
              f"train {res['train_s']:.3f}s score {res['score_samples_per_s']:,.0f}/s", flush=True)
    d = selection["default"]
    result.update({
        "protocol": {"fit_rows": FIT_ROWS, "files": len(files), "test_rows": int(sum(len(f.anomaly) - FIT_ROWS
                                                                                   for f in files)),
                     "nab_window_s": 60, "calib_far": args.calib_far, "latch_off_ratio": LATCH_OFF_RATIO,
                     "synthetic_far_budget": SYNTHETIC_FAR_BUDGET, "max_far": args.max_far},
        "default_detector": DEFAULT.label(),
        "default_config": DEFAULT.as_dict(),
        "selected_on": selection["selected_on"],
        "default_test": d["test"],
        "default_selection": selection,
        "detectors": rows,
        "trivial_all_anomaly": trivial_all_anomaly(files),
        "published_outlier": [dict(zip(("name", "f1", "far", "mar"), r, strict=True)) for r in PUBLISHED_OUTLIER],
        "published_changepoint": [dict(zip(("name", "nab_standard", "nab_lowfp", "nab_lowfn"), r, strict=True))
                                  for r in PUBLISHED_CP],
    })
    result["wall_s"] = round(time.perf_counter() - t_start, 2)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    publish(result, args.json, args.table, render)
    print(f"default {DEFAULT.label()}: test F1 {d['test']['f1']:.3f} FAR {d['test']['far']:.1f}%; "
          f"selected on valve1: {selection['selected']}; wrote {args.json or '-'} and {args.table or '-'}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``axline bench skab``."""
    parser.add_argument("--data", default="../shared/datasets/SKAB", help="SKAB folder (holding data/)")
    parser.add_argument("--json", default="benchmarks/skab.json", help="write the results as JSON here")
    parser.add_argument("--table", default="benchmarks/skab.md", help="write the Markdown table here")
    parser.add_argument("--detectors", nargs="*", default=None,
                        help=f"also run these library detectors ('all' for every one of {list(CONFIGS)}), each "
                             "tuned on the anomaly-free run; default: only the product default and its candidates")
    parser.add_argument("--calib-far", type=float, default=0.05,
                        help="target false-alarm rate on the anomaly-free run for the threshold factor")
    parser.add_argument("--floor", choices=["both", "on", "off"], default="both",
                        help="floor each signal's scale at its normal drift measured on the anomaly-free run "
                             "(rows without it are suffixed -nofloor)")
    parser.add_argument("--max-far", type=float, default=10.0,
                        help="FAR (%%) limit when choosing the default on the selection group")
