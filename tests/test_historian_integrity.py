"""Historian integrity: any prefix of writes opens cleanly, a failed roll is retried, damage is found
by the scrub and by `axline historian verify` and reported by file and offset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import axline.historian.embedded as emb
import axline.historian.files as hfiles
from axline.batch import Batch
from axline.historian.embedded import EmbeddedHistorian
from axline.historian.replay import cut_points, lay_down, recorded_writes
from axline.historian.verify import verify_dir

SRC = Path(__file__).resolve().parents[1] / "src"
T0 = 1_763_000_000 * 10**9


def _batch(k: int) -> Batch:
    # every third batch brings a new tag: tags.txt and segment writes interleave
    paths = [f"s/a/l/c/m/t{j}" for j in range(k // 3 + 1)]
    n = 30
    idx = np.arange(n) % len(paths)
    return Batch(paths, idx, T0 + k * 10**9 + np.arange(n), np.full(n, float(k)) + np.arange(n) / 100)


def test_any_prefix_of_writes_opens_cleanly_with_a_prefix_of_batches(tmp_path):
    src = tmp_path / "src"
    nb = 18
    with recorded_writes() as writes, \
            EmbeddedHistorian(str(src), fsync="interval", segment_bytes=4096, scrub_mb_s=None) as h:
        h.compact_min_records = 10**9  # keep the write sequence plain appends
        ends = []
        for k in range(nb):
            h.append(_batch(k))
            ends.append(len(writes))  # batch k is acknowledged once its record write is done
    assert len({f for f, _ in writes if f.startswith("seg-")}) >= 3  # the replay crosses segment rolls
    for k, frac in cut_points(len(writes)):
        d = tmp_path / f"cut-{k}-{int(frac * 10)}"
        d.mkdir()
        lay_down(d, writes, k, frac)
        with EmbeddedHistorian(str(d), fsync="none", segment_bytes=4096, scrub_mb_s=None) as h:
            assert h.damaged() == [], (k, frac)
            acked = sum(e <= k for e in ends)
            got = h.query([f"s/a/l/c/m/t{j}" for j in range(nb // 3 + 1)], 0, 2**62)
            batches = sorted({int(v) for s in got.values() for v in s.value})
            assert batches == list(range(acked)), (k, frac, batches)  # a prefix, every acked batch whole
            assert h.count() == 30 * acked
            h.append(_batch(nb))  # and it takes new data at once
        assert verify_dir(str(d))["problems"] == []


def test_a_failed_segment_roll_is_retried_not_wedged(tmp_path, monkeypatch):
    real_open = os.open
    fails = {"n": 0}

    def flaky_open(path, flags, mode=0o777, *a, **kw):
        if str(path).endswith("seg-000002.dat") and fails["n"] < 2:
            fails["n"] += 1
            raise OSError(24, "Too many open files")
        return real_open(path, flags, mode, *a, **kw)

    monkeypatch.setattr(emb.os, "open", flaky_open)
    path = tmp_path / "h"
    with EmbeddedHistorian(str(path), fsync="none", segment_bytes=4096, scrub_mb_s=None) as h:
        for k in range(10):
            h.append(_batch(k))  # used to fail for ever after the first failed roll (_seg_fd None)
        assert h.roll_errors == 2 and h.count() == 300
    monkeypatch.undo()
    with EmbeddedHistorian(str(path), fsync="none", segment_bytes=4096, scrub_mb_s=None) as h:
        assert h.count() == 300
    assert (path / "seg-000002.dat").exists()


def _store_with_a_flipped_bit(path: Path) -> tuple[Path, bytearray]:
    """A store of 8 batches at ``path`` with one bit of its first record's payload flipped on disk; the
    segment and the bytes it now holds."""
    with EmbeddedHistorian(str(path), fsync="none", segment_bytes=4096, scrub_mb_s=None) as h:
        h.compact_min_records = 10**9
        for k in range(8):
            h.append(_batch(k))
    seg = sorted(path.glob("seg-*.dat"))[0]
    data = bytearray(seg.read_bytes())
    data[emb.HEADER_SIZE + 40] ^= 0x01
    seg.write_bytes(data)
    return seg, data


def test_scrub_and_verify_find_a_flipped_byte_by_file_and_offset(tmp_path):
    path = tmp_path / "h"
    seg, data = _store_with_a_flipped_bit(path)
    r = subprocess.run([sys.executable, "-m", "axline.cli", "historian", "verify", str(path), "--json"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=120)
    assert r.returncode == 1, r.stderr
    rep = json.loads(r.stdout)
    assert [(p["file"], p["offset"]) for p in rep["problems"]] == [(seg.name, 0)]
    assert "CRC" in rep["problems"][0]["problem"]
    with EmbeddedHistorian(str(path), fsync="none", segment_bytes=4096, scrub_mb_s=None) as h:
        found = []
        h.on_damage = found.append
        before = h.count()
        for _ in range(3):  # a bounded scrub: a few KiB per call, wraps around
            h.scrub(2048)
        while h.scrub_passes < 1:
            h.scrub(2048)
        assert [(d["file"], d["offset"]) for d in found] == [(seg.name, 0)]
        assert h.count() == before - 30  # kept out of queries
        assert all(not (s.value == 0.0).any() for s in h.query([f"s/a/l/c/m/t{j}" for j in range(3)], 0, 2**62).values())
    assert seg.read_bytes() == data  # never rewritten
    r = subprocess.run([sys.executable, "-m", "axline.cli", "historian", "verify", str(path)],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=120)
    assert r.returncode == 1 and f"DAMAGED {seg.name} offset 0" in r.stdout


def test_compaction_never_launders_damage(tmp_path):
    path = tmp_path / "h"
    seg, data = _store_with_a_flipped_bit(path)
    with EmbeddedHistorian(str(path), fsync="none", segment_bytes=4096, scrub_mb_s=None) as h:
        h.compact_min_records = 1
        h._compact_segment(1)  # compaction verifies first: the damage is quarantined, not rewritten
        assert [(d["file"], d["offset"]) for d in h.damaged()] == [(seg.name, 0)]
    assert seg.read_bytes() == data
    assert verify_dir(str(path))["problems"][0]["offset"] == 0


def test_a_power_cut_that_loses_unsynced_tag_lines_but_keeps_records_still_opens(tmp_path, monkeypatch):
    """Writes to different files that were not fsync-ed may reach the disk in any order: the worst
    case keeps every segment write and only the fsync-ed part of tags.txt. A record must never name
    a tag line that could be lost (it used to, in fsync: interval, and the store then refused to open)."""
    ops: list[tuple] = []
    real_write, real_fsync = hfiles.write_all, hfiles.fsync

    def spy_write(fd: int, buf: memoryview) -> None:
        ops.append(("write", os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), bytes(buf)))
        real_write(fd, buf)

    def spy_fsync(fd: int) -> None:
        ops.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    monkeypatch.setattr(hfiles, "write_all", spy_write)
    monkeypatch.setattr(hfiles, "fsync", spy_fsync)
    with EmbeddedHistorian(str(tmp_path / "src"), fsync="interval", segment_bytes=1 << 20, scrub_mb_s=None) as h:
        for k in range(9):
            h.append(_batch(k))
    monkeypatch.undo()
    n_cuts = 0
    for k in range(1, len(ops) + 1):
        if ops[k - 1][0] != "write":
            continue
        data: dict[str, bytearray] = {}
        synced: dict[str, int] = {}
        for op in ops[:k]:
            if op[0] == "write":
                data.setdefault(op[1], bytearray()).extend(op[2])
            else:
                synced[op[1]] = len(data.get(op[1], b""))
        d = tmp_path / f"cut-{k}"
        d.mkdir()
        for name, buf in data.items():
            keep = synced.get(name, 0) if name == "tags.txt" else len(buf)  # lose tags.txt's unsynced tail
            (d / name).write_bytes(bytes(buf[:keep]))
        with EmbeddedHistorian(str(d), fsync="none", scrub_mb_s=None) as h:
            assert h.damaged() == [], k
            got = h.query([f"s/a/l/c/m/t{j}" for j in range(4)], 0, 2**62)
            vals = np.concatenate([s.value for s in got.values()])
            batches = {int(v) for v in vals}
            assert all(int(((vals >= b) & (vals < b + 1)).sum()) == 30 for b in batches), k  # whole batches
        n_cuts += 1
    assert n_cuts >= 9
