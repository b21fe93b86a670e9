"""The operations pages and their API, registered on the app by ``create_app`` with one call.

Alarms (life cycle and performance), the history explorer with CSV / Excel export, quality
(SPC) charts and the shift handover report; each lives in its own route module."""

from __future__ import annotations

from aiohttp import web


def register(app: web.Application) -> None:
    from axline.app import alarm_routes

    alarm_routes.register(app)
