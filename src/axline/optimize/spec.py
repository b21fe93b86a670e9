"""What the engineer declares for a unit: decision setpoints, the objective, the constraints.

A unit's specification is plain data, validated at the door against the plant file:

* **decisions**: writable tags with hard bounds (inside the tag's range) and a maximum step per
  change. The advisor never proposes outside the bounds, nor further from today's operating point
  than the trust region (``trust_fraction`` of the bounds' width, and never more than the step).
* **objective**: one metric to minimise (e.g. gas per good part).
* **constraints**: metrics that must stay within a limit (``max`` / ``min``: an absolute limit,
  e.g. CO <= 200 ppm, hardness >= 58 HRC) or be held (``hold``: not more than ``tolerance``
  (relative) below their value before the change, e.g. throughput).

A metric is computed over a time window from the historian, counting only the time the line
produces when the unit names its line's ``state_tag`` (a jam is not the setpoints' doing): ``mean``, ``p95``, ``min`` or ``max``
of a tag; ``rate`` of a counter (increase per hour); ``ratio`` of two counters' increases (e.g.
gas per good part).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from axline import i18n
from axline.plant import Plant

METRIC_KINDS = ("mean", "p95", "min", "max", "rate", "ratio")
CONSTRAINT_KINDS = ("max", "min", "hold")


class SpecError(ValueError):
    """A unit specification that cannot be used; the message names the key and what to do."""


@dataclass(frozen=True)
class Decision:
    """A setpoint the optimiser may move: tag, range and largest step."""
    tag: str
    lo: float
    hi: float
    max_step: float

    @property
    def signal(self) -> str:
        """The signal name (the tag path's last part)."""
        return self.tag.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Metric:
    """A figure of the unit computed from its tags: mean, rate, ratio or the like."""
    name: str
    kind: str  # METRIC_KINDS
    tag: str
    per: str | None = None  # ratio: the denominator counter
    unit: str = ""


@dataclass(frozen=True)
class Constraint:
    """A limit on a metric: at most, at least, or held near its baseline."""
    metric: str
    kind: str  # CONSTRAINT_KINDS
    limit: float = math.nan  # max / min
    tolerance: float = 0.01  # hold: relative


@dataclass(frozen=True)
class UnitSpec:
    """The optimisation problem of one unit (an asset of the plant file)."""

    unit: str  # asset path
    decisions: tuple[Decision, ...]
    metrics: tuple[Metric, ...]
    objective: str  # metric name, minimised
    constraints: tuple[Constraint, ...]
    settle_s: float = 1800.0  # after a change, wait this long before judging it
    verify_s: float = 3600.0  # then judge it over this window (the baseline is as long, before the change)
    trust_fraction: float = 0.15  # trust region half-width, as a fraction of each decision's bounds
    min_improvement: float = 0.005  # keep a change only if the objective improved by this (relative)
    unsure_ratio: float = 0.5  # unsure when the objective's uncertainty exceeds this x expected gain
    small_step: float = 0.5  # an unsure proposal is applied as this fraction of its move
    twin: str | None = None  # "virtual_furnace": the unit has a twin (the virtual factory run ahead)
    state_tag: str | None = None  # judge only while this line-state tag says the line produces
    plot: tuple[str, ...] = ()  # tags a what-if on the twin plots
    name: dict[str, str] = field(default_factory=dict)

    def metric(self, name: str) -> Metric:
        """The metric called ``name``."""
        return next(m for m in self.metrics if m.name == name)

    def tags(self) -> list[str]:
        """Every tag the unit's metrics, decisions and state read, each once."""
        out: list[str] = []
        for m in self.metrics:
            for t in (m.tag, m.per):
                if t and t not in out:
                    out.append(t)
        for t in [d.tag for d in self.decisions] + ([self.state_tag] if self.state_tag else []):
            if t not in out:
                out.append(t)
        return out

    def to_json(self) -> dict[str, Any]:
        """The spec as plain values."""
        return asdict(self)


def _num(v: Any, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise SpecError(f"{key} must be a finite number, got {v!r}")
    return float(v)


def check_spec(spec: UnitSpec, plant: Plant | None = None) -> UnitSpec:
    """Raise SpecError on anything the advisor could not honour safely; return the spec."""
    if not spec.decisions:
        raise SpecError(f"unit {spec.unit}: declare at least one decision setpoint")
    for i, d in enumerate(spec.decisions):
        key = f"unit {spec.unit}: decisions[{i}] ({d.tag})"
        if not (d.lo < d.hi):
            raise SpecError(f"{key}: bounds must satisfy lo < hi, got [{d.lo:g}, {d.hi:g}]")
        if not (0 < d.max_step <= d.hi - d.lo):
            raise SpecError(f"{key}: max_step must be in (0, hi - lo], got {d.max_step:g}")
        if plant is not None:
            tag = plant.tag(d.tag)
            if tag is None:
                raise SpecError(f"{key}: the tag is not in the plant file")
            if not tag.writable:
                raise SpecError(f"{key}: the tag is not writable; mark it 'writable: true' in the plant file")
            if d.lo < tag.lo or d.hi > tag.hi:
                raise SpecError(f"{key}: bounds [{d.lo:g}, {d.hi:g}] leave the tag's range "
                                f"[{tag.lo:g}, {tag.hi:g}]")
    if spec.twin not in (None, "virtual_furnace"):
        raise SpecError(f"unit {spec.unit}: twin must be 'virtual_furnace' or left out, got {spec.twin!r}")
    if plant is not None and spec.state_tag and plant.tag(spec.state_tag) is None:
        raise SpecError(f"unit {spec.unit}: state_tag {spec.state_tag} is not in the plant file")
    names = [m.name for m in spec.metrics]
    if len(set(names)) != len(names):
        raise SpecError(f"unit {spec.unit}: metric names must be unique, got {names}")
    for m in spec.metrics:
        if m.kind not in METRIC_KINDS:
            raise SpecError(f"unit {spec.unit}: metric {m.name}: kind must be one of {METRIC_KINDS}")
        if m.kind == "ratio" and not m.per:
            raise SpecError(f"unit {spec.unit}: metric {m.name}: a ratio needs 'per' (the denominator counter)")
        if plant is not None:
            for t in (m.tag, m.per):
                if t and plant.tag(t) is None:
                    raise SpecError(f"unit {spec.unit}: metric {m.name}: tag {t} is not in the plant file")
    if spec.objective not in names:
        raise SpecError(f"unit {spec.unit}: objective {spec.objective!r} is not a metric; one of {names}")
    for c in spec.constraints:
        if c.metric not in names:
            raise SpecError(f"unit {spec.unit}: constraint on {c.metric!r}: not a metric; one of {names}")
        if c.kind not in CONSTRAINT_KINDS:
            raise SpecError(f"unit {spec.unit}: constraint on {c.metric}: kind must be one of {CONSTRAINT_KINDS}")
        if c.kind in ("max", "min") and not math.isfinite(c.limit):
            raise SpecError(f"unit {spec.unit}: constraint on {c.metric}: '{c.kind}' needs a finite limit")
        if c.kind == "hold" and not (0 < c.tolerance < 1):
            raise SpecError(f"unit {spec.unit}: constraint on {c.metric}: tolerance must be in (0, 1)")
    for key, lo, hi in (("settle_s", 1, 86400), ("verify_s", 1, 86400), ("trust_fraction", 1e-3, 1),
                        ("small_step", 0.05, 1), ("unsure_ratio", 0, 100), ("min_improvement", 0, 0.5)):
        v = getattr(spec, key)
        if not (lo <= v <= hi):
            raise SpecError(f"unit {spec.unit}: {key} must be in {lo:g} .. {hi:g}, got {v!r}")
    return spec


def furnace_spec(asset_path: str, totals_path: str, *, settle_s: float = 1800.0,
                 verify_s: float = 3600.0) -> UnitSpec:
    """The virtual furnace's problem: least gas per good part, hardness in spec, CO below its safety
    limit, throughput held; decisions: zone temperature, flue O2 (excess air), belt speed."""
    a, t = asset_path, totals_path
    return UnitSpec(
        unit=a,
        decisions=(
            Decision(f"{a}/temp_setpoint", 760.0, 900.0, 20.0),
            Decision(f"{a}/o2_setpoint", 1.5, 6.0, 0.8),
            Decision(f"{a}/belt_speed", 80.0, 110.0, 6.0),
        ),
        metrics=(
            Metric("gas_per_good_part", "ratio", f"{t}/gas", per=f"{t}/parts_good", unit="Nm3/part"),
            Metric("hardness", "mean", f"{a}/hardness", unit="HRC"),
            Metric("co", "p95", f"{a}/co", unit="ppm"),
            Metric("throughput", "rate", f"{t}/parts_good", unit="parts/h"),
        ),
        objective="gas_per_good_part",
        constraints=(
            Constraint("hardness", "min", 59.0),
            Constraint("co", "max", 200.0),
            Constraint("throughput", "hold", tolerance=0.02),
        ),
        settle_s=settle_s,
        verify_s=verify_s,
        twin="virtual_furnace",
        state_tag=f"{t}/state",
        plot=(f"{a}/fuel_flow", f"{a}/zone1_temp", f"{a}/hardness", f"{a}/co", f"{a}/o2"),
        name=i18n.both("optimize.unit.furnace"),
    )


def default_specs(plant: Plant) -> list[UnitSpec]:
    """Units the plant file itself describes well enough: a furnace asset with the virtual furnace's
    writable setpoints and a line with gas and good-part counters."""
    out = []
    for ln in plant.lines:
        totals = ln.kpi.get("parts_good", "").rsplit("/", 1)[0]
        for a in ln.assets:
            if a.kind != "furnace":
                continue
            want = ("temp_setpoint", "o2_setpoint", "belt_speed")
            if all(a.tag(s) is not None and a.tag(s).writable for s in want) and plant.tag(f"{totals}/gas"):
                out.append(check_spec(furnace_spec(a.path, totals), plant))
    return out


def load_specs(path: str | Path, plant: Plant) -> list[UnitSpec]:
    """Units from a YAML file (``units: [{unit, decisions, metrics, objective, constraints, ...}]``)."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise SpecError(f"{p}: cannot read the optimiser file ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("units"), list):
        raise SpecError(f"{p}: expected a mapping with a 'units' list")
    out = []
    for i, u in enumerate(doc["units"]):
        key = f"{p}: units[{i}]"
        if not isinstance(u, dict):
            raise SpecError(f"{key} must be a mapping")
        try:
            decisions = tuple(Decision(str(d["tag"]), _num(d["lo"], f"{key}.decisions.lo"),
                                       _num(d["hi"], f"{key}.decisions.hi"),
                                       _num(d["max_step"], f"{key}.decisions.max_step"))
                              for d in u["decisions"])
            metrics = tuple(Metric(str(m["name"]), str(m["kind"]), str(m["tag"]), m.get("per"),
                                   str(m.get("unit", ""))) for m in u["metrics"])
            constraints = tuple(Constraint(str(c["metric"]), str(c["kind"]),
                                           _num(c.get("limit", math.nan), f"{key}.constraints.limit")
                                           if "limit" in c else math.nan,
                                           _num(c.get("tolerance", 0.01), f"{key}.constraints.tolerance"))
                                for c in u.get("constraints", []))
            extra = {k: _num(u[k], f"{key}.{k}") for k in ("settle_s", "verify_s", "trust_fraction",
                                                           "min_improvement", "unsure_ratio", "small_step")
                     if k in u}
            spec = UnitSpec(unit=str(u["unit"]), decisions=decisions, metrics=metrics,
                            objective=str(u["objective"]), constraints=constraints,
                            state_tag=u.get("state_tag"), twin=u.get("twin"),
                            plot=tuple(str(x) for x in u.get("plot", ())), name=dict(u.get("name", {})), **extra)
        except KeyError as e:
            raise SpecError(f"{key}: missing key {e.args[0]!r}") from None
        except TypeError as e:
            raise SpecError(f"{key}: {e}") from None
        out.append(check_spec(spec, plant))
    return out
