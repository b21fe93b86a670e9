"""The PostgreSQL historian: the same interface as the embedded one, for a central server.

Selected by ``historian: postgresql://user@host/db`` in the plant file. Everything lives in one
schema (``axline`` by default)::

    meta        key/value: layout version, partition width, storage mode
    tags        id serial, path text unique
    blocks      tag_id int4, tmin int8, tmax int8, ts int8[] (ns since the epoch, UTC), value float8[],
                quality int2[]: one row per tag and appended batch, its readings in arrival order;
                range-partitioned by tmin (one partition per day by default), index (tag_id, tmax)
    readings    view: the blocks unnested, one row (tag_id, ts, value, quality) per reading
    partitions  name, lo, hi, rows: the partitions this backend made and how many readings each holds
    latest      newest (ts, value, quality) per tag, upserted with every batch
    events      id bigserial, ts, end_ts, kind, source, code, message, severity, data jsonb, ack

``append`` maps tag paths to ids (cached; new tags are inserted first, ``ON CONFLICT DO NOTHING``),
creates the partitions the batch needs, sends the readings with one binary ``COPY`` per partition,
one row per tag (the COPY payload is built with NumPy, no Python object per reading), updates ``latest`` and the
row counts, and commits before it returns: acknowledged means committed. If the connection is lost
it raises :class:`ConnectionError` (nothing of that batch is acknowledged; keep it and retry) and
the next call reconnects.

When the TimescaleDB extension is available, a new schema stores readings in a hypertable instead
(integer ns time, chunks of an hour or a day); otherwise native partitions are used and a log
line says so. Retention (``retention_days``) drops whole partitions (chunks) older than that.

The parts live in their own modules: the COPY streams (``pg_copy.py``), connections
(``pg_conn.py``), schema, partitions and retention (``pg_schema.py``) and the event log
(``pg_events.py``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from axline.batch import Batch
from axline.historian.base import Buckets, Historian, Series, appendable, check_retention_days
from axline.historian.events import as_int

try:
    import psycopg
    from psycopg import sql
except ImportError as _e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the PostgreSQL historian needs psycopg 3: pip install 'psycopg[binary]' "
        "(or install axline with the 'postgres' extra)"
    ) from _e

from axline.historian.pg_conn import PgConnections
from axline.historian.pg_copy import (
    BUCKET_ROW,
    ROW,
    Float8Array,
    Int2Array,
    Int4Array,
    Int8Array,
    block_payload,
    copy_payload,
    newest_per_group,
    parse_copy,
)
from axline.historian.pg_events import PgEvents
from axline.historian.pg_schema import PARTITION_WIDTHS, PgSchema

log = logging.getLogger(__name__)

__all__ = ["PARTITION_WIDTHS", "PostgresHistorian", "copy_payload"]

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
# The readings of some tags with a <= ts < e, one row each (u.k: the position in its block). A block
# lies inside one partition (at most 31 days wide), so ``lo`` lets PostgreSQL skip older partitions.
_IN_WINDOW = (
    "{s}.blocks b CROSS JOIN LATERAL unnest(b.ts, b.value, b.quality) WITH ORDINALITY AS u(ts, value, quality, k) "
    "WHERE b.tag_id = ANY(%(ids)s) AND b.tmax >= %(a)s AND b.tmin < %(e)s AND b.tmin >= %(lo)s "
    "AND u.ts >= %(a)s AND u.ts < %(e)s"
)
_INT64_MIN = -(2**63)


def _window_args(ids: list[int], start: int, end: int) -> dict[str, Any]:
    return {"ids": ids, "a": start, "e": end, "lo": max(start - 32 * 86400 * 10**9, _INT64_MIN)}


class PostgresHistorian(PgConnections, PgSchema, PgEvents, Historian):
    """Historian in a PostgreSQL database (psycopg 3, binary COPY, time-partitioned tables).

    ``dsn`` is a libpq connection string or URL (``postgresql://user@host:5432/db``). ``schema``
    holds every table (created if missing). ``partition`` is the width of a readings partition:
    ``"hour"``, ``"day"``, ``"week"`` (from Monday) or ``"month"``; it is fixed when the schema is
    created. ``retention_days`` (optional) drops whole partitions whose newest possible reading is
    older than that many days, on open and whenever a partition is created.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "axline",
        partition: str = "day",
        retention_days: float | None = None,
        connect_timeout_s: float = 5.0,
        use_timescaledb: bool = True,
    ) -> None:
        if not isinstance(dsn, str) or not dsn.strip():
            raise ValueError(
                f"historian dsn must be a PostgreSQL connection string such as "
                f"'postgresql://user@host:5432/axline', got {dsn!r}"
            )
        if not isinstance(schema, str) or not _SCHEMA_RE.match(schema):
            raise ValueError(
                f"historian schema {schema!r} is not valid: use 1-48 lowercase letters, digits or '_', "
                "starting with a letter or '_'"
            )
        if partition not in PARTITION_WIDTHS:
            raise ValueError(
                f"historian partition {partition!r} is not known (allowed: {', '.join(PARTITION_WIDTHS)})"
            )
        check_retention_days(retention_days)
        if not isinstance(connect_timeout_s, int | float) or not 0 < connect_timeout_s <= 600:
            raise ValueError(
                f"historian connect_timeout_s must be in (0, 600] seconds, got {connect_timeout_s!r}"
            )
        self.dsn = dsn
        self.schema = schema
        self.partition = partition
        self.retention_days = retention_days
        self.connect_timeout_s = float(connect_timeout_s)
        self.mode = "native"  # or "timescaledb"
        try:
            info = psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as e:
            raise ValueError(f"historian dsn {dsn!r} cannot be parsed: {e}") from None
        self._where = "{}:{}/{}".format(
            info.get("host") or "local socket", info.get("port") or 5432, info.get("dbname") or "(default db)"
        )
        self._wlock = threading.RLock()  # writer connection: appends, events, DDL
        self._rlock = threading.RLock()  # reader connection: queries
        self._wconn: psycopg.Connection | None = None
        self._rconn: psycopg.Connection | None = None
        self._closed = False
        self._tag_ids: dict[str, int] = {}
        self._partitions: dict[int, tuple[int, str]] = {}  # lo -> (hi, table name)
        self._use_timescaledb = bool(use_timescaledb)
        with self._wlock:
            self._wconn = self._connect(autocommit=False)
            try:
                self._setup()
            except psycopg.Error as e:
                self._drop_writer()
                raise RuntimeError(
                    f"historian PostgreSQL {self._where}: cannot set up schema {schema!r}: {e}"
                ) from e
        if self.retention_days is not None:
            self._apply_retention()

    # -- readings -------------------------------------------------------------------------------
    def _ids_for(self, paths: tuple[str, ...]) -> np.ndarray:
        """Tag id per batch path; new paths are inserted (committed on their own) first."""
        new = [p for p in paths if p not in self._tag_ids]
        if new:
            for p in new:
                if not isinstance(p, str) or not p or "\0" in p:
                    raise ValueError(
                        f"tag path {p!r} is not valid: it must be a non-empty string without NUL characters "
                        "(e.g. 'site/area/line/cell/asset/signal')"
                    )

            def insert(conn: psycopg.Connection) -> list[tuple[int, str]]:
                with conn.cursor() as cur:
                    cur.execute(
                        self._q(
                            "INSERT INTO {s}.tags (path) SELECT unnest(%s::text[]) ORDER BY 1 "
                            "ON CONFLICT (path) DO NOTHING"
                        ),
                        (sorted(set(new)),),
                    )
                    cur.execute(self._q("SELECT id, path FROM {s}.tags WHERE path = ANY(%s)"), (new,))
                    return cur.fetchall()

            for i, p in self._write("registering new tags", insert):
                self._tag_ids[p] = int(i)
        return np.array([self._tag_ids[p] for p in paths], np.int32)

    def append(self, batch: Batch) -> int:
        """Store ``batch``; committed (durable) on return. Raises ConnectionError if the server is gone."""
        batch = appendable(batch)
        n = len(batch)
        if n == 0:
            return 0
        with self._wlock:
            self._check_open()
            ids = self._ids_for(batch.paths)
            tag_id = ids[batch.idx]
            key = batch.idx  # groups the readings as the tag id does: the paths are distinct
            ts = batch.ts
            starts = self._partition_starts(ts)
            lo0 = int(starts[0])
            if bool((starts == lo0).all()):
                los = [lo0]
                pieces = [(lo0, block_payload(tag_id, ts, batch.value, batch.quality, key=key)[0], n)]
            else:
                los = np.unique(starts).tolist()
                pieces = []
                for lo in los:  # a block never spans two partitions
                    m = starts == lo
                    payload = block_payload(tag_id[m], ts[m], batch.value[m], batch.quality[m], key=key[m])[0]
                    pieces.append((lo, payload, int(m.sum())))
            local, pos = newest_per_group(batch.idx, ts, len(batch.paths))
            lt = ids[local]
            order = np.argsort(lt)  # one lock order for concurrent writers
            latest = (
                Int4Array(lt[order]),
                Int8Array(ts[pos[order]]),
                Float8Array(batch.value[pos[order]]),
                Int2Array(batch.quality[pos[order]]),
            )

            def store(conn: psycopg.Connection) -> dict[int, tuple[int, str]]:
                with conn.cursor() as cur:
                    made = self._ensure_partitions(cur, los)
                    for lo, payload, count in pieces:
                        name = (self._partitions.get(lo) or made[lo])[1]
                        target = (
                            self._q("{s}.{t}", t=sql.Identifier(name))
                            if self.mode == "native"
                            else self._q("{s}.blocks")
                        )
                        stmt = sql.SQL(
                            "COPY {} (tag_id, tmin, tmax, ts, value, quality) FROM STDIN (FORMAT BINARY)"
                        ).format(target)
                        with cur.copy(stmt) as cp:
                            cp.write(payload)
                        cur.execute(
                            self._q("UPDATE {s}.partitions SET rows = rows + %s WHERE name = %s"),
                            (count, name),
                        )
                    cur.execute(
                        self._q(
                            "INSERT INTO {s}.latest (tag_id, ts, value, quality) "
                            "SELECT * FROM unnest(%b::int[], %b::bigint[], %b::float8[], %b::smallint[]) "
                            "ON CONFLICT (tag_id) DO UPDATE SET ts = EXCLUDED.ts, value = EXCLUDED.value, "
                            "quality = EXCLUDED.quality WHERE {s}.latest.ts <= EXCLUDED.ts"
                        ),
                        latest,
                    )
                return made

            what = f"an append of {n} readings"
            try:
                made = self._write(what, store)
            except (
                psycopg.errors.UndefinedTable,
                psycopg.errors.DuplicateTable,
                psycopg.errors.UniqueViolation,
            ):
                # another process dropped a partition that this one had cached (retention), or made the
                # same partition at the same moment: reload the partitions and try once more
                self._partitions = self._read(self._read_partitions)
                made = self._write(what, store)
            self._partitions.update(made)
        if made and self.retention_days is not None:
            self._apply_retention()
        return n

    def _known_ids(self, cur: psycopg.Cursor, paths: list[str]) -> dict[str, int]:
        """Ids of those ``paths`` that exist (asks the database about paths not in the cache)."""
        found = {p: self._tag_ids[p] for p in paths if p in self._tag_ids}
        missing = [p for p in paths if p not in found]
        if missing:
            cur.execute(self._q("SELECT id, path FROM {s}.tags WHERE path = ANY(%s)"), (missing,))
            for i, p in cur.fetchall():
                found[p] = int(i)
                self._tag_ids.setdefault(p, int(i))
        return found

    def tags(self) -> list[str]:
        """Every tag path that has readings, sorted."""

        def run(cur: psycopg.Cursor) -> list[str]:
            cur.execute(self._q("SELECT t.path FROM {s}.tags t JOIN {s}.latest l ON l.tag_id = t.id"))
            return sorted(r[0] for r in cur.fetchall())

        return self._read(run)

    def count(self) -> int:
        """Total readings stored (from the per-partition counts kept with every append)."""

        def run(cur: psycopg.Cursor) -> int:
            cur.execute(self._q("SELECT coalesce(sum(rows), 0)::bigint FROM {s}.partitions"))
            return int(cur.fetchone()[0])

        return self._read(run)

    def latest(self, paths: Iterable[str] | None = None) -> dict[str, tuple[int, float, int]]:
        """Newest (ts, value, quality) per tag; paths without readings are left out."""
        if isinstance(paths, str):
            raise TypeError("latest(paths): pass a list of tag paths, not a single string")
        wanted = None if paths is None else list(paths)

        def run(cur: psycopg.Cursor) -> dict[str, tuple[int, float, int]]:
            base = (
                "SELECT t.path, l.ts, l.value, l.quality FROM {s}.latest l JOIN {s}.tags t ON t.id = l.tag_id"
            )
            if wanted is None:
                cur.execute(self._q(base))
            else:
                cur.execute(self._q(base + " WHERE t.path = ANY(%s)"), (wanted,))
            return {p: (int(t), float(v), int(q)) for p, t, v, q in cur.fetchall()}

        return {} if wanted == [] else self._read(run)

    def query(self, paths: Sequence[str], start: int, end: int) -> dict[str, Series]:
        """Raw readings with start <= ts < end per path, sorted by ts."""
        if isinstance(paths, str):
            raise TypeError("query(paths, ...): pass a list of tag paths, not a single string")
        start, end = as_int("start", start), as_int("end", end)
        paths = list(paths)

        def run(cur: psycopg.Cursor) -> dict[int, Series]:
            ids = self._known_ids(cur, paths)
            if not ids or end <= start:
                return {}
            stmt = self._q(
                "COPY (SELECT b.tag_id, u.ts, u.value, u.quality FROM " + _IN_WINDOW
                + " ORDER BY b.tag_id, u.ts, b.ctid, u.k) TO STDOUT (FORMAT BINARY)"
            )
            with cur.copy(stmt, _window_args(sorted(set(ids.values())), start, end)) as cp:
                rows = parse_copy(b"".join(bytes(b) for b in cp), ROW)
            return self._split(rows)

        by_id = self._read(run)
        out = {}
        for p in paths:
            s = by_id.get(self._tag_ids.get(p, -1))
            out[p] = s if s is not None else Series(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8))
        return out

    @staticmethod
    def _split(rows: np.ndarray) -> dict[int, Series]:
        if not len(rows):
            return {}
        tag = rows["tag"].astype(np.int32)
        ts = rows["ts"].astype(np.int64)
        val = rows["val"].astype(np.float64)
        q = rows["q"].astype(np.uint8)
        cuts = np.r_[0, np.flatnonzero(tag[1:] != tag[:-1]) + 1, len(tag)]
        return {
            int(tag[a]): Series(ts[a:b], val[a:b], q[a:b])
            for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True)
        }

    def query_buckets(self, paths: Sequence[str], start: int, end: int, step: int) -> dict[str, Buckets]:
        """min / max / mean / last / count of good readings per ``step`` ns bucket aligned to ``start`` (in SQL)."""
        if isinstance(paths, str):
            raise TypeError("query_buckets(paths, ...): pass a list of tag paths, not a single string")
        start, end, step = as_int("start", start), as_int("end", end), as_int("step", step)
        if step <= 0:
            raise ValueError(f"query_buckets step must be > 0 ns, got {step}")
        paths = list(paths)

        def run(cur: psycopg.Cursor) -> dict[int, np.ndarray]:
            ids = self._known_ids(cur, paths)
            if not ids or end <= start:
                return {}
            stmt = self._q(
                "COPY (SELECT b.tag_id, %(a)s::bigint + (u.ts - %(a)s::bigint) / %(w)s::bigint * %(w)s::bigint "
                "AS bucket, min(u.value), max(u.value), avg(u.value), "
                "(array_agg(u.value ORDER BY u.ts DESC, b.ctid DESC, u.k DESC))[1], count(*) FROM "
                + _IN_WINDOW + " AND u.quality = 0 GROUP BY b.tag_id, bucket ORDER BY b.tag_id, bucket) "
                "TO STDOUT (FORMAT BINARY)"
            )
            args = {**_window_args(sorted(set(ids.values())), start, end), "w": step}
            with cur.copy(stmt, args) as cp:
                rows = parse_copy(b"".join(bytes(b) for b in cp), BUCKET_ROW)
            tag = rows["tag"]
            cuts = np.r_[0, np.flatnonzero(tag[1:] != tag[:-1]) + 1, len(tag)] if len(rows) else [0]
            return {int(tag[a]): rows[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)}

        by_id = self._read(run)
        out = {}
        for p in paths:
            r = by_id.get(self._tag_ids.get(p, -1))
            if r is None:
                z = np.zeros(0)
                out[p] = Buckets(z.astype(np.int64), z, z, z, z, z.astype(np.int64))
            else:
                out[p] = Buckets(
                    start=r["b"].astype(np.int64),
                    min=r["min"].astype(np.float64),
                    max=r["max"].astype(np.float64),
                    mean=r["mean"].astype(np.float64),
                    last=r["last"].astype(np.float64),
                    count=r["n"].astype(np.int64),
                )
        return out

    # -- life cycle -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Nothing to do: every append is committed before it returns."""
        self._check_open()

    def close(self) -> None:
        """Close the connections. Closing twice is harmless."""
        with self._wlock, self._rlock:
            if self._closed:
                return
            self._closed = True
            self._drop_writer()
            self._drop_reader()

    def __enter__(self) -> PostgresHistorian:
        return self

    def __repr__(self) -> str:
        return (
            f"PostgresHistorian({self._where!r}, schema={self.schema!r}, {self.mode}, "
            f"partition={self.partition!r}{', closed' if self._closed else ''})"
        )
