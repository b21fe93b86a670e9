"""PostgreSQL historian only: partitions, retention, lost connections, a server restart.

Uses a fresh schema per test in ``AXLINE_TEST_PG_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards; skipped with the reason when no
server answers. The server-restart test runs ``pg_ctlcluster 15 main restart`` and is opt-in:
set ``AXLINE_TEST_PG_RESTART=1`` (it needs root and disturbs other users of the server).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time

import numpy as np
import pytest

from axline.batch import Batch

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")

from axline.historian.postgres import PostgresHistorian  # noqa: E402

NS = 1_000_000_000
DAY = 86_400 * NS
T0 = 1_763_000_000 * NS  # 2025-11-13 02:13:20 UTC
PG_DSN = os.environ.get("AXLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
_schema_no = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def _server() -> None:
    try:
        psycopg.connect(PG_DSN, connect_timeout=10).close()
    except psycopg.OperationalError as e:
        pytest.skip(f"no PostgreSQL server reachable at {PG_DSN} (set AXLINE_TEST_PG_DSN): {str(e).strip()}")


@pytest.fixture
def schema():
    name = f"axline_test_{os.getpid()}_pg{next(_schema_no)}"
    yield name
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def sql_rows(query: str, *args) -> list[tuple]:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        return conn.execute(query, args).fetchall()


def numbered_batch(k: int, ntags: int = 4, n: int = 50, t: int = T0) -> Batch:
    """Batch ``k``: its values are k * 1000 + i, so every reading can be traced back to its batch."""
    paths = [f"changwon/plant1/line1/cnc/cnc{j}/spindle_temp" for j in range(ntags)]
    i = np.arange(n)
    return Batch(paths, (i % ntags).astype(np.int32), t + k * n * 1000 + i * 1000, k * 1000.0 + i)


# -- partitions ---------------------------------------------------------------------------------
def test_partitions_are_made_per_day_and_hold_their_readings(schema):
    with PostgresHistorian(PG_DSN, schema=schema) as h:
        assert h.mode in ("native", "timescaledb")
        if h.mode != "native":
            pytest.skip("TimescaleDB manages chunks itself")
        ts = np.array([T0, T0 + DAY, T0 + DAY + 5, T0 + 2 * DAY, T0 + 2 * DAY + 1, T0 + 2 * DAY + 2])
        h.append(Batch(["a/b/c/d/e/f"], np.zeros(6, np.int32), ts, np.arange(6.0)))
        parts = h.partitions()
        day0 = T0 // DAY * DAY
        assert [(lo, hi, rows) for _, lo, hi, rows in parts] == [
            (day0, day0 + DAY, 1),
            (day0 + DAY, day0 + 2 * DAY, 2),
            (day0 + 2 * DAY, day0 + 3 * DAY, 3),
        ]
        assert [p[0] for p in parts] == ["readings_d20251113", "readings_d20251114", "readings_d20251115"]
        children = sql_rows(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY 1",
            f"{schema}.blocks",
        )
        assert [c[0] for c in children] == [p[0] for p in parts]
        for name, _, _, rows in parts:  # the readings really are in the partition of their day
            assert sql_rows(f'SELECT sum(cardinality(ts)) FROM "{schema}"."{name}"')[0][0] == rows
        # a second batch into existing partitions adds to their counts, makes no new partition
        h.append(Batch(["a/b/c/d/e/f"], np.zeros(2, np.int32), ts[:2] + 7, np.zeros(2)))
        assert [p[3] for p in h.partitions()] == [2, 3, 3] and h.count() == 8


def test_a_batch_is_one_row_per_tag_and_the_readings_view_unnests_it(schema):
    with PostgresHistorian(PG_DSN, schema=schema) as h:
        h.append(numbered_batch(0, ntags=4, n=40))
        # the same timestamps again in a second batch: arrival order decides among equal ts
        again = numbered_batch(0, ntags=4, n=40)
        h.append(Batch(again.paths, again.idx, again.ts, again.value + 0.5))
        assert sql_rows(f'SELECT count(*), sum(cardinality(ts)) FROM "{schema}".blocks')[0] == (8, 80)
        per_tag = sql_rows(f'SELECT tag_id, count(*) FROM "{schema}".readings GROUP BY 1 ORDER BY 1')
        assert [n for _, n in per_tag] == [20, 20, 20, 20]
        path = again.paths[1]
        s = h.query([path], T0, T0 + DAY)[path]
        assert len(s) == 20 and bool(np.all(np.diff(s.ts) >= 0))
        assert s.value[0::2].tolist() == [float(v) for v in range(1, 40, 4)]  # the first batch first
        assert s.value[1::2].tolist() == [v + 0.5 for v in range(1, 40, 4)]
        view = sql_rows(f'SELECT value FROM "{schema}".readings r JOIN "{schema}".tags t ON t.id = r.tag_id '
                        "WHERE t.path = %s ORDER BY value", path)
        assert [v for (v,) in view] == sorted(s.value.tolist())
        b = h.query_buckets([path], T0, T0 + DAY, DAY)[path]
        assert b.count.tolist() == [20] and b.last.tolist() == [s.value[-1]]
        # the arrays are stored as they are in every partition (no compression on the writer's path)
        storage = sql_rows(
            "SELECT DISTINCT a.attstorage FROM pg_inherits i JOIN pg_attribute a ON a.attrelid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND a.attname IN ('ts', 'value', 'quality')", f"{schema}.blocks")
        assert storage == [("e",)]


@pytest.mark.parametrize(
    ("width", "start", "end", "name"),
    [
        ("hour", "2025-11-13T02:00", "2025-11-13T03:00", "readings_h2025111302"),
        ("week", "2025-11-10T00:00", "2025-11-17T00:00", "readings_w20251110"),  # from Monday
        ("month", "2025-11-01T00:00", "2025-12-01T00:00", "readings_m202511"),
    ],
)
def test_partition_widths(schema, width, start, end, name):
    with PostgresHistorian(PG_DSN, schema=schema, partition=width) as h:
        if h.mode != "native":
            pytest.skip("TimescaleDB manages chunks itself")
        h.append(Batch.from_readings([("a/b/c/d/e/f", T0, 1.0)]))
        ns = lambda s: int(np.datetime64(s, "ns").astype(np.int64))  # noqa: E731
        assert h.partitions() == [(name, ns(start), ns(end), 1)]
    with PostgresHistorian(PG_DSN, schema=schema, partition="day") as h2:  # fixed when the schema was made
        assert h2.partition == width


def test_retention_drops_old_partitions_and_fixes_latest(schema):
    now = time.time_ns()
    old, recent = "a/b/c/d/old/signal", "a/b/c/d/recent/signal"
    with PostgresHistorian(PG_DSN, schema=schema) as h:
        h.append(Batch.from_readings([(old, now - 10 * DAY, 1.0), (recent, now - 10 * DAY + 1, 2.0)]))
        h.append(Batch.from_readings([(recent, now - 5 * DAY, 3.0), (recent, now, 4.0)]))
        assert h.count() == 4 and len(h.partitions()) == 3
    with PostgresHistorian(PG_DSN, schema=schema, retention_days=7) as h:  # retention runs on open
        assert h.count() == 2
        assert h.tags() == [recent]
        assert h.latest() == {recent: (now, 4.0, 0)}
        assert len(h.query([old], now - 20 * DAY, now + 1)[old]) == 0
        assert h.query([recent], now - 20 * DAY, now + 1)[recent].value.tolist() == [3.0, 4.0]
        assert all(hi > now - 7 * DAY for _, _, hi, _ in h.partitions())
        # dropping the partition that holds a tag's newest reading falls back to its newest remaining one
        assert h.drop_before(now - DAY) == 1
        assert h.latest() == {recent: (now, 4.0, 0)} and h.count() == 1
        h.append(Batch.from_readings([(recent, now - 3 * DAY, 9.0)]))  # late data gets a partition again
        assert h.count() == 2
        assert h.drop_before(now + 2 * DAY) == 2
        assert h.count() == 0 and h.tags() == [] and h.latest() == {}
    with pytest.raises(ValueError, match="retention_days"):
        PostgresHistorian(PG_DSN, schema=schema, retention_days=0)


def test_a_partition_dropped_by_another_process_is_made_again(schema):
    with PostgresHistorian(PG_DSN, schema=schema) as h1, PostgresHistorian(PG_DSN, schema=schema) as h2:
        h1.append(Batch.from_readings([("a/b/c/d/e/f", T0, 1.0)]))
        assert h2.drop_before(T0 + 2 * DAY) == 1  # h1 still has the partition in its cache
        h1.append(Batch.from_readings([("a/b/c/d/e/f", T0 + 1, 2.0)]))
        assert h1.count() == 1 and h2.query(["a/b/c/d/e/f"], T0, T0 + 2)["a/b/c/d/e/f"].value.tolist() == [
            2.0
        ]


# -- connections --------------------------------------------------------------------------------
def _terminate(pid: int) -> None:
    assert sql_rows("SELECT pg_terminate_backend(%s)", pid) == [(True,)]


def test_lost_connection_raises_connection_error_then_reconnects(schema):
    with PostgresHistorian(PG_DSN, schema=schema) as h:
        acked = [numbered_batch(0), numbered_batch(1)]
        for b in acked:
            assert h.append(b) == len(b)
        _terminate(h._wconn.info.backend_pid)
        lost = numbered_batch(2)
        with pytest.raises(ConnectionError, match="not acknowledged - keep it and retry"):
            h.append(lost)
        assert h.append(lost) == len(lost)  # the next call reconnects
        acked.append(lost)
        assert h.count() == 150
        # the reader connection reconnects by itself (a query can simply be repeated)
        _terminate(h._rconn.info.backend_pid)
        paths = list(acked[0].paths)
        got = h.query(paths, T0, T0 + 10**12)
        values = sorted(v for s in got.values() for v in s.value.tolist())
        assert values == sorted(v for b in acked for v in b.value.tolist())
        # events use the writer connection: the same rule
        _terminate(h._wconn.info.backend_pid)
        from axline.historian.base import Event

        ev = Event(ts=T0, kind="info", source="x", code="y")
        with pytest.raises(ConnectionError):
            h.add_event(ev)
        assert h.add_event(ev) >= 1


def test_cannot_connect_says_so_and_bad_options_name_the_parameter():
    with pytest.raises(ConnectionError, match="cannot connect"):
        PostgresHistorian("postgresql://postgres@127.0.0.1:1/test", connect_timeout_s=2)
    with pytest.raises(ValueError, match="schema"):
        PostgresHistorian(PG_DSN, schema="Robert'); DROP TABLE x;--")
    with pytest.raises(ValueError, match="partition"):
        PostgresHistorian(PG_DSN, partition="fortnight")
    with pytest.raises(ValueError, match="dsn"):
        PostgresHistorian("")


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("AXLINE_TEST_PG_RESTART") != "1",
    reason="restarts the PostgreSQL server: set AXLINE_TEST_PG_RESTART=1 to run (needs root)",
)
def test_server_restart_in_the_middle_loses_nothing_acknowledged(schema):
    """A writer keeps appending (retrying a batch until acknowledged, as store-and-forward does)
    while the server restarts; every acknowledged batch is stored, and appends work again after."""
    errors: list[str] = []
    acked: list[int] = []
    stop = threading.Event()
    with PostgresHistorian(PG_DSN, schema=schema) as h:

        def writer() -> None:
            k = 0
            while not stop.is_set() or k < 60:
                try:
                    h.append(numbered_batch(k))
                except ConnectionError as e:
                    errors.append(str(e))
                    time.sleep(0.2)
                    continue
                acked.append(k)
                k += 1

        t = threading.Thread(target=writer)
        t.start()
        deadline = time.monotonic() + 120
        while len(acked) < 5:  # the writer is appending when the server goes away
            assert time.monotonic() < deadline and t.is_alive(), f"the writer did not start: {errors[-1:]}"
            time.sleep(0.01)
        subprocess.run(["pg_ctlcluster", "15", "main", "restart"], check=True, timeout=120)
        stop.set()
        t.join(timeout=120)
        assert not t.is_alive()
        assert errors, "the restart should have interrupted at least one append"
        assert acked == list(range(len(acked)))
        got = h.query(list(numbered_batch(0).paths), T0, T0 + 10**13)
        stored = np.concatenate([s.value for s in got.values()])
        stored_batches = set((stored // 1000).astype(int).tolist())
        assert set(acked) <= stored_batches
        assert h.count() >= 50 * len(acked)
