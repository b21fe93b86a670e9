"""One behaviour suite for every historian backend: embedded files and PostgreSQL.

The PostgreSQL cases use a fresh schema per test in the database named by ``AXLINE_TEST_PG_DSN``
(default ``postgresql://postgres@127.0.0.1:5432/test``) and drop it afterwards; they are skipped,
with the reason, only when no server answers there.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from axline.batch import BAD, BAD_SENSOR, GOOD, UNCERTAIN, Batch
from axline.historian.base import Event, Historian

NS = 1_000_000_000
T0 = 1_763_000_000 * NS
PG_DSN = os.environ.get("AXLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PATHS = [f"changwon/plant1/line{i % 3}/cell{i % 5}/asset{i}/signal{i % 4}" for i in range(40)]
_schema_no = itertools.count()


def _pg_unreachable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    try:
        psycopg.connect(PG_DSN, connect_timeout=10).close()
    except psycopg.OperationalError as e:
        return f"no PostgreSQL server reachable at {PG_DSN} (set AXLINE_TEST_PG_DSN): {str(e).strip()}"
    return None


@pytest.fixture(scope="session")
def pg_reason() -> str | None:
    return _pg_unreachable()


@pytest.fixture(params=["embedded", "postgres"])
def open_store(request, tmp_path, pg_reason) -> Iterator[Callable[[], Historian]]:
    """A function that opens (and reopens) one historian store of the backend under test."""
    opened: list[Historian] = []
    if request.param == "embedded":
        from axline.historian.embedded import EmbeddedHistorian

        def open_embedded() -> Historian:
            h = EmbeddedHistorian(str(tmp_path / "historian"), fsync="none")
            opened.append(h)
            return h

        yield open_embedded
        for h in opened:
            h.close()
        return

    if pg_reason:
        pytest.skip(pg_reason)
    import psycopg

    from axline.historian.postgres import PostgresHistorian

    schema = f"axline_test_{os.getpid()}_{next(_schema_no)}"

    def open_postgres() -> Historian:
        h = PostgresHistorian(PG_DSN, schema=schema)
        opened.append(h)
        return h

    try:
        yield open_postgres
    finally:
        for h in opened:
            h.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def shuffled_batch(
    rng: np.random.Generator, paths: list[str], n: int, t_lo: int, slot: int, slots: int
) -> Batch:
    """``n`` readings of random tags out of time order; timestamps are unique across batches that use
    different ``slot`` values (so the order of equal timestamps never matters)."""
    idx = rng.integers(0, len(paths), n).astype(np.int32)
    ts = t_lo + (rng.permutation(n).astype(np.int64) * slots + slot) * 1_000_003
    value = rng.normal(size=n)
    quality = rng.choice(np.array([GOOD, UNCERTAIN, BAD], np.uint8), n, p=[0.8, 0.1, 0.1])
    return Batch(paths, idx, ts, value, quality)


def reference(batches: list[Batch], path: str, start: int, end: int) -> tuple[np.ndarray, ...]:
    """What a query must return for ``path``: readings in [start, end) sorted by ts."""
    ts, val, q = [], [], []
    for b in batches:
        if path in b.paths:
            m = b.idx == b.paths.index(path)
            ts.append(b.ts[m])
            val.append(b.value[m])
            q.append(b.quality[m])
    if not ts:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8)
    ts, val, q = np.concatenate(ts), np.concatenate(val), np.concatenate(q)
    m = (ts >= start) & (ts < end)
    order = np.argsort(ts[m], kind="stable")
    return ts[m][order], val[m][order], q[m][order]


def assert_series(series, ref) -> None:
    assert (
        series.ts.dtype == np.int64 and series.value.dtype == np.float64 and series.quality.dtype == np.uint8
    )
    np.testing.assert_array_equal(series.ts, ref[0])
    np.testing.assert_array_equal(series.value, ref[1])
    np.testing.assert_array_equal(series.quality, ref[2])


# -- readings -----------------------------------------------------------------------------------
def test_round_trip_of_batches_with_many_tags(open_store):
    rng = np.random.default_rng(1)
    h = open_store()
    batches = []
    for k in range(5):
        sub = list(rng.permutation(PATHS)[: 8 + 7 * k])  # a different subset and order of tags each time
        b = shuffled_batch(rng, sub, 1500, T0, slot=k, slots=5)
        assert h.append(b) == 1500
        batches.append(b)
    assert h.count() == 7500
    used = sorted({p for b in batches for p in b.paths})
    assert h.tags() == used
    end = T0 + 10_000 * NS
    got = h.query(used, T0, end)
    assert list(got) == used
    for p in used:
        assert_series(got[p], reference(batches, p, T0, end))
    assert sum(len(s) for s in got.values()) == 7500


def test_range_is_start_inclusive_end_exclusive(open_store):
    h = open_store()
    p = PATHS[0]
    ts = np.array([T0 - 1, T0, T0 + 5, T0 + 9, T0 + 10, T0 + 11], np.int64)
    h.append(Batch([p], np.zeros(6, np.int32), ts, np.arange(6.0)))
    s = h.query([p], T0, T0 + 10)[p]
    np.testing.assert_array_equal(s.ts, [T0, T0 + 5, T0 + 9])
    np.testing.assert_array_equal(s.value, [1.0, 2.0, 3.0])
    assert len(h.query([p], T0 + 10, T0 + 10)[p]) == 0  # empty range
    assert len(h.query([p], T0 + 10, T0)[p]) == 0  # reversed range
    assert len(h.query([p], T0 + 12, T0 + 10**12)[p]) == 0


def test_unknown_tags_give_empty_series(open_store):
    h = open_store()
    h.append(Batch.from_readings([(PATHS[0], T0, 1.0), (PATHS[1], T0 + 1, 2.0)]))
    got = h.query(["no/such/tag", PATHS[1]], T0, T0 + NS)
    assert list(got) == ["no/such/tag", PATHS[1]]
    empty = got["no/such/tag"]
    assert len(empty) == 0 and empty.ts.dtype == np.int64 and empty.quality.dtype == np.uint8
    assert got[PATHS[1]].value.tolist() == [2.0]
    assert len(h.query_buckets(["no/such/tag"], T0, T0 + NS, NS)["no/such/tag"]) == 0
    assert h.latest(["no/such/tag"]) == {}
    assert h.tags() == sorted(PATHS[:2])


def test_out_of_order_batches_come_back_sorted(open_store):
    h = open_store()
    p, q = PATHS[3], PATHS[4]
    late = Batch.from_readings([(p, T0 + 30 * NS, 3.0), (q, T0 + 31 * NS, 30.0), (p, T0 + 20 * NS, 2.0)])
    early = Batch.from_readings([(p, T0 + 10 * NS, 1.0), (q, T0 + 5 * NS, 10.0), (p, T0 + 25 * NS, 2.5)])
    h.append(late)
    h.append(early)
    got = h.query([p, q], T0, T0 + 60 * NS)
    np.testing.assert_array_equal(got[p].ts, T0 + np.array([10, 20, 25, 30]) * NS)
    np.testing.assert_array_equal(got[p].value, [1.0, 2.0, 2.5, 3.0])
    np.testing.assert_array_equal(got[q].value, [10.0, 30.0])


def reference_buckets(batches: list[Batch], path: str, start: int, end: int, step: int) -> dict[int, tuple]:
    """Bucket start -> (min, max, mean, last, count) of good readings, in plain Python."""
    rows = sorted(
        (r.ts, r.value)
        for b in batches
        for r in b
        if r.path == path and r.quality == GOOD and start <= r.ts < end
    )
    out: dict[int, list[float]] = {}
    for t, v in rows:
        out.setdefault(start + (t - start) // step * step, []).append(v)
    return {b: (min(vs), max(vs), sum(vs) / len(vs), vs[-1], len(vs)) for b, vs in out.items()}


def test_buckets_match_a_plain_python_reference(open_store):
    rng = np.random.default_rng(7)
    h = open_store()
    paths = PATHS[:6]
    batches = [shuffled_batch(rng, paths, 800, T0, slot=k, slots=3) for k in range(3)]
    for b in batches:
        h.append(b)
    span = 800 * 3 * 1_000_003
    # a start that is not aligned to the data and a step that does not divide the range
    start, end, step = T0 + 12_345, T0 + span - 777, 97 * 1_000_003 + 11
    got = h.query_buckets(paths + ["no/such/tag"], start, end, step)
    assert len(got["no/such/tag"]) == 0
    for p in paths:
        ref = reference_buckets(batches, p, start, end, step)
        bk = got[p]
        assert len(bk) == len(ref) > 10
        np.testing.assert_array_equal(bk.start, sorted(ref))
        rows = [ref[b] for b in sorted(ref)]
        np.testing.assert_array_equal(bk.min, [r[0] for r in rows])
        np.testing.assert_array_equal(bk.max, [r[1] for r in rows])
        np.testing.assert_allclose(bk.mean, [r[2] for r in rows], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(bk.last, [r[3] for r in rows])
        np.testing.assert_array_equal(bk.count, [r[4] for r in rows])
        assert bk.start.dtype == np.int64 and bk.count.dtype == np.int64


def test_bad_quality_readings_stay_out_of_buckets_but_not_out_of_queries(open_store):
    h = open_store()
    p = PATHS[5]
    h.append(
        Batch(
            [p],
            np.zeros(4, np.int32),
            T0 + np.arange(4) * NS,
            np.array([1.0, 100.0, 3.0, -50.0]),
            np.array([GOOD, BAD, GOOD, BAD_SENSOR], np.uint8),
        )
    )
    bk = h.query_buckets([p], T0, T0 + 10 * NS, 10 * NS)[p]
    assert bk.count.tolist() == [2]
    assert (bk.min[0], bk.max[0], bk.mean[0], bk.last[0]) == (1.0, 3.0, 2.0, 3.0)
    assert h.query([p], T0, T0 + 10 * NS)[p].quality.tolist() == [GOOD, BAD, GOOD, BAD_SENSOR]
    with pytest.raises(ValueError, match="step"):
        h.query_buckets([p], T0, T0 + NS, 0)


def test_latest_is_the_newest_reading_per_tag(open_store):
    h = open_store()
    a, b, c = PATHS[6], PATHS[7], PATHS[8]
    h.append(
        Batch.from_readings([(a, T0 + 50, 5.0, GOOD), (b, T0 + 10, 1.0, UNCERTAIN), (a, T0 + 40, 4.0, GOOD)])
    )
    h.append(Batch.from_readings([(a, T0 + 20, 2.0, GOOD), (b, T0 + 60, 6.0, BAD), (c, T0 + 1, 0.5, GOOD)]))
    assert h.latest() == {a: (T0 + 50, 5.0, GOOD), b: (T0 + 60, 6.0, BAD), c: (T0 + 1, 0.5, GOOD)}
    assert h.latest([b, "no/such/tag"]) == {b: (T0 + 60, 6.0, BAD)}
    assert h.latest([]) == {}
    with pytest.raises(TypeError):
        h.latest(a)


def test_append_counts_and_rejects_what_is_not_a_batch(open_store):
    h = open_store()
    assert h.append(Batch.empty()) == 0
    assert h.count() == 0 and h.tags() == []
    assert h.append(Batch.from_readings([(PATHS[0], T0, 1.0), (PATHS[1], T0, 2.0)])) == 2
    assert h.count() == 2
    with pytest.raises(TypeError, match="Batch"):
        h.append([(PATHS[0], T0, 1.0)])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        h.query(PATHS[0], T0, T0 + 1)  # a single string, not a list
    assert h.count() == 2


# -- events -------------------------------------------------------------------------------------
def test_events_add_update_filter_and_count(open_store):
    h = open_store()
    asset = "changwon/plant1/line1/cnc/cnc1"
    e1 = Event(ts=T0, kind="alarm", source=f"{asset}/spindle_temp", code="anomaly.sensor", severity="alarm")
    e2 = Event(
        ts=T0 + 10,
        kind="defect",
        source="changwon/plant1/line2/vision/cam1",
        code="inspect.defect",
        data={"score": 0.93, "note": "스크래치"},
    )
    e3 = Event(ts=T0 + 20, kind="alarm", source=f"{asset}/vibration", code="anomaly.sensor", message="high")
    ids = [h.add_event(e) for e in (e1, e2, e3)]
    assert len(set(ids)) == 3 and [e.id for e in (e1, e2, e3)] == ids
    assert [e.id for e in h.events()] == [ids[2], ids[1], ids[0]]  # newest first
    assert [e.id for e in h.events(kinds=["alarm"])] == [ids[2], ids[0]]
    assert h.events(kinds=[]) == []
    assert [e.id for e in h.events(source_prefix=asset)] == [ids[2], ids[0]]
    assert [e.id for e in h.events(start=T0 + 10, end=T0 + 20)] == [ids[1]]  # start inclusive, end exclusive
    assert [e.id for e in h.events(limit=1)] == [ids[2]]
    assert h.event_counts() == {"alarm": 2, "defect": 1}

    h.update_event(ids[1], ack="overruled", data={"operator": "kim"}, end_ts=T0 + 15)
    got = h.events(kinds=["defect"])[0]
    assert got.ack == "overruled" and got.end_ts == T0 + 15
    assert got.data == {"score": 0.93, "note": "스크래치", "operator": "kim"}
    assert got.to_json()["code"] == "inspect.defect"
    h.update_event(ids[0], severity="warning", message="cleared")
    first = h.events(end=T0 + 1)[0]
    assert (first.severity, first.message, first.kind, first.source) == (
        "warning",
        "cleared",
        "alarm",
        e1.source,
    )

    with pytest.raises(KeyError):
        h.update_event(10_000, ack="confirmed")
    with pytest.raises(ValueError, match="severity"):
        h.update_event(ids[0], severity="catastrophic")
    with pytest.raises(ValueError, match="cannot change"):
        h.update_event(ids[0], kind="defect")
    with pytest.raises(ValueError, match="severity"):
        h.add_event(Event(ts=T0, kind="alarm", source="x", code="y", severity="loud"))
    assert h.event_counts() == {"alarm": 2, "defect": 1}


def test_event_by_id(open_store):
    h = open_store()
    old = Event(ts=T0, kind="alarm", source="a/b", code="anomaly.sensor", data={"k": 1})
    old_id = h.add_event(old)
    for k in range(5):  # newer events do not hide an old one
        h.add_event(Event(ts=T0 + 1000 + k, kind="info", source="a/b", code="x"))
    h.update_event(old_id, ack="acknowledged", data={"note": "done"})
    got = h.event(old_id)
    assert got is not None and (got.id, got.ts, got.kind, got.code, got.ack) == (
        old_id, T0, "alarm", "anomaly.sensor", "acknowledged")
    assert got.data == {"k": 1, "note": "done"}
    assert h.event(old_id + 100) is None
    assert h.event(0) is None and h.event(2**70) is None


# -- life cycle ---------------------------------------------------------------------------------
def test_a_path_named_twice_in_one_batch_is_one_tag(open_store):
    h = open_store()
    a, b = PATHS[0], PATHS[1]
    h.append(Batch([a, b, a], np.array([0, 2, 1, 0], np.int32), np.full(4, T0), np.arange(4.0)))
    assert h.tags() == sorted([a, b]) and h.count() == 4
    assert h.query([a], T0, T0 + 1)[a].value.tolist() == [0.0, 1.0, 3.0]  # arrival order among equal ts
    assert h.latest([a])[a][1] == 3.0
    h.close()
    h2 = open_store()  # the tag list holds the path once, so the store opens again
    assert h2.tags() == sorted([a, b]) and h2.query([a], T0, T0 + 1)[a].value.tolist() == [0.0, 1.0, 3.0]


def test_reopen_keeps_everything(open_store):
    rng = np.random.default_rng(3)
    h = open_store()
    paths = PATHS[10:20]
    batches = [shuffled_batch(rng, paths, 500, T0, slot=k, slots=3) for k in range(2)]
    for b in batches:
        h.append(b)
    eid = h.add_event(
        Event(ts=T0 + 5, kind="fault", source=paths[0], code="fault.injected", data={"k": [1, 2]})
    )
    before = (h.count(), h.tags(), h.latest(), h.event_counts())
    h.close()

    h2 = open_store()
    assert (h2.count(), h2.tags(), h2.latest(), h2.event_counts()) == before
    end = T0 + 10_000 * NS
    for p, s in h2.query(paths, T0, end).items():
        assert_series(s, reference(batches, p, T0, end))
    assert h2.events()[0].id == eid and h2.events()[0].data == {"k": [1, 2]}
    # appending and adding events go on after reopening, without clashes
    more = shuffled_batch(rng, paths + ["changwon/plant1/line9/new/asset/signal"], 300, T0, slot=2, slots=3)
    h2.append(more)
    batches.append(more)
    assert h2.count() == 1300
    assert h2.add_event(Event(ts=T0, kind="info", source="x", code="y")) != eid
    for p, s in h2.query(list(more.paths), T0, end).items():
        assert_series(s, reference(batches, p, T0, end))
