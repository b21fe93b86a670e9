"""Edge -> central through a real Mosquitto: two lines, each with its own virtual factory (OPC UA) and
`axline edge`, one central service subscribed to the unified namespace. The broker is restarted
mid-stream; afterwards every reading each edge accepted is at the central exactly once.

The broker is a private Mosquitto started by the test (own port, own persistence folder) so the
test can restart it without touching anything else on the machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from axline.connect.base import CONNECTED
from axline.edge import attach_uplink
from axline.plant import parse_plant
from axline.service import Service
from axline.sim.line import VirtualLine
from axline.sim.server import SimServer
from conftest import free_port

START = 1_767_225_600 * 1_000_000_000

pytestmark = pytest.mark.slow


class PrivateBroker:
    def __init__(self, folder: Path) -> None:
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            if os.environ.get("CI") == "true":
                pytest.fail("mosquitto is not installed: scripts/ensure-services.sh installs it")
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        # as root mosquitto drops to its own user, which cannot write into pytest's folder: its persistence
        # (the central's queued messages across the restart) would silently not be saved
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {folder}/\nmax_queued_messages 100000\n"
                             f"log_dest file {folder}/mosquitto.log\n{user}")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)])
        import socket

        deadline = time.monotonic() + 60  # generous: a busy machine starts it slowly
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"private mosquitto exited with {self.proc.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError("private mosquitto did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.proc.wait(60)


def _edge_plant(line_id: str, connector: str, data_dir: Path, endpoint: str):
    text = files("axline.data").joinpath("demo_plant.yaml").read_text(encoding="utf-8")
    text = (text.replace("id: line1", f"id: {line_id}").replace("name: sim", f"name: {connector}")
            .replace("connector: sim", f"connector: {connector}").replace("cameras:", "cameras_unused:"))
    text = text.split("cameras_unused:")[0]
    plant = parse_plant(text, f"{line_id}.yaml", base_dir=str(data_dir))
    plant.connectors[0].options["endpoint"] = endpoint
    return plant


def _central_plant(broker_port: int, data_dir: Path, historian: str = "{backend: embedded, path: data/historian}"):
    text = f"""
plant: {{site: changwon, area: plant1, timezone: Asia/Seoul}}
historian: {historian}
connectors:
  - {{name: uns, type: uns, host: 127.0.0.1, port: {broker_port}, topics: ["changwon/#"],
     client_id: axline-central-test-{broker_port}}}
lines:
  - id: line1
    assets: [{{id: totals, cell: line, tags: [{{signal: parts_total, unit: count, kind: counter}}]}}]
  - id: line2
    assets: [{{id: totals, cell: line, tags: [{{signal: parts_total, unit: count, kind: counter}}]}}]
"""
    return parse_plant(text, "central.yaml", base_dir=str(data_dir))


async def _wait(cond, timeout: float, what: str, progress=None, poll_s: float = 0.05) -> None:
    """Wait for ``cond``. With ``progress`` (a function whose value changes while the work moves on),
    ``timeout`` counts from the last change: a busy machine that is slow but moving never fails the
    wait, one that stopped moving does (and an absolute cap of ten times ``timeout`` still holds)."""
    t0 = last_move = time.monotonic()
    seen = progress() if progress else None
    while not cond():
        now = time.monotonic()
        if progress is not None:
            v = progress()
            if v != seen:
                seen, last_move = v, now
        if now - last_move > timeout or now - t0 > 10 * timeout:
            raise AssertionError(f"timed out waiting for {what}: no progress for {now - last_move:.0f} s "
                                 f"({now - t0:.0f} s in all)")
        await asyncio.sleep(poll_s)


def _missing_tags(edges, central) -> list[str]:
    """Simulated tags of the edges whose readings the central does not have all of yet."""
    out = []
    for edge in edges:
        tags = [t for t in edge.historian.tags() if "/axline/" not in t]
        mine, theirs = edge.historian.query(tags, 0, 2**62), central.historian.query(tags, 0, 2**62)
        out += [p for p in tags if len(theirs[p]) < len(mine[p])]
    return out


def _missing(edges, central) -> str:
    out = []
    for edge in edges:
        tags = edge.historian.tags()
        mine, theirs = edge.historian.query(tags, 0, 2**62), central.historian.query(tags, 0, 2**62)
        for p in tags:
            if len(mine[p]) != len(theirs[p]):
                gone = np.setdiff1d(mine[p].ts, theirs[p].ts)
                out.append(f"{p}: edge {len(mine[p])}, central {len(theirs[p])}, first missing ts "
                           f"{int(gone[0]) if len(gone) else None}")
    central_state = {"count": central.historian.count(), "store": central.forward.status(),
                     "uns": central.connectors["uns"].readings, "repeats_dropped": central.repeats_dropped}
    return f"central {central_state}; " + "; ".join(out[:8])


async def test_two_edges_one_central_survive_a_broker_restart(tmp_path):
    await _two_edges_one_central(tmp_path, "{backend: embedded, path: data/historian}", restart_postgres=None)


PG_DSN = os.environ.get("AXLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _restart_postgres() -> None:
    """Restart the real server: pg_ctlcluster as root (CI); otherwise cut every connection to it."""
    import psycopg

    ver = sorted(os.listdir("/etc/postgresql"))[-1] if os.path.isdir("/etc/postgresql") else None
    if os.geteuid() == 0 and ver and shutil.which("pg_ctlcluster"):
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", ver, "main", "restart"], check=True,
                       timeout=120)
        return
    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute("select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid() "
                  "and datname = current_database()")


async def test_central_on_postgresql_survives_broker_and_database_restarts(tmp_path):
    if os.environ.get("CI") == "true":
        import psycopg  # a missing peer fails under CI
    else:
        psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(PG_DSN, connect_timeout=10).close()
    except psycopg.OperationalError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no PostgreSQL at {PG_DSN}: scripts/ensure-services.sh starts it ({e})")
        pytest.skip(f"no PostgreSQL at {PG_DSN}: {e}")
    schema = f"axline_edge_test_{os.getpid()}"
    try:
        # the server restart disturbs everyone else using it: only where AXLINE_TEST_PG_RESTART=1 (CI)
        restart = _restart_postgres if os.environ.get("AXLINE_TEST_PG_RESTART") == "1" else None
        await _two_edges_one_central(
            tmp_path, f"{{backend: postgresql, dsn: '{PG_DSN}', schema: {schema}}}", restart_postgres=restart)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as c:
            c.execute(f"drop schema if exists {schema} cascade")


async def _two_edges_one_central(tmp_path, historian: str, restart_postgres) -> None:
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    sims, edges = [], []
    central = Service(_central_plant(broker.port, tmp_path / "central", historian))
    try:
        await central.start(web=False)
        await _wait(lambda: central.connectors["uns"].state == CONNECTED, 120, "central to subscribe")
        for k, line_id in enumerate(("line1", "line2")):
            endpoint = f"opc.tcp://127.0.0.1:{free_port()}/axline/sim"
            sim = SimServer(VirtualLine(seed=10 + k, start_ns=START, faults=None, render_images=False,
                                        prefix=f"changwon/plant1/{line_id}"), endpoint=endpoint, speed=10)
            sims.append((sim, asyncio.create_task(sim.run())))
            await sim.ready.wait()
            edge = Service(_edge_plant(line_id, f"plc{k + 1}", tmp_path / f"edge{k + 1}", endpoint))
            await edge.start(web=False)
            attach_uplink(edge, broker.url)
            edges.append(edge)
        await _wait(lambda: all(e.historian.count() > 2000 for e in edges), 120, "edges collecting",
                    progress=lambda: [e.historian.count() for e in edges])
        await _wait(lambda: central.historian.count() > 2000, 120, "central receiving",
                    progress=lambda: central.historian.count())

        broker.stop()  # mid-stream
        await _wait(lambda: all(len(e.uplink.spool) > 3 and not e.uplink.online for e in edges), 120,
                    "edges to see the broker gone and spool on disk")
        broker.start()
        # keep producing while everyone reconnects: until each edge has forwarded through the new broker
        # and the central has stored more
        sent = [e.uplink.delivered for e in edges]
        at_central = central.historian.count()
        await _wait(lambda: all(e.uplink.online and e.uplink.delivered > n for e, n in zip(edges, sent, strict=True))
                    and central.connectors["uns"].state == CONNECTED and central.historian.count() > at_central,
                    120, "edges and central to reconnect and move data again",
                    progress=lambda: (sum(e.historian.count() for e in edges), central.historian.count()))
        if restart_postgres is not None:
            stored = central.forward.delivered
            await asyncio.get_running_loop().run_in_executor(None, restart_postgres)
            await _wait(lambda: central.forward.delivered > stored and central.forward.online, 120,
                        "the central to store again after the database restart")

        for sim, task in sims:  # end of the stream
            sim.stop()
            await task

        def edges_drained() -> bool:
            return all(e.uplink.pending == 0 and e.forward.pending == 0 and e.uplink.online for e in edges)

        await _wait(edges_drained, 120, "spools to drain", poll_s=0.2,
                    progress=lambda: [(e.uplink.delivered, e.forward.delivered) for e in edges])
        try:
            # the central stores what the broker hands it; on a busy machine that takes a while: wait on the
            # readings themselves, both sides read afresh each time (a reading the OPC UA connector still
            # delivered after the stream ended counts too), for as long as the central keeps storing
            await _wait(lambda: edges_drained() and central.forward.pending == 0 and not _missing_tags(edges, central),
                        120, "central to catch up", poll_s=1.0,
                        progress=lambda: (central.historian.count(), central.forward.delivered,
                                          central.connectors["uns"].readings))
        except AssertionError as e:
            raise AssertionError(f"{e}: {_missing(edges, central)}") from None

        # every reading each edge accepted is at the central, exactly once
        for edge in edges:
            tags = [t for t in edge.historian.tags() if "/axline/" not in t]
            assert len(tags) == len(sims[0][0].line.tags)  # every simulated tag
            mine = edge.historian.query(tags, 0, 2**62)
            theirs = central.historian.query(tags, 0, 2**62)
            for path in tags:
                a, b = mine[path], theirs[path]
                assert len(a) == len(b), f"{path}: edge has {len(a)}, central {len(b)}"
                np.testing.assert_array_equal(a.ts, b.ts, err_msg=path)
                np.testing.assert_array_equal(a.value, b.value, err_msg=path)
        assert sum(e.uplink.spooled for e in edges) > 0  # the outage really was bridged by the spools
        if restart_postgres is not None:
            assert central.forward.spooled > 0  # the central buffered on disk while the database was away
    finally:
        for sim, task in sims:
            sim.stop()
            if not task.done():
                await task
        for e in edges:
            await e.stop()
        await central.stop()
        broker.stop()
