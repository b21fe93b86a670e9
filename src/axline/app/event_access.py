"""Who may read which events: ``audit`` events (who did what to which case, alarm or export) are
for admins; everyone else reads the event log without them. Blocking (historian queries): call it
in a worker thread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ADMIN_ONLY_KINDS = ("audit",)
MAX_ROUNDS = 20  # pages read to fill one answer past admin-only events


def visible_events(historian: Any, *, admin: bool, start: int | None, end: int | None,
                   kinds: Sequence[str] | None, source_prefix: str | None, limit: int) -> list[Any]:
    """Events as ``historian.events`` returns them, less the admin-only kinds for non-admins."""
    if admin:
        return historian.events(start=start, end=end, kinds=kinds, source_prefix=source_prefix, limit=limit)
    if kinds is not None:
        kinds = [k for k in kinds if k not in ADMIN_ONLY_KINDS]
        if not kinds:
            return []
        return historian.events(start=start, end=end, kinds=kinds, source_prefix=source_prefix, limit=limit)
    out: list[Any] = []
    for _ in range(MAX_ROUNDS):
        page = historian.events(start=start, end=end, kinds=None, source_prefix=source_prefix, limit=limit)
        out.extend(e for e in page if e.kind not in ADMIN_ONLY_KINDS)
        if len(out) >= limit or len(page) < limit:
            break
        end = int(page[-1].ts)  # the next page: older than this one (timestamps are in nanoseconds)
    return out[:limit]


def visible_message(msg: dict, *, admin: bool) -> bool:
    """Whether a live-stream message may go to this caller: a new admin-only event only to admins."""
    if admin or msg.get("type") != "event":
        return True
    ev = msg.get("event")
    return not (isinstance(ev, dict) and ev.get("kind") in ADMIN_ONLY_KINDS)
