"""The embedded historian's event log: one SQLite table (WAL) in ``events.db``.

Validation is shared with the PostgreSQL event log (``events.py``); this module only stores.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from axline.historian.base import Event
from axline.historian.events import (
    EVENT_COLUMNS,
    checked_event,
    checked_update,
    dump_data,
    event_from_row,
    events_query,
    stored_id,
)


class EventDatabaseError(RuntimeError):
    """``events.db`` cannot be opened (damaged or not an SQLite file)."""


class SqliteEvents:
    """Events in an SQLite database; thread-safe (one connection behind a lock).

    ``durable`` (fsync mode ``batch``) commits with ``synchronous=FULL``, otherwise ``NORMAL``.
    ``check_open`` is called under the lock before every use and raises once the owner is closed.
    """

    def __init__(self, db_path: str, durable: bool, check_open: Callable[[], None]) -> None:
        try:
            db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, "
                "end_ts INTEGER, kind TEXT NOT NULL, source TEXT NOT NULL, code TEXT NOT NULL, "
                "message TEXT NOT NULL DEFAULT '', severity TEXT NOT NULL DEFAULT 'info', "
                "data TEXT NOT NULL DEFAULT '{}', ack TEXT)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS events_ts ON events(ts)")
            db.execute("CREATE INDEX IF NOT EXISTS events_kind_ts ON events(kind, ts)")
        except sqlite3.DatabaseError as e:
            raise EventDatabaseError(str(e)) from e
        self._db: sqlite3.Connection | None = db
        self._lock = threading.Lock()
        self._check_open = check_open

    def _conn(self) -> sqlite3.Connection:
        self._check_open()
        assert self._db is not None
        return self._db

    def add(self, event: Event) -> int:
        """Store ``event``; set and return its id."""
        ts, end_ts, data = checked_event(event)
        with self._lock:
            cur = self._conn().execute(
                "INSERT INTO events (ts, end_ts, kind, source, code, message, severity, data, ack) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ts, end_ts, event.kind, event.source, event.code, event.message or "", event.severity, data,
                 event.ack),
            )
            event.id = int(cur.lastrowid)
        return event.id

    def update(self, event_id: int, **fields: Any) -> None:
        """Set ``end_ts``, ``ack``, ``severity``, ``message``; ``data`` keys are merged into the stored data."""
        event_id, sets, merge = checked_update(event_id, fields)
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT data FROM events WHERE id = ?", (event_id,)).fetchone()
                if row is None:
                    raise KeyError(f"update_event: no event with id {event_id}")
                if merge is not None:
                    merged = json.loads(row[0])
                    merged.update(merge)
                    sets["data"] = dump_data(merged)
                if sets:
                    cols = ", ".join(f"{k} = ?" for k in sets)
                    db.execute(f"UPDATE events SET {cols} WHERE id = ?", (*sets.values(), event_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def get(self, event_id: int) -> Event | None:
        """The event ``event_id``, or None."""
        event_id = stored_id(event_id)
        if event_id is None:
            return None
        with self._lock:
            row = self._conn().execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else event_from_row(row)

    def list(
        self,
        start: int | None = None,
        end: int | None = None,
        kinds: Sequence[str] | None = None,
        source_prefix: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Events with start <= ts < end, newest first (ties: newest id first)."""
        query = events_query(
            f"SELECT {EVENT_COLUMNS} FROM events", "?",
            lambda kinds: (f"kind IN ({', '.join('?' * len(kinds))})", kinds),
            lambda prefix: ("substr(source, 1, ?) = ?", [len(prefix), prefix]),
            start, end, kinds, source_prefix, limit)
        if query is None:
            return []
        sql, args = query
        with self._lock:
            rows = self._conn().execute(sql, args).fetchall()
        return [event_from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of events per kind."""
        with self._lock:
            rows = self._conn().execute("SELECT kind, COUNT(*) FROM events GROUP BY kind ORDER BY kind").fetchall()
        return {k: int(n) for k, n in rows}

    def checkpoint(self) -> None:
        """Move the write-ahead log into the database file (a passive checkpoint)."""
        with self._lock:
            if self._db is not None:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        """Close the database; closing twice is harmless."""
        if self._db is not None:
            self._db.close()
            self._db = None
