"""Vision routes: operators name the defect type of a confirmed reject (the review loop teaches types).

``POST /api/events/{id}/defect-type`` with ``{"type": "crack", "names": {"en": "Crack", "ko": "균열"}}``
(names are needed the first time a type is used). Operator role; audited under the caller's name.
"""

from __future__ import annotations

from aiohttp import web

from axline.app.audit import audit
from axline.app.http import bad_request, json_response
from axline.app.ops_common import int_id, json_body, svc_of
from axline.app.roles import require_role
from axline.app.routes import OBJ, STR, document


def register(app: web.Application) -> None:
    """Add the vision routes to ``app``."""
    app.router.add_post("/api/events/{id}/defect-type", _defect_type)


async def _defect_type(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "operator")
    event_id = int_id(request)
    body = await json_body(request, '{"type": "crack", "names": {"en": "Crack", "ko": "균열"}}')
    type_id = body.get("type")
    names = body.get("names")
    if not isinstance(type_id, str) or not type_id:
        raise bad_request("err.defect_type_id")
    if names is not None and not (isinstance(names, dict) and all(isinstance(names.get(k), str) for k in ("en", "ko"))):
        raise bad_request("err.defect_type_names")
    svc = svc_of(request)
    try:
        result = await svc.label_defect_type(event_id, type_id, names, user.name)
    except KeyError:
        await audit(request, user, "event.defect_type", str(event_id), new=type_id, result="refused: no such event")
        raise bad_request("err.defect_type_no_event", 404, id=event_id) from None
    except ValueError as e:
        await audit(request, user, "event.defect_type", str(event_id), new=type_id, result=f"refused: {e}")
        raise bad_request("err.defect_type_refused", 409, reason=str(e)) from None
    await audit(request, user, "event.defect_type", str(event_id), new=type_id, detail=result.get("examples"))
    return json_response(result)


document("POST", "/api/events/{id}/defect-type", role="operator",
         summary="name the defect type of a confirmed reject (teaches the camera's model; audited)",
         body={"type": "object", "required": ["type"],
               "properties": {"type": STR, "names": OBJ}})
