"""Fault scenarios where peers fail while the service runs: disk full, a poison batch, a broker that
stops acknowledging, a PostgreSQL that hangs and restarts."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np

from axline.bench.faults.harness import (
    NS,
    TAGS,
    Producer,
    _health_probe,
    _plant,
    _result,
    _stall,
    _stored_ts,
    _wait,
)


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
        await loop.run_in_executor(None, ballast.unlink)  # freeing the space is file work too: off the loop
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
