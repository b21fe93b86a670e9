"""The read-only SQL views on a real PostgreSQL historian, and the Grafana dashboard's queries run
against them (Grafana's macros expanded as Grafana's PostgreSQL data source does)."""

from __future__ import annotations

import itertools
import os
import re
from datetime import UTC, datetime

import numpy as np
import pytest

from axline.alarms import lifecycle as lc
from axline.batch import Batch
from axline.historian.base import Event
from axline.history.sql_views import VIEW_NAMES, grafana_dashboard, grant_statements, view_statements

psycopg = pytest.importorskip("psycopg")
PG_DSN = os.environ.get("AXLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
NS = 1_000_000_000
T0 = 1_780_000_000 * NS
LINE = "changwon/plant1/line1"
A, B = f"{LINE}/cnc/cnc1/spindle_temp", f"{LINE}/cnc/cnc1/power"
_no = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def _server():
    try:
        psycopg.connect(PG_DSN, connect_timeout=10).close()
    except psycopg.OperationalError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no PostgreSQL at {PG_DSN}: scripts/ensure-services.sh starts one ({e})")
        pytest.skip(f"no PostgreSQL server reachable at {PG_DSN} (set AXLINE_TEST_PG_DSN): {str(e).strip()}")


@pytest.fixture
def hist():
    from axline.historian.postgres import PostgresHistorian

    schema = f"axline_views_{os.getpid()}_{next(_no)}"
    h = PostgresHistorian(PG_DSN, schema=schema)
    yield h
    h.close()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _fill(h) -> dict[str, int]:
    ts = T0 + np.arange(3600, dtype=np.int64) * NS
    va = 50 + 10 * np.sin(np.arange(3600) / 300)
    va[1800] = 99.0  # a one-second peak
    h.append(Batch([A, B], np.repeat(np.arange(2, dtype=np.int32), 3600), np.tile(ts, 2),
                   np.concatenate([va, np.full(3600, 7.5)]), np.zeros(7200, dtype=np.uint8)))
    ids = {}
    ids["active"] = h.add_event(Event(ts=T0 + 100 * NS, kind="alarm", source=f"{LINE}/cnc/cnc1",
                                      code="anomaly.sensor", severity="alarm", message="m"))
    acked = Event(ts=T0 + 200 * NS, kind="alarm", source=f"{LINE}/cnc/cnc1", code="sensor.stuck",
                  severity="warning", message="m", end_ts=T0 + 300 * NS)
    ids["cleared"] = h.add_event(acked)
    h.update_event(ids["cleared"], **lc.acknowledge(acked, "kim", T0 + 250 * NS, "센서 교체"))
    ids["returned"] = h.add_event(Event(ts=T0 + 400 * NS, kind="alarm", source=f"{LINE}/wash/washer1",
                                        code="sensor.stuck", severity="warning", message="m", end_ts=T0 + 500 * NS))
    report = {"kpi": {"oee": 0.71, "availability": 0.9, "performance": 0.85, "quality": 0.93, "parts_total": 300,
                      "parts_good": 279, "parts_rejected": 21}, "alarms": {"total": 3}, "open_total": 2}
    ids["report"] = h.add_event(Event(ts=T0 + 3600 * NS, kind="report", source=LINE, code="report.shift",
                                      data={"report": report, "line": "line1", "shift": "A", "from": T0,
                                            "to": T0 + 3600 * NS}))
    return ids


def expand(sql: str, start: int, end: int, interval_ms: int, tags: list[str]) -> str:
    """Grafana's PostgreSQL macros, as its data source expands them."""
    lit = lambda ns: "'" + datetime.fromtimestamp(ns / NS, tz=UTC).isoformat() + "'"  # noqa: E731
    sql = re.sub(r"\$__timeFilter\((\w+)\)", lambda m: f"{m.group(1)} BETWEEN {lit(start)} AND {lit(end)}", sql)
    sql = sql.replace("$__timeFrom()", lit(start)).replace("$__timeTo()", lit(end))
    sql = sql.replace("$__unixEpochNanoFrom()", str(start)).replace("$__unixEpochNanoTo()", str(end))
    sql = sql.replace("$__interval_ms", str(interval_ms))
    sql = sql.replace("$tag", ",".join("'" + t.replace("'", "''") + "'" for t in tags))
    assert "$" not in sql, sql
    return sql


def test_views_and_every_grafana_query_against_postgresql(hist):
    ids = _fill(hist)
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for st in view_statements(hist.schema):
            conn.execute(st)
        for st in view_statements(hist.schema):  # idempotent
            conn.execute(st)
        dash = grafana_dashboard(hist.schema)
        assert dash["uid"] == "axline-overview" and {v["name"] for v in dash["templating"]["list"]} == {"ds", "tag"}
        tag_var = next(v for v in dash["templating"]["list"] if v["name"] == "tag")
        assert [r[0] for r in conn.execute(tag_var["query"]).fetchall()] == sorted([A, B])
        results = {}
        for panel in dash["panels"]:
            for tg in panel["targets"]:
                sql = expand(tg["rawSql"], T0, T0 + 3600 * NS, 60_000, [A])
                cur = conn.execute(sql)
                results[panel["id"]] = ([d.name for d in cur.description], cur.fetchall())
    cols, rows = results[1]  # readings per minute: min / mean / max keep the peak
    minutes = sorted({(T0 // NS + i) // 60 for i in range(3600)})  # the hour spans 61 clock minutes
    assert cols == ["time", "metric", "min", "mean", "max"] and len(rows) == len(minutes) == 61
    assert {r[1] for r in rows} == {A} and max(r[4] for r in rows) == 99.0
    assert rows[0][0] == datetime.fromtimestamp(minutes[0] * 60, tz=UTC)
    assert results[2][1][0][0] == A and results[2][1][0][2] == pytest.approx(va_last())
    hourly = results[3][1]
    assert sum(r[2] for r in hourly) == 3 and {r[1] for r in hourly} == {"line1"}
    cols, rows = results[4]  # alarms needing attention: active and returned, not the cleared one
    by_state = {r[cols.index("state")] for r in rows}
    assert by_state == {"active", "returned"} and len(rows) == 2
    assert results[5][1] == [(datetime.fromtimestamp(T0 / NS + 3600, tz=UTC), "line1", 0.71)]
    assert results[6][1][0][3] == 0.71 and results[6][1][0][7] == 2
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        row = conn.execute(f'SELECT state, ack_user, ack_note, priority FROM "{hist.schema}".v_alarms '
                           "WHERE id = %s", (ids["cleared"],)).fetchone()
        assert row == ("cleared", "kim", "센서 교체", "medium")


def va_last() -> float:
    return 50 + 10 * np.sin(3599 / 300)


def test_a_reader_role_sees_the_views_and_not_the_tables(hist):
    _fill(hist)
    role = f"axline_reader_{os.getpid()}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
        try:
            for st in view_statements(hist.schema) + grant_statements(hist.schema, role):
                conn.execute(st)
            conn.execute(f'SET ROLE "{role}"')
            for v in VIEW_NAMES:
                conn.execute(f'SELECT * FROM "{hist.schema}"."{v}" LIMIT 1').fetchall()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f'DELETE FROM "{hist.schema}".blocks')
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f'SELECT * FROM "{hist.schema}".events')
            conn.execute("RESET ROLE")
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="schema"):
        view_statements('axline"; drop table x; --')
    with pytest.raises(ValueError, match="role"):
        grant_statements("axline", "Bad Role")


@pytest.mark.parametrize("dsn", [
    "postgresql://axline:secret@central/axline",
    "postgresql://axline:@central/axline",
    "postgresql://axline@central/axline?password=secret",
    "postgresql://axline@central/axline?sslmode=require&password=secret",
    "host=central dbname=axline user=axline password=secret",
    "host=central password = 'two words' dbname=axline",
    "password=secret host=central",
])
def test_a_password_in_the_dsn_is_refused_in_every_form(dsn):
    import argparse

    from axline.history.sql_views import dsn_has_password, run

    assert dsn_has_password(dsn)
    args = argparse.Namespace(grafana=None, print=False, dsn=dsn, schema="axline", grant=None)
    with pytest.raises(SystemExit, match="PGPASSFILE"):
        run(args)


@pytest.mark.parametrize("dsn", ["postgresql://axline@central/axline?sslmode=verify-full",
                                 "host=central dbname=axline user=axline passfile=/etc/axline/pgpass"])
def test_a_dsn_without_a_password_is_accepted(dsn):
    from axline.history.sql_views import dsn_has_password

    assert not dsn_has_password(dsn)
