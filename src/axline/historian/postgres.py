"""The PostgreSQL historian: the same interface as the embedded one, for a central server.

Selected by ``historian: postgresql://user@host/db`` in the plant file. Everything lives in one
schema (``axline`` by default)::

    meta        key/value: layout version, partition width, storage mode
    tags        id serial, path text unique
    readings    tag_id int4, ts int8 (ns since the epoch, UTC), value float8, quality int2;
                range-partitioned by ts (one partition per day by default), index (tag_id, ts)
    partitions  name, lo, hi, rows: the partitions this backend made and how many readings each holds
    latest      newest (ts, value, quality) per tag, upserted with every batch
    events      id bigserial, ts, end_ts, kind, source, code, message, severity, data jsonb, ack

``append`` maps tag paths to ids (cached; new tags are inserted first, ``ON CONFLICT DO NOTHING``),
creates the partitions the batch needs, sends the readings with one binary ``COPY`` per partition
(the COPY payload is built with NumPy, no Python object per reading), updates ``latest`` and the
row counts, and commits before it returns: acknowledged means committed. If the connection is lost
it raises :class:`ConnectionError` (nothing of that batch is acknowledged; keep it and retry) and
the next call reconnects.

When the TimescaleDB extension is available, a new schema stores readings in a hypertable instead
(integer ns time, chunks of an hour or a day); otherwise native partitions are used and a log
line says so. Retention (``retention_days``) drops whole partitions (chunks) older than that.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from axline.batch import Batch
from axline.historian.base import (
    EVENT_UPDATABLE,
    Buckets,
    Event,
    Historian,
    Series,
    _as_int,
    _check_ack,
    _check_events_query,
    _check_severity,
    _checked_event,
    _dump_data,
    _event_from_row,
)

try:
    import psycopg
    from psycopg import sql
except ImportError as _e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the PostgreSQL historian needs psycopg 3: pip install 'psycopg[binary]' "
        "(or install axline with the 'postgres' extra)"
    ) from _e

log = logging.getLogger(__name__)

__all__ = ["PARTITION_WIDTHS", "PostgresHistorian"]

LAYOUT_VERSION = "1"
NS_PER_S = 1_000_000_000
_HOUR = 3600 * NS_PER_S
_DAY = 24 * _HOUR
_WEEK = 7 * _DAY
PARTITION_WIDTHS = ("hour", "day", "week", "month")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
_T = TypeVar("_T")

# One reading as a row of a binary COPY: field count, then (length, value) per column, big-endian.
_ROW = np.dtype(
    [
        ("nf", ">i2"),
        ("l_tag", ">i4"),
        ("tag", ">i4"),
        ("l_ts", ">i4"),
        ("ts", ">i8"),
        ("l_val", ">i4"),
        ("val", ">f8"),
        ("l_q", ">i4"),
        ("q", ">i2"),
    ]
)
# One bucket as a row of a binary COPY out of query_buckets.
_BUCKET_ROW = np.dtype(
    [
        ("nf", ">i2"),
        ("l_tag", ">i4"),
        ("tag", ">i4"),
        ("l_b", ">i4"),
        ("b", ">i8"),
        ("l_min", ">i4"),
        ("min", ">f8"),
        ("l_max", ">i4"),
        ("max", ">f8"),
        ("l_mean", ">i4"),
        ("mean", ">f8"),
        ("l_last", ">i4"),
        ("last", ">f8"),
        ("l_n", ">i4"),
        ("n", ">i8"),
    ]
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_COPY_TRAILER = b"\xff\xff"


def copy_payload(tag_id: np.ndarray, ts: np.ndarray, value: np.ndarray, quality: np.ndarray) -> bytes:
    """The binary COPY stream of rows (tag_id int4, ts int8, value float8, quality int2), built with NumPy."""
    rows = np.empty(len(ts), _ROW)
    rows["nf"] = 4
    rows["l_tag"] = 4
    rows["l_ts"] = 8
    rows["l_val"] = 8
    rows["l_q"] = 2
    rows["tag"] = tag_id
    rows["ts"] = ts
    rows["val"] = value
    rows["q"] = quality
    return b"".join((_COPY_HEADER, rows.tobytes(), _COPY_TRAILER))


def _parse_copy(data: bytes, dtype: np.dtype) -> np.ndarray:
    """Rows of a binary COPY TO stream whose rows all have the fixed layout ``dtype`` (no NULLs)."""
    if not data:
        return np.zeros(0, dtype)
    if data[:11] != _COPY_HEADER[:11]:
        raise RuntimeError("historian PostgreSQL: unexpected COPY stream (bad signature)")
    ext = int.from_bytes(data[15:19], "big")
    body = len(data) - 19 - ext - 2
    if body < 0 or body % dtype.itemsize:
        raise RuntimeError("historian PostgreSQL: unexpected COPY stream length")
    return np.frombuffer(data, dtype, body // dtype.itemsize, 19 + ext)


def _newest_per_group(key: np.ndarray, ts: np.ndarray, nkeys: int) -> tuple[np.ndarray, np.ndarray]:
    """For each key present: (key, position of its newest reading; the last arrival among equal ts)."""
    skey = key.astype(np.uint16) if nkeys <= 65536 else key
    order = np.argsort(skey, kind="stable")
    k, t = key[order], ts[order]
    starts = np.r_[0, np.flatnonzero(k[1:] != k[:-1]) + 1]
    bounds = np.r_[starts, len(k)]
    gmax = np.maximum.reduceat(t, starts)
    cand = np.where(t == np.repeat(gmax, np.diff(bounds)), np.arange(len(t)), -1)
    last = np.maximum.reduceat(cand, starts)
    return k[starts], order[last]


class _Lost(Exception):
    """The connection broke (internal; turned into ConnectionError)."""


class PostgresHistorian(Historian):
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
        if retention_days is not None and not (
            isinstance(retention_days, int | float)
            and not isinstance(retention_days, bool)
            and retention_days > 0
        ):
            raise ValueError(f"historian retention_days must be a number > 0 or None, got {retention_days!r}")
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

    # -- connections ----------------------------------------------------------------------------
    def _connect(self, autocommit: bool) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self.dsn,
                autocommit=autocommit,
                connect_timeout=max(1, round(self.connect_timeout_s)),
                application_name="axline-historian",
            )
        except psycopg.OperationalError as e:
            raise ConnectionError(
                f"historian PostgreSQL {self._where}: cannot connect ({str(e).strip()}); check that the server "
                "runs and that the 'historian' DSN in the plant file is right"
            ) from e

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"historian PostgreSQL {self._where} is closed; open it again to use it")

    def _writer(self) -> psycopg.Connection:
        self._check_open()
        if self._wconn is None or self._wconn.closed:
            self._wconn = self._connect(autocommit=False)
        return self._wconn

    def _reader(self) -> psycopg.Connection:
        self._check_open()
        if self._rconn is None or self._rconn.closed:
            self._rconn = self._connect(autocommit=True)
        return self._rconn

    def _drop_writer(self) -> None:
        if self._wconn is not None:
            try:
                self._wconn.close()
            except Exception:  # pragma: no cover - closing a broken connection
                pass
        self._wconn = None

    def _drop_reader(self) -> None:
        if self._rconn is not None:
            try:
                self._rconn.close()
            except Exception:  # pragma: no cover
                pass
        self._rconn = None

    def _write(self, what: str, fn: Callable[[psycopg.Connection], _T]) -> _T:
        """Run ``fn`` in one transaction of the writer connection and commit; a lost connection
        raises ConnectionError (nothing acknowledged) and the next call reconnects."""
        with self._wlock:
            conn = self._writer()
            try:
                out = fn(conn)
                conn.commit()
                return out
            except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                if conn.broken or conn.closed:
                    self._drop_writer()
                    raise ConnectionError(
                        f"historian PostgreSQL {self._where}: connection lost during {what} ({str(e).strip()}); "
                        "it was not acknowledged - keep it and retry (the next call reconnects)"
                    ) from e
                self._rollback(conn)
                raise
            except BaseException:
                self._rollback(conn)
                raise

    def _rollback(self, conn: psycopg.Connection) -> None:
        try:
            conn.rollback()
        except psycopg.Error:  # pragma: no cover - the connection broke meanwhile
            self._drop_writer()

    def _read(self, fn: Callable[[psycopg.Cursor], _T]) -> _T:
        """Run a read on the reader connection; a lost connection is retried once on a new one."""
        with self._rlock:
            for attempt in (0, 1):
                conn = self._reader()
                try:
                    with conn.cursor() as cur:
                        return fn(cur)
                except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                    if not (conn.broken or conn.closed):
                        raise
                    self._drop_reader()
                    if attempt:
                        raise ConnectionError(
                            f"historian PostgreSQL {self._where}: connection lost during a query "
                            f"({str(e).strip()}); check that the server runs"
                        ) from e
            raise AssertionError("unreachable")  # pragma: no cover

    # -- schema ---------------------------------------------------------------------------------
    def _q(self, text: str, **parts: sql.Composable) -> sql.Composed:
        """SQL text with ``{s}`` standing for the quoted schema name and ``{name}`` for ``parts``."""
        return sql.SQL(text).format(s=sql.Identifier(self.schema), **parts)

    def _setup(self) -> None:
        conn = self._wconn
        assert conn is not None
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"axline-historian:{self.schema}",))
            cur.execute(self._q("CREATE SCHEMA IF NOT EXISTS {s}"))
            cur.execute(
                self._q("CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL)")
            )
            cur.execute(self._q("SELECT key, value FROM {s}.meta"))
            meta = dict(cur.fetchall())
            if meta:
                if meta.get("layout") != LAYOUT_VERSION:
                    raise RuntimeError(
                        f"historian PostgreSQL {self._where}: schema {self.schema!r} has layout "
                        f"{meta.get('layout')!r}, this axline reads layout {LAYOUT_VERSION!r}; use another schema"
                    )
                if meta["partition"] != self.partition:
                    log.warning(
                        "historian PostgreSQL %s: schema %s was created with partition=%s; keeping that "
                        "(asked for %s)",
                        self._where,
                        self.schema,
                        meta["partition"],
                        self.partition,
                    )
                    self.partition = meta["partition"]
                self.mode = meta["mode"]
            else:
                self.mode = self._create_tables(cur)
            cur.execute(self._q("SELECT id, path FROM {s}.tags"))
            self._tag_ids = {p: int(i) for i, p in cur.fetchall()}
            self._partitions = self._read_partitions(cur)
        conn.commit()
        log.info(
            "historian PostgreSQL %s: schema %s, %s storage, partition=%s",
            self._where,
            self.schema,
            self.mode,
            self.partition,
        )

    def _create_tables(self, cur: psycopg.Cursor) -> str:
        q = self._q
        cur.execute(
            q("CREATE TABLE IF NOT EXISTS {s}.tags (id serial PRIMARY KEY, path text NOT NULL UNIQUE)")
        )
        cur.execute(
            q(
                "CREATE TABLE IF NOT EXISTS {s}.partitions (name text PRIMARY KEY, lo bigint NOT NULL, "
                "hi bigint NOT NULL, rows bigint NOT NULL DEFAULT 0)"
            )
        )
        cur.execute(
            q(
                "CREATE TABLE IF NOT EXISTS {s}.latest (tag_id int PRIMARY KEY, ts bigint NOT NULL, "
                "value float8 NOT NULL, quality smallint NOT NULL)"
            )
        )
        cur.execute(
            q(
                "CREATE TABLE IF NOT EXISTS {s}.events (id bigserial PRIMARY KEY, ts bigint NOT NULL, "
                "end_ts bigint, kind text NOT NULL, source text NOT NULL, code text NOT NULL, "
                "message text NOT NULL DEFAULT '', severity text NOT NULL DEFAULT 'info', "
                "data jsonb NOT NULL DEFAULT '{{}}', ack text)"
            )
        )
        cur.execute(q("CREATE INDEX IF NOT EXISTS events_ts ON {s}.events (ts)"))
        cur.execute(q("CREATE INDEX IF NOT EXISTS events_kind_ts ON {s}.events (kind, ts)"))
        columns = (
            "(tag_id int NOT NULL, ts bigint NOT NULL, value float8 NOT NULL, quality smallint NOT NULL)"
        )
        mode = "native"
        if self._use_timescaledb and self._timescaledb_available(cur):
            cur.execute(q("CREATE TABLE {s}.readings " + columns))
            cur.execute(
                "SELECT create_hypertable(%s, 'ts', chunk_time_interval => %s::bigint)",
                (f"{self.schema}.readings", _HOUR if self.partition == "hour" else _DAY),
            )
            cur.execute(
                q(
                    "CREATE OR REPLACE FUNCTION {s}.now_ns() RETURNS bigint LANGUAGE sql STABLE AS "
                    "$$ SELECT (extract(epoch FROM now()) * 1e9)::bigint $$"
                )
            )
            cur.execute(
                "SELECT set_integer_now_func(%s, %s)", (f"{self.schema}.readings", f"{self.schema}.now_ns")
            )
            mode = "timescaledb"
            log.info("historian PostgreSQL %s: TimescaleDB found, readings are a hypertable", self._where)
        else:
            cur.execute(q("CREATE TABLE {s}.readings " + columns + " PARTITION BY RANGE (ts)"))
            log.info(
                "historian PostgreSQL %s: TimescaleDB not available, using native partitions per %s",
                self._where,
                self.partition,
            )
        cur.execute(q("CREATE INDEX IF NOT EXISTS readings_tag_ts ON {s}.readings (tag_id, ts)"))
        cur.executemany(
            q("INSERT INTO {s}.meta (key, value) VALUES (%s, %s)"),
            [("layout", LAYOUT_VERSION), ("partition", self.partition), ("mode", mode)],
        )
        return mode

    def _timescaledb_available(self, cur: psycopg.Cursor) -> bool:
        cur.execute("SELECT installed_version FROM pg_available_extensions WHERE name = 'timescaledb'")
        row = cur.fetchone()
        if row is None:
            return False
        if row[0] is not None:
            return True
        cur.execute("SAVEPOINT axline_tsdb")
        try:
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as e:
            cur.execute("ROLLBACK TO SAVEPOINT axline_tsdb")
            log.info("historian PostgreSQL %s: cannot enable TimescaleDB (%s)", self._where, str(e).strip())
            return False
        cur.execute("RELEASE SAVEPOINT axline_tsdb")
        return True

    # -- partitions -----------------------------------------------------------------------------
    def _partition_starts(self, ts: np.ndarray) -> np.ndarray:
        """Start (ns) of the partition of each reading."""
        if self.partition == "month":
            return (
                ts.astype("datetime64[ns]").astype("datetime64[M]").astype("datetime64[ns]").astype(np.int64)
            )
        if self.partition == "week":  # Monday 00:00 UTC; 1970-01-01 was a Thursday
            return (ts + 3 * _DAY) // _WEEK * _WEEK - 3 * _DAY
        width = _HOUR if self.partition == "hour" else _DAY
        return ts // width * width

    def _partition_range(self, lo: int) -> tuple[int, str]:
        """(end ns, table name) of the partition starting at ``lo``."""
        start = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(microseconds=lo // 1000)
        if self.partition == "month":
            nxt = np.datetime64(lo, "ns").astype("datetime64[M]") + 1
            return int(nxt.astype("datetime64[ns]").astype(np.int64)), f"readings_m{start:%Y%m}"
        if self.partition == "week":
            return lo + _WEEK, f"readings_w{start:%Y%m%d}"
        if self.partition == "hour":
            return lo + _HOUR, f"readings_h{start:%Y%m%d%H}"
        return lo + _DAY, f"readings_d{start:%Y%m%d}"

    def _ensure_partitions(self, cur: psycopg.Cursor, los: Iterable[int]) -> dict[int, tuple[int, str]]:
        """Create the missing partitions (and their bookkeeping rows); return the ones made.

        The cache is updated by the caller only after the transaction commits."""
        made = {}
        for lo in los:
            if lo in self._partitions:
                continue
            hi, name = self._partition_range(lo)
            if self.mode == "native":
                cur.execute(
                    self._q(
                        "CREATE TABLE IF NOT EXISTS {s}.{t} PARTITION OF {s}.readings FOR VALUES FROM ({lo}) TO ({hi})",
                        t=sql.Identifier(name),
                        lo=sql.Literal(lo),
                        hi=sql.Literal(hi),
                    )
                )
            cur.execute(
                self._q(
                    "INSERT INTO {s}.partitions (name, lo, hi) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING"
                ),
                (name, lo, hi),
            )
            made[lo] = (hi, name)
        return made

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
        if not isinstance(batch, Batch):
            raise TypeError(f"append expects an axline.batch.Batch, got {type(batch).__name__}")
        n = len(batch)
        if n == 0:
            return 0
        with self._wlock:
            self._check_open()
            ids = self._ids_for(batch.paths)
            tag_id = ids[batch.idx]
            ts = batch.ts
            starts = self._partition_starts(ts)
            lo0 = int(starts[0])
            if bool((starts == lo0).all()):
                los = [lo0]
                pieces = [(lo0, tag_id, ts, batch.value, batch.quality)]
            else:
                los = np.unique(starts).tolist()
                pieces = []
                for lo in los:
                    m = starts == lo
                    pieces.append((lo, tag_id[m], ts[m], batch.value[m], batch.quality[m]))
            local, pos = _newest_per_group(batch.idx, ts, len(batch.paths))
            lt = ids[local]
            order = np.argsort(lt)  # one lock order for concurrent writers
            latest = (
                lt[order].tolist(),
                ts[pos[order]].tolist(),
                batch.value[pos[order]].tolist(),
                batch.quality[pos[order]].astype(np.int16).tolist(),
            )

            def store(conn: psycopg.Connection) -> dict[int, tuple[int, str]]:
                with conn.cursor() as cur:
                    made = self._ensure_partitions(cur, los)
                    for lo, t, s, v, q in pieces:
                        name = (self._partitions.get(lo) or made[lo])[1]
                        target = (
                            self._q("{s}.{t}", t=sql.Identifier(name))
                            if self.mode == "native"
                            else self._q("{s}.readings")
                        )
                        stmt = sql.SQL(
                            "COPY {} (tag_id, ts, value, quality) FROM STDIN (FORMAT BINARY)"
                        ).format(target)
                        with cur.copy(stmt) as cp:
                            cp.write(copy_payload(t, s, v, q))
                        cur.execute(
                            self._q("UPDATE {s}.partitions SET rows = rows + %s WHERE name = %s"),
                            (len(s), name),
                        )
                    cur.execute(
                        self._q(
                            "INSERT INTO {s}.latest (tag_id, ts, value, quality) "
                            "SELECT * FROM unnest(%s::int[], %s::bigint[], %s::float8[], %s::smallint[]) "
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

    def _read_partitions(self, cur: psycopg.Cursor) -> dict[int, tuple[int, str]]:
        cur.execute(self._q("SELECT lo, hi, name FROM {s}.partitions"))
        return {int(lo): (int(hi), name) for lo, hi, name in cur.fetchall()}

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
        start, end = _as_int("start", start), _as_int("end", end)
        paths = list(paths)

        def run(cur: psycopg.Cursor) -> dict[int, Series]:
            ids = self._known_ids(cur, paths)
            if not ids or end <= start:
                return {}
            stmt = self._q(
                "COPY (SELECT tag_id, ts, value, quality FROM {s}.readings WHERE tag_id = ANY(%s) "
                "AND ts >= %s AND ts < %s ORDER BY tag_id, ts, ctid) TO STDOUT (FORMAT BINARY)"
            )
            with cur.copy(stmt, (sorted(set(ids.values())), start, end)) as cp:
                rows = _parse_copy(b"".join(bytes(b) for b in cp), _ROW)
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
        start, end, step = _as_int("start", start), _as_int("end", end), _as_int("step", step)
        if step <= 0:
            raise ValueError(f"query_buckets step must be > 0 ns, got {step}")
        paths = list(paths)

        def run(cur: psycopg.Cursor) -> dict[int, np.ndarray]:
            ids = self._known_ids(cur, paths)
            if not ids or end <= start:
                return {}
            stmt = self._q(
                "COPY (SELECT tag_id, %(a)s::bigint + (ts - %(a)s::bigint) / %(w)s::bigint * %(w)s::bigint AS b, "
                "min(value), max(value), avg(value), (array_agg(value ORDER BY ts DESC, ctid DESC))[1], "
                "count(*) FROM {s}.readings WHERE tag_id = ANY(%(ids)s) AND ts >= %(a)s AND ts < %(e)s "
                "AND quality = 0 GROUP BY tag_id, b ORDER BY tag_id, b) TO STDOUT (FORMAT BINARY)"
            )
            args = {"a": start, "e": end, "w": step, "ids": sorted(set(ids.values()))}
            with cur.copy(stmt, args) as cp:
                rows = _parse_copy(b"".join(bytes(b) for b in cp), _BUCKET_ROW)
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

    # -- retention ------------------------------------------------------------------------------
    def _apply_retention(self) -> None:
        assert self.retention_days is not None
        self.drop_before(time.time_ns() - int(self.retention_days * 86400 * NS_PER_S))

    def partitions(self) -> list[tuple[str, int, int, int]]:
        """(table name, start ns, end ns, readings) of every readings partition, oldest first."""

        def run(cur: psycopg.Cursor) -> list[tuple[str, int, int, int]]:
            cur.execute(self._q("SELECT name, lo, hi, rows FROM {s}.partitions ORDER BY lo"))
            return [(n, int(a), int(b), int(r)) for n, a, b, r in cur.fetchall()]

        return self._read(run)

    def drop_before(self, ts: int) -> int:
        """Drop whole partitions whose end is at or before ``ts``; return the readings dropped."""
        ts = _as_int("ts", ts)

        def run(conn: psycopg.Connection) -> tuple[int, list[str]]:
            with conn.cursor() as cur:
                cur.execute(
                    self._q(
                        "SELECT name, lo, rows FROM {s}.partitions WHERE hi <= %s ORDER BY lo FOR UPDATE"
                    ),
                    (ts,),
                )
                doomed = cur.fetchall()
                if not doomed:
                    return 0, []
                names = [d[0] for d in doomed]
                if self.mode == "native":
                    for name in names:
                        cur.execute(self._q("DROP TABLE IF EXISTS {s}.{t}", t=sql.Identifier(name)))
                else:
                    hi = max(self._partition_range(int(d[1]))[0] for d in doomed)
                    cur.execute(
                        "SELECT drop_chunks(%s, older_than => %s::bigint)", (f"{self.schema}.readings", hi)
                    )
                cur.execute(self._q("DELETE FROM {s}.partitions WHERE name = ANY(%s)"), (names,))
                # tags whose newest reading went with the dropped partitions: newest remaining one, or none
                cur.execute(
                    self._q(
                        "DELETE FROM {s}.latest l WHERE NOT EXISTS (SELECT 1 FROM {s}.readings r "
                        "WHERE r.tag_id = l.tag_id AND r.ts = l.ts) RETURNING tag_id"
                    )
                )
                gone = [r[0] for r in cur.fetchall()]
                if gone:
                    cur.execute(
                        self._q(
                            "INSERT INTO {s}.latest (tag_id, ts, value, quality) "
                            "SELECT DISTINCT ON (tag_id) tag_id, ts, value, quality FROM {s}.readings "
                            "WHERE tag_id = ANY(%s) ORDER BY tag_id, ts DESC, ctid DESC"
                        ),
                        (gone,),
                    )
                return int(sum(d[2] for d in doomed)), names

        with self._wlock:
            dropped, names = self._write("retention", run)
            self._partitions = {lo: v for lo, v in self._partitions.items() if v[1] not in names}
        if names:
            log.info(
                "historian PostgreSQL %s: retention dropped %d partition(s), %d readings",
                self._where,
                len(names),
                dropped,
            )
        return dropped

    # -- events ---------------------------------------------------------------------------------
    def add_event(self, event: Event) -> int:
        ts, end_ts, data = _checked_event(event)

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
        event_id = _as_int("event_id", event_id)
        unknown = sorted(set(fields) - set(EVENT_UPDATABLE))
        if unknown:
            raise ValueError(
                f"update_event: cannot change {', '.join(unknown)} (allowed: {', '.join(EVENT_UPDATABLE)})"
            )
        sets: list[sql.Composable] = []
        args: list[Any] = []
        if "end_ts" in fields:
            sets.append(sql.SQL("end_ts = %s"))
            args.append(None if fields["end_ts"] is None else _as_int("end_ts", fields["end_ts"]))
        if "ack" in fields:
            _check_ack(fields["ack"])
            sets.append(sql.SQL("ack = %s"))
            args.append(fields["ack"])
        if "severity" in fields:
            _check_severity(fields["severity"])
            sets.append(sql.SQL("severity = %s"))
            args.append(fields["severity"])
        if "message" in fields:
            if not isinstance(fields["message"], str):
                raise ValueError(f"update_event message must be a string, got {fields['message']!r}")
            sets.append(sql.SQL("message = %s"))
            args.append(fields["message"])
        if "data" in fields:
            if not isinstance(fields["data"], dict):
                raise ValueError(
                    f"update_event data must be a dict of keys to merge, got {type(fields['data']).__name__}"
                )
            sets.append(sql.SQL("data = data || %s::jsonb"))
            args.append(_dump_data(fields["data"]))
        set_sql = sql.SQL(", ").join(sets) if sets else sql.SQL("id = id")

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
        event_id = _as_int("event_id", event_id)
        if not 0 < event_id < 2**63:
            return None

        def run(cur: psycopg.Cursor) -> tuple | None:
            cur.execute(self._q("SELECT id, ts, end_ts, kind, source, code, message, severity, data::text, ack "
                                "FROM {s}.events WHERE id = %s"), (event_id,))
            return cur.fetchone()

        row = self._read(run)
        return None if row is None else _event_from_row(row)

    def events(
        self,
        start: int | None = None,
        end: int | None = None,
        kinds: Sequence[str] | None = None,
        source_prefix: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Events with start <= ts < end, newest first (ties: newest id first)."""
        kinds = _check_events_query(limit, kinds)
        where: list[str] = []
        args: list[Any] = []
        if start is not None:
            where.append("ts >= %s")
            args.append(_as_int("start", start))
        if end is not None:
            where.append("ts < %s")
            args.append(_as_int("end", end))
        if kinds is not None:
            if not kinds:
                return []
            where.append("kind = ANY(%s)")
            args.append(kinds)
        if source_prefix:
            where.append("starts_with(source, %s)")
            args.append(source_prefix)
        text = "SELECT id, ts, end_ts, kind, source, code, message, severity, data::text, ack FROM {s}.events"
        if where:
            text += " WHERE " + " AND ".join(where)
        text += " ORDER BY ts DESC, id DESC LIMIT %s"
        args.append(limit)

        def run(cur: psycopg.Cursor) -> list[tuple]:
            cur.execute(self._q(text), args)
            return cur.fetchall()

        return [_event_from_row(r) for r in self._read(run)]

    def event_counts(self) -> dict[str, int]:
        def run(cur: psycopg.Cursor) -> dict[str, int]:
            cur.execute(self._q("SELECT kind, count(*) FROM {s}.events GROUP BY kind ORDER BY kind"))
            return {k: int(n) for k, n in cur.fetchall()}

        return self._read(run)

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
