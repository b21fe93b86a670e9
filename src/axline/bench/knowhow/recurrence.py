"""Recurrence on the virtual factory: faults that come back are recognised from the cases recorded earlier."""

from __future__ import annotations

import os
import random
import tempfile
from collections import deque
from importlib.resources import files
from typing import Any

import numpy as np

from axline.bench.knowhow.dev import load_dev


# -- (b) virtual factory recurrence ---------------------------------------------------------------
class _Window:
    """The last ``span_s`` of readings (bounded), queried like a historian."""

    def __init__(self, span_s: float) -> None:
        self.span = int(span_s * 1e9)
        self.batches: deque = deque(maxlen=2000)

    def add(self, batch) -> None:
        self.batches.append(batch)
        newest = int(batch.ts.max()) if len(batch) else 0
        while self.batches and len(self.batches[0]) and int(self.batches[0].ts.max()) < newest - self.span:
            self.batches.popleft()

    def query(self, tags: list[str], start: int, end: int) -> dict[str, Any]:
        from axline.historian.base import Series

        out: dict[str, list] = {t: [[], []] for t in tags}
        for b in self.batches:
            for j, p in enumerate(b.paths):
                if p not in out:
                    continue
                sel = (b.idx == j) & (b.ts >= start) & (b.ts <= end)
                if sel.any():
                    out[p][0].append(b.ts[sel])
                    out[p][1].append(b.value[sel])
        res = {}
        for p, (ts, vs) in out.items():
            if ts:
                t, v = np.concatenate(ts), np.concatenate(vs)
                o = np.argsort(t, kind="stable")
                res[p] = Series(t[o], v[o], np.zeros(len(t), dtype=np.uint8))
        return res


def _fault_schedule(seed: int, repeats: int, warmup_s: float):
    from axline.sim.line import FAULT_ASSETS, FAULT_KINDS, SENSOR_FAULT_DEFAULTS, FaultSpec

    rng = random.Random(seed)
    specs, t = [], warmup_s + 120.0
    sensor_choice = {"stuck_sensor": ("cnc1", "coolant_temp"), "sensor_dropout": ("press1", "hydraulic_pressure")}
    for _ in range(repeats):
        order = list(FAULT_KINDS)
        rng.shuffle(order)
        for kind in order:
            sensor = kind in sensor_choice
            dur = rng.uniform(180, 420) if sensor else rng.uniform(600, 1200)
            if sensor:
                asset, sig = sensor_choice[kind]
                assert sig == SENSOR_FAULT_DEFAULTS[kind].get(asset, sig)
                specs.append(FaultSpec(kind, asset, round(t, 1), round(dur, 1), round(rng.uniform(0.8, 1.2), 2), sig))
            else:
                specs.append(FaultSpec(kind, FAULT_ASSETS[kind], round(t, 1), round(dur, 1),
                                       round(rng.uniform(0.8, 1.2), 2)))
            t += dur + rng.uniform(600, 900)
    return specs, t


def run_recurrence(seeds: list[int], repeats: int, step_s: float, grace_s: float) -> dict[str, Any]:
    """How often a recurring fault finds the case recorded the first time, on the virtual factory."""
    from axline.bench.vfactory import START_NS
    from axline.historian.base import Event
    from axline.knowhow.base import KnowHow
    from axline.monitor.baseline import monitors_for_plant
    from axline.plant import parse_plant
    from axline.sim.line import VirtualLine

    warmup_s = 600.0
    plant_text = files("axline.data").joinpath("demo_plant.yaml").read_text(encoding="utf-8")
    per_seed, hits_all = [], []
    dev = load_dev()
    for seed in seeds:
        plant = parse_plant(plant_text, "demo_plant.yaml")
        specs, end_s = _fault_schedule(seed, repeats, warmup_s)
        line = VirtualLine(seed=seed, start_ns=START_NS, faults=specs, warmup_s=warmup_s, render_images=False)
        events: list[Event] = []
        window = _Window(900.0)
        snaps: dict[int, dict[str, Any]] = {}
        tmp = tempfile.TemporaryDirectory()
        kh = KnowHow(os.path.join(tmp.name, "kh"))
        kh.import_rows([{k: c[k] for k in ("id", "title", "symptom", "cause", "action", "asset", "language")}
                        for c in dev], "bench")

        def emit(ev: Event, _events=events, _kh=kh, _window=window, _snaps=snaps) -> int:
            ev.id = len(_events)
            _events.append(ev)
            if ev.kind == "alarm":
                _snaps[ev.id] = _kh.add_snapshot(ev.to_json(), _window)
            return ev.id

        def update(eid: int, _events=events, **fields: Any) -> None:
            if fields.get("end_ts") is not None:
                _events[eid].end_ts = fields["end_ts"]

        monitors = monitors_for_plant(plant, emit, update, trained=False, learn_s=warmup_s - 60)
        faults = line.faults
        grace = int(grace_s * 1e9)
        first_seen: dict[tuple, str] = {}
        occ: dict[tuple, int] = {}
        results = []
        handled: set[int] = set()
        nuisance = 0
        last_first_ns = None
        for _ in range(int(end_s / step_s) + 1):
            batch = line.step(step_s)
            window.add(batch)
            n_before = len(events)
            for mon in monitors.values():
                mon.update(batch)
            line.drain_parts()
            for ev in events[n_before:]:
                if ev.kind != "alarm" or ev.id in handled:
                    continue
                handled.add(ev.id)
                raised = ev.data.get("raised_ts", ev.ts)
                match = None
                for i, f in enumerate(faults):
                    if (ev.source == f.asset or set(f.tags) & set(ev.data.get("tags", []))) and \
                            f.start_ns <= raised <= f.end_ns + grace:
                        match = (i, f)
                        break
                snap = snaps[ev.id]
                if match is None:
                    if last_first_ns is None or raised <= last_first_ns:
                        c = kh.record({"symptom": f"nuisance alarm {ev.code} on {ev.source}", "asset": ev.source,
                                       "snapshot": snap}, "bench", audit=False)
                        kh.approve(c["id"], "reviewer")
                        nuisance += 1
                    continue
                i, f = match
                key = (f.kind, f.asset, f.tags)
                if i in occ:  # this occurrence already had its first alarm
                    continue
                occ[i] = ev.id
                if key not in first_seen:
                    c = kh.record({"symptom": f"{f.kind} on {f.asset}", "asset": ev.source, "snapshot": snap},
                                  "bench", audit=False, case_id=f"vf-{f.kind}")
                    kh.approve(c["id"], "reviewer")
                    first_seen[key] = c["id"]
                    last_first_ns = raised if last_first_ns is None else max(last_first_ns, raised)
                    continue
                got = kh.index.search("", snapshot=snap, asset=ev.source, top=3, states=("approved",))
                ids = [g["id"] for g in got]
                hit = first_seen[key] in ids
                results.append({"kind": f.kind, "hit": hit, "rank": ids.index(first_seen[key]) + 1 if hit else None,
                                "top3": ids, "code": ev.code})
        missed = [(f.kind, round((f.start_ns - START_NS) / 1e9)) for i, f in enumerate(faults) if i not in occ]
        kh.close()
        tmp.cleanup()
        per_seed.append({"seed": seed, "faults": len(faults), "occurrences_alarmed": len(occ),
                         "not_alarmed": missed, "cases_from_first": len(first_seen), "nuisance_cases": nuisance,
                         "recurrences": len(results), "hits": sum(r["hit"] for r in results), "details": results})
        hits_all.extend(results)
    n = len(hits_all)
    by_kind: dict[str, list[int]] = {}
    for r in hits_all:
        by_kind.setdefault(r["kind"], [0, 0])
        by_kind[r["kind"]][0] += 1
        by_kind[r["kind"]][1] += int(r["hit"])
    return {"recall@3": round(sum(r["hit"] for r in hits_all) / n, 3) if n else None, "recurrences": n,
            "by_kind": {k: {"recurrences": a, "in_top3": b} for k, (a, b) in sorted(by_kind.items())},
            "seeds": per_seed}
