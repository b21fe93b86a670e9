"""Events written through the running service, so that live pages hear of them at once; without a
service (tests, tools) they go straight into the historian. Used by the web routes and by the
background keepers (SPC, shift reports) alike."""

from __future__ import annotations

from typing import Any

from axline.historian.base import Event


def emit(svc: Any, event: Event) -> int:
    """Store ``event`` through the service (live pages hear of it) or straight in the historian."""
    if hasattr(svc, "emit_event"):
        return int(svc.emit_event(event))
    return int(svc.historian.add_event(event))


def update(svc: Any, event_id: int, **fields: Any) -> None:
    if hasattr(svc, "update_event"):
        svc.update_event(event_id, **fields)
    else:
        svc.historian.update_event(event_id, **fields)
