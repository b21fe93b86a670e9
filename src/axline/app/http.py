"""HTTP helpers shared by the web server and its route modules: JSON answers, request errors,
query-parameter parsing and the application keys. Route modules import these from here, never from
``server.py``, which registers them (so no module imports back the one that imports it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from axline import i18n

STATIC_DIR = Path(__file__).with_name("static")
NS_MAX = 2**63 - 1
MAX_TAGS = 500
SERVICE_KEY: web.AppKey[Any] = web.AppKey("service", object)


# -- JSON ---------------------------------------------------------------------------------------
def to_jsonable(obj: Any) -> Any:
    """Plain JSON types from dicts, lists, NumPy values; NaN and infinities become ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str | bool | int):
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if hasattr(obj, "to_json"):
        return to_jsonable(obj.to_json())
    return str(obj)


def dumps_json(obj: Any) -> str:
    """Valid JSON (never ``NaN``), UTF-8 text kept as is."""
    return json.dumps(to_jsonable(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer (UTF-8, never ``NaN``)."""
    return web.Response(
        text=dumps_json(obj), status=status, content_type="application/json", charset="utf-8", headers=headers
    )


class BadRequest(Exception):
    """A request parameter is wrong; answered with HTTP 400 (or ``status``) and ``{"error", "hint"}``.
    Made by :func:`bad_request` its texts come from the catalog: ``key`` and ``params`` travel along as
    ``code`` and ``params`` so that the browser shows them in its language."""

    def __init__(self, error: str, hint: str = "", status: int = 400, key: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint
        self.status = status
        self.key = key
        self.params = params or {}


def error_body(key: str, /, **params: Any) -> dict[str, Any]:
    """``{"error", "hint", "code", "params"}`` for catalog key ``key``: English texts (the API's language),
    the key and the placeholder values the browser fills into its own language's text."""
    hint = i18n.text(key + ".hint", "en", **params) if i18n.has(key + ".hint") else ""
    return {"error": i18n.text(key, "en", **params), "hint": hint, "code": key,
            "params": {k: v if isinstance(v, int | float | bool) or v is None else str(v) for k, v in params.items()}}


def bad_request(key: str, status: int = 400, /, **params: Any) -> BadRequest:
    """A :class:`BadRequest` with its error (``key``) and hint (``key + ".hint"``) from the catalog."""
    body = error_body(key, **params)
    return BadRequest(body["error"], body["hint"], status, key=key, params=body["params"])


def bad_request_from(exc: BaseException, key: str, status: int = 400) -> BadRequest:
    """The answer to ``exc``: in its own catalog text when it carries one (``i18n.error``), else ``key`` with
    the exception's text as ``{error}``."""
    own = getattr(exc, "key", None)
    if isinstance(own, str) and i18n.has(own):
        return bad_request(own, status, **getattr(exc, "params", {}))
    return bad_request(key, status, error=str(exc).strip("'\""))


def error_response(error: str, hint: str = "", status: int = 400, headers: dict[str, str] | None = None,
                   key: str | None = None, params: dict[str, Any] | None = None) -> web.Response:
    """A JSON error answer ``{"error", "hint"}`` with ``status`` (and ``code``, ``params`` when keyed)."""
    body: dict[str, Any] = {"error": error, "hint": hint}
    if key:
        body.update(code=key, params=params or {})
    return json_response(body, status=status, headers=headers)


def keyed_error(key: str, status: int = 400, /, headers: dict[str, str] | None = None, **params: Any) -> web.Response:
    """A JSON error answer with texts from the catalog (see :func:`error_body`)."""
    return json_response(error_body(key, **params), status=status, headers=headers)


async def json_object(request: web.Request, example: str, *, empty_ok: bool = False,
                      not_json_status: int = 400) -> dict:
    """The request's JSON object, or a 4xx that shows what to send (``example``); with ``empty_ok`` an
    empty body counts as ``{}``; a body that is not sent as JSON answers ``not_json_status``."""
    if empty_ok and not request.can_read_body:
        return {}
    if request.content_type != "application/json":
        raise bad_request("err.body_not_json", not_json_status, example=example)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise bad_request("err.body_invalid_json", example=example) from None
    if not isinstance(body, dict):
        raise bad_request("err.body_not_object", example=example)
    return body


# -- parameter parsing --------------------------------------------------------------------------
def parse_int_param(
    query: Any, name: str, default: int | None, lo: int, hi: int, what: str, example: int | None = None
) -> int | None:
    """Integer query parameter ``name`` within ``lo..hi``; ``default`` when absent."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        sample = example if example is not None else max(lo, min(hi, 100))
        raise bad_request("err.param.not_integer", name=name, what=what, raw=repr(raw[:40]), sample=sample) from None
    if not lo <= value <= hi:
        raise bad_request("err.param.range", name=name, lo=lo, hi=hi, what=what, value=value)
    return value


def parse_tags(query: Any, name: str = "tags") -> list[str] | None:
    """Comma-separated tag paths; ``None`` when the parameter is absent."""
    raw = query.get(name)
    if raw is None or raw.strip() == "":
        return None
    tags = [t.strip() for t in raw.split(",") if t.strip()]
    if len(tags) > MAX_TAGS:
        raise bad_request("err.param.too_many_tags", name=name, max=MAX_TAGS, n=len(tags))
    for t in tags:
        if len(t) > 512 or any(ord(c) < 32 for c in t):
            raise bad_request("err.param.bad_tag", name=name, tag=repr(t[:60]))
    return list(dict.fromkeys(tags))
