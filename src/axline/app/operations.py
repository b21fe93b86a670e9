"""The operations pages and their API, registered on the app by ``create_app`` with one call.

Alarms (life cycle and performance), the history explorer with CSV / Excel export, quality
(SPC) charts and the shift handover report; each lives in its own route module."""

from __future__ import annotations

from aiohttp import web


def register(app: web.Application) -> None:
    """Add the operations pages and routes (alarms, history, quality, reports) to ``app``."""
    from axline.app import alarm_routes, history_routes, quality_routes, report_routes

    alarm_routes.register(app)
    history_routes.register(app)
    quality_routes.register(app)
    report_routes.register(app)
