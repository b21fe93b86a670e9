"""Fault scenarios of the store itself: kill -9 in a loop, a corrupted byte, a clock jump, power-cut
replay and a soak."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from axline.bench.faults.harness import (
    NS,
    TAGS,
    Producer,
    _plant,
    _result,
    _stall,
    _stored_ts,
    _wait,
)


async def _kill9_child(base: Path) -> None:
    from axline.service import Service

    ts0 = int((base / "ts0").read_text())
    svc = Service(_plant(base, "{backend: embedded, path: data/historian, fsync: batch}"), port=0)
    await svc.start(web=False)
    acks = os.open(base / "acks", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def acked(batch) -> None:  # the source may forget what the store acknowledged (written to the historian)
        if batch.paths == tuple(TAGS):
            os.write(acks, f"{int(batch.ts.min()) - ts0} {int(batch.ts.max()) - ts0}\n".encode())

    svc.forward.on_delivered = acked
    await _wait(lambda: svc.forward.pending == 0, 120, "the previous life's spool to drain")
    latest = svc.historian.latest(TAGS)
    seq0 = max((v[0] - ts0 + 1 for v in latest.values()), default=0)  # resume where the historian is
    prod = Producer(svc, ts0, n=200, period_s=0.005, seq0=seq0)
    svc.safety.loopwatch.reset()  # stalls while running, not while opening after the kill
    prod.start()
    stall_file = base / f"stall-{os.getpid()}"
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(0.2)
        # in a worker: a file write waits behind the historian's fdatasync on the same disk, and this
        # harness must not stall the loop it measures
        await loop.run_in_executor(None, stall_file.write_text, str(_stall(svc)))


async def kill9_loop(work: Path, args) -> dict:
    """Kill the service with SIGKILL again and again while it ingests; count what survived each restart."""
    from axline.historian.embedded import EmbeddedHistorian

    base = work / "svc"
    base.mkdir()
    ts0 = time.time_ns() - 7200 * NS
    (base / "ts0").write_text(str(ts0))
    rng = random.Random(7)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    restarts_ok = 0
    for _ in range(args.kills):
        size0 = (base / "acks").stat().st_size if (base / "acks").exists() else 0
        child = subprocess.Popen([sys.executable, "-m", "axline.bench.faults", "--child-kill9", str(base)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while ((base / "acks").stat().st_size if (base / "acks").exists() else 0) < size0 + 2000:
            if child.poll() is not None or time.monotonic() > deadline:
                err = child.stderr.read().decode()[-2000:] if child.stderr else ""
                child.kill()
                return _result("kill9_loop", 0, 0, False, None, True, error=f"child did not ack: {err}")
            await asyncio.sleep(0.02)
        restarts_ok += 1
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait()
    acked = np.zeros(0, np.int64)
    ranges = [tuple(map(int, ln.split())) for ln in (base / "acks").read_text().splitlines() if ln.count(" ") == 1]
    if ranges:
        acked = np.unique(np.concatenate([np.arange(a, b + 1) for a, b in ranges]))
    with EmbeddedHistorian(str(base / "data" / "historian"), fsync="batch", scrub_mb_s=None) as h:
        stored = _stored_ts(h) - ts0
        damaged = len(h.damaged())
    lost = len(np.setdiff1d(acked, stored))
    gaps = int(stored.max() + 1 - len(np.unique(stored))) if len(stored) else 0
    stalls = [float(p.read_text() or 0) for p in base.glob("stall-*")]
    return _result("kill9_loop", len(acked), lost, restarts_ok == args.kills and damaged == 0, max(stalls, default=None),
                   True, kills=args.kills, restarts_that_resumed=restarts_ok, stored=int(len(stored)),
                   duplicates=int(len(stored) - len(np.unique(stored))), gaps_in_stored_sequence=gaps,
                   damaged_records=damaged)


async def corrupted_byte(work: Path, args) -> dict:
    """One byte flipped at a random place of a closed segment; the service runs on, the scrub finds it."""
    from axline.historian.embedded import EmbeddedHistorian
    from axline.historian.record import record_length
    from axline.service import Service

    hdir = work / "data" / "historian"
    ts0 = time.time_ns() - 7200 * NS
    n_before = 0
    with EmbeddedHistorian(str(hdir), fsync="none", segment_bytes=256 * 1024, scrub_mb_s=None) as h:
        h.compact_min_records = 10**9  # keep records small so the damage costs one small record
        from axline.batch import Batch

        for k in range(400):
            s = k * 250 + np.arange(250)
            h.append(Batch(TAGS, s % len(TAGS), ts0 + s, np.sin(s / 100.0)))
            n_before += 250
    segs = sorted(hdir.glob("seg-*.dat"))
    victim = segs[len(segs) // 2]
    original = victim.read_bytes()
    rng = random.Random(11)
    pos = rng.randrange(len(original))
    data = bytearray(original)
    data[pos] ^= 1 << rng.randrange(8)
    victim.write_bytes(data)
    # readings in the record that holds the flipped byte (from the intact copy)
    off, hit = 0, 0
    while off < len(original):
        count, ntags = int.from_bytes(original[off + 8:off + 12], "little"), int.from_bytes(original[off + 12:off + 16],
                                                                                             "little")
        end = off + record_length(ntags, count)
        if off <= pos < end:
            hit = count
            break
        off = end
    svc = Service(_plant(work, "{backend: embedded, path: data/historian}"), port=0)
    await svc.start(web=False)
    svc.safety.loopwatch.reset()
    prod = Producer(svc, ts0, n=400, period_s=0.01, seq0=n_before)
    prod.start()
    await _wait(lambda: len(svc.historian.damaged()) > 0, 120, "the scrub to find the damage")
    found_s = svc.historian.scrub_passes
    await asyncio.sleep(0.5)
    await prod.stop()
    await _wait(lambda: svc.forward.pending == 0, 60, "the store to catch up")
    stall = _stall(svc)
    await _wait(lambda: any(e.code == "system.historian_damage" for e in svc.historian.events(kinds=["system"])),
                30, "the damage event")
    stored = _stored_ts(svc.historian)
    acknowledged = n_before + prod.sent
    missing = acknowledged - len(np.unique(stored))
    d = svc.historian.damaged()
    res = _result("corrupted_byte", acknowledged, max(0, missing - hit), missing == hit and prod.sent > 0, stall,
                  True, file=victim.name, byte_offset=pos, damaged=[{k: x[k] for k in ("file", "offset", "length",
                                                                                      "reason")} for x in d],
                  readings_quarantined=hit, scrub_passes_when_found=found_s,
                  segment_unchanged=victim.read_bytes() == bytes(data))
    await svc.stop()
    return res


async def clock_jump(work: Path, args) -> dict:
    """Eight tags stamped with the wall clock; for two seconds one of them is stamped a day ahead."""
    from axline.batch import BAD_TIMESTAMP, Batch
    from axline.service import Service

    svc = Service(_plant(work, "{backend: embedded, path: data/historian}"), port=0)
    await svc.start(web=False)
    svc.safety.loopwatch.reset()
    sent = jumped = 0
    t_end = time.monotonic() + 6.0
    t_jump = (time.monotonic() + 2.0, time.monotonic() + 4.0)
    k = 0
    while time.monotonic() < t_end:
        now = time.time_ns()
        n = 80
        idx = np.arange(n) % len(TAGS)
        ts = now - 10**6 + np.arange(n) * 1000 + k  # unique, plausible
        m = time.monotonic()
        if t_jump[0] <= m < t_jump[1]:
            ts = np.where(idx == 0, ts + 86400 * NS, ts)
            jumped += int((idx == 0).sum())
        svc.ingest(Batch(TAGS, idx, ts, np.full(n, float(k))))
        sent += n
        k += 1
        await asyncio.sleep(0.01)
    await _wait(lambda: svc.forward.pending == 0, 60, "the store to catch up")
    stall = _stall(svc)
    got = svc.historian.query(TAGS, 0, 2**62)
    stored = sum(len(s) for s in got.values())
    flagged = int((got[TAGS[0]].quality == BAD_TIMESTAMP).sum())
    after = got[TAGS[0]]
    honest_after = int(((after.quality == 0) & (after.ts < time.time_ns())).sum())
    now_ok = abs(svc.now_ns() - time.time_ns()) < 11 * 60 * NS
    latest_ok = svc.latest[TAGS[0]][0] < time.time_ns() + 60 * NS
    events = [e for e in svc.historian.events(kinds=["system"]) if e.code == "system.clock_implausible"]
    res = _result("clock_jump", sent, sent - stored, now_ok and latest_ok and flagged == jumped, stall, True,
                  readings_jumped=jumped, stored_as_bad_timestamp=flagged, tag0_good_readings=honest_after,
                  repeats_dropped=svc.repeats_dropped, clock_events=len(events))
    await svc.stop()
    return res


async def power_cut_replay(work: Path, args) -> dict:
    """Every prefix of a recorded write sequence (and a half-done write at each point) must open, hold
    every batch whose write completed, and nothing partial."""
    import axline.historian.embedded as emb
    from axline.batch import Batch
    from axline.historian.replay import cut_points, lay_down, recorded_writes

    ends, per = [], []
    with recorded_writes() as writes:  # every record and tag-directory write
        with emb.EmbeddedHistorian(str(work / "src"), fsync="interval", segment_bytes=8192, scrub_mb_s=None) as h:
            h.compact_min_records = 10**9
            for k in range(args.power_cut_batches):
                paths = [f"bench/faults/l1/c1/m1/p{j}" for j in range(k // 4 + 1)]  # new tags along the way
                n = 40
                h.append(Batch(paths, np.arange(n) % len(paths), k * 1000 + np.arange(n), np.full(n, float(k))))
                ends.append(len(writes))
                per.append(n)
    all_paths = [f"bench/faults/l1/c1/m1/p{j}" for j in range(args.power_cut_batches // 4 + 1)]
    cuts = cut_points(len(writes))
    failed_open = lost = acked_total = partial = 0
    for k, frac in cuts:
        d = work / "replay"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        lay_down(d, writes, k, frac)
        acked = [i for i, e in enumerate(ends) if e <= k]
        acked_total += sum(per[i] for i in acked)
        try:
            with emb.EmbeddedHistorian(str(d), fsync="none", segment_bytes=8192, scrub_mb_s=None) as h:
                got = h.query(all_paths, 0, 2**62)
                vals = np.concatenate([s.value for s in got.values()]) if got else np.zeros(0)
                present = {int(v): int((vals == v).sum()) for v in np.unique(vals)}
                lost += sum(per[i] - present.get(i, 0) for i in acked)
                partial += sum(1 for b, c in present.items() if c != per[b])
                if h.damaged():
                    failed_open += 1
        except Exception:  # noqa: BLE001 - counted: a prefix that does not open is the failure measured
            failed_open += 1
    return _result("power_cut_replay", acked_total, lost, failed_open == 0 and partial == 0, None, False,
                   write_ops=len(writes), cut_points=len(cuts), failed_opens=failed_open, partial_batches=partial,
                   note="readings_acknowledged sums, over every cut point, the readings of batches written before it")


async def soak(work: Path, args) -> dict:
    """The virtual line's 47 tags through the whole service (KPIs, monitors, historian) at full speed."""
    from axline.demo import demo_plant
    from axline.service import Service
    from axline.sim.line import VirtualLine

    plant = demo_plant(work, "opc.tcp://127.0.0.1:1/unused")
    plant.connectors = []
    plant.cameras = []
    hours = args.soak_hours
    start = time.time_ns() - int((hours + 1) * 3600 * NS)
    line = VirtualLine(seed=5, start_ns=start, render_images=False, warmup_s=600)
    svc = Service(plant, port=0)
    await svc.start(web=False)
    svc.safety.loopwatch.reset()
    def rss_mb() -> tuple[float, float]:
        """(anonymous, file-backed) resident MiB: the historian maps its segments, and mapped file
        pages that were read count as resident without being owned memory (the kernel drops them)."""
        got = {}
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                    got[line.split(":")[0]] = int(line.split()[1]) / 1024
        return round(got.get("RssAnon", 0.0), 1), round(got.get("RssFile", 0.0) + got.get("RssShmem", 0.0), 1)

    samples = []
    t0 = time.monotonic()
    steps = int(hours * 60)
    sent = 0
    for k in range(steps):
        b = line.step(60.0)
        svc.ingest(b)
        sent += len(b)
        await asyncio.sleep(0)
        if svc.forward.pending > 50:
            await _wait(lambda: svc.forward.pending < 10, 120, "the store to keep up")
        if k % 30 == 0:
            samples.append((round(k / 60, 2), *rss_mb()))
    await _wait(lambda: svc.forward.pending == 0, 120, "the store to catch up")
    samples.append((round(steps / 60, 2), *rss_mb()))
    wall = time.monotonic() - t0
    stored = svc.historian.count()
    # flat: the owned (anonymous) memory of the second half grows less than 10 % (least-squares slope
    # times the half's length, so one compaction's short peak does not decide it)
    half = np.array([(h, a) for h, a, _f in samples if h >= hours / 2])
    slope = float(np.polyfit(half[:, 0], half[:, 1], 1)[0]) if len(half) > 2 else 0.0
    growth = slope * hours / 2
    res = _result("soak", sent, max(0, sent - stored + svc.repeats_dropped), True, _stall(svc), False,
                  simulated_hours=hours, wall_s=round(wall, 1),
                  rss_samples="(simulated hour, anonymous MiB, file-backed MiB)", rss_mb=samples,
                  anon_peak_mb=max(a for _h, a, _f in samples),
                  anon_growth_second_half_mb=round(growth, 1),
                  rss_flat=bool(len(half)) and growth < 0.1 * float(half[0, 1]),
                  segments=len(list((work / "data" / "historian").glob("seg-*.dat"))),
                  repeats_dropped=svc.repeats_dropped)
    await svc.stop()
    return res


