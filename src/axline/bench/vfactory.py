"""`axline bench vfactory`: the live monitors on the virtual factory, scored against its ground truth.

The simulated line runs offline (no OPC UA, as fast as the CPU allows) for ``--hours`` simulated
hours per seed with every fault kind injected after a fault-free warm-up; the batches go through
the same monitors `axline serve` runs. An alarm counts as a detection when it opens on the fault's
asset (or names one of its tags) between the fault's start and its end plus a grace period; any
other alarm is a false alarm. Reported: detection rate per fault kind, mean detection delay, false
alarms per simulated day.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from importlib.resources import files
from typing import Any

from axline.bench.common import (
    command_line,
    machine_info,
    markdown_table,
    peak_rss_mb,
    utc_now,
    write_json,
    write_markdown,
)
from axline.historian.base import Event
from axline.monitor.baseline import monitors_for_plant
from axline.plant import parse_plant
from axline.sim.line import VirtualLine

START_NS = 1_767_222_000 * 1_000_000_000  # 2026-01-01 08:00 KST, a shift start

TUNING = """The baseline monitor's design and defaults were set on seeds 101, 102 and 103 (24 h each), never on
the seeds reported above: `python -m axline.bench.vfactory --seeds 101,102,103 --hours 24 --table
/tmp/t.md`. Step by step on those seeds (false alarms per simulated day, detection):

| change | false alarms / day | detected |
|---|---|---|
| before (learn 9 min, then a fixed median/scale) | 26.3 | 20/21 |
| + slow clipped learning of level and scale, per-part EWMA chart for hold-per-part signals, judging only after a settle time after a pause | 14.3 | 21/21 |
| + a furnace starved of parts (idle) counts as a pause; settle time twice the pause, capped by 10 correlation times | 9.0 | 21/21 |
| + gaps between parts (< settle_s) no longer reset the settle clock | 5.0 | 21/21 |
| + cap at 20 correlation times (at most 15 min): a changeover's cool-down is over before judging | 1.0 | 21/21 |

A second check on seeds 201, 202 and 203 (also never the reported seeds) showed that this was
partly luck of the tuning seeds: 9.0 false alarms per day there (seed 201 alone: 15 furnace
air_flow alarms). Widening each learnt scale by the learning window's effective sample size
(variance x 1/(1 - 2 tau/T), tau the correlation time, T the learnt span, at most x 2) took seeds
201-203 to 5.7 per day at 21/21 detected and the same delays; that is the final monitor.

The learning period's correlation time of a slow temperature (about 50-90 s) is much shorter than
its physical time constant (400 s for the CNC spindle), because a few minutes of learning see only
part of it; hence the factor 20. z_on stays 6 and min_on_s 5 s, as before. (An intermediate try that
counted every idle gap between parts as a pause reached 2.0 false alarms per day but judged the
continuous signals almost never and missed 3 of 21 faults; it is not in the table.) On the reported
seeds 1-3 the remaining false alarms are furnace air_flow excursions (the flue-O2 wander drives the
air flow; its 5-minute memory is longer than the learning sees) and about one spindle_temp alarm per
simulated day."""


def run_seed(seed: int, hours: float, warmup_s: float, step_s: float, grace_s: float,
             params: dict[str, Any]) -> dict[str, Any]:
    text = files("axline.data").joinpath("demo_plant.yaml").read_text(encoding="utf-8")
    plant = parse_plant(text, "demo_plant.yaml")
    events: list[Event] = []

    def emit(ev: Event) -> int:
        ev.id = len(events)
        events.append(ev)
        return ev.id

    def update(eid: int, **fields: Any) -> None:
        if fields.get("end_ts") is not None:
            events[eid].end_ts = fields["end_ts"]

    monitors = monitors_for_plant(plant, emit, update, trained=False, **params)
    line = VirtualLine(seed=seed, start_ns=START_NS, faults="auto", warmup_s=warmup_s, render_images=False)
    t0 = time.perf_counter()
    steps = int(hours * 3600 / step_s)
    readings = 0
    for _ in range(steps):
        batch = line.step(step_s)
        readings += len(batch)
        for mon in monitors.values():
            mon.update(batch)
        line.drain_parts()
    wall = time.perf_counter() - t0
    end_ns = line.now_ns
    grace = int(grace_s * 1e9)
    faults = [f for f in line.faults if f.start_ns < end_ns]
    alarms = [e for e in events if e.kind == "alarm"]
    matched: set[int] = set()
    per_fault = []
    for f in faults:
        tags = set(f.tags)
        hits = [e for e in alarms if (e.source == f.asset or tags & set(e.data.get("tags", [])))
                and f.start_ns <= e.data.get("raised_ts", e.ts) <= f.end_ns + grace]
        matched.update(e.id for e in hits)
        first = min(hits, key=lambda e: e.data.get("raised_ts", e.ts)) if hits else None
        per_fault.append({"kind": f.kind, "asset": f.asset.rsplit("/", 1)[-1], "detected": first is not None,
                          "delay_s": round((first.data.get("raised_ts", first.ts) - f.start_ns) / 1e9, 1) if first else None,
                          "by": first.code if first else None,
                          "signals": list(first.data.get("contributions", {}))[:3] if first else []})
    false_alarms = [e for e in alarms if e.id not in matched]
    sim_days = (end_ns - START_NS) / 1e9 / 86400
    return {"seed": seed, "simulated_h": round(sim_days * 24, 2), "wall_s": round(wall, 1), "readings": readings,
            "faults": per_fault, "alarms": len(alarms), "false_alarms": len(false_alarms),
            "false_alarms_per_day": round(len(false_alarms) / sim_days, 2),
            "false_alarms_by_signal": dict(Counter(
                f"{e.source.rsplit('/', 1)[-1]}/{e.data.get('top') or e.data.get('signal')}" for e in false_alarms
            ).most_common()),
            "false_alarm_examples": [f"{e.source.rsplit('/', 1)[-1]} {e.code} {e.message}" for e in false_alarms[:5]]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", default="1,2,3", help="comma-separated simulator seeds (default 1,2,3)")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours per seed (default 24)")
    p.add_argument("--warmup-s", type=float, default=600.0, help="fault-free simulated seconds to learn from")
    p.add_argument("--step-s", type=float, default=2.0, help="simulated seconds per batch (default 2)")
    p.add_argument("--grace-s", type=float, default=300.0, help="an alarm this long after a fault's end still counts")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--table", default="benchmarks/vfactory.md", help="Markdown table (default benchmarks/vfactory.md)")


def run(args) -> int:
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    t0 = time.perf_counter()
    params = {"learn_s": max(60.0, args.warmup_s - 60)}
    results = [run_seed(s, args.hours, args.warmup_s, args.step_s, args.grace_s, params) for s in seeds]
    kinds = sorted({f["kind"] for r in results for f in r["faults"]})
    per_kind = {}
    for k in kinds:
        fs = [f for r in results for f in r["faults"] if f["kind"] == k]
        delays = [f["delay_s"] for f in fs if f["detected"]]
        per_kind[k] = {"injected": len(fs), "detected": sum(f["detected"] for f in fs),
                       "mean_delay_s": round(sum(delays) / len(delays), 1) if delays else None}
    all_f = [f for r in results for f in r["faults"]]
    delays = [f["delay_s"] for f in all_f if f["detected"]]
    days = sum(r["simulated_h"] for r in results) / 24
    out = {
        "detector": "baseline (robust z with slow clipped learning, per-part EWMA, settling after pauses "
                    "+ sensor health)",
        "detection_rate": round(sum(f["detected"] for f in all_f) / len(all_f), 3) if all_f else None,
        "mean_delay_s": round(sum(delays) / len(delays), 1) if delays else None,
        "false_alarms_per_day": round(sum(r["false_alarms"] for r in results) / days, 2) if days else None,
        "per_kind": per_kind, "runs": results, "date": utc_now(), "machine": machine_info(),
        "command": command_line(), "wall_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(),
    }
    write_json(args.json, out)
    rows = [[k, v["injected"], v["detected"], v["mean_delay_s"]] for k, v in per_kind.items()]
    text = markdown_table(["fault", "injected", "detected", "mean delay (s)"], rows)
    summary = (f"Detection rate **{out['detection_rate']:.0%}**, mean delay {out['mean_delay_s']} s, "
               f"**{out['false_alarms_per_day']} false alarms per simulated day** over {len(seeds)} seeds x "
               f"{args.hours:g} h (learning {params['learn_s']:.0f} s of fault-free running first).")
    fa = "\n".join(f"- seed {r['seed']}: {r['false_alarms']} false alarms; e.g. " +
                   ("; ".join(r["false_alarm_examples"][:3]) or "none") for r in results)
    write_markdown(args.table, "Live monitors on the virtual factory", [
        ("Result", summary), ("Per fault kind", text), ("False alarms", fa),
        ("Protocol", __doc__.split("\n\n", 1)[1].strip()), ("How the monitor was tuned", TUNING)], out)
    print(summary)
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    raise SystemExit(run(ap.parse_args()))
