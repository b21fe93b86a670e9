"""The live stream of the web app: ``GET /api/stream`` sends the service's updates as Server-Sent Events
(event name = message type), with keep-alives, and ends every stream when the app shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

from axline.app.event_access import visible_message
from axline.app.http import SERVICE_KEY, dumps_json
from axline.app.roles import require_role
from axline.app.security import SECURITY_KEY

KEEPALIVE_S = 15.0
STREAM_POLL_S = 1.0  # how often a stream checks whether its client went away

STREAMS_KEY: web.AppKey[Any] = web.AppKey("streams", object)
STOPPING_KEY: web.AppKey[Any] = web.AppKey("stopping", object)


def sse_message(msg: dict) -> bytes:
    """One Server-Sent Event: the message type as event name, the message as JSON data."""
    kind = str(msg.get("type", "message")).replace("\n", " ")
    return f"event: {kind}\ndata: {dumps_json(msg)}\n\n".encode()


async def live_stream(request: web.Request) -> web.StreamResponse:
    """``GET /api/stream``: live updates as Server-Sent Events, within the caller's stream slots."""
    svc = request.app[SERVICE_KEY]
    app = request.app
    user = require_role(request, "viewer")
    with app[SECURITY_KEY].stream_slot(user, request.remote or ""):
        return await stream_for(request, svc, app, admin=user.has("admin"))


async def stream_for(request: web.Request, svc: Any, app: web.Application,
                     admin: bool = False) -> web.StreamResponse:
    """Send ``svc``'s live messages to ``request`` until the client goes or the app stops (audit events: admins)."""
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",
        }
    )
    queue = svc.subscribe()
    app[STREAMS_KEY].add(resp)
    stopping: asyncio.Event = app[STOPPING_KEY]
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 3000\n\n")
        last_write = time.monotonic()
        while not stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            try:
                msg = await asyncio.wait_for(queue.get(), timeout=STREAM_POLL_S)
            except TimeoutError:
                if time.monotonic() - last_write >= KEEPALIVE_S:
                    await resp.write(b": keep-alive\n\n")
                    last_write = time.monotonic()
                continue
            msgs = [msg]
            while not queue.empty() and len(msgs) < 500:
                msgs.append(queue.get_nowait())
            chunks = [sse_message(m) for m in msgs if visible_message(m, admin=admin)]  # audit events: admins
            if not chunks:
                continue
            await resp.write(b"".join(chunks))
            last_write = time.monotonic()
    except ConnectionError:
        pass  # the client went away
    finally:
        app[STREAMS_KEY].discard(resp)
        svc.unsubscribe(queue)
    return resp


async def close_streams(app: web.Application) -> None:
    """End live streams so that the server can stop without waiting for clients (``on_shutdown``)."""
    app[STOPPING_KEY].set()
    for resp in list(app[STREAMS_KEY]):
        with contextlib.suppress(Exception):
            await resp.write_eof()
