"""The PostgreSQL historian's event log (table ``events``, data as jsonb).

Validation is shared with the embedded historian's SQLite event log (``events.py``). Part of
:class:`~axline.historian.postgres.PostgresHistorian`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from axline.historian.base import Event
from axline.historian.events import (
    checked_event,
    checked_update,
    dump_data,
    event_from_row,
    events_query,
    stored_id,
)


class PgEvents:
    """Events in PostgreSQL (a part of ``PostgresHistorian``; uses its connections)."""

    def add_event(self, event: Event) -> int:
        """Store an event; return its id (also set on ``event.id``)."""
        ts, end_ts, data = checked_event(event)

        def run(conn: psycopg.Connection) -> int:
            with conn.cursor() as cur:
                cur.execute(
                    self._q(
                        "INSERT INTO {s}.events (ts, end_ts, kind, source, code, message, severity, data, ack) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s) RETURNING id"
                    ),
                    (
                        ts,
                        end_ts,
                        event.kind,
                        event.source,
                        event.code,
                        event.message or "",
                        event.severity,
                        data,
                        event.ack,
                    ),
                )
                return int(cur.fetchone()[0])

        event.id = self._write("storing an event", run)
        return event.id


    def update_event(self, event_id: int, **fields: Any) -> None:
        """Set ``end_ts``, ``ack``, ``severity``, ``message``; ``data`` keys are merged into the stored data."""
        event_id, sets, merge = checked_update(event_id, fields)
        parts: list[sql.Composable] = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in sets]
        args: list[Any] = list(sets.values())
        if merge is not None:
            parts.append(sql.SQL("data = data || %s::jsonb"))
            args.append(dump_data(merge))
        set_sql = sql.SQL(", ").join(parts) if parts else sql.SQL("id = id")

        def run(conn: psycopg.Connection) -> None:
            with conn.cursor() as cur:
                cur.execute(
                    self._q("UPDATE {s}.events SET {sets} WHERE id = %s", sets=set_sql),
                    (*args, event_id),
                )
                if cur.rowcount == 0:
                    raise KeyError(f"update_event: no event with id {event_id}")

        self._write("updating an event", run)

    def event(self, event_id: int) -> Event | None:
        """The stored event ``event_id``, or None."""
        event_id = stored_id(event_id)
        if event_id is None:
            return None

        def run(cur: psycopg.Cursor) -> tuple | None:
            cur.execute(self._q("SELECT id, ts, end_ts, kind, source, code, message, severity, data::text, ack "
                                "FROM {s}.events WHERE id = %s"), (event_id,))
            return cur.fetchone()

        row = self._read(run)
        return None if row is None else event_from_row(row)

    def events(
        self,
        start: int | None = None,
        end: int | None = None,
        kinds: Sequence[str] | None = None,
        source_prefix: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Events with start <= ts < end, newest first (ties: newest id first)."""
        query = events_query(
            "SELECT id, ts, end_ts, kind, source, code, message, severity, data::text, ack FROM {s}.events", "%s",
            lambda kinds: ("kind = ANY(%s)", [kinds]), lambda prefix: ("starts_with(source, %s)", [prefix]),
            start, end, kinds, source_prefix, limit)
        if query is None:
            return []
        text, args = query

        def run(cur: psycopg.Cursor) -> list[tuple]:
            cur.execute(self._q(text), args)
            return cur.fetchall()

        return [event_from_row(r) for r in self._read(run)]

    def event_counts(self) -> dict[str, int]:
        """Number of events per kind."""
        def run(cur: psycopg.Cursor) -> dict[str, int]:
            cur.execute(self._q("SELECT kind, count(*) FROM {s}.events GROUP BY kind ORDER BY kind"))
            return {k: int(n) for k, n in cur.fetchall()}

        return self._read(run)

