"""Quality charts of the plant's measured characteristics: the chart report the quality page draws,
and the live watcher that raises SPC rule violations as events.

A *quality tag* is a tag with ``spec`` limits in the plant file. Its readings become per-part
measurements (:func:`axline.spc.measurements`); control limits come from a baseline period before
they are applied; capability is given overall, per shift and per lot (a lot starts each time the
tag's asset leaves a changeover).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from typing import Any

import numpy as np

from axline import i18n, spc
from axline.historian.base import Event, Historian
from axline.kpi import current_shift
from axline.plant import Shift

log = logging.getLogger(__name__)
NS = 1_000_000_000
MAX_POINTS = 20_000
BASELINE_SHARE = 0.25  # default baseline: the first quarter of the window's measurements


class QualityError(ValueError):
    """A chart cannot be drawn as asked; the message says what to change."""


def quality_tags(plant: dict) -> list[dict[str, Any]]:
    """Tags with spec limits, each with its line (``line``) and asset path (``asset``)."""
    out = []
    for ln in plant.get("lines", []):
        for a in ln.get("assets", []):
            for t in a.get("tags", []):
                if t.get("spec"):
                    out.append({**t, "line": ln["id"], "asset": a["path"]})
    return out


def find_tag(plant: dict, path: str) -> tuple[dict, dict, dict] | None:
    """(line, asset, tag) of ``path`` in a plant_json."""
    for ln in plant.get("lines", []):
        for a in ln.get("assets", []):
            for t in a.get("tags", []):
                if t.get("path") == path:
                    return ln, a, t
    return None


def _read(historian: Historian, path: str, start: int, end: int, dedupe: bool) -> tuple[np.ndarray, np.ndarray]:
    s = historian.query([path], start, end).get(path)
    if s is None or len(s) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return spc.measurements(s.ts, s.value, s.quality, dedupe=dedupe)


def chart_report(historian: Historian, plant: dict, path: str, start: int, end: int,
                 baseline: tuple[int, int] | None = None, chart: str = "imr", n: int = 5,
                 rules: str = "nelson", dedupe: bool = True) -> dict[str, Any]:
    """Everything the quality page shows for ``path`` over [start, end)."""
    found = find_tag(plant, path)
    if found is None:
        raise i18n.error(QualityError, "quality.unknown_tag", tag=repr(path))
    line, asset, tag = found
    if chart not in spc.CHARTS:
        raise i18n.error(QualityError, "quality.bad_chart", charts=", ".join(spc.CHARTS), chart=repr(chart))
    if rules not in spc.RULESETS:
        raise i18n.error(QualityError, "quality.bad_rules", rulesets=", ".join(spc.RULESETS), rules=repr(rules))
    if baseline is None:
        # the first quarter of the window's measurements (at least enough for limits)
        ts_w, _ = _read(historian, path, start, end, dedupe)
        need = max(spc.MIN_BASELINE_POINTS * (1 if chart == "imr" else n), int(np.ceil(len(ts_w) * BASELINE_SHARE)))
        if len(ts_w) < need:
            raise i18n.error(QualityError, "quality.too_few", n=len(ts_w), need=need)
        baseline = (start, int(ts_w[need - 1]) + 1)
    b0, b1 = baseline
    if not b0 < b1:
        raise i18n.error(QualityError, "quality.baseline_order")
    ts_all, v_all = _read(historian, path, min(start, b0), max(end, b1), dedupe)
    in_base = (ts_all >= b0) & (ts_all < b1)
    try:
        limits = spc.fit_limits(v_all[in_base], chart, n)
    except ValueError as e:
        raise i18n.error(QualityError, "quality.baseline_refused", error=e, start=b0, end=b1,
                         n=int(in_base.sum())) from None
    sel = (ts_all >= start) & (ts_all < end)
    ts, v = ts_all[sel], v_all[sel]
    if len(v) > MAX_POINTS:
        raise i18n.error(QualityError, "quality.too_many", n=len(v), max=MAX_POINTS)
    x, r = spc.plotted(v, chart, limits.n)
    pts_ts = ts if chart == "imr" else ts[: len(x) * limits.n].reshape(-1, limits.n)[:, -1] if len(x) else ts[:0]
    violations = []
    for w in spc.rule_violations(x, limits.center, limits.sigma, rules):
        violations.append({**w.to_json(), "ts": int(pts_ts[w.index]), "value": float(x[w.index])})
    spec = tag.get("spec") or {}
    # per shift
    shifts = [Shift(s["name"], s["start"], float(s["hours"])) for s in line.get("shifts", [])] or \
        [Shift("A", "00:00", 24.0)]
    tz = plant.get("timezone", "UTC")
    shift_keys = []
    for t in ts.tolist():
        name, s0 = current_shift(int(t), tz, shifts)
        shift_keys.append(f"{name}@{s0}")
    by_shift = spc.group_capability(ts, v, spec, shift_keys) if spec else []
    for g in by_shift:
        name, s0 = g["group"].split("@")
        g.update(shift=name, shift_start=int(s0))
    # per lot: a lot starts when the asset leaves a changeover
    st = historian.query([f"{asset['path']}/state"], max(0, start - 7 * 24 * 3600 * NS), end).get(
        f"{asset['path']}/state")
    bounds = spc.lot_bounds(st.ts, st.value) if st is not None and len(st) else np.zeros(0, dtype=np.int64)
    lot_idx = np.searchsorted(bounds, ts, side="right")
    by_lot = spc.group_capability(ts, v, spec, lot_idx.tolist()) if spec else []
    for g in by_lot:
        k = int(g["group"])
        g.update(lot=k, lot_start=int(bounds[k - 1]) if k > 0 else None)
    return {
        "tag": path, "asset": asset["path"], "line": line["id"], "unit": tag.get("unit", ""),
        "name": tag.get("name"), "spec": spec, "chart": chart, "n": limits.n, "rules": rules,
        "from": start, "to": end, "baseline": [b0, b1], "limits": limits.to_json(),
        "points": {"t": (pts_ts // 1_000_000).tolist(), "x": x.tolist(),
                   "r": [None if not np.isfinite(q) else float(q) for q in r]},
        "violations": violations,
        "capability": spc.capability(v, spec, limits.sigma_within) if spec else None,
        "by_shift": by_shift, "by_lot": by_lot,
    }


class SpcWatcher:
    """Watches every quality tag live and raises each new run-rule violation as an event.

    Limits come from the tag's first ``baseline_points`` measurements: those already in the
    historian when the tag was first watched (the most recent ones), else the first ones it sees.
    Learnt limits are kept in ``limits_file`` (by default ``data/spc_limits.json`` beside the plant
    file) and reloaded after a restart, so a drift in progress never becomes the baseline; delete a
    tag's entry (or the file) to learn its limits again.
    Live, the four Western Electric rules apply by default: Nelson's extra patterns (trends,
    alternation, stratification) are for the chart page, where an engineer looks for causes; as
    alarms they would mostly be nuisance.
    Every failure is counted (``errors``) and raised as a system event."""

    def __init__(self, service: Any, baseline_points: int = 50, poll_s: float = 2.0, rules: str = "western_electric",
                 history_ns: int = 24 * 3600 * NS, limits_file: str | os.PathLike | None = None) -> None:
        if baseline_points < spc.MIN_BASELINE_POINTS:
            raise ValueError(f"baseline_points must be >= {spc.MIN_BASELINE_POINTS}, got {baseline_points}")
        self.svc = service
        self.baseline_points = baseline_points
        self.poll_s = poll_s
        self.rules = rules
        self.history_ns = history_ns
        self.errors = 0
        self.last_error: str | None = None
        self.raised = 0
        self.tags: dict[str, dict[str, Any]] = {}
        if limits_file is None:
            base = getattr(getattr(service, "plant", None), "base_dir", None)
            limits_file = os.path.join(base, "data", "spc_limits.json") if isinstance(base, str) else None
        self.limits_file = None if limits_file is None else os.fspath(limits_file)
        self._saved: dict[str, dict[str, Any]] | None = None  # read on the first step (off the loop)
        self._unsaved = False
        self.save_failure: Exception | None = None

    def _load_saved(self) -> dict[str, dict[str, Any]]:
        if self.limits_file is None or not os.path.exists(self.limits_file):
            return {}
        try:
            with open(self.limits_file, encoding="utf-8") as f:
                data = json.load(f)
            if not isinstance(data, dict) or not isinstance(data.get("tags"), dict):
                raise ValueError("expected {\"tags\": {path: limits}}")
            return {p: d for p, d in data["tags"].items() if isinstance(d, dict)}
        except (OSError, ValueError) as e:
            raise RuntimeError(f"cannot read the learnt SPC limits in {self.limits_file}: {e}; fix or delete "
                               "the file (deleting it learns the limits again from recent measurements)") from e

    def _save(self) -> None:
        """Write the learnt limits (atomically); a failure is raised and retried at the next step."""
        if self.limits_file is None:
            self._unsaved = False
            return
        tags = dict(self._saved or {})
        tags.update({p: st["limits"].to_json() for p, st in self.tags.items() if st["limits"] is not None})
        os.makedirs(os.path.dirname(self.limits_file) or ".", exist_ok=True)
        tmp = self.limits_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"tags": tags}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.limits_file)
        self._saved = tags
        self._unsaved = False

    def status(self) -> dict[str, Any]:
        """Errors, violations raised and each tag's limits and points for health."""
        return {"errors": self.errors, "last_error": self.last_error, "raised": self.raised,
                "tags": {p: {"limits": s["limits"].to_json() if s["limits"] else None,
                             "points": s["count"], "baseline_needed": self.baseline_points}
                         for p, s in self.tags.items()}}

    def _init_tag(self, tag: dict[str, Any], now: int) -> dict[str, Any]:
        path = tag["path"]
        ts, v = _read(self.svc.historian, path, max(0, now - self.history_ns), now + 1, True)
        st: dict[str, Any] = {"tag": tag, "last_ts": int(ts[-1]) if len(ts) else now, "limits": None,
                              "base": [], "tail": deque(maxlen=20), "count": 0, "last_hit": {}}
        saved = (self._saved or {}).get(path)
        if saved is not None:
            try:
                st["limits"] = spc.Limits(**saved)
            except TypeError as e:
                raise RuntimeError(f"the learnt SPC limits of {path} in {self.limits_file} are damaged ({e}); "
                                   "delete the tag's entry to learn them again") from e
            v = v[-self.baseline_points:]
        elif len(v) >= self.baseline_points:
            v = v[-self.baseline_points:]
            st["limits"] = spc.fit_limits(v, "imr")
            self._unsaved = True
        else:
            st["base"] = v.tolist()
        st["tail"].extend(v[-20:].tolist())
        st["count"] = len(v)
        return st

    def step(self) -> list[Event]:
        """Read new measurements of every quality tag; the events to raise (blocking: call off the loop)."""
        if self._saved is None:
            self._saved = self._load_saved()
        plant = self.svc.plant_json()
        now = int(self.svc.now_ns())
        out: list[Event] = []
        self._watch(plant, now, out)
        self.save_failure = None
        if self._unsaved:
            try:
                self._save()
            except OSError as e:  # the events still go out; run() counts it, the next step retries
                self.save_failure = RuntimeError(f"cannot keep the learnt SPC limits in {self.limits_file}: {e}")
        return out

    def _watch(self, plant: dict, now: int, out: list[Event]) -> None:
        for tag in quality_tags(plant):
            path = tag["path"]
            st = self.tags.get(path)
            if st is None:
                st = self.tags[path] = self._init_tag(tag, now)
                continue
            ts, v = _read(self.svc.historian, path, st["last_ts"] + 1, now + 1, False)
            if not len(v):
                continue
            # drop a held repeat of the last value this watcher has seen
            prev = st["tail"][-1] if st["tail"] else None
            keep = np.concatenate(([v[0] != prev], v[1:] != v[:-1]))
            st["last_ts"] = int(ts[-1])
            ts, v = ts[keep], v[keep]
            if st["limits"] is None:
                st["base"].extend(v.tolist())
                st["tail"].extend(v.tolist())
                st["count"] += len(v)
                if len(st["base"]) >= self.baseline_points:
                    st["limits"] = spc.fit_limits(np.asarray(st["base"][: self.baseline_points]), "imr")
                    st["base"] = []
                    self._unsaved = True
                continue
            out.extend(self._check(st, ts, v))

    def _check(self, st: dict[str, Any], ts: np.ndarray, v: np.ndarray) -> list[Event]:
        lim: spc.Limits = st["limits"]
        tail = list(st["tail"])
        x = np.concatenate([np.asarray(tail, dtype=np.float64), v])
        first_new = len(tail)
        base_count = st["count"] - len(tail)  # global index of x[0]
        events = []
        for rule, hits in spc.rule_hits(x, lim.center, lim.sigma, self.rules).items():
            for i in hits.tolist():
                if i < first_new:
                    continue
                g = base_count + i
                last = st["last_hit"].get(rule, -2)
                st["last_hit"][rule] = g
                if g == last + 1:
                    continue  # the same pattern goes on
                tag = st["tag"]
                events.append(Event(
                    ts=int(ts[i - first_new]), end_ts=int(ts[i - first_new]), kind="alarm", source=tag["asset"],
                    code=f"spc.rule{rule}", severity="warning",
                    message=f"{tag['path']}: SPC rule {rule} ({spc.RULE_TEXT[rule]}), value {x[i]:.6g}",
                    data={"tag": tag["path"], "signal": tag.get("signal"), "rule": rule, "value": float(x[i]),
                          "center": lim.center, "ucl": lim.ucl, "lcl": lim.lcl, "sigma": lim.sigma,
                          "priority": "low", "rules": self.rules}))
        st["tail"].extend(v.tolist())
        st["count"] += len(v)
        return events

    async def run(self) -> None:
        """Check new readings of the quality tags against the SPC rules every few seconds."""
        from axline.service_events import FailureReporter, emit

        loop = asyncio.get_running_loop()

        async def step() -> None:
            for ev in await loop.run_in_executor(None, self.step):
                emit(self.svc, ev)
                self.raised += 1
            if self.save_failure is not None:
                raise self.save_failure

        failures = FailureReporter(self.svc, self, source="axline/spc", code="spc.error", log=log)
        await failures.run_forever(step, lambda: self.poll_s, "SPC watcher step failed")
