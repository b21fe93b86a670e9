"""`axline bench faults`: the data path under faults, against the real components.

Each scenario runs `axline serve`'s Service (or, for kill -9, a separate service process) with a
synthetic line feeding it through ``Service.ingest`` (the path every connector takes), injects one
fault, lets it recover, and then counts from the historian itself:

- ``readings_acknowledged``: readings the data path accepted (``ingest`` did not refuse them; for
  kill -9: readings whose historian write returned before the kill),
- ``readings_lost``: acknowledged readings that are not in the historian afterwards and were not
  reported (a quarantined damaged record is reported: its readings are counted separately),
- ``recovered``: the service stores new readings after the fault, its queues are empty,
- ``max_loop_stall_ms``: the largest delay of the asyncio loop's heartbeat during the scenario
  (``loop_meant_live``: whether the loop has to stay responsive in that scenario).

Scenarios: disk full (a size-limited tmpfs, needs root), poison batch, broker that stops
acknowledging (a private Mosquitto frozen with SIGSTOP), PostgreSQL hang (a table lock) and restart
(``pg_ctlcluster`` as root), kill -9 of the service in a loop, a corrupted byte in a closed segment,
a clock jump of +1 day on one tag, power-cut replay of every prefix of a write sequence, and a soak
(simulated plant hours at full speed) with its memory over time.

``python -m axline.bench.faults --json benchmarks/faults.json`` (or ``axline bench faults``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from axline.bench.common import (
    command_line,
    machine_info,
    markdown_table,
    peak_rss_mb,
    utc_now,
    write_json,
    write_markdown,
)

SCENARIOS = ("disk_full", "poison_batch", "broker_stops_acking", "postgres_hang_and_restart", "kill9_loop",
             "corrupted_byte", "clock_jump", "power_cut_replay", "soak")
TAGS = [f"bench/faults/l1/c1/m1/t{j}" for j in range(8)]
NS = 10**9


# -- shared pieces --------------------------------------------------------------------------------
def _plant(base: Path, historian: str, safety: str = "{disk_check_s: 0.2}"):
    from axline.plant import parse_plant

    return parse_plant(f"""
plant: {{site: bench, area: faults}}
historian: {historian}
safety: {safety}
lines:
  - id: l1
    assets:
      - id: m1
        cell: c1
        tags: [{", ".join(f"{{signal: t{j}}}" for j in range(len(TAGS)))}]
""", "plant.yaml", base_dir=str(base))


class Producer:
    """A synthetic line: every ``period_s`` one batch of ``n`` readings over TAGS, each reading with a
    unique timestamp (``ts0`` + its sequence number, nanoseconds), fed to ``Service.ingest``."""

    def __init__(self, svc, ts0: int, n: int = 400, period_s: float = 0.01, seq0: int = 0) -> None:
        self.svc, self.ts0, self.n, self.period_s = svc, ts0, n, period_s
        self.seq = seq0
        self.sent = 0
        self._task: asyncio.Task | None = None

    def batch(self, n: int | None = None):
        from axline.batch import Batch

        n = n or self.n
        s = self.seq + np.arange(n)
        self.seq += n
        return Batch(TAGS, s % len(TAGS), self.ts0 + s, np.sin(s / 100.0))

    def one(self, n: int | None = None) -> int:
        b = self.batch(n)
        self.svc.ingest(b)
        self.sent += len(b)
        return len(b)

    async def _run(self) -> None:
        while True:
            self.one()
            await asyncio.sleep(self.period_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bench-producer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def _stored_ts(h, tags=TAGS) -> np.ndarray:
    got = h.query(list(tags), 0, 2**62)
    parts = [s.ts for s in got.values() if len(s)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


async def _wait(cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.02)


def _result(name: str, acknowledged: int, lost: int, recovered: bool, stall_ms: float | None, live: bool,
            **notes: Any) -> dict:
    return {"scenario": name, "readings_acknowledged": int(acknowledged), "readings_lost": int(lost),
            "recovered": bool(recovered), "max_loop_stall_ms": stall_ms, "loop_meant_live": live, **notes}


def _stall(svc) -> float:
    return round(svc.safety.loopwatch.max_stall_s * 1000, 1)


async def _health_probe(url: str, stop: asyncio.Event, out: dict) -> None:
    """GET /api/health every 100 ms while the fault lasts; the slowest answer is the dashboard's stall."""
    import aiohttp

    worst, n, failed = 0.0, 0, 0
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                async with http.get(url + "api/health", timeout=aiohttp.ClientTimeout(total=30)) as r:
                    await r.read()
                    if r.status != 200:
                        failed += 1
            except (aiohttp.ClientError, TimeoutError):
                failed += 1
            worst = max(worst, time.monotonic() - t0)
            n += 1
            await asyncio.sleep(0.1)
    out.update({"dashboard_requests": n, "dashboard_failed": failed, "dashboard_max_ms": round(worst * 1000, 1)})


# -- scenarios ------------------------------------------------------------------------------------
async def disk_full(work: Path, args) -> dict:
    """A 24 MiB tmpfs holds the historian and the spool; ballast fills it while readings keep coming."""
    from axline.service import Service

    mnt = work / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", f"axline-bench-{uuid.uuid4().hex[:6]}", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return _result("disk_full", 0, 0, False, None, True, skipped=f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        svc = Service(_plant(mnt, "{backend: embedded, path: data/historian, fsync: batch}"), port=0)
        await svc.start()
        svc.forward.memory_readings = 200_000
        prod = Producer(svc, time.time_ns() - 3600 * NS, n=2000, period_s=0.01)
        svc.safety.loopwatch.reset()
        probe_stop, probe = asyncio.Event(), {}
        probe_task = asyncio.create_task(_health_probe(svc.url, probe_stop, probe))
        prod.start()
        st = os.statvfs(mnt)
        ballast = mnt / "ballast"
        loop = asyncio.get_running_loop()

        def fill() -> None:  # leave about 3 MiB free (in a worker: the harness must not stall the loop)
            with open(ballast, "wb") as f:
                f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 3 * 2**20))

        await loop.run_in_executor(None, fill)
        t_full = time.monotonic()
        await _wait(lambda: svc.forward.refused > 0, 120, "the disk to fill and refusals to start")
        full_after_s = time.monotonic() - t_full
        await asyncio.sleep(2.0)  # keep ingesting on a full disk
        level = svc.safety.diskwatch.status()["level"]
        refused = svc.forward.refused
        ballast.unlink()
        await _wait(lambda: svc.forward.online and svc.forward.pending < 5, 120, "the backlog to drain")
        before = svc.forward.delivered
        await asyncio.sleep(1.0)
        await prod.stop()
        await _wait(lambda: svc.forward.pending == 0, 120, "everything accepted to be stored")
        probe_stop.set()
        await probe_task
        stall = _stall(svc)
        stored = await loop.run_in_executor(None, _stored_ts, svc.historian)
        accepted = prod.sent - svc.forward.refused
        leftovers = [p.name for p in mnt.rglob("*") if p.name.endswith((".tmp", ".compact"))]
        result = _result("disk_full", accepted, max(0, accepted - len(np.unique(stored))),
                         svc.forward.delivered > before and svc.forward.pending == 0, stall, True,
                         readings_sent=prod.sent, readings_refused=svc.forward.refused,
                         refused_while_full=refused, refused_by_tag=svc.forward.status()["refused_by_tag"],
                         disk_level_when_full=level, seconds_to_fill=round(full_after_s, 1),
                         temp_files_left=len(leftovers), duplicates=int(len(stored) - len(np.unique(stored))),
                         **probe)
        await svc.stop()
        return result
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def poison_batch(work: Path, args) -> dict:
    """Three batches the historian rejects for good (a tag path with a line break) among good ones."""
    from axline.batch import Batch
    from axline.service import Service

    svc = Service(_plant(work, "{backend: embedded, path: data/historian}"), port=0)
    await svc.start(web=False)
    svc.forward.retry_s = 0.2
    prod = Producer(svc, time.time_ns() - 3600 * NS, n=400, period_s=0.01)
    svc.safety.loopwatch.reset()
    prod.start()
    poison = 0
    for _ in range(3):
        await asyncio.sleep(0.5)
        bad = Batch(["bench/faults/l1/c1/m1/bad\npath"], np.zeros(10), time.time_ns() - 60 * NS + np.arange(10),
                    np.ones(10))
        svc.ingest(bad)
        poison += len(bad)
    await asyncio.sleep(1.0)
    await prod.stop()
    await _wait(lambda: svc.forward.pending == 0, 60, "the queue to move on past the poison")
    stall = _stall(svc)
    stored = _stored_ts(svc.historian)
    accepted = prod.sent - svc.forward.refused
    qfiles = len(list((work / "data" / "spool" / "historian" / "quarantine").glob("*.batch")))
    events = [e for e in svc.historian.events(kinds=["system"], limit=1000) if e.code == "store.quarantined"]
    res = _result("poison_batch", accepted, max(0, accepted - len(np.unique(stored))),
                  svc.forward.quarantined == 3 and svc.forward.pending == 0, stall, True,
                  poison_readings=poison, quarantined_batches=svc.forward.quarantined, quarantine_files=qfiles,
                  quarantine_events=len(events))
    await svc.stop()
    return res


class _Broker:
    def __init__(self, folder: Path) -> None:
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {folder}/\nmax_queued_messages 1000000\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)


async def broker_stops_acking(work: Path, args) -> dict:
    """An edge forwards to a central through Mosquitto; the broker is frozen (SIGSTOP: the connection
    stays open, nothing is acknowledged) for ``--freeze-s`` seconds, then thawed."""
    from axline.edge import attach_uplink
    from axline.plant import parse_plant
    from axline.service import Service

    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        return _result("broker_stops_acking", 0, 0, False, None, True, skipped="mosquitto is not installed")
    broker = _Broker(work / "broker")
    broker.start()
    central = Service(parse_plant(f"""
plant: {{site: bench, area: faults}}
historian: {{backend: embedded, path: data/historian}}
connectors:
  - {{name: uns, type: uns, host: 127.0.0.1, port: {broker.port}, topics: ["bench/#"],
     client_id: axline-bench-central-{broker.port}}}
lines:
  - id: l1
    assets: [{{id: m1, cell: c1, tags: [{", ".join(f"{{signal: t{j}}}" for j in range(len(TAGS)))}]}}]
""", "central.yaml", base_dir=str(work / "central")), port=0)
    edge = Service(_plant(work / "edge", "{backend: embedded, path: data/historian}"), port=0)
    try:
        await central.start(web=False)
        await _wait(lambda: central.connectors["uns"].state == "connected", 30, "the central to subscribe")
        await edge.start()
        uplink = attach_uplink(edge, f"mqtt://127.0.0.1:{broker.port}")
        await _wait(lambda: edge.publisher.connected.is_set(), 30, "the edge to connect")
        prod = Producer(edge, time.time_ns() - 3600 * NS, n=100, period_s=0.02)
        prod.start()
        await asyncio.sleep(2.0)
        edge.safety.loopwatch.reset()
        probe_stop, probe = asyncio.Event(), {}
        probe_task = asyncio.create_task(_health_probe(edge.url, probe_stop, probe))
        stored_before = edge.historian.count()
        os.kill(broker.proc.pid, signal.SIGSTOP)
        await asyncio.sleep(args.freeze_s)
        collected_while_frozen = edge.historian.count() - stored_before
        spooled_while_frozen = uplink.spooled
        stall_frozen = _stall(edge)
        os.kill(broker.proc.pid, signal.SIGCONT)
        probe_stop.set()
        await probe_task
        await asyncio.sleep(2.0)
        await prod.stop()
        await _wait(lambda: uplink.pending == 0 and uplink.online and edge.forward.pending == 0, 180,
                    "the edge's uplink to drain")
        stall = _stall(edge)  # the freeze and the drain after it
        mine = _stored_ts(edge.historian)
        await _wait(lambda: len(np.unique(_stored_ts(central.historian))) >= len(np.unique(mine)), 120,
                    "the central to catch up")
        theirs = _stored_ts(central.historian)
        lost = len(np.setdiff1d(mine, theirs))
        return _result("broker_stops_acking", len(np.unique(mine)), lost, uplink.pending == 0 and lost == 0,
                       stall, True, freeze_s=args.freeze_s, max_loop_stall_ms_while_frozen=stall_frozen, edge_collected_while_frozen=collected_while_frozen,
                       uplink_spooled_readings=spooled_while_frozen,
                       central_duplicates=int(len(theirs) - len(np.unique(theirs))), **probe)
    finally:
        await edge.stop()
        await central.stop()
        broker.stop()


def _pg_dsn(args) -> str:
    return args.dsn


def _restart_postgres(dsn: str) -> str:
    import psycopg

    ver = sorted(os.listdir("/etc/postgresql"))[-1] if os.path.isdir("/etc/postgresql") else None
    if os.geteuid() == 0 and ver and shutil.which("pg_ctlcluster"):
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", ver, "main", "restart"], check=True,
                       timeout=120, capture_output=True)
        return "pg_ctlcluster restart"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid() "
                  "and datname = current_database()")
    return "terminated every connection (not root: no pg_ctlcluster)"


async def postgres_hang_and_restart(work: Path, args) -> dict:
    """PostgreSQL historian: a lock makes every write hang for ``--freeze-s`` s, then the server restarts."""
    from axline.service import Service

    try:
        import psycopg

        psycopg.connect(args.dsn, connect_timeout=3).close()
    except Exception as e:  # noqa: BLE001 - reported as skipped
        return _result("postgres_hang_and_restart", 0, 0, False, None, True, skipped=f"no PostgreSQL: {e}")
    schema = f"axline_faults_{os.getpid()}"
    svc = Service(_plant(work, f"{{backend: postgresql, dsn: '{args.dsn}', schema: {schema}}}"), port=0)
    try:
        await svc.start()
        prod = Producer(svc, time.time_ns() - 3600 * NS, n=400, period_s=0.01)
        prod.start()
        await _wait(lambda: svc.forward.delivered > 10_000, 60, "readings stored")
        svc.safety.loopwatch.reset()
        probe_stop, probe = asyncio.Event(), {}
        probe_task = asyncio.create_task(_health_probe(svc.url, probe_stop, probe))
        loop = asyncio.get_running_loop()

        def hang() -> None:
            with psycopg.connect(args.dsn) as c:
                c.execute(f"LOCK TABLE {schema}.blocks IN ACCESS EXCLUSIVE MODE")
                time.sleep(args.freeze_s)  # the database "hangs" for every writer while this lock is held
                c.rollback()

        delivered = svc.forward.delivered
        await loop.run_in_executor(None, hang)
        hung_delivered = svc.forward.delivered - delivered
        spooled_in_hang = svc.forward.spooled
        how = (await loop.run_in_executor(None, _restart_postgres, args.dsn)) if args.pg_restart else "not restarted"
        await asyncio.sleep(2.0)
        await _wait(lambda: svc.forward.online and svc.forward.delivered > delivered, 120,
                    "the store to write again after the restart")
        probe_stop.set()
        await probe_task
        await prod.stop()
        await _wait(lambda: svc.forward.pending == 0, 180, "the spool to drain")
        stall = _stall(svc)
        stored = await loop.run_in_executor(None, _stored_ts, svc.historian)
        accepted = prod.sent - svc.forward.refused
        return _result("postgres_hang_and_restart", accepted, max(0, accepted - len(np.unique(stored))),
                       svc.forward.pending == 0, stall, True, hang_s=args.freeze_s, restart=how,
                       delivered_while_hung=hung_delivered, spooled_readings=spooled_in_hang,
                       duplicates=int(len(stored) - len(np.unique(stored))), **probe)
    finally:
        await svc.stop()
        with psycopg.connect(args.dsn, autocommit=True) as c:
            c.execute(f"drop schema if exists {schema} cascade")


# kill -9: the child is a service process; the parent kills it and checks the historian
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
    while True:
        await asyncio.sleep(0.2)
        stall_file.write_text(str(_stall(svc)))


async def kill9_loop(work: Path, args) -> dict:
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

    writes: list[tuple[str, bytes]] = []
    real = emb._write_all

    def spy(fd: int, buf) -> None:
        writes.append((os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), bytes(buf)))
        real(fd, buf)

    emb._write_all = spy
    ends, per = [], []
    try:
        with emb.EmbeddedHistorian(str(work / "src"), fsync="interval", segment_bytes=8192, scrub_mb_s=None) as h:
            h.compact_min_records = 10**9
            for k in range(args.power_cut_batches):
                paths = [f"bench/faults/l1/c1/m1/p{j}" for j in range(k // 4 + 1)]  # new tags along the way
                n = 40
                h.append(Batch(paths, np.arange(n) % len(paths), k * 1000 + np.arange(n), np.full(n, float(k))))
                ends.append(len(writes))
                per.append(n)
    finally:
        emb._write_all = real
    all_paths = [f"bench/faults/l1/c1/m1/p{j}" for j in range(args.power_cut_batches // 4 + 1)]
    cuts = [(k, f) for k in range(len(writes) + 1) for f in ((0.0, 0.5) if k < len(writes) else (0.0,))]
    failed_open = lost = acked_total = partial = 0
    for k, frac in cuts:
        d = work / "replay"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        for name, data in writes[:k]:
            with open(d / name, "ab") as f:
                f.write(data)
        if frac:
            name, data = writes[k]
            with open(d / name, "ab") as f:
                f.write(data[: int(len(data) * frac)])
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


# -- the command ----------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", default="benchmarks/faults.json", help="write the results as JSON here")
    p.add_argument("--table", default="benchmarks/faults.md", help="write the Markdown page here")
    p.add_argument("--only", nargs="*", choices=SCENARIOS, default=None, help="run only these scenarios")
    p.add_argument("--kills", type=int, default=20, help="kill -9 rounds (default 20)")
    p.add_argument("--freeze-s", type=float, default=8.0, help="how long the broker / database hang (default 8)")
    p.add_argument("--soak-hours", type=float, default=24.0, help="simulated plant hours of the soak (default 24)")
    p.add_argument("--power-cut-batches", type=int, default=40, help="batches in the power-cut write sequence")
    p.add_argument("--dsn", default=os.environ.get("AXLINE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    p.add_argument("--no-pg-restart", dest="pg_restart", action="store_false",
                   help="only hang PostgreSQL, do not restart it (the server may be shared)")
    p.add_argument("--child-kill9", default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.child_kill9:
        asyncio.run(_kill9_child(Path(args.child_kill9)))
        return 0
    import logging

    # the faults are deliberate: their warnings would drown the results (they are counted in them)
    logging.getLogger("axline").setLevel(logging.CRITICAL)
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    t0 = time.monotonic()
    results = []
    for name in args.only or SCENARIOS:
        with tempfile.TemporaryDirectory(prefix=f"axline-faults-{name}-") as tmp:
            s0 = time.monotonic()
            try:
                r = asyncio.run(globals()[name](Path(tmp), args))
            except Exception as e:  # noqa: BLE001 - a scenario that breaks is a result, reported as such
                r = _result(name, 0, 0, False, None, True, error=f"{type(e).__name__}: {e}")
            r["scenario_wall_s"] = round(time.monotonic() - s0, 1)
        print(json.dumps(r), flush=True)
        results.append(r)
    load = os.getloadavg()
    result = {"date": utc_now(), "command": command_line(), "machine": machine_info(),
              "load_average_at_end": [round(x, 2) for x in load], "wall_s": round(time.monotonic() - t0, 1),
              "peak_rss_mb": round(peak_rss_mb(), 1), "scenarios": results,
              "all_recovered": all(r["recovered"] for r in results),
              "total_lost": sum(r["readings_lost"] for r in results),
              "max_stall_where_live_ms": max(((r["max_loop_stall_ms"] or 0) for r in results if r["loop_meant_live"]),
                                             default=None)}
    write_json(args.json, result)
    rows = [[r["scenario"], r["readings_acknowledged"], r["readings_lost"], "yes" if r["recovered"] else "NO",
             r["max_loop_stall_ms"], "yes" if r["loop_meant_live"] else "no",
             r.get("dashboard_max_ms"), r.get("skipped") or r.get("error") or ""] for r in results]
    table = markdown_table(["scenario", "readings acknowledged", "readings lost", "recovered", "max loop stall ms",
                            "loop meant live", "slowest /api/health ms", "skipped / error"], rows)
    details = "\n".join(f"- **{r['scenario']}**: " + ", ".join(
        f"{k} {json.dumps(v) if isinstance(v, list | dict) else v}" for k, v in r.items()
        if k not in ("scenario", "readings_acknowledged", "readings_lost", "recovered", "max_loop_stall_ms",
                     "loop_meant_live")) for r in results)
    summary = (f"Readings lost over all scenarios: {result['total_lost']}; every scenario recovered: "
               f"{'yes' if result['all_recovered'] else 'NO'}; largest loop stall where the loop must stay live: "
               f"{result['max_stall_where_live_ms']} ms; load average at the end {result['load_average_at_end']}.")
    write_markdown(args.table, "Fault injection: the data path under faults",
                   [("Summary", summary), ("Scenarios", table), ("Details", details),
                    ("How it is measured", (__doc__ or "").split("\n\n", 1)[1].split("``python -m")[0])], result)
    return 0 if result["all_recovered"] and result["total_lost"] == 0 else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    sys.exit(run(p.parse_args()))
