"""MQTT ingest: publishers in their own processes, the connector storing into the embedded historian."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np

from axline.batch import Batch
from axline.bench.ingest.embedded import T0


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
