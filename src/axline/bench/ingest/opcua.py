"""OPC UA ingest: a subscription to a local server, delivered fraction and lag by tag count."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import time
from typing import Any

import numpy as np

from axline.batch import Batch
from axline.bench.ingest.embedded import NS

log = logging.getLogger("axline.bench.ingest")  # the harness's one logger


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
