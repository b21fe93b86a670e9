"""How low the Tennessee Eastman protocol lets the cost go: a fine scan of its cheapest corner, per seed.

The ``tep`` benchmark scores an optimiser by the best feasible cost it finds in 30 evaluations. This
benchmark asks what any optimiser could find at all under the same protocol (``axline.bench.tep``:
the same evaluation, the same feasibility, the same seeds), without a budget. The cost falls as the
reactor pressure rises and as the reactor level falls, so the scan holds the pressure at its upper
bound (2850 kPa), the reactor level at its lower bound (50 %) and a little above it, the stripper
level at its lower bound (30 %, the most room below the stripper's high-level trip that ends the
hottest runs), and walks the reactor temperature across its whole range (0.5 degC steps, 0.25 degC
over 121-124 degC). Two checks per seed
move one bound back from the cheapest feasible point found (pressure to 2800 kPa, stripper level to
40 %) so the page shows, measured, whether leaving a bound pays. The lowest feasible cost per seed is
what the scan found, an upper bound on the protocol's true optimum; its median over the seeds is set
against the ``tep`` goal.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import statistics
import time
from typing import Any

from axline.bench.common import bench_header, markdown_table, page, peak_rss_mb, publish
from axline.bench.tep import DECISIONS, GOAL_COST, evaluate, feasible

PRESSURE = 2850.0
STRIPPER = 30.0
LEVELS = (50.0, 53.0)
#: the whole range in steps of 0.5 degC, and of 0.25 degC over 121-124 degC where the cost is lowest
TEMPERATURES = tuple(sorted({118.0 + 0.5 * i for i in range(15)} | {121.0 + 0.25 * i for i in range(13)}))
CHECKS = (("reactor_pressure", 2800.0), ("stripper_level", 40.0))


def _point(level: float, temperature: float) -> dict[str, float]:
    return {"reactor_pressure": PRESSURE, "reactor_level": level, "reactor_temperature": temperature,
            "stripper_level": STRIPPER}


def _eval(args: tuple) -> dict[str, Any]:
    seed, x, base = args
    ev = evaluate(x, seed)
    return {"seed": seed, "x": x, "feasible": feasible(ev, base),
            "cost": None if math.isnan(ev["cost"]) else round(ev["cost"], 3),
            "shutdown": ev["shutdown"], "trip": ev["shutdown_message"].split("!!")[0].strip(),
            "production": None if math.isnan(ev["production"]) else round(ev["production"], 4),
            "pct_g": None if math.isnan(ev["pct_g"]) else round(ev["pct_g"], 3)}


def _baseline(seed: int) -> dict[str, Any]:
    b = evaluate(None, seed)
    return {"seed": seed, "cost": round(b["cost"], 3), "production": b["production"], "pct_g": b["pct_g"]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's options."""
    p.add_argument("--seeds", default="1,2,3,4,5", help="measurement-noise seeds (default 1,2,3,4,5, as tep)")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--json", default="benchmarks/tep_frontier.json", help="results (default benchmarks/tep_frontier.json)")
    p.add_argument("--table", default="benchmarks/tep_frontier.md", help="Markdown page (default benchmarks/tep_frontier.md)")


def run(args) -> int:
    """Scan every seed (in parallel processes); write the JSON and its page."""
    try:
        import tep_studio  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"error: {e.name} is not installed; pip install 'axline[bench]' (tep-studio)") from None
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    if not seeds or args.workers < 1:
        raise SystemExit("error: give at least one seed and --workers >= 1")
    result = bench_header("tep_frontier")
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        bases = {b["seed"]: b for b in pool.map(_baseline, seeds, chunksize=1)}
        jobs = [(s, _point(lv, t), bases[s]) for s in seeds for lv in LEVELS for t in TEMPERATURES]
        scan = pool.map(_eval, jobs, chunksize=1)
        best: dict[int, dict[str, Any] | None] = {}
        for s in seeds:
            ok = [r for r in scan if r["seed"] == s and r["feasible"]]
            best[s] = min(ok, key=lambda r: r["cost"]) if ok else None
        checks = pool.map(_eval, [(s, {**best[s]["x"], name: value}, bases[s]) for s in seeds if best[s] is not None
                                  for name, value in CHECKS], chunksize=1)
    lows = [b["cost"] for b in best.values() if b is not None]
    result.update({
        "seeds": seeds, "evaluations": len(scan) + len(checks) + len(seeds),
        "median_lowest_feasible_cost": round(statistics.median(lows), 3) if len(lows) == len(seeds) else None,
        "lowest_feasible": {str(s): (None if b is None else {"cost": b["cost"], "x": b["x"]}) for s, b in best.items()},
        "baseline_costs": {str(s): b["cost"] for s, b in bases.items()},
        "goal_cost": GOAL_COST, "scan": scan, "checks": checks,
        "grid": {"reactor_pressure": PRESSURE, "stripper_level": STRIPPER, "reactor_level": list(LEVELS),
                 "reactor_temperature": list(TEMPERATURES)},
        "bounds": {n: [lo, hi] for n, lo, hi, _ in DECISIONS},
        "wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": peak_rss_mb()})
    md = publish(result, args.json, args.table, render)
    print(md.split("## Result", 1)[-1].split("##", 1)[0].strip())
    return 0


def _cell(rec: dict[str, Any] | None) -> str:
    if rec is None:
        return ""
    if rec["shutdown"]:
        return f"trip ({rec['trip'].lower()})" if rec["trip"] else "trip"
    return f"{rec['cost']}" + ("" if rec["feasible"] else " (infeasible)")


def render(r: dict[str, Any]) -> str:
    """The Markdown page of a scan (from its JSON alone)."""
    seeds = [str(s) for s in r["seeds"]]
    med = r["median_lowest_feasible_cost"]
    found_under = [s for s in seeds if (b := r["lowest_feasible"].get(s)) and b["cost"] <= r["goal_cost"]]
    verdict = (f"Median over {len(seeds)} seeds of the lowest feasible cost the scan found: **{med} $/h** "
               f"(the `tep` goal asks for <= {r['goal_cost']:g} $/h). Seeds with a feasible point at or under "
               f"{r['goal_cost']:g} $/h in this scan: {len(found_under)} of {len(seeds)}.")
    paid = [c for c in r["checks"] if c["feasible"] and (b := r["lowest_feasible"].get(str(c["seed"])))
            and c["cost"] < b["cost"]]
    verdict += (f" Moving a bound back from a seed's cheapest point lowered the cost in {len(paid)} of "
                f"{len(r['checks'])} checks.")
    per_seed = []
    for s in seeds:
        b = r["lowest_feasible"].get(s)
        chk = {next(k for k, v in c["x"].items() if b and v != b["x"][k]): c for c in r["checks"]
               if str(c["seed"]) == s and b}
        per_seed.append([s, r["baseline_costs"][s], "" if b is None else b["cost"],
                         "" if b is None else f"{b['x']['reactor_level']:g} % / {b['x']['reactor_temperature']:g} degC",
                         sum(1 for x in r["scan"] if str(x["seed"]) == s and x["shutdown"]),
                         _cell(chk.get("reactor_pressure")), _cell(chk.get("stripper_level"))])
    seed_table = markdown_table(["seed", "baseline ($/h)", "lowest feasible ($/h)", "at reactor level / temperature",
                                 "scan runs that tripped", "same point at 2800 kPa", "same point, stripper 40 %"],
                                per_seed)
    grid = r["grid"]
    rows = []
    for t in grid["reactor_temperature"]:
        row = [f"{t:g}"]
        for lv in grid["reactor_level"]:
            recs = [x for x in r["scan"] if x["x"]["reactor_level"] == lv and x["x"]["reactor_temperature"] == t]
            costs = [x["cost"] for x in recs if x["feasible"]]
            trips = sum(1 for x in recs if x["shutdown"])
            cell = f"{statistics.median(costs):.3f}" if costs else "-"
            row.append(cell + (f" ({trips} of {len(recs)} tripped)" if trips else ""))
        rows.append(row)
    scan_table = markdown_table(["reactor temperature (degC)", *[f"reactor level {lv:g} %: median feasible cost ($/h)"
                                                                  for lv in grid["reactor_level"]]], rows)
    bounds = ", ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in r["bounds"].items())
    return page("How low the Tennessee Eastman protocol lets the cost go", [
        ("Result", verdict), ("Per seed", seed_table),
        (f"The scan at {grid['reactor_pressure']:g} kPa, stripper level {grid['stripper_level']:g} %", scan_table),
        ("Protocol", __doc__.split("\n\n", 1)[1].strip() + f"\n\nBounds: {bounds}. {r['evaluations']} evaluations "
         "in all (the baselines included).")], r)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    raise SystemExit(run(ap.parse_args()))
