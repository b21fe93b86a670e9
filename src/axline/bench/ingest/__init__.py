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
import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from typing import Any

from axline.bench.common import (
    bench_header,
    peak_rss_mb,
    publish,
)
from axline.bench.ingest.embedded import make_batches as make_batches
from axline.bench.ingest.embedded import part_embedded as part_embedded
from axline.bench.ingest.mqtt import part_mqtt as part_mqtt
from axline.bench.ingest.opcua import part_opcua as part_opcua
from axline.bench.ingest.opcua import part_opcua_one as part_opcua_one
from axline.bench.ingest.page import GOALS as GOALS
from axline.bench.ingest.page import PARTS as PARTS
from axline.bench.ingest.page import render as render
from axline.bench.ingest.postgres import part_postgres as part_postgres

log = logging.getLogger(__name__)


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
