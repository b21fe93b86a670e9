"""Setpoint optimiser routes: the advisor's proposals, their approval, and what-if runs on the twin.

``GET /optimize`` (page); ``GET /api/optimize`` (units, today's setpoints, proposals; viewer);
``POST /api/optimize/{unit}/propose`` (ask the advisor; engineer; the advisor is the proposer, the
caller is recorded as who asked); ``POST /api/optimize/{unit}/submit {"x": {tag: value}, "note"}``
(an engineer's own proposal, same safety gate; the caller is the proposer);
``POST /api/optimize/proposals/{id}/approve`` (approver, never the proposer) and ``.../reject
{"reason"}`` (approver); ``POST /api/optimize/{unit}/whatif {"x": {tag: value}, "hours"}`` (the
twin run ahead; engineer). Every step lands in the event log (kind ``optimize``) and every write in
the audit trail under the approver's name.

Units come from ``optimize.yaml`` beside the plant file when there is one (see
:func:`axline.optimize.spec.load_specs`), else from what the plant file describes
(:func:`axline.optimize.spec.default_specs`).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
from typing import Any

from aiohttp import web

from axline.app.http import SERVICE_KEY, BadRequest, bad_request, json_response
from axline.app.middleware import Handler
from axline.app.ops_common import int_id, json_body
from axline.app.ops_pages import ops_page
from axline.app.roles import require_role
from axline.app.routes import OBJ, STR, document
from axline.optimize.loop import OptimizeError, ServiceIO, UnitOptimizer, twin_pool
from axline.optimize.loop import jsonable as _clean
from axline.optimize.spec import SpecError, default_specs, load_specs
from axline.optimize.twin import furnace_twin_factory
from axline.plant import Plant

log = logging.getLogger(__name__)
OPT_KEY: web.AppKey[dict] = web.AppKey("optimizers", dict)
MAX_WHATIF_HOURS = 24.0


_X = {"type": "object", "description": "decision tag -> setpoint", "additionalProperties": {"type": "number"}}
document("GET", "/optimize", role="viewer", summary="the setpoint optimiser page", produces="text/html")
document("GET", "/api/optimize", role="viewer", summary="optimiser units, today's setpoints, proposals")
document("POST", "/api/optimize/{unit}/propose", role="engineer",
         summary="ask the advisor for the next setpoints (trials on the twin first)", body=OBJ)
document("POST", "/api/optimize/{unit}/submit", role="engineer", summary="propose setpoints of one's own",
         body={"type": "object", "required": ["x"], "properties": {"x": _X, "note": STR}})
document("POST", "/api/optimize/{unit}/whatif", role="engineer", summary="run the twin ahead with setpoints",
         body={"type": "object", "properties": {"x": _X, "hours": {"type": "number", "minimum": 0.1,
                                                                    "maximum": MAX_WHATIF_HOURS}}})
document("POST", "/api/optimize/proposals/{id}/approve", role="approver",
         summary="approve a proposal (never one's own): write, verify, keep or roll back", body=OBJ)
document("POST", "/api/optimize/proposals/{id}/reject", role="approver", summary="reject a proposal",
         body={"type": "object", "properties": {"reason": STR}})


def register(app: web.Application) -> None:
    """Add the setpoint page and its proposal, approval and what-if routes to ``app``."""
    r = app.router
    r.add_get("/optimize", ops_page("optimize"))
    r.add_get("/api/optimize", _list)
    r.add_post("/api/optimize/{unit}/propose", _propose)
    r.add_post("/api/optimize/{unit}/submit", _submit)
    r.add_post("/api/optimize/{unit}/whatif", _whatif)
    r.add_post("/api/optimize/proposals/{id}/approve", _approve)
    r.add_post("/api/optimize/proposals/{id}/reject", _reject)
    app[OPT_KEY] = {}
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)


def build_optimizers(service: Any) -> dict[str, UnitOptimizer]:
    """One optimiser per unit the plant declares; none when the service cannot write."""
    plant = getattr(service, "plant", None)
    if not isinstance(plant, Plant) or not hasattr(service, "write_tag"):
        return {}
    path = os.path.join(plant.base_dir, "optimize.yaml")
    specs = load_specs(path, plant) if os.path.exists(path) else default_specs(plant)
    ids = itertools.count(1)
    out = {}
    for spec in specs:
        decisions = {d.tag for d in spec.decisions}  # a write may echo back with the writer's clock
        io = ServiceIO(service, [t for t in spec.tags() if t not in decisions])
        twin = None
        if spec.twin == "virtual_furnace":
            ln = plant.line_of(spec.unit)
            totals = ln.kpi.get("parts_good", "").rsplit("/", 1)[0] if ln else ""
            twin = furnace_twin_factory(io, spec.unit, totals, takt_s=ln.takt_s if ln else 12.0,
                                        cycle_s=ln.ideal_cycle_s if ln else 10.0)
        out[spec.unit.rsplit("/", 1)[-1]] = UnitOptimizer(spec, io, twin, ids=ids,
                                                          executor=twin_pool() if twin is not None else None)
    return out


async def _start(app: web.Application) -> None:
    try:
        app[OPT_KEY].update(build_optimizers(app[SERVICE_KEY]))
    except SpecError as e:  # a bad optimize.yaml must not stop the dashboard; it is shown on the page
        log.error("optimiser not started: %s", e)
        app[OPT_KEY]["_error"] = str(e)


async def _stop(app: web.Application) -> None:
    for opt in app[OPT_KEY].values():
        if isinstance(opt, UnitOptimizer):
            for task in list(opt.tasks):
                task.cancel()


def _units(request: web.Request) -> dict[str, UnitOptimizer]:
    return {k: v for k, v in request.app[OPT_KEY].items() if isinstance(v, UnitOptimizer)}


def _unit(request: web.Request) -> UnitOptimizer:
    name = request.match_info["unit"]
    units = _units(request)
    if name not in units:
        raise bad_request("err.optimize.no_unit", 404, name=repr(name), units=sorted(units) or 'none configured')
    return units[name]


def _refused(e: OptimizeError) -> BadRequest:
    """The refusal in the catalog's words (Korean or English, by the reader)."""
    return bad_request(e.key, e.status, **e.params)


def _refusals_answered(handler: Handler) -> Handler:
    """``handler`` with an optimiser's refusal (``OptimizeError``) answered with its status and reason."""
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except OptimizeError as e:
            raise _refused(e) from None

    return wrapped


def _text(body: dict, name: str, key: str, **params: Any) -> str:
    """The optional text field ``name`` of ``body`` (empty when absent); catalog key ``key`` when it is not text."""
    value = body.get(name, "")
    if not isinstance(value, str):
        raise bad_request(key, **params)
    return value


def _x(body: dict, example: str) -> dict[str, float]:
    x = body.get("x")
    if not isinstance(x, dict) or not x:
        raise bad_request("err.optimize.bad_x", example=example)
    out = {}
    for k, v in x.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise bad_request("err.optimize.bad_setpoint", tag=k, value=repr(v), example=example)
        out[str(k)] = float(v)
    return out


def _find(request: web.Request, pid: int) -> UnitOptimizer:
    for opt in _units(request).values():
        if pid in opt.proposals:
            return opt
    raise bad_request("err.optimize.no_proposal", 404, pid=pid)


async def _list(request: web.Request) -> web.StreamResponse:
    require_role(request, "viewer")
    units = []
    for name, opt in _units(request).items():
        now = opt.x_now()
        units.append({
            "id": name, "spec": opt.spec.to_json(),
            "x": {d.tag: (float(v) if math.isfinite(v) else None) for d, v in zip(opt.spec.decisions, now, strict=True)},
            "observations": len(opt.surrogate.observations), "errors": opt.errors,
            "has_twin": opt.twin_factory is not None,
            "proposals": [p.to_json() for p in reversed(list(opt.proposals.values())[-50:])],
        })
    return json_response(_clean({"units": units, "error": request.app[OPT_KEY].get("_error")}))


@_refusals_answered
async def _propose(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "engineer")
    opt = _unit(request)
    p = await opt.propose("advisor", requested_by=user.name)
    return json_response(_clean(p if isinstance(p, dict) else {"proposal": p.to_json()}))


@_refusals_answered
async def _submit(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "engineer")
    opt = _unit(request)
    example = '{"x": {"<decision tag>": 840}, "note": "why"}'
    body = await json_body(request, example)
    note = _text(body, "note", "err.optimize.bad_note", example=example)
    p = await opt.submit(_x(body, example), proposer=user.name, note=note)
    return json_response(_clean({"proposal": p.to_json()}))


@_refusals_answered
async def _approve(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "approver")
    pid = int_id(request)
    opt = _find(request, pid)
    p = opt.approve(pid, user.name)
    return json_response(_clean({"proposal": p.to_json()}))


@_refusals_answered
async def _reject(request: web.Request) -> web.StreamResponse:
    user = require_role(request, "approver")
    pid = int_id(request)
    opt = _find(request, pid)
    body = await json_body(request, '{"reason": "why"}')
    reason = _text(body, "reason", "err.optimize.bad_reason")
    p = opt.reject(pid, user.name, reason)
    return json_response(_clean({"proposal": p.to_json()}))


@_refusals_answered
async def _whatif(request: web.Request) -> web.StreamResponse:
    require_role(request, "engineer")
    opt = _unit(request)
    example = '{"x": {"<decision tag>": 820}, "hours": 4}'
    body = await json_body(request, example)
    hours = body.get("hours", 4)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not (0.1 <= hours <= MAX_WHATIF_HOURS):
        raise bad_request("err.optimize.bad_hours", max=format(MAX_WHATIF_HOURS, "g"), example=example)
    out = await opt.what_if(_x(body, example) if body.get("x") else {}, float(hours))
    return json_response(_clean(out))
