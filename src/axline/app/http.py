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
    """A request parameter is wrong; answered with HTTP 400 and ``{"error", "hint"}``."""

    def __init__(self, error: str, hint: str = "", status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint
        self.status = status


def error_response(error: str, hint: str = "", status: int = 400, headers: dict[str, str] | None = None):
    """A JSON error answer ``{"error", "hint"}`` with ``status``."""
    return json_response({"error": error, "hint": hint}, status=status, headers=headers)


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
        raise BadRequest(
            f"{name} must be an integer ({what}), got {raw[:40]!r}", f"for example {name}={sample}"
        ) from None
    if not lo <= value <= hi:
        raise BadRequest(
            f"{name} must be between {lo} and {hi} ({what}), got {value}", f"use {lo} <= {name} <= {hi}"
        )
    return value


def parse_tags(query: Any, name: str = "tags") -> list[str] | None:
    """Comma-separated tag paths; ``None`` when the parameter is absent."""
    raw = query.get(name)
    if raw is None or raw.strip() == "":
        return None
    tags = [t.strip() for t in raw.split(",") if t.strip()]
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"{name}: at most {MAX_TAGS} tags per request, got {len(tags)}", "split the request")
    for t in tags:
        if len(t) > 512 or any(ord(c) < 32 for c in t):
            raise BadRequest(
                f"{name}: {t[:60]!r} is not a tag path", "tags look like site/area/line/cell/asset/signal"
            )
    return list(dict.fromkeys(tags))
