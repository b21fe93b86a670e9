"""The advisor: the next setpoints to try, with the expected effect and its uncertainty, always
inside the hard bounds and the trust region around today's operating point.

Safety comes before cleverness. Every candidate is drawn inside the box ``today +- step`` cut by
the bounds, where ``step = min(max_step, trust_fraction x (hi - lo))`` per decision, and
:func:`check_safe` is asked again before any value leaves axline. A constraint counts as met only
when it holds pessimistically (the surrogate's mean moved ``BETA`` standard deviations towards the
limit). A proposal is *unsure* when the objective's uncertainty is large against the expected gain
or the surrogate has seen too little of the plant; an unsure proposal goes to the twin first and,
if the twin agrees, is applied as a small step.

The trust region may also be narrowed (``scale`` < 1, never widened) by a :class:`TrustRegion` that
halves it after a run of trials that did not improve and doubles it back after improvements, as in
TuRBO: far from the optimum the full step travels fast, near it the surrogate is asked only about a
neighbourhood it has seen densely, which is where its proposals and its constraint bounds are sharp.

Trials that broke a constraint or tripped the unit teach a feasibility classifier (nearest
neighbour in trust steps): a candidate nearer to such a trial than to any trial that held, or
within ``FEASIBLE_RADIUS`` trust steps of one, is never proposed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from axline.optimize.spec import UnitSpec
from axline.optimize.surrogate import Surrogate

BETA = 1.64  # one-sided 95 %: how pessimistic the constraint check is
N_CANDIDATES = 512
MIN_PLANT_OBSERVATIONS = 3
FEASIBLE_RADIUS = 0.5  # trust steps around a trial that failed where nothing is proposed


class UnsafeProposal(ValueError):
    """Setpoints that leave the bounds, the trust region or the maximum step."""


def step_sizes(spec: UnitSpec) -> np.ndarray:
    """Half-width of the trust region per decision: the smaller of its step and its share of the bounds."""
    return np.array([min(d.max_step, spec.trust_fraction * (d.hi - d.lo)) for d in spec.decisions])


def _scale(scale: float) -> float:
    """A trust-region scale is a narrowing only: within (0, 1]."""
    if not (math.isfinite(scale) and 0.0 < scale <= 1.0):
        raise ValueError(f"a trust-region scale must lie in (0, 1], got {scale!r}")
    return float(scale)


@dataclass
class TrustRegion:
    """How much of the full trust step the advisor uses now (TuRBO's rule, for sequential trials):
    ``failure_tolerance`` trials in a row that did not improve halve it (down to ``min_scale``),
    ``success_tolerance`` improvements in a row double it (up to 1, the full step). Only ever narrows
    the region that :func:`step_sizes` allows, so it cannot make a proposal less safe."""

    scale: float = 1.0
    min_scale: float = 1.0 / 16.0
    success_tolerance: int = 2
    failure_tolerance: int = 3
    successes: int = 0
    failures: int = 0

    def update(self, improved: bool) -> float:
        """Count one judged trial; return the scale for the next."""
        if improved:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.success_tolerance:
                self.scale, self.successes = min(1.0, 2.0 * self.scale), 0
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= self.failure_tolerance:
                self.scale, self.failures = max(self.min_scale, 0.5 * self.scale), 0
        return self.scale


def trust_box(spec: UnitSpec, x0: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The box the advisor may propose in: today's point +- the step (times ``scale``), inside the hard bounds."""
    lo = np.array([d.lo for d in spec.decisions])
    hi = np.array([d.hi for d in spec.decisions])
    step = step_sizes(spec) * _scale(scale)
    blo = np.maximum(lo, x0 - step)
    bhi = np.minimum(hi, x0 + step)
    if (blo > bhi).any():
        bad = [d.tag for d, a, b in zip(spec.decisions, blo, bhi, strict=True) if a > b]
        raise UnsafeProposal(f"today's setpoints are more than one step outside the bounds for {bad}; "
                             "bring them inside the bounds by hand (or widen the bounds) first")
    return blo, bhi


def check_safe(spec: UnitSpec, x0: np.ndarray, x: np.ndarray) -> list[str]:
    """Every reason ``x`` may not be written when the plant runs at ``x0`` (empty: safe)."""
    why = []
    step = step_sizes(spec)
    for d, a, b, s in zip(spec.decisions, x0, x, step, strict=True):
        if not math.isfinite(b):
            why.append(f"{d.tag}: {b!r} is not a number")
            continue
        if b < d.lo - 1e-9 or b > d.hi + 1e-9:
            why.append(f"{d.tag}: {b:g} is outside the hard bounds [{d.lo:g}, {d.hi:g}]")
        if abs(b - a) > d.max_step + 1e-9:
            why.append(f"{d.tag}: a move of {b - a:+g} exceeds the maximum step {d.max_step:g}")
        elif abs(b - a) > s + 1e-9:
            why.append(f"{d.tag}: a move of {b - a:+g} leaves the trust region (+-{s:g} around {a:g})")
    return why


@dataclass
class Advice:
    """What the advisor proposes, and why."""

    x0: dict[str, float]
    x: dict[str, float] | None  # None: no change expected to help
    expected: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> mean, std at x and x0
    gain: float = 0.0  # expected objective change (negative: better)
    gain_std: float = math.inf
    unsure: bool = True
    reason: str = ""
    candidates_feasible: int = 0

    def to_json(self) -> dict:
        """The advice as plain values."""
        return {"x0": self.x0, "x": self.x, "expected": self.expected, "gain": self.gain,
                "gain_std": self.gain_std, "unsure": self.unsure, "reason": self.reason,
                "candidates_feasible": self.candidates_feasible}


def _constraint_ok(spec: UnitSpec, surrogate: Surrogate, xs: np.ndarray, baseline: dict[str, float]) -> np.ndarray:
    ok = np.ones(len(xs), dtype=bool)
    for c in spec.constraints:
        mu, sd = surrogate.predict(c.metric, xs)
        sd = np.where(np.isfinite(sd), sd, 1e9)
        if c.kind == "max":
            ok &= mu + BETA * sd <= c.limit
        elif c.kind == "min":
            ok &= mu - BETA * sd >= c.limit
        else:
            ref = baseline.get(c.metric, math.nan)
            if not math.isfinite(ref):
                ref = float(surrogate.predict(c.metric, xs[:1])[0][0])
            ok &= mu - BETA * sd >= ref - c.tolerance * abs(ref)
        ok &= np.isfinite(mu)
    return ok


def feasible_by_classifier(spec: UnitSpec, surrogate: Surrogate, xs: np.ndarray) -> np.ndarray:
    """Per candidate row of ``xs``: True unless the trials judged so far say it would fail (nearer,
    in trust steps, to a trial that failed than to one that held, or within ``FEASIBLE_RADIUS`` of one)."""
    xs = np.atleast_2d(np.asarray(xs, float))
    judged = [o for o in surrogate.observations if o.feasible is not None and o.source != "twin"]
    bad = np.array([[o.x[d.tag] for d in spec.decisions] for o in judged if not o.feasible])
    if not len(bad):
        return np.ones(len(xs), dtype=bool)
    step = step_sizes(spec)
    good = np.array([[o.x[d.tag] for d in spec.decisions] for o in judged if o.feasible])
    d_bad = np.sqrt((((xs[:, None, :] - bad[None]) / step) ** 2).sum(-1)).min(1)
    d_good = (np.sqrt((((xs[:, None, :] - good[None]) / step) ** 2).sum(-1)).min(1) if len(good)
              else np.full(len(xs), np.inf))
    return (d_bad > FEASIBLE_RADIUS) & ((d_bad > d_good) | ~np.isfinite(d_good))


def candidates(spec: UnitSpec, x0: np.ndarray, rng: np.random.Generator, n: int = N_CANDIDATES,
               scale: float = 1.0) -> np.ndarray:
    """Points of the trust box (narrowed by ``scale``): random ones, the axis moves and today's point itself (first)."""
    blo, bhi = trust_box(spec, x0, scale)
    pts = [np.clip(x0, blo, bhi)]
    for i in range(len(x0)):
        for edge in (blo[i], bhi[i]):
            p = pts[0].copy()
            p[i] = edge
            pts.append(p)
    pts.extend(blo + (bhi - blo) * rng.random((n, len(x0))))
    return np.array(pts)


def advise(spec: UnitSpec, surrogate: Surrogate, x0: np.ndarray, baseline: dict[str, float],
           rng: np.random.Generator, scale: float = 1.0) -> Advice:
    """The best candidate of the trust box (narrowed by ``scale``) by the surrogate, or no change with the reason."""
    x0d = {d.tag: float(v) for d, v in zip(spec.decisions, x0, strict=True)}
    xs = candidates(spec, x0, rng, scale=scale)
    mu, sd = surrogate.predict(spec.objective, xs)
    if not np.isfinite(mu).any():
        return Advice(x0d, None, reason="the surrogate has no observation of the objective yet")
    ok = _constraint_ok(spec, surrogate, xs, baseline) & feasible_by_classifier(spec, surrogate, xs)
    ok[0] = False  # today's point is not a proposal
    ref_mu, ref_sd = float(mu[0]), float(sd[0])
    if not ok.any():
        return Advice(x0d, None, reason="no setpoints in the trust region meet every constraint with "
                                        "confidence", candidates_feasible=0)
    score = np.where(ok, mu, np.inf)
    i = int(np.argmin(score))
    gain = float(mu[i] - ref_mu)
    gain_std = float(math.hypot(sd[i], ref_sd)) if math.isfinite(sd[i]) and math.isfinite(ref_sd) else math.inf
    expected = {}
    for m in spec.metrics:
        mm, ss = surrogate.predict(m.name, np.array([xs[i], xs[0]]))
        expected[m.name] = {"mean": float(mm[0]), "std": float(ss[0]), "mean_now": float(mm[1]),
                            "std_now": float(ss[1])}
    ref = baseline.get(spec.objective, ref_mu)
    if not (gain < -spec.min_improvement * abs(ref)):
        return Advice(x0d, None, expected=expected, gain=gain, gain_std=gain_std,
                      reason="no change in the trust region is expected to improve the objective "
                             f"by {spec.min_improvement:.1%} or more", candidates_feasible=int(ok.sum()))
    plant_obs = sum(1 for o in surrogate.observations if o.source != "twin")
    unsure = plant_obs < MIN_PLANT_OBSERVATIONS or gain_std > spec.unsure_ratio * abs(gain)
    x = {d.tag: float(v) for d, v in zip(spec.decisions, xs[i], strict=True)}
    why = check_safe(spec, x0, xs[i])
    if why:  # cannot happen by construction; refuse rather than trust the construction
        raise UnsafeProposal("; ".join(why))
    return Advice(x0d, x, expected=expected, gain=gain, gain_std=gain_std, unsure=bool(unsure),
                  reason="lowest expected objective in the trust region with every constraint met "
                         "at 95 % confidence", candidates_feasible=int(ok.sum()))
