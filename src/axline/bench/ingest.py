"""Ingest benchmark: points/s into the historians, MQTT end to end, OPC UA subscriptions at scale.

Parts (each runs in its own child process, so its peak memory is its own):

- ``embedded``: batches of ``--batch`` readings over ``--tags`` tags appended to the embedded
  historian (``fsync="interval"``), points/s including the final flush.
- ``postgres``: the same batches into the PostgreSQL backend, and in the same run a raw psycopg
  binary COPY of the same rows (one row per reading, payload pre-built with NumPy, one COPY +
  commit per batch) into a plain table without index. ``postgres_vs_copy`` is the backend over
  that COPY.
- ``mqtt``: ``--mqtt-messages`` JSON messages (one reading each, topic = tag path) published to a
  Mosquitto broker, received by axline's ``MqttConnector`` (the connector `axline serve` runs),
  whose batches are appended to the embedded historian; messages/s from the first publish to the
  last append.
- ``opcua``: an asyncua server (own process) with N tags that all change once a second, and the
  axline ``OpcUaConnector`` subscribed to all of them; delivered fraction, lag (receive time minus
  the server's source timestamp) and the client's CPU use, for each N of ``--opcua-tags``.

``python -m axline.bench.ingest --json benchmarks/ingest.json`` (or ``axline bench ingest``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from axline.batch import Batch
from axline.bench.common import (
    bench_header,
    markdown_table,
    page,
    peak_rss_mb,
    publish,
)

log = logging.getLogger(__name__)

NS = 1_000_000_000
T0 = 1_763_000_000 * NS
PARTS = ("embedded", "postgres", "mqtt", "opcua")
GOALS = {
    "embedded_points_per_s": 2_000_000,
    "postgres_vs_copy": 0.8,
    "mqtt_msgs_per_s": 20_000,
}


METHOD = """\
- Embedded: {points:,} readings in batches of {batch:,} over {tags:,} tags (every tag at 1 ms steps),
  `EmbeddedHistorian(fsync="interval")`, time of all appends plus the final `flush()` (fsync).
{pg_method}- MQTT: {mqtt_publishers} publisher process(es) offer {mqtt_messages:,} JSON messages
  (`{{"ts": ns, "value": v}}`, QoS 0, topic = tag path, {mqtt_tags:,} topics) paced at
  {mqtt_rate:,.0f} msgs/s to the broker at {mqtt_host}:{mqtt_port}; axline's `MqttConnector`
  (connect/mqtt.py: paho network thread, JSON payload mapping per tag, batches handed to the asyncio
  loop every 50 ms) subscribes with QoS 0 and its sink appends each batch to the embedded historian.
  msgs/s = readings stored / (last append - first publish). A QoS 0 subscriber that falls behind
  loses messages at the broker, so the delivered fraction is part of the result.
- OPC UA: an asyncua server in its own process, N Double variables all written once a second with a
  source timestamp; the axline `OpcUaConnector` (publishing interval 200 ms) subscribed to all N in
  this process. After the subscription is set up and its start-up backlog has drained, a window of
  {opcua_seconds:.0f} s: every value whose source timestamp lies in the window counts (it may arrive
  up to 5 s after the window). Lag = arrival in the sink - source timestamp (so it includes the time
  the server takes to write all N values). Delivered fraction = values received / (N x server cycles
  seen in the window). Client CPU = CPU seconds of the client process / window seconds.
- Peak RSS: `ru_maxrss` of the child process that ran the part.
"""


# how the PostgreSQL part was measured, by the storage layout of the backend that ran (a page
# describes its own run: a result from before the array layout keeps its description)
PG_METHOD = {
    "blocks": """\
- PostgreSQL: {pg_points:,} readings per round, same batch shape, {rounds} interleaved round(s), best
  round of each kind. *backend*: `PostgresHistorian.append` (tag mapping, partition check, one binary
  COPY straight into the day partition of the `blocks` table, one row per tag and batch holding
  the readings as ts / value / quality arrays, btree index on (tag_id, tmax); row counts, `latest`
  upsert, commit). *raw COPY*: the same readings one row each (tag_id int4, ts int8, value float8,
  quality int2) as a NumPy-built binary COPY payload, one `COPY ... FROM STDIN (FORMAT BINARY)` +
  commit per batch, into a plain table without index. `postgres_vs_copy` is backend / raw COPY.
""",
    "rows": """\
- PostgreSQL: {pg_points:,} readings per round, same batch shape, {rounds} interleaved round(s), best
  round of each kind. *backend*: `PostgresHistorian.append` (tag mapping, partition check, one binary
  COPY straight into the day partition, row counts, `latest` upsert, commit). *raw COPY*: the same
  rows as a NumPy-built binary COPY payload, one `COPY ... FROM STDIN (FORMAT BINARY)` + commit per
  batch, into (a) a plain table without index and (b) a table shaped like the backend's (partitioned
  by day, btree index on (tag_id, ts)). `postgres_vs_copy` is backend / (a); (b) isolates what the
  backend adds on top of PostgreSQL's own work.
""",
}


def make_batches(n_points: int, batch: int, tags: int, seed: int = 0) -> list[Batch]:
    """``n_points`` readings in batches of ``batch``: each batch has every tag at successive 1 ms steps."""
    rng = np.random.default_rng(seed)
    paths = [f"bench/plant1/line{j % 4}/cell{j % 10}/asset{j}/signal" for j in range(tags)]
    per_tag = max(1, batch // tags)
    idx = np.tile(np.arange(tags, dtype=np.int32), per_tag)[:batch]
    step = np.repeat(np.arange(per_tag, dtype=np.int64), tags)[:batch]
    out = []
    for k in range(max(1, n_points // batch)):
        ts = T0 + (k * per_tag + step) * 1_000_000
        out.append(Batch(paths, idx, ts, rng.normal(size=batch), np.zeros(batch, np.uint8)))
    return out


# -- parts (each runs in a child process) ---------------------------------------------------------
def part_embedded(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest rate and query times of the embedded historian."""
    from axline.historian.embedded import EmbeddedHistorian

    batches = make_batches(args.points, args.batch, args.tags)
    n = sum(len(b) for b in batches)
    folder = tempfile.mkdtemp(prefix="axline-bench-", dir=args.workdir)
    try:
        h = EmbeddedHistorian(os.path.join(folder, "h"), fsync="interval")
        t = time.perf_counter()
        for b in batches:
            h.append(b)
        h.flush()
        el = time.perf_counter() - t
        assert h.count() == n
        h.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"points": n, "seconds": el, "embedded_points_per_s": n / el}


def _raw_copy(conn: Any, table: str, batches: list[Batch], ids: np.ndarray) -> float:
    """Seconds for a raw binary COPY (+ commit) per batch of the same rows into ``table``."""
    from axline.historian.postgres import copy_payload

    t = time.perf_counter()
    with conn.cursor() as cur:
        for b in batches:
            payload = copy_payload(ids[b.idx], b.ts, b.value, b.quality)
            with cur.copy(f"COPY {table} (tag_id, ts, value, quality) FROM STDIN (FORMAT BINARY)") as cp:
                cp.write(payload)
            conn.commit()
    return time.perf_counter() - t


def part_postgres(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest rate and query times of the PostgreSQL historian."""
    import psycopg

    from axline.historian.postgres import PostgresHistorian

    batches = make_batches(args.pg_points, args.batch, args.tags, seed=1)
    n = sum(len(b) for b in batches)
    schema = f"axline_bench_{os.getpid()}"
    cols = "(tag_id int NOT NULL, ts bigint NOT NULL, value float8 NOT NULL, quality smallint NOT NULL)"
    with psycopg.connect(args.dsn) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.plain {cols}")
        conn.commit()
        try:
            out: dict[str, Any] = {"points": n, "layout": "blocks"}
            h = PostgresHistorian(args.dsn, schema=schema)
            h.append(batches[0])  # registers the tags and makes the partition (not timed)
            warm = len(batches[0])
            ids = np.array([h._tag_ids[p] for p in batches[0].paths], np.int32)
            rounds: dict[str, list[float]] = {"backend": [], "copy_plain": []}
            for r in range(args.rounds):  # interleaved, so that a noisy neighbour hits all alike
                t = time.perf_counter()
                for k, b in enumerate(batches):
                    shift = (r + 1) * len(batches) + k  # fresh timestamps each round, same day
                    h.append(Batch(b.paths, b.idx, b.ts + shift * 100 * 1_000_000, b.value, b.quality))
                rounds["backend"].append(time.perf_counter() - t)
                rounds["copy_plain"].append(_raw_copy(conn, f"{schema}.plain", batches, ids))
            assert h.count() == warm + args.rounds * n
            h.close()
            best = {k: min(v) for k, v in rounds.items()}
            out["postgres_points_per_s"] = n / best["backend"]
            out["copy_plain_points_per_s"] = n / best["copy_plain"]
            out["postgres_vs_copy"] = best["copy_plain"] / best["backend"]
            out["rounds_s"] = rounds
        finally:
            conn.rollback()
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            conn.commit()
    return out


def part_mqtt(args: argparse.Namespace) -> dict[str, Any]:
    """MQTT end to end through axline's own ``MqttConnector`` (connect/mqtt.py): publisher processes
    -> broker -> connector (paho thread, JSON parsing, batching) -> sink -> embedded historian."""
    from axline.connect.mqtt import MqttConnector
    from axline.historian.embedded import EmbeddedHistorian
    from axline.plant import Source, Tag

    n_msgs, n_tags = args.mqtt_messages, args.mqtt_tags
    paths = [f"bench/mqtt/line1/cell{j % 10}/asset{j}/signal" for j in range(n_tags)]
    tags = [Tag(path=p, signal="signal", unit="", lo=-1e12, hi=1e12, period_s=0.001, source=Source("mqtt", p))
            for p in paths]
    folder = tempfile.mkdtemp(prefix="axline-bench-mqtt-", dir=args.workdir)
    h = EmbeddedHistorian(os.path.join(folder, "h"), fsync="interval")
    conn = MqttConnector("bench-mqtt", {"host": args.mqtt_host, "port": args.mqtt_port, "qos": 0,
                                        "subscribe": ["bench/mqtt/#"], "client_id": f"axline-bench-{os.getpid()}"},
                         tags)
    timing: dict[str, float] = {}
    stored = 0

    def sink(batch: Batch) -> None:
        nonlocal stored
        h.append(batch)
        stored += len(batch)
        timing["last"] = time.perf_counter()

    ctx = mp.get_context("spawn")
    go = ctx.Event()
    k = args.mqtt_publishers
    shares = [n_msgs // k + (1 if j < n_msgs % k else 0) for j in range(k)]
    published = [ctx.Value("d", 0.0, lock=False) for _ in range(k)]
    pubs = [ctx.Process(target=_mqtt_publisher, args=(args.mqtt_host, args.mqtt_port, paths, sum(shares[:j]),
                                                      shares[j], args.mqtt_rate / k, go, published[j]), daemon=True)
            for j in range(k)]

    async def main() -> tuple[float, bool]:
        task = asyncio.create_task(conn.run(sink))
        try:
            t_wait = time.perf_counter()
            while conn.state != "connected":
                if time.perf_counter() - t_wait > 15:
                    raise RuntimeError(f"the MQTT connector did not connect to {args.mqtt_host}:{args.mqtt_port}: "
                                       f"{conn.last_error}")
                await asyncio.sleep(0.05)
            for p in pubs:
                p.start()
            await asyncio.sleep(2.0 + n_msgs / 200_000)  # publishers connect and encode their messages
            t = time.perf_counter()
            go.set()
            deadline = t + n_msgs / args.mqtt_rate + 30.0
            while stored < n_msgs and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            ok = stored >= n_msgs
            if not ok:  # some were dropped on the way: wait until nothing has arrived for 2 s
                while time.perf_counter() - timing.get("last", t) < 2.0:
                    await asyncio.sleep(0.2)
            return t, ok
        finally:
            conn.stop()
            await task

    try:
        t, ok = asyncio.run(main())
        el = timing.get("last", time.perf_counter()) - t
        count = h.count()
        timing["published_s"] = max(v.value for v in published)
    finally:
        for p in pubs:
            if p.pid is not None:
                p.join(30)
                if p.is_alive():
                    p.terminate()
        h.close()
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "path": "axline.connect.mqtt.MqttConnector -> embedded historian",
        "messages": n_msgs,
        "received": conn.messages,
        "stored": count,
        "dead_letters": conn.dead_letters.count,
        "all_arrived": ok,
        "seconds": el,
        "publish_s": timing["published_s"],
        "offered_msgs_per_s": args.mqtt_rate,
        "delivered_fraction": count / n_msgs,
        "mqtt_msgs_per_s": count / el,
    }


def _mqtt_publisher(
    host: str, port: int, paths: list[str], first: int, count: int, rate: float, go: Any, published: Any
) -> None:
    """Child process: publish messages ``first`` .. ``first + count - 1`` (JSON readings, QoS 0,
    round-robin over ``paths``) at ``rate`` messages/s once ``go`` is set (payloads encoded before)."""
    import paho.mqtt.client as mqtt

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"axline-bench-pub-{os.getpid()}")
    pub.max_queued_messages_set(0)
    pub.connect(host, port)
    pub.loop_start()
    vals = np.random.default_rng(first).normal(size=count).tolist()
    n_tags = len(paths)
    msgs = [
        (paths[k % n_tags], json.dumps({"ts": T0 + k * 1000, "value": vals[k - first]}).encode())
        for k in range(first, first + count)
    ]
    go.wait(60)
    t = time.perf_counter()
    info = None
    for j, (topic, payload) in enumerate(msgs):
        info = pub.publish(topic, payload, qos=0)
        if j % 100 == 99:
            ahead = t + (j + 1) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    if info is not None:
        info.wait_for_publish(60)
    published.value = time.perf_counter() - t
    pub.loop_stop()
    pub.disconnect()


def _opcua_server(n_tags: int, port: int, ready: Any, stop: Any, written: Any, slowest: Any) -> None:
    """Child process: an asyncua server whose ``n_tags`` variables all change once a second."""
    import datetime as _dt

    from asyncua import Server, ua

    async def main() -> None:
        logging.getLogger("asyncua").setLevel(logging.ERROR)
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench")
        ns = await server.register_namespace("urn:axline:bench")
        obj = await server.nodes.objects.add_object(ns, "Bench")
        nodes = [await obj.add_variable(ua.NodeId(f"T{i}", ns), f"T{i}", 0.0) for i in range(n_tags)]
        ids = [n.nodeid for n in nodes]
        async with server:
            ready.set()
            k = 0
            next_t = time.monotonic()
            while not stop.is_set():
                k += 1
                t_cycle = time.monotonic()
                now = _dt.datetime.now(_dt.UTC)
                for j, nid in enumerate(ids):
                    if j % 500 == 499:  # let the server answer publish requests while it writes
                        await asyncio.sleep(0)
                    dv = ua.DataValue(
                        ua.Variant(float(k), ua.VariantType.Double), SourceTimestamp=now, ServerTimestamp=now
                    )
                    await server.write_attribute_value(nid, dv)
                written.value += n_tags
                slowest.value = max(slowest.value, time.monotonic() - t_cycle)
                next_t += 1.0
                await asyncio.sleep(max(0.0, next_t - time.monotonic()))

    asyncio.run(main())


def part_opcua_one(args: argparse.Namespace, n_tags: int) -> dict[str, Any]:
    """Readings per second through the OPC UA connector with ``n_tags`` tags on a local server."""
    from socket import socket

    from axline.connect.opcua import OpcUaConnector
    from axline.plant import Source, Tag

    with socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    written, slowest = ctx.Value("q", 0, lock=False), ctx.Value("d", 0.0, lock=False)
    server = ctx.Process(
        target=_opcua_server, args=(n_tags, port, ready, stop, written, slowest), daemon=True
    )
    server.start()
    try:
        if not ready.wait(300):
            raise RuntimeError(f"the OPC UA bench server with {n_tags} tags did not start in 300 s")
        tags = [
            Tag(
                path=f"bench/opcua/line1/cell/asset{i // 100}/t{i}",
                signal=f"t{i}",
                unit="",
                lo=-1e9,
                hi=1e9,
                period_s=1.0,
                source=Source("bench", f"T{i}"),
            )
            for i in range(n_tags)
        ]
        opts = OpcUaConnector.schema.validate(
            {
                "endpoint": f"opc.tcp://127.0.0.1:{port}/bench",
                "namespace": "urn:axline:bench",
                "publishing_interval_ms": 200.0,
                "timeout_s": 60.0,
            }
        )
        if args.opcua_watchdog_s is not None:  # a measurement aid: the connector as configured otherwise
            import functools

            import axline.connect.opcua as opcua_module

            opcua_module.Client = functools.partial(
                opcua_module.Client, watchdog_intervall=args.opcua_watchdog_s
            )
        conn = OpcUaConnector("bench", opts, tags)
        got: list[tuple[int, np.ndarray]] = []  # (arrival ns, source timestamps) per delivered batch

        def sink(batch: Batch) -> None:
            got.append((time.time_ns(), batch.ts))

        async def main() -> dict[str, Any]:
            task = asyncio.create_task(conn.run(sink))
            t_wait = time.monotonic()
            while conn.state != "connected" or conn.readings < n_tags:
                if time.monotonic() - t_wait > 300:
                    raise RuntimeError(f"the connector did not deliver all {n_tags} tags within 300 s")
                await asyncio.sleep(0.2)
            setup_s = time.monotonic() - t_wait
            # let the backlog of the start drain: until the newest batch is less than 2 s old (<= 60 s)
            t_drain = time.monotonic()
            await asyncio.sleep(2.0)
            while time.monotonic() - t_drain < 60 and got and got[-1][0] - int(got[-1][1].min()) > 2 * NS:
                await asyncio.sleep(0.5)
            slowest.value = 0.0
            cpu0, t0, w0, ns0 = time.process_time(), time.monotonic(), written.value, time.time_ns()
            await asyncio.sleep(args.opcua_seconds)
            cpu1, t1, w1, ns1 = time.process_time(), time.monotonic(), written.value, time.time_ns()
            await asyncio.sleep(5.0)  # values written in the window may still be on their way
            conn._stopping.set()
            try:
                await asyncio.wait_for(task, 30)
            except TimeoutError:  # stuck in a reconnect: wait_for has cancelled it; the window is measured
                log.warning("ingest benchmark: the OPC UA connector did not stop within 30 s; cancelled it")
            return {
                "setup_s": setup_s,
                "drain_s": t0 - t_drain,
                "window_s": t1 - t0,
                "window_ns": (ns0, ns1),
                "cpu_fraction": (cpu1 - cpu0) / (t1 - t0),
                "server_written": w1 - w0,
                "server_slowest_cycle_s": slowest.value,
                "reconnects": conn.connects - 1,
            }

        res = asyncio.run(main())
    finally:
        stop.set()
        server.join(30)
        if server.is_alive():
            server.terminate()
    ns0, ns1 = res.pop("window_ns")
    arrival = (
        np.concatenate([np.full(len(ts), a, np.int64) for a, ts in got]) if got else np.zeros(0, np.int64)
    )
    src = np.concatenate([ts for _, ts in got]) if got else np.zeros(0, np.int64)
    inside = (src >= ns0) & (src < ns1)
    arrival, src = arrival[inside], src[inside]
    cycles = len(np.unique(src))  # every server cycle stamps all its values with one timestamp
    lag = (arrival - src) / NS
    mid = ns0 + (ns1 - ns0) // 2
    first, second = lag[src < mid], lag[src >= mid]

    def pct(a: np.ndarray, q: float) -> float:
        return float(np.percentile(a, q)) if len(a) else float("nan")

    return {
        "tags": n_tags,
        "delivered_fraction": len(src) / max(1, n_tags * cycles),
        "server_cycles_in_window": cycles,
        "p50_lag_s": pct(lag, 50),
        "p99_lag_s": pct(lag, 99),
        "p99_lag_first_half_s": pct(first, 99),
        "p99_lag_second_half_s": pct(second, 99),
        **res,
    }


def part_opcua(args: argparse.Namespace) -> dict[str, Any]:
    """The OPC UA figures for each tag count of ``--opcua-tags``."""
    out = {}
    for n in args.opcua_tags:
        try:
            out[str(n)] = part_opcua_one(args, n)
        except Exception as e:  # noqa: BLE001 - one tag count failing must not hide the others
            log.error("ingest benchmark: OPC UA with %d tags failed: %s", n, e)
            out[str(n)] = {"tags": n, "error": f"{type(e).__name__}: {e}"}
    return out


def _child(fn: Callable[[argparse.Namespace], dict[str, Any]], args: argparse.Namespace, conn: Any) -> None:
    try:
        res = fn(args)
        res["peak_rss_mb"] = peak_rss_mb()
        conn.send(("ok", res))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def run_part(fn: Callable[[argparse.Namespace], dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Run one part in a forked child; its peak RSS is the child's own."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(fn, args, send))
    p.start()
    send.close()
    try:
        status, res = recv.recv()
    except EOFError:
        p.join()
        status, res = "error", f"the benchmark process died (exit code {p.exitcode})"
    p.join()
    if status != "ok":
        log.error("ingest benchmark part %s failed: %s", fn.__name__, res)
        return {"error": res}
    return res


# -- report -------------------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    return f"{v:,.{digits}f}"


def render(result: dict[str, Any]) -> str:
    """The Markdown page of an ingest result (from its JSON alone)."""
    parts = result["parts"]
    rows = []
    e = parts.get("embedded", {})
    if "embedded_points_per_s" in e:
        rows.append(
            [
                "embedded historian",
                f"{_fmt(e['embedded_points_per_s'])} points/s",
                "≥ 2,000,000 points/s",
                "yes" if e["embedded_points_per_s"] >= 2e6 else "no",
                _fmt(e["peak_rss_mb"]),
            ]
        )
    pg = parts.get("postgres", {})
    if "postgres_points_per_s" in pg:
        rows.append(
            [
                "PostgreSQL backend",
                f"{_fmt(pg['postgres_points_per_s'])} points/s",
                "",
                "",
                _fmt(pg["peak_rss_mb"]),
            ]
        )
        rows.append(
            [
                "raw binary COPY, plain table (no index)",
                f"{_fmt(pg['copy_plain_points_per_s'])} points/s",
                "",
                "",
                "",
            ]
        )
        if "copy_indexed_points_per_s" in pg:  # measured before the array layout
            rows.append(
                [
                    "raw binary COPY, table like the backend's",
                    f"{_fmt(pg['copy_indexed_points_per_s'])} points/s",
                    "",
                    "",
                    "",
                ]
            )
        rows.append(
            [
                "backend / raw COPY (plain table)",
                _fmt(pg["postgres_vs_copy"], 2),
                "≥ 0.8",
                "yes" if pg["postgres_vs_copy"] >= 0.8 else "no",
                "",
            ]
        )
    m = parts.get("mqtt", {})
    if "mqtt_msgs_per_s" in m:
        rows.append(
            [
                "MQTT (axline MqttConnector) → embedded historian",
                f"{_fmt(m['mqtt_msgs_per_s'])} msgs/s ({m['stored']:,}/{m['messages']:,} arrived)",
                "≥ 20,000 msgs/s",
                "yes" if m["mqtt_msgs_per_s"] >= 2e4 else "no",
                _fmt(m["peak_rss_mb"]),
            ]
        )
    for name in PARTS:
        if "error" in parts.get(name, {}):
            rows.append([name, f"failed: {parts[name]['error']}", "", "", ""])
        elif name not in parts:
            rows.append([name, "not run", "", "", ""])
    sections = [("Ingest", markdown_table(["what", "result", "goal", "met", "peak RSS MiB"], rows))]
    o = parts.get("opcua", {})
    if o and "error" not in o:
        orows = [
            [
                v["tags"],
                _fmt(v["delivered_fraction"], 3),
                f"{v.get('server_cycles_in_window', '–')} / {_fmt(v['window_s'], 0)}",
                _fmt(v.get("server_slowest_cycle_s"), 2),
                _fmt(v["p50_lag_s"], 3),
                _fmt(v["p99_lag_s"], 3),
                f"{_fmt(v['p99_lag_first_half_s'], 3)} → {_fmt(v['p99_lag_second_half_s'], 3)}",
                _fmt(v["cpu_fraction"], 2),
                _fmt(v["setup_s"], 1),
                v.get("reconnects", "–"),
            ]
            for v in o.values()
            if isinstance(v, dict) and "error" not in v
        ]
        orows += [
            [v["tags"], f"failed: {v['error']}"] + [""] * 9
            for v in o.values()
            if isinstance(v, dict) and "error" in v
        ]
        sections.append(
            (
                f"OPC UA subscriptions at 1 Hz ({result['config']['opcua_seconds']} s window)",
                markdown_table(
                    [
                        "tags",
                        "delivered fraction",
                        "server cycles / window s",
                        "server's slowest 1 s cycle, s",
                        "p50 lag s",
                        "p99 lag s",
                        "p99 lag 1st → 2nd half",
                        "client CPU (cores)",
                        "setup s",
                        "reconnects",
                    ],
                    orows,
                )
                + f"\n\nPeak RSS of the client process over all tag counts: {_fmt(o.get('peak_rss_mb'))} MiB.",
            )
        )
    layout = result["parts"].get("postgres", {}).get("layout", "rows")
    pg_method = PG_METHOD[layout].format(**result["config"])
    sections.append(("How it is measured", METHOD.format(pg_method=pg_method, **result["config"])))
    return page("Ingest benchmark", sections, result)


def run(args: argparse.Namespace) -> int:
    """``axline bench ingest``: run the selected parts and write the JSON and Markdown pages."""
    _check(args)
    t = time.perf_counter()
    parts = [p for p in PARTS if p not in (args.skip or [])]
    fns = {"embedded": part_embedded, "postgres": part_postgres, "mqtt": part_mqtt, "opcua": part_opcua}
    result: dict[str, Any] = bench_header("ingest")
    result.update({
        "config": {k: v for k, v in vars(args).items() if k not in ("bench_run", "func", "json", "table")},
        "parts": {},
    })
    for name in parts:
        print(f"ingest: {name} ...", flush=True)
        result["parts"][name] = run_part(fns[name], args)
        print(f"ingest: {name}: {json.dumps(result['parts'][name], default=str)[:400]}", flush=True)
    p = result["parts"]
    result["embedded_points_per_s"] = p.get("embedded", {}).get("embedded_points_per_s")
    result["postgres_points_per_s"] = p.get("postgres", {}).get("postgres_points_per_s")
    result["postgres_vs_copy"] = p.get("postgres", {}).get("postgres_vs_copy")
    result["mqtt_msgs_per_s"] = p.get("mqtt", {}).get("mqtt_msgs_per_s")
    opc = p.get("opcua", {})
    result["opcua"] = {
        k: {"delivered_fraction": v["delivered_fraction"], "p99_lag_s": v["p99_lag_s"]}
        for k, v in opc.items()
        if isinstance(v, dict) and "error" not in v
    }
    result["wall_s"] = round(time.perf_counter() - t, 2)
    result["peak_rss_mb"] = round(max([peak_rss_mb()] + [v.get("peak_rss_mb", 0) for v in p.values()]), 1)
    publish(result, args.json, args.table, render)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``axline bench ingest``."""
    parser.add_argument("--json", default="benchmarks/ingest.json", help="write the results as JSON here")
    parser.add_argument("--table", default="benchmarks/ingest.md", help="write the Markdown table here")
    parser.add_argument("--skip", nargs="*", choices=PARTS, default=[], help="parts to leave out")
    parser.add_argument("--points", type=int, default=3_000_000, help="readings into the embedded historian")
    parser.add_argument("--pg-points", type=int, default=1_000_000, help="readings per PostgreSQL round")
    parser.add_argument("--rounds", type=int, default=2, help="PostgreSQL rounds (best of) [1, 10]")
    parser.add_argument("--batch", type=int, default=100_000, help="readings per batch")
    parser.add_argument("--tags", type=int, default=1_000, help="tags per batch")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("AXLINE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL database for the postgres part (a temporary schema is made and dropped)",
    )
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--mqtt-messages", type=int, default=200_000, help="messages to publish")
    parser.add_argument("--mqtt-tags", type=int, default=1_000, help="distinct topics (tags)")
    parser.add_argument("--mqtt-publishers", type=int, default=2, help="publishing processes (devices)")
    parser.add_argument(
        "--mqtt-rate",
        type=float,
        default=25_000,
        help="messages/s offered by all publishers together (paced)",
    )
    parser.add_argument("--opcua-tags", type=int, nargs="*", default=[1000, 5000, 10000], help="tag counts")
    parser.add_argument("--opcua-seconds", type=float, default=30.0, help="measuring window per tag count")
    parser.add_argument(
        "--opcua-watchdog-s",
        type=float,
        default=None,
        help="give the asyncua client of the connector this watchdog interval (default: as the connector has it)",
    )
    parser.add_argument(
        "--workdir", default=None, help="folder for temporary historians (default: system tmp)"
    )


def _check(args: argparse.Namespace) -> None:
    for name, lo in (
        ("points", 1),
        ("pg_points", 1),
        ("batch", 1),
        ("tags", 1),
        ("mqtt_messages", 1),
        ("mqtt_tags", 1),
        ("mqtt_publishers", 1),
        ("mqtt_rate", 1),
    ):
        if getattr(args, name) < lo:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= {lo}, got {getattr(args, name)}")
    if not 1 <= args.rounds <= 10:
        raise SystemExit(f"error: --rounds must be in [1, 10], got {args.rounds}")


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m axline.bench.ingest", description=__doc__.splitlines()[0])
    add_arguments(_p)
    raise SystemExit(run(_p.parse_args()))
