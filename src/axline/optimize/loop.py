"""Propose -> approve -> apply -> verify -> keep or roll back, every step in the event log.

A :class:`UnitOptimizer` runs one unit's loop against a :class:`PlantIO`: the running service
(:class:`ServiceIO`: historian, audited ``write_tag``, event log) or an in-process virtual line
(:class:`SimIO`, for benchmarks and tests). The rules it keeps:

* a proposal is born inside the bounds and the trust region around today's setpoints; the same
  check runs again right before the write, against the setpoints of that moment;
* an unsure proposal is tried on the twin first: if the twin sees a constraint break, it is never
  offered (``twin_rejected``, with the reason); if the twin agrees, it is offered as a small step;
* an approver who is not the proposer approves; the setpoints are written through the audited
  write path under the approver's name;
* after the settling time the change is judged over the verification window against the window
  before it: kept only if the objective improved and every constraint held, else the old
  setpoints are written back automatically, with the reason. A safety constraint that breaks
  while settling rolls the change back at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import multiprocessing
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axline import i18n
from axline.historian import Event
from axline.optimize.advisor import advise, check_safe
from axline.optimize.metrics import NS, constraint_verdicts, masked, unit_metrics
from axline.optimize.plantio import PlantIO, ServiceIO, SimIO  # noqa: F401 - the loop's plants, importable from here
from axline.optimize.spec import UnitSpec
from axline.optimize.surrogate import Observation, Surrogate

log = logging.getLogger(__name__)

MAX_PROPOSALS = 200
WATCH_S = 300.0  # while settling, check the absolute constraints over the last window this often
TWIN_EXPLORE = 2  # random twin trials per proposal, besides the moves along each decision
MAX_EXTENSIONS = 1  # an inconclusive verification is extended this many times by another window
NOISE_PARTS = 4  # sub-windows of a window whose spread estimates the objective's noise
NOISE_Z = 2.0  # a change is inconclusive when it is within this many standard errors of the threshold
TRUST_GROWTH = 0.5  # each verified agreement of the twin grows an unsure proposal's step by this share
TWIN_LIMIT_SHARE = 0.6  # on the twin a maximum (a safety limit) must hold at its worst short window with this margin
ACTIVE = ("approved", "applying", "settling", "verifying")


class OptimizeError(ValueError):
    """A request the loop refuses: catalog key ``key`` (``err.optimize.*``, with its ``.hint``) and its
    ``params``; ``str()`` is the English text and hint, the web app answers in the reader's language."""

    def __init__(self, key: str, status: int = 400, /, **params: Any) -> None:
        hint = i18n.text(key + ".hint", "en", **params) if i18n.has(key + ".hint") else ""
        super().__init__(i18n.text(key, "en", **params) + (f"; {hint}" if hint else ""))
        self.key, self.params, self.status = key, params, status


@dataclass
class Proposal:
    """A proposed setpoint change: who proposed it, the advice, the twin's check, approval and verdict."""
    id: int
    unit: str
    proposer: str
    created_ns: int
    x0: dict[str, float]
    x: dict[str, float]
    advice: dict[str, Any] = field(default_factory=dict)
    twin: dict[str, Any] | None = None
    small_step: bool = False
    status: str = "proposed"
    approver: str | None = None
    requested_by: str | None = None  # who asked the advisor for this proposal
    applied_ns: int | None = None
    verdict: dict[str, Any] | None = None
    reason: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The proposal as plain values."""
        return {k: getattr(self, k) for k in ("id", "unit", "proposer", "created_ns", "x0", "x", "advice", "twin",
                                              "small_step", "status", "approver", "requested_by", "applied_ns", "verdict",
                                              "reason", "steps")}


def jsonable(obj: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None, NumPy scalars plain numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    return obj


def _finite(d: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if v is not None and math.isfinite(float(v)) else None) for k, v in d.items()}


class UnitOptimizer:
    """The loop of one unit."""

    def __init__(self, spec: UnitSpec, io: PlantIO, twin_factory: Callable[[], Any] | None = None,
                 seed: int = 0, explore_on_twin: bool = True, ids: Iterator[int] | None = None,
                 executor: Executor | None = None) -> None:
        self.spec = spec
        self.executor = executor  # twin runs: a process pool keeps a serving loop responsive (None: threads)
        self.ids = ids if ids is not None else itertools.count(1)
        self.explore_on_twin = explore_on_twin
        self.io = io
        self.twin_factory = twin_factory  # async () -> FurnaceTwin, or None
        self.surrogate = Surrogate(spec)
        self.surrogate_tags = [d.tag for d in spec.decisions]
        self.rng = np.random.default_rng(seed)
        self.proposals: OrderedDict[int, Proposal] = OrderedDict()
        self.tasks: set[asyncio.Task] = set()
        self.errors = 0
        self.log: deque[dict] = deque(maxlen=500)
        self.steady_from: int | None = None  # today's setpoints stand settled since (None: no change of ours)
        self.excluded: deque[tuple[int, int]] = deque(maxlen=32)  # trials rolled back since, and their settling
        self.twin_agreements = 0  # verified changes in a row whose effect the twin foresaw

    # -- helpers --------------------------------------------------------------------------------
    def x_now(self) -> np.ndarray:
        """The decision setpoints now (NaN where unknown)."""
        cur = self.io.latest([d.tag for d in self.spec.decisions])
        return np.array([cur.get(d.tag, math.nan) for d in self.spec.decisions], dtype=float)

    def _vec(self, x: Mapping[str, float]) -> np.ndarray:
        return np.array([float(x[d.tag]) for d in self.spec.decisions])

    def _step(self, p: Proposal, step: str, user: str, message: str, severity: str = "info", **data: Any) -> None:
        now = self.io.now_ns()
        entry = {"ts": now, "step": step, "user": user, "message": message, **data}
        p.steps.append(entry)
        self.log.append({"proposal": p.id, **entry})
        self.io.record(Event(ts=now, kind="optimize", source=self.spec.unit, code=f"optimize.{step}",
                             severity=severity, message=f"proposal {p.id}: {message}",
                             data=jsonable({"proposal": p.id, "user": user, "x0": p.x0, "x": p.x,
                                            "status": p.status, **{k: v for k, v in data.items() if k != "user"}})))

    def _new(self, proposer: str, x0: np.ndarray, x: Mapping[str, float], advice: dict) -> Proposal:
        p = Proposal(id=next(self.ids), unit=self.spec.unit, proposer=proposer, created_ns=self.io.now_ns(),
                     x0={d.tag: float(v) for d, v in zip(self.spec.decisions, x0, strict=True)}, x=dict(x),
                     advice=advice)
        self.proposals[p.id] = p
        while len(self.proposals) > MAX_PROPOSALS:
            old = next(iter(self.proposals))
            if self.proposals[old].status in ACTIVE:
                break
            self.proposals.pop(old)
        return p

    def get(self, pid: int) -> Proposal:
        """The proposal ``pid``; ``OptimizeError`` (404) when there is none."""
        p = self.proposals.get(pid)
        if p is None:
            raise OptimizeError("err.optimize.unknown_proposal", 404, pid=pid, unit=self.spec.unit)
        return p

    def active(self) -> Proposal | None:
        """The proposal being approved, applied or verified, if any."""
        return next((p for p in self.proposals.values() if p.status in ACTIVE), None)

    async def window_metrics(self, start: int, end: int, exclude: list | tuple = ()) -> dict[str, float]:
        """The unit's metrics over the window ``start`` .. ``end``, without the spans ``exclude``."""
        series = await self.io.series(self.spec.tags(), start, end)
        return unit_metrics(self.spec, masked(self.spec, series, exclude), start, end)

    def _clean_ns(self, start: int, end: int) -> int:
        """Nanoseconds of ``start`` .. ``end`` outside the excluded spans."""
        return max(0, end - start - sum(max(0, min(b, end) - max(a, start)) for a, b in self.excluded))

    def clean_until_ns(self) -> int:
        """When a full verification window of settled readings at today's setpoints will exist (the
        readings of trials rolled back, and their settling, do not count)."""
        now = self.io.now_ns()
        if self.steady_from is None:  # no change of ours kept: the readings before any trial are today's
            return now
        deficit = int(self.spec.verify_s * NS) - self._clean_ns(self.steady_from, now)
        if deficit <= 0:
            return now
        return max([now] + [b for _, b in self.excluded]) + deficit

    async def wait_for_clean_baseline(self) -> None:
        """Let the plant run until a verification window of settled readings at today's setpoints exists:
        the baseline of the next change must not hold the last one."""
        await self.io.sleep_until(self.clean_until_ns())

    def _baseline_window(self, longest: float = 1.0) -> tuple[int, int, list]:
        """Up to ``longest`` verification windows of settled readings at today's setpoints before now,
        skipping the trials rolled back since (returned as the spans to exclude)."""
        now = self.io.now_ns()
        start = now - int(longest * self.spec.verify_s * NS)
        for a, b in sorted(self.excluded, reverse=True):  # reach back past what is excluded
            start -= max(0, min(b, now) - max(a, start))
        if self.steady_from is not None:
            start = max(start, min(self.steady_from, now - int(self.spec.verify_s * NS)))
        return start, now, list(self.excluded)

    async def baseline(self) -> dict[str, float]:
        """The unit's metrics over the last verification window of settled readings at today's setpoints."""
        return await self.window_metrics(*self._baseline_window())

    async def _noise(self, start: int, end: int, exclude: list | tuple = ()) -> dict[str, float]:
        """Standard error of each metric over ``start`` .. ``end``, from the spread over its parts."""
        cut = np.linspace(start, end, NOISE_PARTS + 1).astype(np.int64)
        series = masked(self.spec, await self.io.series(self.spec.tags(), start, end), exclude)
        parts = [unit_metrics(self.spec, series, int(a), int(b)) for a, b in zip(cut[:-1], cut[1:], strict=True)]
        out = {}
        for m in self.spec.metrics:
            vals = [q[m.name] for q in parts if math.isfinite(q[m.name])]
            out[m.name] = float(np.std(vals, ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else math.inf
        return out

    def step_fraction(self) -> float:
        """The share of an unsure move applied: ``small_step``, grown while the twin keeps being right."""
        return min(1.0, self.spec.small_step * (1.0 + TRUST_GROWTH * self.twin_agreements))

    async def _twin(self):
        if self.twin_factory is None:
            return None
        return await self.twin_factory()

    async def _twin_eval(self, twin, x: Mapping[str, float]) -> dict[str, float]:
        return await asyncio.get_running_loop().run_in_executor(self.executor, _twin_evaluate, twin, self.spec,
                                                                dict(x))

    def _twin_verdict(self, x0m: dict, xm: dict, base: dict) -> list[dict]:
        """The twin's effect (x vs today, both on the twin) added to the plant's measured baseline; a
        metric with an absolute limit is judged at its worst short window on the twin (``@worst``),
        as the plant's watch will judge it while the change settles."""
        pred = {}
        for k, b in base.items():
            d = xm.get(f"{k}@worst", xm.get(k, math.nan)) - x0m.get(k, math.nan)
            pred[k] = b + d if math.isfinite(b) else xm.get(k, math.nan)
        verdicts = constraint_verdicts(self.spec, pred, base)
        for v in verdicts:  # a safety maximum holds on the twin only with a margin: the plant's wander is not the twin's
            if (v["kind"] == "max" and v["ok"] and not v["value"] <= TWIN_LIMIT_SHARE * v["limit"]
                    and not v["value"] <= base.get(v["metric"], math.nan)):
                v["ok"], v["limit"] = False, TWIN_LIMIT_SHARE * v["limit"]
        return verdicts, pred

    # -- propose --------------------------------------------------------------------------------
    async def propose(self, proposer: str = "advisor", requested_by: str | None = None) -> Proposal | dict:
        """Ask the advisor for the next setpoints. Returns the proposal, or a dict with the reason
        when none is worth offering. The advisor is the proposer (it chose the setpoints);
        ``requested_by`` records who asked."""
        p = await self._propose(proposer)
        if isinstance(p, Proposal):
            p.requested_by = requested_by
        return p

    async def _propose(self, proposer: str) -> Proposal | dict:
        x0 = self.x_now()
        if not np.isfinite(x0).all():
            raise OptimizeError("err.optimize.setpoints_unknown", 409)
        base = await self.baseline()
        if self.io.now_ns() >= self.clean_until_ns() and self.active() is None:  # else it holds a change
            self.surrogate.add(Observation({d.tag: float(v) for d, v in zip(self.spec.decisions, x0, strict=True)},
                                           base, "plant", self.io.now_ns()))
        twin = await self._twin()
        twin_x0: dict[str, float] | None = None
        explored = twin is None or not self.explore_on_twin
        halfway = None  # after the twin saw a limit broken: the same direction, half as far
        for attempt in range(5):
            # trials on the twin around today's point teach the surrogate the local slope; once the twin
            # has foreseen the plant's answer its check of each proposal suffices, until the advice stalls
            if not explored and (self.twin_agreements == 0 or attempt):
                from axline.optimize.advisor import candidates

                explored = True
                twin_x0 = await self._twin_eval(twin, dict(zip(self.surrogate_tags, x0.tolist(), strict=True)))
                for pt in candidates(self.spec, x0, self.rng, n=TWIN_EXPLORE)[1:]:
                    xd = {d.tag: float(v) for d, v in zip(self.spec.decisions, pt, strict=True)}
                    m = await self._twin_eval(twin, xd)
                    self.surrogate.add(Observation(xd, {k: base.get(k, math.nan) + m[k] - twin_x0[k] for k in m},
                                                   "twin", self.io.now_ns()))
            advice, halfway = halfway or advise(self.spec, self.surrogate, x0, base, self.rng), None
            if advice.x is None and not explored:
                continue  # ask again after trials on the twin
            if advice.x is None:
                return {"proposal": None, "reason": advice.reason, "advice": advice.to_json()}
            if not advice.unsure and self.twin_factory is None:
                p = self._new(proposer, x0, advice.x, advice.to_json())
                self._step(p, "proposed", proposer, f"proposed {advice.x} (expected {advice.gain:+.4g} on "
                           f"{self.spec.objective}, +-{advice.gain_std:.2g})", expected=advice.expected)
                return p
            # the twin first (an unsure proposal, and any proposal of a unit that has a twin)
            if twin is None:
                twin = await self._twin()
            if twin is None:  # no twin for this unit: offer it as a small step only
                x = {k: x0v + self.spec.small_step * (advice.x[k] - x0v)
                     for k, x0v in zip(advice.x, x0, strict=True)}
                p = self._new(proposer, x0, x, advice.to_json())
                p.small_step = True
                self._step(p, "proposed", proposer, f"proposed {x} as a small step (the model is unsure and "
                           "there is no twin)", expected=advice.expected)
                return p
            if twin_x0 is None:
                twin_x0 = await self._twin_eval(twin, advice.x0)
            twin_x = await self._twin_eval(twin, advice.x)
            verdicts, pred = self._twin_verdict(twin_x0, twin_x, base)
            self.surrogate.add(Observation(advice.x, pred, "twin", self.io.now_ns()))
            obj_gain = pred.get(self.spec.objective, math.nan) - base.get(self.spec.objective, math.nan)
            broken = [v for v in verdicts if not v["ok"]]
            twin_info = {"x0": _finite(twin_x0), "x": _finite(twin_x), "predicted": _finite(pred),
                         "constraints": verdicts, "fouling": getattr(twin, "fouling", None),
                         "gain": obj_gain if math.isfinite(obj_gain) else None}
            if broken or not (obj_gain < 0):
                p = self._new(proposer, x0, advice.x, advice.to_json())
                p.twin = twin_info
                p.status = "twin_rejected"
                why = ("; ".join(f"{v['metric']} {v['value']:.4g} vs limit {v['limit']:.4g}" for v in broken)
                       if broken else f"the twin sees no gain on {self.spec.objective}")
                p.reason = f"tried on the twin first: {why}"
                self._step(p, "twin_rejected", proposer, p.reason, severity="warning", twin=twin_info)
                if broken and not advice.reason.startswith("half way"):
                    halfway = dataclasses.replace(advice, x={k: x0v + 0.5 * (advice.x[k] - x0v) for k, x0v in zip(
                        advice.x, x0, strict=True)}, reason=f"half way to {advice.x}, where the twin broke a limit")
                continue  # the surrogate learnt from it; try half as far, or ask again
            frac = self.step_fraction() if advice.unsure else 1.0
            x = {k: x0v + frac * (advice.x[k] - x0v) for k, x0v in zip(advice.x, x0, strict=True)}
            p = self._new(proposer, x0, x, advice.to_json())
            p.twin = twin_info
            p.small_step = frac < 1.0
            what = (f"a step of {frac:.0%} towards {advice.x} (the model is unsure; the twin was right "
                    f"{self.twin_agreements} time(s) in a row)" if p.small_step else "")
            self._step(p, "proposed", proposer, f"proposed {x}{': ' + what if what else ''}, tried on the twin "
                       f"first ({obj_gain:+.4g} on {self.spec.objective})", twin=twin_info,
                       expected=advice.expected)
            return p
        return {"proposal": None, "reason": "the twin rejected every proposal in a row; the surrogate has "
                                            "learnt from them, ask again later"}

    async def submit(self, x: Mapping[str, float], proposer: str, note: str = "") -> Proposal:
        """An engineer's own proposal: the same safety gate, and the twin's opinion as evidence."""
        tags = [d.tag for d in self.spec.decisions]
        unknown = [k for k in x if k not in tags]
        if unknown:
            raise OptimizeError("err.optimize.not_decisions", 400, unknown=unknown, unit=self.spec.unit, tags=tags)
        x0 = self.x_now()
        if not np.isfinite(x0).all():
            raise OptimizeError("err.optimize.setpoints_unknown", 409)
        full = {d.tag: float(x.get(d.tag, v)) for d, v in zip(self.spec.decisions, x0, strict=True)}
        why = check_safe(self.spec, x0, self._vec(full))
        if why:
            raise OptimizeError("err.optimize.unsafe", 400, why="; ".join(why))
        p = self._new(proposer, x0, full, {"manual": True, "note": note[:500]})
        twin = await self._twin()
        if twin is not None:
            base = await self.baseline()
            tx0 = await self._twin_eval(twin, p.x0)
            tx = await self._twin_eval(twin, full)
            verdicts, pred = self._twin_verdict(tx0, tx, base)
            p.twin = {"x0": _finite(tx0), "x": _finite(tx), "predicted": _finite(pred), "constraints": verdicts}
        self._step(p, "proposed", proposer, f"submitted {full}" + (f" ({note[:200]})" if note else ""),
                   twin=p.twin)
        return p

    # -- approve / reject -----------------------------------------------------------------------
    def approve(self, pid: int, approver: str) -> Proposal:
        """Approve proposal ``pid`` (never by its proposer) and start applying it."""
        p = self.get(pid)
        if p.status != "proposed":
            raise OptimizeError("err.optimize.cannot_approve", 409, pid=pid, status=p.status)
        if approver == p.proposer:
            self._step(p, "approval_refused", approver, f"{approver} may not approve their own proposal",
                       severity="warning")
            raise OptimizeError("err.optimize.own_proposal", 403, approver=approver)
        running = self.active()
        if running is not None:
            raise OptimizeError("err.optimize.busy", 409, pid=running.id, status=running.status)
        p.status = "approved"
        p.approver = approver
        self._step(p, "approved", approver, f"approved by {approver}")
        task = asyncio.get_running_loop().create_task(self._run(p), name=f"optimize-{p.id}")
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return p

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors += 1
            log.error("optimiser task failed: %r", task.exception())

    def reject(self, pid: int, user: str, reason: str = "") -> Proposal:
        """Reject proposal ``pid`` with ``reason``."""
        p = self.get(pid)
        if p.status != "proposed":
            raise OptimizeError("err.optimize.cannot_reject", 409, pid=pid, status=p.status)
        p.status = "rejected"
        p.reason = reason[:500] or "rejected"
        self._step(p, "rejected", user, f"rejected by {user}: {p.reason}")
        return p

    # -- apply, verify, keep or roll back -------------------------------------------------------
    async def _write_all(self, p: Proposal, x: Mapping[str, float], user: str) -> None:
        """Write the setpoints the proposal changes (the others are left alone)."""
        for tag, v in x.items():
            if abs(p.x[tag] - p.x0[tag]) > 1e-12:
                await self.io.write(tag, float(v), user)

    async def _roll_back(self, p: Proposal, reason: str) -> None:
        user = p.approver or "advisor"
        try:
            await self._write_all(p, p.x0, user)
        except Exception as e:  # noqa: BLE001 - recorded and raised as an alarm, never swallowed
            self.errors += 1
            p.status = "failed"
            p.reason = f"{reason}; the rollback itself failed: {type(e).__name__}: {e}"
            self._step(p, "rollback_failed", user, p.reason, severity="alarm")
            return
        self.excluded.append((p.applied_ns or self.io.now_ns(), self.io.now_ns() + int(self.spec.settle_s * NS)))
        self.twin_agreements = 0
        p.status = "rolled_back"
        p.reason = reason
        self._step(p, "rolled_back", user, f"rolled back to {p.x0}: {reason}", severity="warning",
                   verdict=p.verdict)

    async def _run(self, p: Proposal) -> None:
        spec = self.spec
        if self.io.now_ns() < self.clean_until_ns():
            self._step(p, "waiting", p.approver or "", "waiting until the last change has settled and a "
                       "verification window at today's setpoints exists: the baseline must not hold it")
            await self.wait_for_clean_baseline()
        x0 = self.x_now()
        why = check_safe(spec, x0, self._vec(p.x))
        if not np.allclose(x0, self._vec(p.x0), rtol=0, atol=1e-6):
            why.insert(0, f"the setpoints moved since the proposal (now {x0.tolist()}, proposed from "
                          f"{list(p.x0.values())}); ask for a new proposal")
        if why:
            p.status = "failed"
            p.reason = "not applied: " + "; ".join(why)
            self._step(p, "refused", p.approver or "", p.reason, severity="warning")
            return
        b0, b1, excl = self._baseline_window(longest=2.0)
        base = await self.window_metrics(b0, b1, excl)
        base_se = await self._noise(b0, b1, excl)
        p.status = "applying"
        try:
            await self._write_all(p, p.x, p.approver or "")
        except Exception as e:  # noqa: BLE001 - the failure is the reason of the rollback
            await self._roll_back(p, f"a write failed: {type(e).__name__}: {e}")
            return
        p.applied_ns = self.io.now_ns()
        p.status = "settling"
        self._step(p, "applied", p.approver or "", f"wrote {p.x} (was {p.x0}) as {p.approver}",
                   baseline=_finite(base))
        settle_end = p.applied_ns + int(spec.settle_s * NS)
        end = settle_end + int(spec.verify_s * NS)
        absolute = [c for c in spec.constraints if c.kind in ("max", "min")]
        t = p.applied_ns
        extended = 0
        while True:
            while t < end:
                t = min(end, t + int(WATCH_S * NS))
                await self.io.sleep_until(t)
                if t >= settle_end and p.status == "settling":
                    p.status = "verifying"
                if absolute:
                    # only readings since this change: what happened before it is not its doing
                    recent = await self.window_metrics(max(p.applied_ns, t - int(2 * WATCH_S * NS)), t)
                    broken = [v for v in constraint_verdicts(spec, recent, base)
                              if v["kind"] in ("max", "min") and not v["ok"] and math.isfinite(v["value"])]
                    if broken:
                        p.verdict = {"before": _finite(base), "after": _finite(recent), "constraints": broken,
                                     "kept": False}
                        self.surrogate.add(Observation(dict(p.x), recent, "plant", t, feasible=False))
                        await self._roll_back(p, "constraint broken while settling: " + "; ".join(
                            f"{v['metric']} {v['value']:.4g} {'>' if v['kind'] == 'max' else '<'} limit "
                            f"{v['limit']:.4g}" for v in broken))
                        return
            after = await self.window_metrics(settle_end, end)
            verdicts = constraint_verdicts(spec, after, base)
            ob, oa = base.get(spec.objective, math.nan), after.get(spec.objective, math.nan)
            needed = ob - spec.min_improvement * abs(ob)
            improved = math.isfinite(ob) and math.isfinite(oa) and oa < needed
            held = all(v["ok"] for v in verdicts)
            after_se = await self._noise(settle_end, end)
            ses = {k: math.hypot(base_se[k], after_se[k]) for k in base_se}
            se = ses[spec.objective]
            # inconclusive: what failed failed within its noise (never a maximum or minimum: those are limits)
            unclear = [v["metric"] for v in verdicts if not v["ok"] and v["kind"] == "hold"
                       and math.isfinite(v["value"]) and v["limit"] - v["value"] < NOISE_Z * ses[v["metric"]]]
            clear = [v for v in verdicts if not v["ok"] and v["metric"] not in unclear]
            if not improved and math.isfinite(oa) and math.isfinite(se) and oa - needed < NOISE_Z * se:
                unclear.insert(0, spec.objective)
            elif not improved:
                clear.append(spec.objective)
            if unclear and not clear and extended < MAX_EXTENSIONS:
                extended += 1  # judge over a longer window before keeping or rolling back
                end += int(spec.verify_s * NS)
                self._step(p, "extended", p.approver or "", "inconclusive within the noise: " + "; ".join(
                    f"{k} {base.get(k, math.nan):.4g} -> {after.get(k, math.nan):.4g} (+-{ses[k]:.2g})"
                    for k in unclear) + f"; verifying {spec.verify_s / 3600:g} h longer")
                continue
            break
        hours = (end - settle_end) / NS / 3600
        p.verdict = {"before": _finite(base), "after": _finite(after), "constraints": verdicts,
                     "objective_change": (oa - ob) / ob if math.isfinite(ob) and ob else None,
                     "noise": se / abs(ob) if math.isfinite(se) and math.isfinite(ob) and ob else None,
                     "verified_h": hours, "kept": bool(improved and held)}
        limits_held = all(v["ok"] for v in verdicts if v["kind"] in ("max", "min"))
        self.surrogate.add(Observation(dict(p.x), after, "plant", end, feasible=limits_held))
        foreseen = (p.twin or {}).get("gain")
        if foreseen is not None:  # the twin's standing: did it foresee what the plant did?
            agreed = held and foreseen < 0 and math.isfinite(oa) and oa < ob
            self.twin_agreements = self.twin_agreements + 1 if agreed else 0
        if improved and held:
            p.status = "kept"
            self.steady_from = settle_end
            self.excluded.clear()
            self._step(p, "kept", p.approver or "", f"kept: {spec.objective} {ob:.4g} -> {oa:.4g} "
                       f"({(oa - ob) / ob:+.1%} over {hours:g} h), every constraint held", verdict=p.verdict)
            return
        reasons = [f"{v['metric']} {v['value']:.4g} vs limit {v['limit']:.4g}" for v in verdicts if not v["ok"]]
        if not improved:
            change = f"{(oa - ob) / ob:+.1%} +- {se / abs(ob):.1%}" if math.isfinite(oa) and ob else "no reading"
            reasons.insert(0, f"{spec.objective} did not improve enough ({ob:.4g} -> {oa:.4g}, {change} over "
                              f"{hours:g} h; needed {spec.min_improvement:.1%} better)")
        await self._roll_back(p, "; ".join(reasons))

    # -- what-if --------------------------------------------------------------------------------
    async def what_if(self, x: Mapping[str, float], hours: float) -> dict[str, Any]:
        """Trajectories on the twin for today's setpoints and for ``x`` (any inside the bounds)."""
        tags = [d.tag for d in self.spec.decisions]
        full = {}
        x0 = self.x_now()
        for d, v in zip(self.spec.decisions, x0, strict=True):
            val = float(x.get(d.tag, v))
            if not (d.lo <= val <= d.hi):
                raise OptimizeError("err.optimize.out_of_bounds", 400, tag=d.tag, value=f"{val:g}", lo=f"{d.lo:g}",
                                    hi=f"{d.hi:g}")
            full[d.tag] = val
        unknown = [k for k in x if k not in tags]
        if unknown:
            raise OptimizeError("err.optimize.not_decisions", 400, unknown=unknown, unit=self.spec.unit, tags=tags)
        twin = await self._twin()
        if twin is None:
            raise OptimizeError("err.optimize.no_twin", 501, unit=self.spec.unit)
        show = self.spec.tags() + [t for t in self.spec.plot if t not in self.spec.tags()]
        loop = asyncio.get_running_loop()
        t = time.perf_counter()
        now_x = {d.tag: float(v) for d, v in zip(self.spec.decisions, x0, strict=True)}
        (s0, tr0), (s1, tr1) = await asyncio.gather(
            loop.run_in_executor(self.executor, _twin_run, twin, now_x, hours, show, 300.0),
            loop.run_in_executor(self.executor, _twin_run, twin, full, hours, show, 300.0))
        start = twin.line.now_ns
        end = start + int(hours * 3600 * NS)
        tail = start + int(hours * 3600 * NS / 2)  # judge the second half, after settling
        return {"hours": hours, "x0": now_x, "x": full, "wall_s": time.perf_counter() - t,
                "fouling": getattr(twin, "fouling", None),
                "now": {"trajectory": tr0, "metrics": _finite(unit_metrics(self.spec, s0, tail, end))},
                "what_if": {"trajectory": tr1, "metrics": _finite(unit_metrics(self.spec, s1, tail, end))}}


def _twin_evaluate(twin: Any, spec: UnitSpec, x: dict[str, float]) -> dict[str, float]:
    return twin.evaluate(spec, x)


def _twin_run(twin: Any, x: dict[str, float], hours: float, tags: list[str], sample_s: float):
    return twin.run(x, hours, tags, sample_s)


_POOL: ProcessPoolExecutor | None = None


def twin_pool() -> ProcessPoolExecutor:
    """One worker process for twin runs of a serving process (pure-Python simulation would hold the
    GIL and starve the service's event loop, its connectors included)."""
    global _POOL
    if _POOL is None:
        _POOL = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return _POOL
