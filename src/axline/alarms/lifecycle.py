"""Alarm life cycle in the manner of ISA-18.2 / IEC 62682.

An alarm is an event of kind ``alarm`` in the historian's event log. Its life cycle lives on the
event itself: ``end_ts`` is set when the process returns to normal, ``ack`` becomes
``"acknowledged"`` when an operator acknowledges it, and the operator's actions are kept under
``data["ack"]``, ``data["shelve"]`` and ``data["actions"]``. The state is derived, never stored, so
it is the same for every reader:

==================  =====================================================================
``suppressed``      raised while its asset was in a state where the alarm is meaningless by
                    design (changeover, stopped): logged, not shown to the operator, not counted
``shelved``         an operator put it aside until ``data["shelve"]["until"]``, with a reason
``active``          the condition is present and nobody has acknowledged it
``acknowledged``    the condition is present and an operator has acknowledged it
``returned``        the condition has gone but nobody acknowledged it (RTN unacknowledged)
``cleared``         the condition has gone and it was acknowledged: nothing left to do
==================  =====================================================================

Priorities follow the usual three levels (``high``, ``medium``, ``low``); an event may carry its own
``data["priority"]``, otherwise it is derived from its severity and code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from axline import i18n
from axline.historian.base import Event, Historian

NS = 1_000_000_000
STATES = ("active", "acknowledged", "returned", "shelved", "suppressed", "cleared")
PRIORITIES = ("high", "medium", "low")
# asset states (the line's state codes, see axline.kpi) in which alarms are suppressed by design
SUPPRESS_STATES = {0: "stopped", 4: "changeover"}
STATE_LOOKBACK_NS = 24 * 3600 * NS  # how far back a state reading may hold at an alarm's time
MAX_SHELVE_S = 24 * 3600  # an alarm is shelved at most a day; longer is "out of service", not shelving
MAX_NOTE = 500
MAX_ACTIONS = 50  # actions kept on one alarm (the audit events keep them all)


class AlarmActionError(ValueError):
    """An alarm action cannot be done (wrong state, bad argument); the message says what to do."""


def priority_of(event: Event) -> str:
    """The alarm's priority: ``data["priority"]`` if it is one of PRIORITIES, else from severity/code."""
    p = event.data.get("priority") if isinstance(event.data, dict) else None
    if p in PRIORITIES:
        return p
    if event.code.startswith("spc."):
        return "low"
    if event.severity == "alarm":
        return "high"
    if event.severity == "warning":
        return "medium"
    return "low"


def shelved_until(event: Event) -> int | None:
    """End of the alarm's shelving (ns) while a shelve is in force, else None."""
    sh = event.data.get("shelve") if isinstance(event.data, dict) else None
    if not isinstance(sh, dict) or sh.get("cleared_ts") is not None:
        return None
    until = sh.get("until")
    return int(until) if isinstance(until, int | float) else None


def alarm_state(event: Event, now_ns: int, suppressed: str | None = None) -> str:
    """The alarm's life-cycle state at ``now_ns`` (one of STATES)."""
    if suppressed:
        return "suppressed"
    until = shelved_until(event)
    if until is not None and now_ns < until:
        return "shelved"
    acked = event.ack == "acknowledged"
    if event.end_ts is None or event.end_ts > now_ns:
        return "acknowledged" if acked else "active"
    return "cleared" if acked else "returned"


def designed_suppression(historian: Historian, alarms: Sequence[Event]) -> dict[int, str]:
    """Alarm id -> reason, for alarms raised while their asset was stopped or in changeover.

    The asset's ``state`` tag (``<asset path>/state``) is read from the historian around the alarms'
    times; the last state reading at or before an alarm's time decides."""
    by_asset: dict[str, list[Event]] = {}
    for e in alarms:
        if e.id is not None:
            by_asset.setdefault(e.source, []).append(e)
    out: dict[int, str] = {}
    for asset, evs in by_asset.items():
        path = f"{asset}/state"
        t0 = min(e.ts for e in evs) - STATE_LOOKBACK_NS
        t1 = max(e.ts for e in evs) + 1
        s = historian.query([path], max(0, t0), t1).get(path)
        if s is None or len(s) == 0:
            continue
        ok = (np.asarray(s.quality) < 2) & np.isfinite(s.value)
        ts, vals = np.asarray(s.ts)[ok], np.asarray(s.value)[ok]
        if not len(ts):
            continue
        for e in evs:
            i = int(np.searchsorted(ts, e.ts, side="right")) - 1
            if i >= 0:
                reason = SUPPRESS_STATES.get(int(vals[i]))
                if reason:
                    out[int(e.id)] = reason
    return out


def load_alarms(historian: Historian, now_ns: int, since: int | None = None, until: int | None = None,
                line_prefix: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Alarms raised in [since, until) (newest first) as :func:`alarm_json` dicts at ``now_ns``, with
    suppression by design worked out."""
    events = historian.events(start=since, end=until, kinds=["alarm"], source_prefix=line_prefix, limit=limit)
    suppressed = designed_suppression(historian, events)
    return [alarm_json(e, now_ns, suppressed.get(int(e.id))) for e in events]


def alarm_json(event: Event, now_ns: int, suppressed: str | None = None) -> dict[str, Any]:
    """The alarm as the API shows it: the event plus ``state``, ``priority``, ``line`` and timing."""
    out = event.to_json()
    out["state"] = alarm_state(event, now_ns, suppressed)
    out["priority"] = priority_of(event)
    out["suppressed"] = suppressed
    out["shelved_until"] = shelved_until(event)
    end = event.end_ts if event.end_ts is not None and event.end_ts <= now_ns else now_ns
    out["duration_s"] = max(0, end - event.ts) / NS
    return out


# -- operator actions -----------------------------------------------------------------------------
def _clean_text(value: Any, name: str, required: bool, example: str) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise i18n.error(AlarmActionError, "alarm.text_type", name=name, type=type(value).__name__, example=example)
    value = value.strip()
    if len(value) > MAX_NOTE:
        raise i18n.error(AlarmActionError, "alarm.text_long", name=name, n=len(value), max=MAX_NOTE)
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise i18n.error(AlarmActionError, "alarm.text_control", name=name)
    if required and not value:
        raise i18n.error(AlarmActionError, "alarm.text_required", name=name, example=example)
    return value


def _with_action(event: Event, action: dict[str, Any]) -> list[dict[str, Any]]:
    actions = list(event.data.get("actions") or []) if isinstance(event.data, dict) else []
    actions.append(action)
    return actions[-MAX_ACTIONS:]


def acknowledge(event: Event, user: str, now_ns: int, note: Any = None, case_id: Any = None) -> dict[str, Any]:
    """The event update that acknowledges ``event``: ``{"ack": ..., "data": {...}}``.

    ``note`` is free text (what was done); ``case_id`` links a know-how case when one exists."""
    if event.kind != "alarm":
        raise i18n.error(AlarmActionError, "alarm.not_alarm_ack", id=event.id, kind=event.kind)
    if event.ack == "acknowledged":
        raise i18n.error(AlarmActionError, "alarm.already_acked", id=event.id,
                         user=(event.data.get("ack") or {}).get("user", "?"))
    text = _clean_text(note, "note", False, '{"note": "reset the coolant pump"}')
    if case_id is not None and (isinstance(case_id, bool) or not isinstance(case_id, int | str)):
        raise i18n.error(AlarmActionError, "alarm.bad_case_id")
    ack = {"user": user, "ts": now_ns, "note": text}
    if case_id is not None:
        ack["case_id"] = case_id
    action = {"action": "acknowledge", **ack}
    return {"ack": "acknowledged", "data": {"ack": ack, "actions": _with_action(event, action)}}


def add_note(event: Event, user: str, now_ns: int, note: Any) -> dict[str, Any]:
    """The event update that adds a note (what was done) to an alarm."""
    if event.kind != "alarm":
        raise i18n.error(AlarmActionError, "alarm.not_alarm", id=event.id, kind=event.kind)
    text = _clean_text(note, "note", True, '{"note": "changed the filter"}')
    action = {"action": "note", "user": user, "ts": now_ns, "note": text}
    return {"data": {"actions": _with_action(event, action)}}


def shelve(event: Event, user: str, now_ns: int, minutes: Any, reason: Any) -> dict[str, Any]:
    """The event update that shelves ``event`` for ``minutes`` with a ``reason``."""
    if event.kind != "alarm":
        raise i18n.error(AlarmActionError, "alarm.not_alarm_shelve", id=event.id, kind=event.kind)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not np.isfinite(minutes):
        raise i18n.error(AlarmActionError, "alarm.minutes_type", minutes=repr(minutes), example='{"minutes": 30}')
    if not 1 <= minutes <= MAX_SHELVE_S / 60:
        raise i18n.error(AlarmActionError, "alarm.minutes_range", max=MAX_SHELVE_S // 60, minutes=f"{minutes:g}")
    why = _clean_text(reason, "reason", True, '{"reason": "sensor being replaced"}')
    until = now_ns + int(minutes * 60 * NS)
    sh = {"user": user, "ts": now_ns, "until": until, "reason": why, "minutes": minutes}
    action = {"action": "shelve", **sh}
    return {"data": {"shelve": sh, "actions": _with_action(event, action)}}


def unshelve(event: Event, user: str, now_ns: int) -> dict[str, Any]:
    """The event update that ends ``event``'s shelving now."""
    if shelved_until(event) is None or shelved_until(event) <= now_ns:
        raise i18n.error(AlarmActionError, "alarm.not_shelved", id=event.id)
    sh = dict(event.data["shelve"], cleared_ts=now_ns, cleared_by=user)
    action = {"action": "unshelve", "user": user, "ts": now_ns}
    return {"data": {"shelve": sh, "actions": _with_action(event, action)}}


def audit_event(event: Event, action: str, user: str, now_ns: int, detail: dict[str, Any]) -> Event:
    """The audit record of an operator's action on an alarm (kind ``audit``)."""
    return Event(ts=now_ns, kind="audit", source=event.source, code=f"alarm.{action}", severity="info",
                 message=f"{user}: {action} alarm {event.id} ({event.code})",
                 data={"user": user, "alarm_id": event.id, "alarm_code": event.code, **detail})


def filter_states(items: Iterable[dict[str, Any]], states: Sequence[str] | None) -> list[dict[str, Any]]:
    """The alarms of ``items`` in one of ``states`` (all when ``states`` is empty)."""
    return [a for a in items if not states or a["state"] in states]
