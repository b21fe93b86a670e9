"""Embedded historian: round trips, buckets, latest, restart, crash safety, torn tails, locking, events."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from _historian_writer import batch_tags, make_batch
from axline.batch import BAD, GOOD, UNCERTAIN, Batch
from axline.historian.base import Event, Series
from axline.historian.embedded import (
    HEADER_SIZE,
    EmbeddedHistorian,
    HistorianLockedError,
)
from axline.historian.factory import open_historian

NS = 1_000_000_000
T0 = 1_763_000_000 * NS
WRITER = Path(__file__).with_name("_historian_writer.py")
SRC = Path(__file__).resolve().parents[1] / "src"


def random_batch(rng: np.random.Generator, paths: list[str], n: int, t_lo: int, t_hi: int) -> Batch:
    idx = rng.integers(0, len(paths), n).astype(np.int32)
    ts = rng.integers(t_lo, t_hi, n).astype(np.int64)
    value = rng.normal(size=n)
    quality = rng.choice(np.array([GOOD, UNCERTAIN, BAD], np.uint8), n, p=[0.8, 0.1, 0.1])
    return Batch(paths, idx, ts, value, quality)


def reference(batches: list[Batch], path: str, start: int, end: int) -> tuple[np.ndarray, ...]:
    """What a query must return: readings of ``path`` in [start, end), sorted by ts, arrival order for ties."""
    ts, val, q = [], [], []
    for b in batches:
        if path not in b.paths:
            continue
        m = b.idx == b.paths.index(path)
        ts.append(b.ts[m])
        val.append(b.value[m])
        q.append(b.quality[m])
    if not ts:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8)
    ts, val, q = np.concatenate(ts), np.concatenate(val), np.concatenate(q)
    m = (ts >= start) & (ts < end)
    ts, val, q = ts[m], val[m], q[m]
    order = np.argsort(ts, kind="stable")
    return ts[order], val[order], q[order]


def assert_series_equal(series, ref) -> None:
    np.testing.assert_array_equal(series.ts, ref[0])
    np.testing.assert_array_equal(series.value, ref[1])
    np.testing.assert_array_equal(series.quality, ref[2])


PATHS = [f"changwon/plant1/line{i % 3}/cell/asset{i}/signal{i % 4}" for i in range(40)]


# -- readings -----------------------------------------------------------------------------------
def test_round_trip_many_tags_and_range_boundaries(tmp_path):
    rng = np.random.default_rng(1)
    batches = []
    with EmbeddedHistorian(str(tmp_path / "h"), fsync="none") as h:
        for k in range(6):
            # each batch uses a different subset of tags, in a different order of ``paths``
            sub = list(rng.permutation(PATHS)[: 10 + 5 * k])
            b = random_batch(rng, sub, 2000, T0 + k * 500 * NS, T0 + (k + 2) * 500 * NS)
            assert h.append(b) == 2000
            batches.append(b)
        assert h.count() == 12000
        used = sorted({p for b in batches for p in b.paths})
        assert h.tags() == used
        all_ts = np.concatenate([b.ts for b in batches])
        start, end = int(np.sort(all_ts)[1500]), int(np.sort(all_ts)[9000])  # boundaries on real readings
        got = h.query(used, start, end)
        assert set(got) == set(used)
        for p in used:
            ref = reference(batches, p, start, end)
            assert_series_equal(got[p], ref)
            if len(ref[0]):
                assert got[p].ts[0] >= start and got[p].ts[-1] < end
        # the reading exactly at ``start`` is in, the one exactly at ``end`` is out
        total = sum(len(s) for s in got.values())
        assert total == int(((all_ts >= start) & (all_ts < end)).sum())
        assert start in np.concatenate([s.ts for s in got.values()])
        assert end not in np.concatenate([s.ts for s in got.values()])
        # everything
        for p in used[:5]:
            assert_series_equal(h.query([p], 0, 2**62)[p], reference(batches, p, 0, 2**62))


def test_unknown_tags_give_empty_series(tmp_path):
    with EmbeddedHistorian(str(tmp_path / "h"), fsync="none") as h:
        h.append(Batch.from_readings([("a/b/c/d/e/x", T0, 1.0)]))
        got = h.query(["a/b/c/d/e/x", "no/such/tag"], 0, 2**62)
        assert len(got["a/b/c/d/e/x"]) == 1
        assert len(got["no/such/tag"]) == 0 and got["no/such/tag"].ts.dtype == np.int64
        assert h.query(["a/b/c/d/e/x"], T0 + 1, T0 + 5)["a/b/c/d/e/x"].ts.tolist() == []
        assert h.query_buckets(["no/such/tag"], 0, 2**62, NS)["no/such/tag"].count.tolist() == []
        assert h.latest(["no/such/tag"]) == {}


def test_out_of_order_batches_come_back_sorted_and_stable(tmp_path):
    p = "changwon/plant1/line1/cnc/cnc1/spindle_temp"
    with EmbeddedHistorian(str(tmp_path / "h"), fsync="none") as h:
        h.append(Batch.from_readings([(p, T0 + 30, 3.0), (p, T0 + 10, 1.0), (p, T0 + 20, 2.0)]))
        h.append(Batch.from_readings([(p, T0 + 5, 0.5), (p, T0 + 20, 2.5)]))  # late data, same ts as 2.0
        h.append(Batch.from_readings([(p, T0 + 20, 2.7)]))
        s = h.query([p], T0, T0 + 100)[p]
        assert s.ts.tolist() == [T0 + 5, T0 + 10, T0 + 20, T0 + 20, T0 + 20, T0 + 30]
        assert s.value.tolist() == [0.5, 1.0, 2.0, 2.5, 2.7, 3.0]  # equal ts keep arrival order


def pure_python_buckets(batches, path, start, end, step):
    groups: dict[int, list[tuple[int, int, float]]] = {}
    order = 0
    for b in batches:
        for r in b:
            order += 1
            if r.path == path and start <= r.ts < end and r.quality == GOOD:
                groups.setdefault((r.ts - start) // step, []).append((r.ts, order, r.value))
    out = []
    for k in sorted(groups):
        rows = groups[k]
        vals = [v for _, _, v in rows]
        last = max(rows, key=lambda row: (row[0], row[1]))[2]
        out.append((start + k * step, min(vals), max(vals), sum(vals) / len(vals), last, len(vals)))
    return out


def test_buckets_match_pure_python(tmp_path):
    rng = np.random.default_rng(7)
    paths = PATHS[:4]
    batches = []
    with EmbeddedHistorian(str(tmp_path / "h"), fsync="none") as h:
        for _ in range(5):
            b = random_batch(rng, paths, 800, T0, T0 + 60 * NS)
            b.ts[:] = (b.ts // (NS // 10)) * (NS // 10)  # coarse times so ties inside buckets happen
            h.append(b)
            batches.append(b)
        start, end, step = T0 + 3 * NS + 123, T0 + 50 * NS, 7 * NS
        got = h.query_buckets(paths + ["no/such/tag"], start, end, step)
        for p in paths:
            ref = pure_python_buckets(batches, p, start, end, step)
            g = got[p]
            assert len(g) == len(ref) > 3
            assert g.start.tolist() == [r[0] for r in ref]
            np.testing.assert_array_equal(g.min, [r[1] for r in ref])
            np.testing.assert_array_equal(g.max, [r[2] for r in ref])
            np.testing.assert_allclose(g.mean, [r[3] for r in ref], rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(g.last, [r[4] for r in ref])
            assert g.count.tolist() == [r[5] for r in ref]
        assert len(got["no/such/tag"]) == 0
        with pytest.raises(ValueError, match="step must be > 0"):
            h.query_buckets(paths, start, end, 0)


def test_buckets_skip_empty_buckets_and_exclude_bad_quality(tmp_path):
    p = "a/b/c/d/e/f"
    with EmbeddedHistorian(str(tmp_path / "h"), fsync="none") as h:
        h.append(
            Batch.from_readings(
                [
                    (p, T0 + 1, 5.0),
                    (p, T0 + 2, 100.0, BAD),
                    (p, T0 + 3, 7.0),
                    (p, T0 + 35, 1.0),
                    (p, T0 + 36, 9.0, 1),
                ]
            )
        )
        b = h.query_buckets([p], T0, T0 + 40, 10)[p]
        assert b.start.tolist() == [T0, T0 + 30]
        assert b.max.tolist() == [7.0, 1.0] and b.min.tolist() == [5.0, 1.0]
        assert b.mean.tolist() == [6.0, 1.0] and b.last.tolist() == [7.0, 1.0] and b.count.tolist() == [2, 1]


def test_latest_after_append_and_after_reopen(tmp_path):
    a, b, c = "s/a/l/c/x/temp", "s/a/l/c/x/speed", "s/a/l/c/y/temp"
    path = str(tmp_path / "h")
    with EmbeddedHistorian(path, fsync="none") as h:
        assert h.latest() == {}
        h.append(Batch.from_readings([(a, T0 + 10, 1.0), (b, T0 + 10, 2.0), (a, T0 + 20, 3.0, BAD)]))
        h.append(Batch.from_readings([(a, T0 + 15, 9.0)]))  # older than the newest: not the latest
        h.append(Batch.from_readings([(b, T0 + 10, 4.0), (c, T0 + 1, 5.0)]))  # same ts, later arrival wins
        for _ in range(3):  # later records that do not mention ``c`` (reopen must still find it)
            h.append(Batch.from_readings([(a, T0 + 5, 0.0), (b, T0 + 5, 0.0)]))
        expect = {a: (T0 + 20, 3.0, BAD), b: (T0 + 10, 4.0, GOOD), c: (T0 + 1, 5.0, GOOD)}
        assert h.latest() == expect
        assert h.latest([c, "no/such"]) == {c: expect[c]}
    with EmbeddedHistorian(path, fsync="none") as h:
        assert h.latest() == expect
        h.append(Batch.from_readings([(c, T0 + 2, 6.0)]))
        assert h.latest([c]) == {c: (T0 + 2, 6.0, GOOD)}


def test_restart_keeps_everything_across_segments(tmp_path):
    path = str(tmp_path / "h")
    rng = np.random.default_rng(3)
    batches = [random_batch(rng, PATHS, 700, T0, T0 + 100 * NS) for _ in range(12)]
    with EmbeddedHistorian(path, fsync="batch", segment_bytes=32 * 1024) as h:
        for b in batches:
            h.append(b)
        before = h.query(PATHS, 0, 2**62)
        latest = h.latest()
    assert len([f for f in os.listdir(path) if f.startswith("seg-")]) >= 4  # the segments rolled
    with EmbeddedHistorian(path, fsync="batch", segment_bytes=32 * 1024) as h:
        assert h.count() == 12 * 700
        assert h.tags() == sorted(PATHS)
        assert h.latest() == latest
        assert h.verify() == []
        after = h.query(PATHS, 0, 2**62)
        for p in PATHS:
            assert_series_equal(after[p], (before[p].ts, before[p].value, before[p].quality))
            assert_series_equal(after[p], reference(batches, p, 0, 2**62))
        extra = random_batch(rng, PATHS, 100, T0, T0 + NS)
        h.append(extra)
        assert h.count() == 12 * 700 + 100


def test_closed_segments_of_small_records_are_compacted(tmp_path):
    path = str(tmp_path / "h")
    a, b = "s/a/l/c/x/temp", "s/a/l/c/x/speed"
    batches = []
    for k in range(300):  # small appends; every 3rd batch repeats an earlier ts (ties keep arrival order)
        t = T0 + (k - k % 3) * NS
        batches.append(
            Batch(
                [a, b],
                np.array([0, 1, 0, 1], np.int32),
                np.array([t, t, t + 1, t + 1]),
                np.array([k, -k, k + 0.5, -k - 0.5], float),
                np.array([0, 0, k % 2, 0], np.uint8),
            )
        )
    with EmbeddedHistorian(path, fsync="none", segment_bytes=4096) as h:
        h.compact_min_records = 8
        for bt in batches:
            h.append(bt)
        h.wait_for_compaction()
        assert h._index.n < 60  # 300 records went into few large ones
        assert h.verify() == []
        got = h.query([a, b], 0, 2**62)
        latest = h.latest()
    for p in (a, b):
        assert_series_equal(got[p], reference(batches, p, 0, 2**62))
    assert latest[a] == (T0 + 297 * NS + 1, 299.5, 1)
    with EmbeddedHistorian(path, fsync="none", segment_bytes=4096) as h:
        assert h.count() == 1200 and h.latest() == latest
        for p in (a, b):
            assert_series_equal(
                h.query([p], T0 + 10 * NS, T0 + 200 * NS + 1)[p],
                reference(batches, p, T0 + 10 * NS, T0 + 200 * NS + 1),
            )
    assert not list(Path(path).glob("*.compact"))


def test_open_historian_and_close(tmp_path):
    h = open_historian("embedded:h", base_dir=str(tmp_path))
    assert isinstance(h, EmbeddedHistorian) and h.fsync_mode == "batch"
    h.append(Batch.from_readings([("a/b/c/d/e/f", T0, 1.0)]))
    h.close()
    h.close()  # twice is fine
    with pytest.raises(RuntimeError, match="is closed"):
        h.count()
    with open_historian({"backend": "embedded", "path": str(tmp_path / "h"), "fsync": "interval"}) as h2:
        assert h2.count() == 1


def test_bad_input_is_refused_with_clear_messages(tmp_path):
    with pytest.raises(ValueError, match="fsync: 'sometimes' is not known"):
        EmbeddedHistorian(str(tmp_path / "x"), fsync="sometimes")
    (tmp_path / "file").write_text("not a dir")
    with pytest.raises(NotADirectoryError, match="is a file, not a directory"):
        EmbeddedHistorian(str(tmp_path / "file"))
    with EmbeddedHistorian(str(tmp_path / "h"), fsync="none") as h:
        with pytest.raises(TypeError, match="not a single string"):
            h.query("a/b/c/d/e/f", 0, 10)
        with pytest.raises(TypeError, match="start must be an integer"):
            h.query(["a"], 0.5, 10)
        with pytest.raises(ValueError, match="tag path 'bad\\\\npath' is not valid"):
            h.append(Batch.from_readings([("bad\npath", T0, 1.0)]))
        with pytest.raises(TypeError, match="expects an axline.batch.Batch"):
            h.append([("a", 1, 2.0)])
        assert h.count() == 0 and h.tags() == []
        assert h.append(Batch.empty()) == 0


def test_appends_from_threads(tmp_path):
    with EmbeddedHistorian(str(tmp_path / "h"), fsync="interval") as h:

        def work(j: int) -> None:
            for k in range(20):
                h.append(Batch.from_readings([(f"s/a/l/c/t{j}/v", T0 + k, float(k))] * 3))

        threads = [threading.Thread(target=work, args=(j,)) for j in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert h.count() == 4 * 20 * 3
        h.flush()
        assert h.latest(["s/a/l/c/t2/v"]) == {"s/a/l/c/t2/v": (T0 + 19, 19.0, GOOD)}


def test_retention_drops_whole_old_segments(tmp_path):
    p = "a/b/c/d/e/f"
    with EmbeddedHistorian(str(tmp_path / "h"), fsync="none", segment_bytes=4096) as h:
        for k in range(10):
            n = 100
            h.append(Batch([p], np.zeros(n, np.int32), T0 + k * NS + np.arange(n), np.full(n, float(k))))
        segs_before = len(list((tmp_path / "h").glob("seg-*.dat")))
        dropped = h.drop_before(T0 + 5 * NS)
        assert dropped > 0 and dropped % 100 == 0
        assert h.count() == 1000 - dropped
        assert len(list((tmp_path / "h").glob("seg-*.dat"))) < segs_before
        s = h.query([p], 0, 2**62)[p]
        assert (
            len(s) == 1000 - dropped and s.ts.min() < T0 + 5 * NS + 100
        )  # nothing newer than the cut is gone
        assert h.latest() == {p: (T0 + 9 * NS + 99, 9.0, GOOD)}
        newest = h.query([p], 0, 2**62)[p]
    # retention counts days back from the newest reading (data time), not from the wall clock: a line
    # that was switched off for a long time keeps its history on open
    with EmbeddedHistorian(str(tmp_path / "h"), fsync="none", segment_bytes=4096, retention_days=1) as h:
        assert h.count() == 1000 - dropped
        n = 100
        day2 = T0 + 2 * 86400 * NS
        h.append(Batch([p], np.zeros(n, np.int32), day2 + np.arange(n), np.full(n, 42.0)))
        h.flush()
    # on open, retention drops every closed segment older than one day before the newest reading
    with EmbeddedHistorian(str(tmp_path / "h"), fsync="none", segment_bytes=4096, retention_days=1) as h:
        s = h.query([p], 0, 2**62)[p]
        assert h.count() == len(s) and s.ts.min() >= T0  # what is left is whole segments
        assert int((s.value == 42.0).sum()) == 100  # the newest day is all there
        assert h.latest() == {p: (day2 + 99, 42.0, GOOD)}
        assert h.count() < 1000 - dropped + 100  # older segments went
        older = s.ts[s.ts < day2]
        if len(older):  # older readings left share the newest segment: they are the newest ones
            assert_series_equal(Series(older, s.value[: len(older)], s.quality[: len(older)]),
                                (newest.ts[-len(older) :], newest.value[-len(older) :],
                                 newest.quality[-len(older) :]))


# -- crash safety -------------------------------------------------------------------------------
def check_batches_exact(h: EmbeddedHistorian, acked: list[int], may_also: int | None) -> set[int]:
    """Every acked batch is fully present with exact values; no partial batch; return batches seen."""
    tags = h.tags()
    got = h.query(tags, 0, 2**62)
    ts = np.concatenate([s.ts for s in got.values()])
    val = np.concatenate([s.value for s in got.values()])
    q = np.concatenate([s.quality for s in got.values()])
    path = np.concatenate([np.full(len(s), p, dtype=object) for p, s in got.items()])
    seen = set((ts // NS).tolist())
    allowed = set(acked) | ({may_also} if may_also is not None else set())
    assert set(acked) <= seen <= allowed, (
        f"acked {len(acked)} batches, seen {sorted(seen - set(acked))} extra"
    )
    expect = [make_batch(k) for k in sorted(seen)]
    ref = Batch.concat(expect)
    order = np.lexsort((ref.ts,))
    mine = np.lexsort((ts,))
    np.testing.assert_array_equal(ts[mine], ref.ts[order])
    np.testing.assert_array_equal(val[mine], ref.value[order])
    np.testing.assert_array_equal(q[mine], ref.quality[order])
    np.testing.assert_array_equal(path[mine], ref.path_array()[order])
    assert h.count() == len(ref)
    return seen


def test_kill_9_during_writes_loses_nothing_acknowledged(tmp_path):
    path = str(tmp_path / "h")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(WRITER.parent)]))
    rnd = random.Random(11)
    first = 0
    for round_no in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), path, str(first), "none", "65536", "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(proc.stdout,), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while len(lines) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert len(lines) >= 3, (
            f"writer did not start: {proc.poll()} {proc.stderr.read() if proc.poll() else ''}"
        )
        time.sleep(rnd.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join(60)
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        acked = [int(x) for x in lines[1:] if x.strip()]
        assert acked and acked == list(range(first, first + len(acked))), f"round {round_no}"
        with EmbeddedHistorian(path, fsync="none") as h:
            seen = check_batches_exact(h, list(range(0, acked[-1] + 1)), acked[-1] + 1)
            nxt = max(seen) + 1
            h.append(make_batch(nxt))  # the store takes new data after the crash
            assert set(
                (h.query(batch_tags(nxt), nxt * NS, (nxt + 1) * NS)[batch_tags(nxt)[0]].ts // NS).tolist()
            ) == {nxt}
        first = nxt + 1
        # batch nxt is present; the next round starts after it and checks the full range again
        with EmbeddedHistorian(path, fsync="none") as h:
            check_batches_exact(h, list(range(0, nxt + 1)), None)


def _segments(path: Path) -> list[Path]:
    return sorted(path.glob("seg-*.dat"))


def _fill(path: Path, k_range: range) -> None:
    with EmbeddedHistorian(str(path), fsync="none") as h:
        for k in k_range:
            h.append(make_batch(k))


def test_torn_tail_is_cut_and_earlier_records_survive(tmp_path):
    path = tmp_path / "h"
    _fill(path, range(4))
    seg = _segments(path)[-1]
    size = seg.stat().st_size
    record3 = HEADER_SIZE + ((8 * 6 + 17 * len(make_batch(3)) + 7) // 8) * 8
    # 1) the last record cut halfway
    with open(seg, "r+b") as f:
        f.truncate(size - record3 // 2)
    with EmbeddedHistorian(str(path), fsync="none") as h:
        check_batches_exact(h, [0, 1, 2], None)
        assert seg.stat().st_size == size - record3  # exactly the torn record is gone
        h.append(make_batch(3))
        check_batches_exact(h, [0, 1, 2, 3], None)
    # 2) garbage after the last record
    with open(seg, "ab") as f:
        f.write(os.urandom(1000))
    with EmbeddedHistorian(str(path), fsync="none") as h:
        check_batches_exact(h, [0, 1, 2, 3], None)
        h.append(make_batch(4))
    # 3) a header only, then zeros (what a power cut can leave)
    with open(seg, "ab") as f:
        f.write(b"AXR1" + b"\0" * 5000)
    with EmbeddedHistorian(str(path), fsync="none") as h:
        check_batches_exact(h, [0, 1, 2, 3, 4], None)
    # 4) a torn line at the end of tags.txt (crash while writing a new tag)
    with open(path / "tags.txt", "ab") as f:
        f.write(b"changwon/plant1/line1/half")
    with EmbeddedHistorian(str(path), fsync="none") as h:
        check_batches_exact(h, [0, 1, 2, 3, 4], None)
        h.append(make_batch(5))
    with EmbeddedHistorian(str(path), fsync="none") as h:
        check_batches_exact(h, [0, 1, 2, 3, 4, 5], None)


def test_damage_in_the_middle_is_quarantined_not_served_not_rewritten(tmp_path):
    path = tmp_path / "h"
    _fill(path, range(5))
    seg = _segments(path)[-1]
    data = bytearray(seg.read_bytes())
    second = HEADER_SIZE + ((8 * 6 + 17 * len(make_batch(0)) + 7) // 8) * 8
    assert data[second : second + 4] == b"AXR1"
    damaged = bytearray(data)
    damaged[second + 10] ^= 0xFF  # a header in the middle
    seg.write_bytes(damaged)
    with EmbeddedHistorian(str(path), fsync="none") as h:
        check_batches_exact(h, [0, 2, 3, 4], None)  # batch 1 is kept out, the rest is all there
        d = h.damaged()
        assert [(x["file"], x["offset"]) for x in d] == [(seg.name, second)]
    assert seg.read_bytes() == damaged  # nothing was cut or rewritten
    assert (path / "damaged.json").exists()
    seg.write_bytes(data)
    (path / "damaged.json").unlink()
    with EmbeddedHistorian(str(path), fsync="none") as h:  # restored file opens again, whole
        check_batches_exact(h, list(range(5)), None)
        damaged = bytearray(data)
        damaged[second + HEADER_SIZE + 100] ^= 0xFF  # a payload byte in the middle
        seg.write_bytes(damaged)
    with EmbeddedHistorian(str(path), fsync="none", scrub_mb_s=None) as h:
        found = []
        h.on_damage = found.append
        problems = h.verify()
        assert any(f"{seg.name}: offset {second} " in m and "CRC" in m for m in problems)
        assert [x["offset"] for x in found] == [second]
        check_batches_exact(h, [0, 2, 3, 4], None)  # quarantined: never served as good
    with EmbeddedHistorian(str(path), fsync="none", scrub_mb_s=None) as h:  # and it stays out after reopening
        check_batches_exact(h, [0, 2, 3, 4], None)
    assert seg.read_bytes() == damaged


def test_tags_file_missing_ids_quarantines_the_records_naming_them(tmp_path):
    path = tmp_path / "h"
    _fill(path, range(3))
    tags = (path / "tags.txt").read_bytes()
    cut = tags[: tags.rstrip(b"\n").rfind(b"\n") + 1] + b"half-written/ta"  # lose a used tag
    (path / "tags.txt").write_bytes(cut)
    seg_before = _segments(path)[-1].read_bytes()
    with EmbeddedHistorian(str(path), fsync="none") as h:
        assert h.damaged() and all("tags.txt" in d["reason"] for d in h.damaged())
        assert h.count() < 3 * len(make_batch(0))
    assert _segments(path)[-1].read_bytes() == seg_before  # nothing was cut while the store is in doubt


def test_damage_in_an_older_segment_is_quarantined(tmp_path):
    path = tmp_path / "h"
    with EmbeddedHistorian(str(path), fsync="none", segment_bytes=4096) as h:
        for k in range(8):
            h.append(make_batch(k))
        total = h.count()
    segs = _segments(path)
    assert len(segs) >= 3
    with open(segs[0], "r+b") as f:
        f.truncate(segs[0].stat().st_size - 10)
    with EmbeddedHistorian(str(path), fsync="none", segment_bytes=4096) as h:
        assert [d["file"] for d in h.damaged()] == [segs[0].name]
        assert 0 < h.count() < total


def test_second_process_cannot_open_the_same_directory(tmp_path):
    path = str(tmp_path / "h")
    with EmbeddedHistorian(path, fsync="none"):
        code = (
            "import sys\n"
            "from axline.historian.embedded import EmbeddedHistorian\n"
            "try:\n"
            f"    EmbeddedHistorian({path!r})\n"
            "except RuntimeError as e:\n"
            "    print(e); sys.exit(3)\n"
        )
        env = dict(os.environ, PYTHONPATH=str(SRC))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 3, r.stderr
        assert f"historian {path} is already open in another process (pid {os.getpid()})" in r.stdout
        assert "stop it first or point this one at another directory" in r.stdout
        with pytest.raises(HistorianLockedError):  # a second open in this process is refused too
            EmbeddedHistorian(path)
    with EmbeddedHistorian(path, fsync="none") as h:  # released on close
        assert h.count() == 0


# -- events -------------------------------------------------------------------------------------
def test_events_add_update_filter_count_and_reopen(tmp_path):
    path = str(tmp_path / "h")
    with EmbeddedHistorian(path, fsync="batch") as h:
        e1 = Event(
            ts=T0,
            kind="alarm",
            source="changwon/plant1/line1/cnc/cnc1/spindle_temp",
            code="anomaly.sensor",
            message="spindle hot",
            severity="alarm",
            data={"score": 4.2, "signals": ["spindle_temp"]},
        )
        id1 = h.add_event(e1)
        assert e1.id == id1
        id2 = h.add_event(
            Event(
                ts=T0 + 10,
                kind="defect",
                source="changwon/plant1/line2/vision/cam1",
                code="inspect.defect",
                data={"p": 0.97},
            )
        )
        id3 = h.add_event(
            Event(
                ts=T0 + 20,
                kind="alarm",
                source="changwon/plant1/line1/press/press1",
                code="anomaly.sensor",
                severity="warning",
            )
        )
        id4 = h.add_event(Event(ts=T0 + 20, kind="info", source="changwon/plant1/line10/x", code="note"))
        assert len({id1, id2, id3, id4}) == 4
        h.update_event(id1, end_ts=T0 + 5, ack="confirmed", data={"operator": "김철수", "score": 5.0})
        h.update_event(id3, severity="alarm")
        with pytest.raises(KeyError, match="no event with id 999"):
            h.update_event(999, ack="confirmed")
        with pytest.raises(ValueError, match="cannot change kind"):
            h.update_event(id1, kind="info")
        with pytest.raises(ValueError, match="ack 'maybe' is not known"):
            h.update_event(id1, ack="maybe")
        with pytest.raises(ValueError, match="severity 'huge' is not known"):
            h.add_event(Event(ts=T0, kind="alarm", source="x", code="c", severity="huge"))

        assert [e.id for e in h.events()] == [id4, id3, id2, id1]  # newest first, ties by id
        assert [e.id for e in h.events(kinds=["alarm"])] == [id3, id1]
        assert [e.id for e in h.events(start=T0 + 10, end=T0 + 20)] == [id2]
        assert [e.id for e in h.events(source_prefix="changwon/plant1/line1/")] == [id3, id1]
        assert [e.id for e in h.events(source_prefix="changwon/plant1/line1")] == [id4, id3, id1]
        assert [e.id for e in h.events(limit=2)] == [id4, id3]
        assert h.events(kinds=[]) == []
        with pytest.raises(ValueError, match="limit must be an integer >= 1"):
            h.events(limit=0)
        assert h.event_counts() == {"alarm": 2, "defect": 1, "info": 1}
    with EmbeddedHistorian(path, fsync="batch") as h:
        (e,) = [x for x in h.events() if x.id == id1]
        assert (e.ts, e.end_ts, e.ack, e.severity, e.message) == (
            T0,
            T0 + 5,
            "confirmed",
            "alarm",
            "spindle hot",
        )
        assert e.data == {"score": 5.0, "signals": ["spindle_temp"], "operator": "김철수"}
        assert [x.severity for x in h.events(kinds=["alarm"])] == ["alarm", "alarm"]
        assert h.event_counts() == {"alarm": 2, "defect": 1, "info": 1}
        assert h.add_event(Event(ts=T0, kind="info", source="x", code="c")) > id4
