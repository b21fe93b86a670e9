"""The shift handover report: what the next shift needs to know, from the historian.

Per line and shift: OEE with its availability, performance and quality losses (in minutes of
lost production), the top downtime reasons (time per station and state), the alarms and what was
done about them (acknowledgements, notes, shelving), rejects by type, and the open items the next
shift inherits (alarms still active, unacknowledged or shelved). The report is built as a JSON
summary that is kept in the event log (kind ``report``), and rendered from there to HTML or PDF in
the plant's language.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from axline import i18n
from axline.alarms.lifecycle import alarm_json as alarm_view
from axline.alarms.lifecycle import designed_suppression
from axline.batch import Batch
from axline.historian.base import Event, Historian
from axline.kpi import STATE_NAMES, LineKpiTracker, current_shift
from axline.plant import Line, Shift

NS = 1_000_000_000
MAX_LISTED = 100  # alarms / open items listed in one report (counts cover them all)
DOWN_STATES = ("down", "changeover", "stopped", "microstop")  # idle (starved, blocked) is a speed loss


class ReportError(ValueError):
    """The report cannot be made as asked; the message says what to change."""


def _line(plant: dict, line_id: str) -> dict:
    for ln in plant.get("lines", []):
        if ln["id"] == line_id:
            return ln
    raise i18n.error(ReportError, "report.unknown_line", line=repr(line_id),
                     lines=", ".join(ln["id"] for ln in plant.get("lines", [])))


def _shifts(ln: dict) -> list[Shift]:
    return [Shift(s["name"], s["start"], float(s["hours"])) for s in ln.get("shifts") or []] or \
        [Shift("A", "00:00", 24.0)]


def shift_window(plant: dict, line_id: str, at_ns: int) -> tuple[str, int, int]:
    """(shift name, start, end) in ns of the shift of ``line_id`` that ``at_ns`` falls in."""
    ln = _line(plant, line_id)
    shifts = _shifts(ln)
    name, start = current_shift(at_ns, plant.get("timezone", "UTC"), shifts)
    hours = next((s.hours for s in shifts if s.name == name), 24.0)
    return name, start, start + int(hours * 3600 * NS)


def previous_shift_end(plant: dict, line_id: str, now_ns: int) -> tuple[str, int, int]:
    """The last shift of ``line_id`` that has ended by ``now_ns``."""
    name, start, end = shift_window(plant, line_id, now_ns)
    if end <= now_ns:
        return name, start, end
    return shift_window(plant, line_id, start - NS)  # a second before (times become float seconds)


def _kpis(historian: Historian, plant: dict, ln: dict, start: int, end: int) -> dict[str, Any]:
    kpi = ln.get("kpi") or {}
    if not kpi:
        return {"oee": None, "availability": None, "performance": None, "quality": None, "parts_total": 0,
                "parts_good": 0, "parts_rejected": 0, "losses_min": {}, "states_min": {}}
    line = Line(id=ln["id"], path=ln.get("path", ln["id"]), name=ln.get("name") or {}, takt_s=ln.get("takt_s", 0),
                ideal_cycle_s=float(ln.get("ideal_cycle_s") or ln.get("takt_s") or 1.0), shifts=_shifts(ln),
                assets=[], kpi=kpi)
    tracker = LineKpiTracker(line, plant.get("timezone", "UTC"))
    series = historian.query(list(kpi.values()), start, end)
    rows = [(p, int(t), float(v), int(q)) for p, s in series.items()
            for t, v, q in zip(s.ts.tolist(), s.value.tolist(), s.quality.tolist(), strict=True)]
    if rows:
        tracker.update(Batch.from_readings(rows))
    v = tracker.values()
    states = {STATE_NAMES.get(k, str(k)): d / NS / 60 for k, d in tracker.durations.items()}
    if tracker.state is not None and tracker.state_since is not None and tracker.t_last is not None:
        name = STATE_NAMES.get(tracker.state, str(tracker.state))
        states[name] = states.get(name, 0.0) + max(0, tracker.t_last - tracker.state_since) / NS / 60
    ideal = line.ideal_cycle_s
    losses = {
        "availability": max(0.0, (v.planned_s - v.run_s) / 60),
        "performance": max(0.0, (v.run_s - ideal * v.parts_total) / 60) if v.run_s else 0.0,
        "quality": ideal * v.parts_rejected / 60,
    }
    return {"oee": v.oee, "availability": v.availability, "performance": v.performance, "quality": v.quality,
            "parts_total": v.parts_total, "parts_good": v.parts_good, "parts_rejected": v.parts_rejected,
            "planned_min": v.planned_s / 60, "run_min": v.run_s / 60, "cycle_time_s": v.cycle_time_s,
            "energy_per_good_kwh": v.energy_per_good_kwh, "losses_min": losses, "states_min": states}


def _downtime(historian: Historian, ln: dict, start: int, end: int) -> list[dict[str, Any]]:
    """Minutes per station and non-running state, largest first."""
    out = []
    for a in ln.get("assets", []):
        path = f"{a['path']}/state"
        if not any(t.get("path") == path for t in a.get("tags", [])):
            continue
        s = historian.query([path], max(0, start - 24 * 3600 * NS), end).get(path)
        if s is None or not len(s):
            continue
        ts, val = np.asarray(s.ts), np.asarray(s.value)
        ok = np.isfinite(val) & (np.asarray(s.quality) < 2)
        ts, val = ts[ok], val[ok]
        if not len(ts):
            continue
        # the state in force at the shift start, then each change inside the shift
        i0 = max(0, int(np.searchsorted(ts, start, side="right")) - 1)
        ts, val = ts[i0:].copy(), val[i0:]
        ts[0] = max(ts[0], start)
        ends = np.append(ts[1:], end)
        dur = np.clip(ends - ts, 0, None)
        for code in np.unique(val).astype(int).tolist():
            name = STATE_NAMES.get(code, str(code))
            if name in DOWN_STATES:
                minutes = float(dur[val == code].sum()) / NS / 60
                stops = int(np.count_nonzero((val == code) & np.concatenate(([True], val[1:] != val[:-1]))))
                if minutes > 0:
                    out.append({"asset": a["path"], "asset_name": a.get("name"), "state": name,
                                "minutes": minutes, "stops": stops})
    out.sort(key=lambda r: -r["minutes"])
    return out[:10]


def _rejects(events: list[Event], quality: list[dict[str, Any]]) -> list[dict[str, Any]]:
    c: Counter[tuple[str, str]] = Counter()
    for e in events:
        if e.kind == "defect":
            c[(e.source, e.data.get("defect") or e.data.get("label") or e.code)] += 1
    out = [{"source": s, "type": t, "count": n} for (s, t), n in c.most_common()]
    out += [{"source": q["tag"], "type": "out_of_spec", "count": q["out_of_spec"]} for q in quality
            if q["out_of_spec"]]
    out.sort(key=lambda r: -r["count"])
    return out


def _quality(historian: Historian, plant: dict, ln: dict, start: int, end: int) -> list[dict[str, Any]]:
    from axline import spc

    out = []
    for a in ln.get("assets", []):
        for t in a.get("tags", []):
            if not t.get("spec"):
                continue
            s = historian.query([t["path"]], start, end).get(t["path"])
            if s is None or not len(s):
                continue
            _, v = spc.measurements(s.ts, s.value, s.quality)
            cap = spc.capability(v, t["spec"])
            out.append({"tag": t["path"], "name": t.get("name"), "unit": t.get("unit", ""), "spec": t["spec"],
                        "n": cap["n"], "mean": cap["mean"], "cpk": cap["cpk"], "out_of_spec": cap["out_of_spec"]})
    return out


def build_report(historian: Historian, plant: dict, line_id: str, start: int, end: int, now_ns: int,
                 shift_name: str = "", user: str | None = None) -> dict[str, Any]:
    """The report's content (JSON-able) for ``line_id`` over [start, end)."""
    if end <= start:
        raise i18n.error(ReportError, "report.shift_order")
    ln = _line(plant, line_id)
    prefix = ln.get("path", line_id)
    end_eff = min(end, now_ns + 1)
    events = historian.events(start=start, end=end_eff, source_prefix=prefix, limit=20_000)
    alarms = [e for e in events if e.kind == "alarm"]
    suppressed = designed_suppression(historian, alarms)
    views = [alarm_view(e, now_ns, suppressed.get(int(e.id))) for e in alarms]
    counted = [a for a in views if a["state"] != "suppressed"]
    # open items: alarms still needing someone, raised in this shift or before it
    older = historian.events(start=max(0, start - 7 * 24 * 3600 * NS), end=start, kinds=["alarm"],
                             source_prefix=prefix, limit=5000)
    older_sup = designed_suppression(historian, older)
    open_items = [a for a in views + [alarm_view(e, now_ns, older_sup.get(int(e.id))) for e in older]
                  if a["state"] in ("active", "returned", "shelved", "acknowledged") and a["state"] != "suppressed"]
    open_items.sort(key=lambda a: a["ts"])

    def brief(a: dict[str, Any]) -> dict[str, Any]:
        d = a.get("data") or {}
        return {"id": a["id"], "ts": a["ts"], "end_ts": a.get("end_ts"), "source": a["source"], "code": a["code"],
                "message": a["message"], "priority": a["priority"], "state": a["state"],
                "ack": d.get("ack"), "shelve": d.get("shelve"),
                "notes": [x for x in d.get("actions") or [] if x.get("action") == "note"][-5:],
                "data": {k: d[k] for k in ("top", "signal", "tag", "rule", "value", "score") if k in d}}

    quality = _quality(historian, plant, ln, start, end_eff)
    by_prio = Counter(a["priority"] for a in counted)
    acked = sum(1 for a in counted if (a.get("data") or {}).get("ack"))
    return {
        "line": line_id, "line_name": ln.get("name"), "plant_name": plant.get("name"), "shift": shift_name,
        "from": start, "to": end, "generated": now_ns, "complete": end <= now_ns, "user": user,
        "timezone": plant.get("timezone", "UTC"),
        "kpi": _kpis(historian, plant, ln, start, end_eff),
        "downtime": _downtime(historian, ln, start, end_eff),
        "alarms": {"total": len(counted), "suppressed": len(views) - len(counted), "acknowledged": acked,
                   "by_priority": dict(by_prio), "items": [brief(a) for a in counted[:MAX_LISTED]]},
        "rejects": _rejects(events, quality),
        "quality": quality,
        "open_items": [brief(a) for a in open_items[:MAX_LISTED]],
        "open_total": len(open_items),
        "names": _names(ln),
    }


def _names(ln: dict) -> dict[str, Any]:
    """Display names of the line's assets and tags, so the stored report renders on its own."""
    out: dict[str, Any] = {}
    for a in ln.get("assets", []):
        out[a["path"]] = a.get("name") or {"en": a.get("id", a["path"])}
        for t in a.get("tags", []):
            out[t["path"]] = t.get("name") or {"en": t.get("signal", t["path"])}
    return out


def report_event(report: dict[str, Any], source: str) -> Event:
    """The event that keeps the report in the event log."""
    k = report["kpi"]
    oee = "n/a" if k.get("oee") is None else f"{100 * k['oee']:.1f}%"
    return Event(ts=report["generated"], kind="report", source=source, code="report.shift", severity="info",
                 message=f"shift report {report['line']} {report['shift']}: OEE {oee}, "
                         f"{report['alarms']['total']} alarms, {report['open_total']} open items",
                 data={"report": report, "line": report["line"], "shift": report["shift"],
                       "from": report["from"], "to": report["to"], "user": report.get("user")})


def local_day(ts_ns: int, tz: str) -> str:
    """The plant-local date ("YYYY-MM-DD") of ``ts_ns`` in time zone ``tz``."""
    return datetime.fromtimestamp(ts_ns / NS, tz=ZoneInfo(tz)).strftime("%Y-%m-%d")


def shift_ends_between(plant: dict, line_id: str, t0: int, t1: int) -> list[tuple[str, int, int]]:
    """Shifts of ``line_id`` that ended in (t0, t1], oldest first (at most a week's worth)."""
    out = []
    t = t1
    for _ in range(7 * 24):
        name, start, end = previous_shift_end(plant, line_id, t)
        if end <= t0:
            break
        out.append((name, start, end))
        t = start - NS
    return out[::-1]
