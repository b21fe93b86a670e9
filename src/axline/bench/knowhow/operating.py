"""Operating know-how learned from audited setpoint changes on the virtual furnace."""

from __future__ import annotations

import os
import random
import tempfile
from importlib.resources import files
from typing import Any

import numpy as np

# -- (e) operating know-how from audited setpoint changes ----------------------------------------------
EXPERT, TRAINEE = "expert1", "trainee1"
_DAY_TAKT = ((0, 26.0), (6, 18.0), (8, 12.0), (12, 20.0), (13, 12.5), (18, 16.0), (22, 24.0))


def _demand(rng: random.Random, hours: float) -> list[tuple[float, float]]:
    """(start s, takt s) blocks of 30-90 min around the hour-of-day demand of a two-shift plant (hour 0
    of the run is the start of the night shift)."""
    out, t = [], 0.0
    while t < hours * 3600:
        hod = (t / 3600) % 24
        base = [tk for h, tk in _DAY_TAKT if h <= hod][-1]
        out.append((t, min(30.0, max(10.5, base * rng.uniform(0.85, 1.15)))))
        t += rng.uniform(1800, 5400)
    return out


def _expert_targets(st: dict[str, float], cur_t: float, cur_o2: float) -> tuple[float, float]:
    """The veteran's rules: a hotter furnace when more parts come (and when hardness sags), more excess
    air when the burners fire harder (and when CO shows)."""
    rate = st.get("parts_treated", 0.0)
    t_target = 840.0 + 30.0 * min(1.0, max(0.0, (rate - 120.0) / 200.0))
    if st.get("hardness", 60.0) < 58.0:
        t_target = max(t_target, cur_t + 10.0)
    t_target = 5.0 * round(t_target / 5.0)
    o2_target = 3.0 + 0.1 * (st.get("fuel_flow", 48.0) - 48.0)
    if st.get("co", 0.0) > 300.0:
        o2_target = max(o2_target, cur_o2 + 0.5)
    return min(900.0, max(800.0, t_target)), round(min(5.0, max(1.8, o2_target)), 1)


def run_operating(seeds: list[int], hours: float, train_fraction: float = 2 / 3) -> dict[str, Any]:
    """A scripted expert runs the furnace for ``hours`` under varying demand; the advisor learns from the
    first ``train_fraction`` of the audited moves and is scored on the expert's later moves."""
    from axline.app.audit import AuditLog
    from axline.bench.vfactory import START_NS
    from axline.historian.embedded import EmbeddedHistorian
    from axline.knowhow import operating as op
    from axline.plant import parse_plant
    from axline.sim.line import VirtualLine

    plant = parse_plant(files("axline.data").joinpath("demo_plant.yaml").read_text(encoding="utf-8"), "demo_plant.yaml")
    context, setpoints = op.plant_context(plant.to_json())
    furnace = next(a for a in context if a.endswith("/furnace1"))
    context, setpoints = {furnace: context[furnace]}, {furnace: setpoints[furnace]}
    path = {p.rsplit("/", 1)[-1]: p for p in [*context[furnace], *setpoints[furnace]]}
    cfg = op.OperatingConfig(experts=frozenset({EXPERT}))
    per_seed, agree_all, hold_all, base_all, said_all = [], [], [], [], []
    for seed in seeds:
        rng = random.Random(1000 + seed)
        demand = _demand(rng, hours)
        with tempfile.TemporaryDirectory() as tmp:
            now = [START_NS]
            audit = AuditLog(os.path.join(tmp, "audit.jsonl"), clock=lambda n=now: _iso(n[0]))
            hist = EmbeddedHistorian(os.path.join(tmp, "hist"), fsync="none")
            line = VirtualLine(seed=seed, start_ns=START_NS, render_images=False)
            step_s, t, di = 5.0, 0.0, 0
            next_check, next_trainee = 1800.0, rng.uniform(3600, 7200)
            writes = {"expert": 0, "trainee": 0}

            def write(who: str, signal: str, value: float, old: float, audit=audit, line=line) -> None:
                audit.record(who, "tag.write", path[signal], role="operator", old=old, new=value, result="attempt",
                             source="bench")
                line.write(path[signal], value)
                audit.record(who, "tag.write", path[signal], role="operator", old=old, new=value, result="ok",
                             source="bench")

            while t < hours * 3600:
                while di < len(demand) and demand[di][0] <= t:
                    line.takt_s = demand[di][1]
                    di += 1
                batch = line.step(step_s)
                line.drain_parts()
                hist.append(batch)
                t += step_s
                now[0] = START_NS + int(t * 1e9)
                if t >= next_check:
                    next_check = t + rng.uniform(480, 1200)
                    st = {k.rsplit("/", 1)[-1]: v for k, v in op.window_state(
                        hist, context[furnace], now[0] - 600 * 10**9, now[0] + 1).items()}
                    sp = {k.rsplit("/", 1)[-1]: v for k, v in op.last_values(
                        hist, setpoints[furnace], now[0] + 1, 60).items()}
                    cur_t, cur_o2 = sp["temp_setpoint"], sp["o2_setpoint"]
                    t_new, o2_new = _expert_targets(st, cur_t, cur_o2)
                    if abs(t_new - cur_t) >= 5.0:
                        write(EXPERT, "temp_setpoint", t_new, cur_t)
                        writes["expert"] += 1
                    if abs(o2_new - cur_o2) >= 0.3:
                        write(EXPERT, "o2_setpoint", o2_new, cur_o2)
                        writes["expert"] += 1
                if t >= next_trainee:  # a trainee's occasional move (not learnt from: not named as experienced)
                    next_trainee = t + rng.uniform(3600, 7200)
                    sig = rng.choice(("temp_setpoint", "o2_setpoint"))
                    cur = op.last_values(hist, [path[sig]], now[0] + 1, 60)[path[sig]]
                    new = round(cur + rng.choice((-1, 1)) * (10.0 if sig == "temp_setpoint" else 0.4), 1)
                    write(TRAINEE, sig, min(900.0, max(800.0, new)) if sig == "temp_setpoint" else
                          min(5.0, max(1.8, new)), cur)
                    writes["trainee"] += 1
            split = START_NS + int(train_fraction * hours * 3600 * 1e9)
            entries = list(op.read_audit(os.path.join(tmp, "audit.jsonl")))
            advisors, info = op.learn(entries, hist, context, setpoints, cfg, until_ns=split)
            moves, _ = op.expert_moves(entries, cfg, set(setpoints[furnace]))
            held = [e for e in op.build_episodes(moves, hist, context, setpoints, cfg) if e.ts_ns >= split]
            adv = advisors.get(furnace)
            train_dirs: dict[str, list[float]] = {}
            for e in (adv.episodes if adv else []):
                for tag, (a, b) in e.moves.items():
                    train_dirs.setdefault(tag, []).append(float(np.sign(b - a)))
            majority = {tag: (1.0 if sum(v) >= 0 else -1.0) for tag, v in train_dirs.items()}
            rows = []
            for e in held:
                got = {a["tag"]: a for a in adv.advise(e.state)} if adv else {}
                for tag in setpoints[furnace]:
                    if tag not in got:
                        continue
                    want = "hold"
                    if tag in e.moves:
                        a, b = e.moves[tag]
                        want = "raise" if b > a else "lower"
                    rows.append({"ts_h": round((e.ts_ns - START_NS) / 3.6e12, 2), "signal": tag.rsplit("/", 1)[-1],
                                 "expert": want, "advice": got[tag]["advice"], "change": got[tag]["change"],
                                 "expert_change": round(e.moves[tag][1] - e.moves[tag][0], 2) if tag in e.moves else 0.0,
                                 "majority": ("raise" if majority.get(tag, 1.0) > 0 else "lower")})
            hist.close()
        moved = [r for r in rows if r["expert"] != "hold"]
        holds = [r for r in rows if r["expert"] == "hold"]
        agree_all += [r["advice"] == r["expert"] for r in moved]
        said_all += [r["advice"] != "hold" for r in moved]
        hold_all += [r["advice"] == "hold" for r in holds]
        base_all += [r["majority"] == r["expert"] for r in moved]
        per_seed.append({"seed": seed, "hours": hours, "expert_writes": writes["expert"],
                         "trainee_writes": writes["trainee"], "learnt": info,
                         "model": adv.summary() if adv else None, "held_out_episodes": len(held),
                         "held_out_moves": len(moved),
                         "direction_agreement": round(sum(r["advice"] == r["expert"] for r in moved) / len(moved), 3)
                         if moved else None, "details": rows})

    def share(v: list[bool]) -> float | None:
        return round(sum(v) / len(v), 3) if v else None

    advised = [ok for ok, said in zip(agree_all, said_all, strict=True) if said]
    return {"direction_agreement": share(agree_all), "held_out_moves": len(agree_all),
            "coverage": share(said_all), "agreement_when_advised": share(advised),
            "hold_agreement": share(hold_all), "held_out_holds": len(hold_all),
            "majority_baseline": share(base_all), "train_fraction": round(train_fraction, 3), "seeds": per_seed}


def _iso(ns: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
