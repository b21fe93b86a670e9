"""The PostgreSQL historian's schema, time partitions and retention.

Part of :class:`~axline.historian.postgres.PostgresHistorian`. Readings are stored in ``blocks``:
one row per tag and appended batch, holding the tag's readings of that batch as three arrays (ts,
value, quality) with their time range (tmin, tmax). PostgreSQL then writes and indexes one row
per tag and batch instead of one per reading. The view ``readings`` unnests the blocks into one
row per reading for SQL readers. Blocks are range-partitioned by ``tmin`` (native partitions, or a
TimescaleDB hypertable when the extension is available); a block never spans two partitions, and
retention drops whole partitions (chunks).
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Iterable

import numpy as np
import psycopg
from psycopg import sql

from axline.historian.events import as_int

log = logging.getLogger("axline.historian.postgres")

LAYOUT_VERSION = "2"  # 1: one row per reading; 2: one row per tag and batch, readings as arrays
BLOCK_COLUMNS = (
    "(tag_id int NOT NULL, tmin bigint NOT NULL, tmax bigint NOT NULL, ts bigint[] NOT NULL, "
    "value float8[] NOT NULL, quality smallint[] NOT NULL)"
)
# the readings one row each, as every reader outside the backend sees them (SQL views, reports)
READINGS_VIEW = (
    "CREATE VIEW {s}.readings AS SELECT b.tag_id, u.ts, u.value, u.quality FROM {s}.blocks b "
    "CROSS JOIN LATERAL unnest(b.ts, b.value, b.quality) AS u(ts, value, quality)"
)
NS_PER_S = 1_000_000_000
HOUR = 3600 * NS_PER_S
DAY = 24 * HOUR
WEEK = 7 * DAY
PARTITION_WIDTHS = ("hour", "day", "week", "month")


class PgSchema:
    """Schema set-up, partitions and retention (a part of ``PostgresHistorian``; uses its state)."""

    def _setup(self) -> None:
        """Create or check the schema; load the tag ids and partitions."""
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
                        f"{meta.get('layout')!r}, this axline reads layout {LAYOUT_VERSION!r} (one row per tag "
                        "and batch); use another schema"
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
        """Create every table of a new schema; returns the storage mode."""
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
        columns = BLOCK_COLUMNS
        mode = "native"
        if self._use_timescaledb and self._timescaledb_available(cur):
            cur.execute(q("CREATE TABLE {s}.blocks " + columns))
            cur.execute(
                "SELECT create_hypertable(%s, 'tmin', chunk_time_interval => %s::bigint)",
                (f"{self.schema}.blocks", HOUR if self.partition == "hour" else DAY),
            )
            cur.execute(
                q(
                    "CREATE OR REPLACE FUNCTION {s}.now_ns() RETURNS bigint LANGUAGE sql STABLE AS "
                    "$$ SELECT (extract(epoch FROM now()) * 1e9)::bigint $$"
                )
            )
            cur.execute(
                "SELECT set_integer_now_func(%s, %s)", (f"{self.schema}.blocks", f"{self.schema}.now_ns")
            )
            mode = "timescaledb"
            log.info("historian PostgreSQL %s: TimescaleDB found, readings are a hypertable", self._where)
        else:
            cur.execute(q("CREATE TABLE {s}.blocks " + columns + " PARTITION BY RANGE (tmin)"))
            log.info(
                "historian PostgreSQL %s: TimescaleDB not available, using native partitions per %s",
                self._where,
                self.partition,
            )
        # arrays are stored as they are: compressing float readings gains little and costs the writer
        for col in ("ts", "value", "quality"):
            cur.execute(q("ALTER TABLE {s}.blocks ALTER COLUMN {c} SET STORAGE EXTERNAL", c=sql.Identifier(col)))
        # a query asks for blocks that end at or after its start: (tag_id, tmax) finds them
        cur.execute(q("CREATE INDEX IF NOT EXISTS blocks_tag_tmax ON {s}.blocks (tag_id, tmax)"))
        cur.execute(q(READINGS_VIEW))
        cur.executemany(
            q("INSERT INTO {s}.meta (key, value) VALUES (%s, %s)"),
            [("layout", LAYOUT_VERSION), ("partition", self.partition), ("mode", mode)],
        )
        return mode

    def _timescaledb_available(self, cur: psycopg.Cursor) -> bool:
        """Whether TimescaleDB is (or can be) enabled in this database."""
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
            return (ts + 3 * DAY) // WEEK * WEEK - 3 * DAY
        width = HOUR if self.partition == "hour" else DAY
        return ts // width * width

    def _partition_range(self, lo: int) -> tuple[int, str]:
        """(end ns, table name) of the partition starting at ``lo``."""
        start = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(microseconds=lo // 1000)
        if self.partition == "month":
            nxt = np.datetime64(lo, "ns").astype("datetime64[M]") + 1
            return int(nxt.astype("datetime64[ns]").astype(np.int64)), f"readings_m{start:%Y%m}"
        if self.partition == "week":
            return lo + WEEK, f"readings_w{start:%Y%m%d}"
        if self.partition == "hour":
            return lo + HOUR, f"readings_h{start:%Y%m%d%H}"
        return lo + DAY, f"readings_d{start:%Y%m%d}"

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
                        "CREATE TABLE IF NOT EXISTS {s}.{t} PARTITION OF {s}.blocks FOR VALUES FROM ({lo}) TO ({hi})",
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


    def _read_partitions(self, cur: psycopg.Cursor) -> dict[int, tuple[int, str]]:
        """The partitions this backend made: start -> (end, table name)."""
        cur.execute(self._q("SELECT lo, hi, name FROM {s}.partitions"))
        return {int(lo): (int(hi), name) for lo, hi, name in cur.fetchall()}


    def _apply_retention(self) -> None:
        """Apply ``retention_days`` against the wall clock."""
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
        ts = as_int("ts", ts)

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
                        "SELECT drop_chunks(%s, older_than => %s::bigint)", (f"{self.schema}.blocks", hi)
                    )
                cur.execute(self._q("DELETE FROM {s}.partitions WHERE name = ANY(%s)"), (names,))
                # tags whose newest reading went with the dropped partitions: newest remaining one, or none
                cur.execute(
                    self._q(
                        "DELETE FROM {s}.latest l WHERE NOT EXISTS (SELECT 1 FROM {s}.blocks b "
                        "WHERE b.tag_id = l.tag_id AND b.tmax >= l.ts AND b.tmin <= l.ts AND l.ts = ANY(b.ts)) "
                        "RETURNING tag_id"
                    )
                )
                gone = [r[0] for r in cur.fetchall()]
                if gone:
                    cur.execute(
                        self._q(
                            "INSERT INTO {s}.latest (tag_id, ts, value, quality) "
                            "SELECT DISTINCT ON (b.tag_id) b.tag_id, u.ts, u.value, u.quality FROM {s}.blocks b "
                            "CROSS JOIN LATERAL unnest(b.ts, b.value, b.quality) WITH ORDINALITY "
                            "AS u(ts, value, quality, k) WHERE b.tag_id = ANY(%s) "
                            "ORDER BY b.tag_id, u.ts DESC, b.ctid DESC, u.k DESC"
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

