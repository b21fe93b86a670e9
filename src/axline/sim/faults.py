"""The virtual factory's faults: their kinds, where they strike, the ramp of their effect, the
recurring schedule, and the strict scoring of alarms against them.

Schedule: after a fault-free warm-up, faults follow one another with quiet gaps between them for
the whole simulated horizon; the kinds come in shuffled rounds, so every kind recurs through the
day, each time at a random severity (some faint, some strong).

Scoring (``score_alarms``): an alarm detects a fault only when it is raised between the fault's
start and its end plus a grace period **and** names a signal the fault moves (one of the fault's
tags: the signals the physics of that fault changes, or the faulty sensor). Every other alarm is
a false alarm. Reported: precision (alarms that detected something / all alarms), recall (faults
detected / faults injected), mean delay, false alarms per simulated hour, and per fault kind.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

FAULT_KINDS: tuple[str, ...] = (
    "bearing_wear",
    "coolant_loss",
    "clogged_filter",
    "stuck_sensor",
    "sensor_dropout",
    "tool_wear",
    "burner_fouling",
)
# physical faults live on one asset; sensor faults may hit any analog tag of any asset
FAULT_ASSETS: dict[str, str] = {
    "bearing_wear": "cnc1",
    "coolant_loss": "cnc1",
    "clogged_filter": "cnc1",
    "tool_wear": "cnc1",
    "burner_fouling": "furnace1",
}
FAULT_TAGS: dict[str, tuple[str, ...]] = {
    "bearing_wear": ("vibration_rms", "spindle_temp"),
    "coolant_loss": ("coolant_flow", "coolant_pressure", "spindle_temp", "coolant_temp"),
    "clogged_filter": ("filter_dp", "coolant_flow", "coolant_pressure"),
    "tool_wear": ("part_dimension", "tool_wear", "spindle_current"),
    "burner_fouling": ("fuel_flow", "o2", "exhaust_temp", "air_flow"),
}
# default signal of a sensor fault per asset, when FaultSpec.signal is not given
SENSOR_FAULT_DEFAULTS: dict[str, dict[str, str]] = {
    "stuck_sensor": {"furnace1": "zone1_temp", "cnc1": "coolant_temp", "press1": "oil_temp",
                     "camera1": "power", "packer1": "power", "totals": "power"},
    "sensor_dropout": {"press1": "hydraulic_pressure", "cnc1": "spindle_current", "furnace1": "o2",
                       "camera1": "power", "packer1": "power", "totals": "power"},
}


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault to inject: ``asset`` is an asset name (``cnc1``) or full asset path; times in seconds
    after the simulation start; ``signal`` picks the tag of a sensor fault (default per asset)."""

    kind: str
    asset: str
    start_s: float
    duration_s: float
    severity: float = 1.0
    signal: str | None = None


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """Ground truth of one injected fault: its effect is present for ``start_ns <= t < end_ns``."""

    kind: str
    asset: str  # asset path
    tags: tuple[str, ...]  # affected tag paths
    start_ns: int
    end_ns: int
    severity: float


def fault_ramp(kind: str, elapsed_s: float, duration_s: float) -> float:
    """Fraction (0..1) of a fault's full effect ``elapsed_s`` after its start."""
    u = min(1.0, max(0.0, elapsed_s / duration_s))
    if kind == "bearing_wear":
        return u**1.5
    if kind == "coolant_loss":
        return min(1.0, elapsed_s / 60.0)
    if kind == "clogged_filter":
        return u**1.3
    if kind == "burner_fouling":
        return min(1.0, u / 0.3)
    if kind == "tool_wear":
        return u
    return 1.0


@dataclass(slots=True)
class ActiveFault:
    """A scheduled fault as the line applies it (sensor faults: the tag and its frozen value)."""

    record: FaultRecord
    asset_name: str
    tag_index: int = -1  # sensor faults: index of the tag
    frozen: float = math.nan
    period_ticks: int = 1


#: severity range of scheduled faults (1.0 is the design severity)
FAULT_SEVERITY = (0.5, 1.5)
#: quiet gap between two scheduled faults, seconds
FAULT_GAP_S = (600.0, 1800.0)
_S_SCHEDULE = 1_000  # stream key of the fault schedule's generator


def recurring_schedule(seed: int, horizon_s: float, warmup_s: float = 600.0) -> list[FaultSpec]:
    """Faults from ``warmup_s`` to ``horizon_s`` seconds after the start: shuffled rounds of every
    kind, random severities in ``FAULT_SEVERITY``, durations as the kind needs (sensor faults 3-7 min,
    physical faults 10-20 min), quiet gaps in ``FAULT_GAP_S``."""
    if horizon_s <= warmup_s:
        return []
    rng = np.random.default_rng([int(seed), _S_SCHEDULE])
    t = warmup_s + float(rng.uniform(60.0, 180.0))
    specs: list[FaultSpec] = []
    while True:
        for kind in rng.permutation(list(FAULT_KINDS)):
            kind = str(kind)
            sensor = kind in ("stuck_sensor", "sensor_dropout")
            dur = float(rng.uniform(180.0, 420.0) if sensor else rng.uniform(600.0, 1200.0))
            if t + dur > horizon_s:
                return specs
            sev = round(float(rng.uniform(*FAULT_SEVERITY)), 2)
            if sensor:
                options = list(SENSOR_FAULT_DEFAULTS[kind].items())[:3]
                asset, signal = options[int(rng.integers(len(options)))]
                specs.append(FaultSpec(kind, asset, round(t, 1), round(dur, 1), sev, signal))
            else:
                specs.append(FaultSpec(kind, FAULT_ASSETS[kind], round(t, 1), round(dur, 1), sev))
            t += dur + float(rng.uniform(*FAULT_GAP_S))




SEVERITY = FAULT_SEVERITY


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, Mapping) else getattr(obj, key, default)


def alarm_signals(event: Any) -> set[str]:
    """The tag paths an alarm names: its ``tags``, and its source asset joined with its ``signal``,
    ``top`` signal and the keys of its ``contributions``."""
    data = _get(event, "data") or {}
    source = _get(event, "source") or ""
    out = {str(t) for t in data.get("tags") or []}
    names = [data.get("signal"), data.get("top"), *(data.get("contributions") or {})]
    out |= {f"{source}/{n}" for n in names if isinstance(n, str) and n}
    return out


def _raised(event: Any) -> int:
    data = _get(event, "data") or {}
    return int(data.get("raised_ts", _get(event, "ts")))


def score_alarms(faults: Iterable[Any], alarms: Iterable[Any], start_ns: int, end_ns: int,
                 grace_s: float = 300.0) -> dict[str, Any]:
    """Strict scoring of ``alarms`` (events of kind alarm) against ``faults`` (``FaultRecord`` or
    the same fields as a dict) over the simulated span ``start_ns`` .. ``end_ns``."""
    grace = int(grace_s * 1e9)
    faults = [f for f in faults if _get(f, "start_ns") < end_ns]
    alarms = [a for a in alarms if _get(a, "kind", "alarm") == "alarm"]
    named = [alarm_signals(a) for a in alarms]
    useful = [False] * len(alarms)
    per_fault = []
    for f in faults:
        f0, f1, tags = _get(f, "start_ns"), _get(f, "end_ns"), set(_get(f, "tags") or ())
        hits = [i for i, a in enumerate(alarms) if f0 <= _raised(a) <= f1 + grace and tags & named[i]]
        for i in hits:
            useful[i] = True
        first = min(hits, key=lambda i: _raised(alarms[i])) if hits else None
        a = alarms[first] if first is not None else None
        per_fault.append({
            "kind": _get(f, "kind"), "asset": str(_get(f, "asset")).rsplit("/", 1)[-1],
            "severity": _get(f, "severity"), "start_s": round((f0 - start_ns) / 1e9, 1),
            "duration_s": round((f1 - f0) / 1e9, 1), "detected": a is not None,
            "delay_s": round((_raised(a) - f0) / 1e9, 1) if a is not None else None,
            "by": _get(a, "code") if a is not None else None,
            "signals": sorted(s.rsplit("/", 1)[-1] for s in tags & named[first]) if first is not None else [],
        })
    false = [a for a, u in zip(alarms, useful, strict=True) if not u]
    hours = max((end_ns - start_ns) / 3.6e12, 1e-9)
    delays = [p["delay_s"] for p in per_fault if p["detected"]]
    kinds = sorted({p["kind"] for p in per_fault})
    per_kind = {}
    for k in kinds:
        fs = [p for p in per_fault if p["kind"] == k]
        d = [p["delay_s"] for p in fs if p["detected"]]
        per_kind[k] = {"injected": len(fs), "detected": sum(p["detected"] for p in fs),
                       "recall": round(sum(p["detected"] for p in fs) / len(fs), 3),
                       "mean_delay_s": round(sum(d) / len(d), 1) if d else None}

    def label(a: Any) -> str:
        data = _get(a, "data") or {}
        return f"{str(_get(a, 'source')).rsplit('/', 1)[-1]}/{data.get('top') or data.get('signal') or '?'}"

    return {
        "alarms": len(alarms),
        "true_alarms": sum(useful),
        "false_alarms": len(false),
        "precision": round(sum(useful) / len(alarms), 3) if alarms else None,
        "recall": round(sum(p["detected"] for p in per_fault) / len(per_fault), 3) if per_fault else None,
        "faults_injected": len(per_fault),
        "faults_detected": sum(p["detected"] for p in per_fault),
        "mean_delay_s": round(sum(delays) / len(delays), 1) if delays else None,
        "simulated_h": round(hours, 3),
        "false_alarms_per_hour": round(len(false) / hours, 3),
        "false_alarms_by_signal": dict(Counter(label(a) for a in false).most_common()),
        "per_kind": per_kind,
        "faults": per_fault,
        "grace_s": grace_s,
    }
