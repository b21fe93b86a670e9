"""What an event may hold, checked in one place for every backend (SQLite and PostgreSQL).

Each backend stores events its own way (``sqlite_events.py``, ``pg_events.py``) but validates
them here, so both refuse the same input with the same message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from axline.historian.base import Event

EVENT_SEVERITIES = ("info", "warning", "alarm")
EVENT_ACKS = (None, "confirmed", "overruled", "acknowledged")
EVENT_UPDATABLE = ("end_ts", "ack", "severity", "data", "message")
EVENT_COLUMNS = "id, ts, end_ts, kind, source, code, message, severity, data, ack"


def check_severity(severity: Any) -> None:
    """Refuse a severity that is not one of ``EVENT_SEVERITIES``."""
    if severity not in EVENT_SEVERITIES:
        raise ValueError(f"event severity {severity!r} is not known (allowed: {', '.join(EVENT_SEVERITIES)})")


def check_ack(ack: Any) -> None:
    """Refuse an operator feedback value that is not one of ``EVENT_ACKS``."""
    if ack not in EVENT_ACKS:
        raise ValueError(
            f"event ack {ack!r} is not known (allowed: None, {', '.join(a for a in EVENT_ACKS if a)})"
        )


def dump_data(data: Any) -> str:
    """An event's ``data`` dict as JSON text (NumPy numbers and arrays allowed; NaN refused)."""
    if not isinstance(data, dict):
        raise ValueError(f"event data must be a dict, got {type(data).__name__}")
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"event data cannot be stored as JSON ({e}); use str, numbers, lists and dicts"
        ) from e


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def as_int(name: str, value: Any) -> int:
    """``value`` as a Python int; a bool, float or anything else raises TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer (ns since the epoch, UTC), got {value!r}")
    return int(value)


def checked_event(event: Event) -> tuple[int, int | None, str]:
    """Validate an event for storage; returns (ts, end_ts, data as JSON)."""
    if not isinstance(event, Event):
        raise TypeError(f"add_event expects an axline.historian.Event, got {type(event).__name__}")
    ts = as_int("event.ts", event.ts)
    end_ts = None if event.end_ts is None else as_int("event.end_ts", event.end_ts)
    check_severity(event.severity)
    check_ack(event.ack)
    for name in ("kind", "source", "code"):
        v = getattr(event, name)
        if not isinstance(v, str) or not v:
            raise ValueError(f"event.{name} must be a non-empty string, got {v!r}")
    return ts, end_ts, dump_data(event.data)


def checked_update(event_id: Any, fields: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any] | None]:
    """Validate ``update_event`` arguments; returns (event id, columns to set, data keys to merge or None)."""
    event_id = as_int("event_id", event_id)
    unknown = sorted(set(fields) - set(EVENT_UPDATABLE))
    if unknown:
        raise ValueError(
            f"update_event: cannot change {', '.join(unknown)} (allowed: {', '.join(EVENT_UPDATABLE)})"
        )
    sets: dict[str, Any] = {}
    if "end_ts" in fields:
        sets["end_ts"] = None if fields["end_ts"] is None else as_int("end_ts", fields["end_ts"])
    if "ack" in fields:
        check_ack(fields["ack"])
        sets["ack"] = fields["ack"]
    if "severity" in fields:
        check_severity(fields["severity"])
        sets["severity"] = fields["severity"]
    if "message" in fields:
        if not isinstance(fields["message"], str):
            raise ValueError(f"update_event message must be a string, got {fields['message']!r}")
        sets["message"] = fields["message"]
    merge = None
    if "data" in fields:
        if not isinstance(fields["data"], dict):
            raise ValueError(
                f"update_event data must be a dict of keys to merge, got {type(fields['data']).__name__}"
            )
        merge = fields["data"]
    return event_id, sets, merge


def check_events_query(limit: Any, kinds: Any) -> list[str] | None:
    """Validate ``events()`` arguments; returns ``kinds`` as a list."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"events limit must be an integer >= 1, got {limit!r}")
    if isinstance(kinds, str):
        raise TypeError("events(kinds=...): pass a list of kinds, e.g. ['alarm'], not a single string")
    return None if kinds is None else list(kinds)


def stored_id(event_id: Any) -> int | None:
    """``event_id`` as an int when it can name a stored event, else None (TypeError when not an integer)."""
    event_id = as_int("event_id", event_id)
    return event_id if 0 < event_id < 2**63 else None


Clause = Callable[[Any], tuple[str, list[Any]]]


def events_query(select: str, p: str, kinds_in: Clause, starts_with: Clause, start: Any, end: Any,
                 kinds: Any, source_prefix: Any, limit: Any) -> tuple[str, list[Any]] | None:
    """The query of ``events()`` on every backend, checked here: ``select`` (columns and table) with
    start <= ts < end, the kind among ``kinds`` and the source starting with ``source_prefix``, newest
    first (ties: newest id first), at most ``limit``. ``p`` is the backend's placeholder; ``kinds_in``
    and ``starts_with`` give its clause and arguments for the kinds and the prefix. None when ``kinds``
    is empty: nothing matches."""
    kinds = check_events_query(limit, kinds)
    where: list[str] = []
    args: list[Any] = []
    if start is not None:
        where.append(f"ts >= {p}")
        args.append(as_int("start", start))
    if end is not None:
        where.append(f"ts < {p}")
        args.append(as_int("end", end))
    clauses = []
    if kinds is not None:
        if not kinds:
            return None
        clauses.append(kinds_in(kinds))
    if source_prefix:
        clauses.append(starts_with(source_prefix))
    for text, more in clauses:
        where.append(text)
        args.extend(more)
    if where:
        select += " WHERE " + " AND ".join(where)
    args.append(limit)
    return select + f" ORDER BY ts DESC, id DESC LIMIT {p}", args


def event_from_row(row: Sequence[Any]) -> Event:
    """An Event from a row of ``EVENT_COLUMNS`` (data as JSON text)."""
    i, ts, end_ts, kind, source, code, message, severity, data, ack = row
    return Event(ts=int(ts), kind=kind, source=source, code=code, message=message, severity=severity,
                 data=json.loads(data), id=int(i), end_ts=None if end_ts is None else int(end_ts), ack=ack)
