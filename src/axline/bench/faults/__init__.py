"""`axline bench faults`: the data path under faults, against the real components.

Each scenario runs `axline serve`'s Service (or, for kill -9, a separate service process) with a
synthetic line feeding it through ``Service.ingest`` (the path every connector takes), injects one
fault, lets it recover, and then counts from the historian itself:

- ``readings_acknowledged``: readings the data path accepted (``ingest`` did not refuse them; for
  kill -9: readings whose historian write returned before the kill),
- ``readings_lost``: acknowledged readings that are not in the historian afterwards and were not
  reported (a quarantined damaged record is reported: its readings are counted separately),
- ``recovered``: the service stores new readings after the fault, its queues are empty,
- ``max_loop_stall_ms``: the largest delay of the asyncio loop's heartbeat during the scenario
  (``loop_meant_live``: whether the loop has to stay responsive in that scenario).

Scenarios: disk full (a size-limited tmpfs, needs root), poison batch, broker that stops
acknowledging (a private Mosquitto frozen with SIGSTOP), PostgreSQL hang (a table lock) and restart
(``pg_ctlcluster`` as root), kill -9 of the service in a loop, a corrupted byte in a closed segment,
a clock jump of +1 day on one tag, power-cut replay of every prefix of a write sequence, and a soak
(simulated plant hours at full speed) with its memory over time.

``axline bench faults --json benchmarks/faults.json --table benchmarks/faults.md`` (``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from axline.bench.common import bench_header, markdown_table, page, peak_rss_mb, publish
from axline.bench.faults.harness import _result
from axline.bench.faults.live import broker_stops_acking, disk_full, poison_batch, postgres_hang_and_restart
from axline.bench.faults.storage import (
    _kill9_child,
    clock_jump,
    corrupted_byte,
    kill9_loop,
    power_cut_replay,
    soak,
)

SCENARIOS = {f.__name__: f for f in (disk_full, poison_batch, broker_stops_acking, postgres_hang_and_restart,
                                      kill9_loop, corrupted_byte, clock_jump, power_cut_replay, soak)}
#: the largest stall of the asyncio loop allowed where the loop is meant to stay live
STALL_GOAL_MS = 200.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Command-line options of ``axline bench faults``."""
    p.add_argument("--json", default="benchmarks/faults.json", help="write the results as JSON here")
    p.add_argument("--table", default="benchmarks/faults.md", help="write the Markdown page here")
    p.add_argument("--only", nargs="*", choices=list(SCENARIOS), default=None, help="run only these scenarios")
    p.add_argument("--kills", type=int, default=20, help="kill -9 rounds (default 20)")
    p.add_argument("--freeze-s", type=float, default=8.0, help="how long the broker / database hang (default 8)")
    p.add_argument("--soak-hours", type=float, default=24.0, help="simulated plant hours of the soak (default 24)")
    p.add_argument("--power-cut-batches", type=int, default=40, help="batches in the power-cut write sequence")
    p.add_argument("--dsn", default=os.environ.get("AXLINE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    p.add_argument("--no-pg-restart", dest="pg_restart", action="store_false",
                   help="only hang PostgreSQL, do not restart it (the server may be shared)")
    p.add_argument("--child-kill9", default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the scenarios, write the JSON and the page rendered from it."""
    if args.child_kill9:
        asyncio.run(_kill9_child(Path(args.child_kill9)))
        return 0
    import logging

    # the faults are deliberate: their warnings would drown the results (they are counted in them)
    logging.getLogger("axline").setLevel(logging.CRITICAL)
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    result: dict[str, Any] = bench_header("faults")
    t0 = time.monotonic()
    results = []
    for name in args.only or SCENARIOS:
        with tempfile.TemporaryDirectory(prefix=f"axline-faults-{name}-") as tmp:
            s0 = time.monotonic()
            try:
                r = asyncio.run(SCENARIOS[name](Path(tmp), args))
            except Exception as e:  # noqa: BLE001 - a scenario that breaks is a result, reported as such
                r = _result(name, 0, 0, False, None, True, error=f"{type(e).__name__}: {e}")
            r["scenario_wall_s"] = round(time.monotonic() - s0, 1)
        print(json.dumps(r), flush=True)
        results.append(r)
    live = [r["max_loop_stall_ms"] or 0 for r in results if r["loop_meant_live"]]
    result.update({
        "wall_s": round(time.monotonic() - t0, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "stall_goal_ms": STALL_GOAL_MS, "scenarios": results,
        "all_recovered": all(r["recovered"] for r in results),
        "total_lost": sum(r["readings_lost"] for r in results),
        "max_stall_where_live_ms": max(live, default=None),
        "stall_goal_met": all(s <= STALL_GOAL_MS for s in live),
    })
    publish(result, args.json, args.table, render)
    return 0 if result["all_recovered"] and result["total_lost"] == 0 else 1


_MAIN = ("scenario", "readings_acknowledged", "readings_lost", "recovered", "max_loop_stall_ms", "loop_meant_live")


def render(r: dict[str, Any]) -> str:
    """The page of a run, from its JSON alone."""
    results = r["scenarios"]
    rows = [[s["scenario"], s["readings_acknowledged"], s["readings_lost"], "yes" if s["recovered"] else "NO",
             s["max_loop_stall_ms"], "yes" if s["loop_meant_live"] else "no",
             s.get("dashboard_max_ms"), s.get("skipped") or s.get("error") or ""] for s in results]
    table = markdown_table(["scenario", "readings acknowledged", "readings lost", "recovered", "max loop stall ms",
                            "loop meant live", "slowest /api/health ms", "skipped / error"], rows)
    details = "\n".join(f"- **{s['scenario']}**: " + ", ".join(
        f"{k} {json.dumps(v) if isinstance(v, list | dict) else v}" for k, v in s.items() if k not in _MAIN)
        for s in results)
    goal = r["stall_goal_ms"]
    summary = (f"Readings lost over all scenarios: {r['total_lost']}; every scenario recovered: "
               f"{'yes' if r['all_recovered'] else 'NO'}; largest loop stall where the loop must stay live: "
               f"{r['max_stall_where_live_ms']} ms (goal <= {goal:g} ms: "
               f"{'met' if r['stall_goal_met'] else 'NOT met'}).")
    how = (__doc__ or "").split("\n\n", 1)[1].split("``axline bench faults --json")[0]
    return page("Fault injection: the data path under faults",
                [("Summary", summary), ("Scenarios", table), ("Details", details), ("How it is measured", how)], r)
