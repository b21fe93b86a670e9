"""What the connector tests share: a plant of one connector feeding one asset, waiting on a condition,
collecting poll cycles with the last value of each signal, and the local MQTT broker."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest

from _wait import wait_for
from axline.batch import Batch
from axline.plant import parse_plant

BROKER = ("127.0.0.1", 1883)


def plant_yaml(kind: str, port: int, asset: str, tags: list[dict], **conn: Any) -> str:
    """A plant whose connector ``plc`` of type ``kind`` on 127.0.0.1:``port`` (options ``conn``, over a fast
    poll and a 5 s timeout) feeds asset ``asset`` with ``tags`` ({signal, address, any other tag field})."""
    opts = {"poll_interval_ms": 50, "timeout_s": 5, **conn}
    lines = [
        "plant: {site: s, area: a}",
        "connectors:",
        f"  - {{name: plc, type: {kind}, host: 127.0.0.1, port: {port}, "
        + ", ".join(f"{k}: {v}" for k, v in opts.items())
        + "}",
        "lines:",
        "  - id: l1",
        "    assets:",
        f"      - id: {asset}",
        "        connector: plc",
        "        tags:",
    ]
    for t in tags:
        extra = "".join(f", {k}: {v}" for k, v in t.items() if k not in ("signal", "address"))
        lines.append(f'          - {{signal: {t["signal"]}, source: {{address: "{t["address"]}"}}{extra}}}')
    return "\n".join(lines) + "\n"


def make_connector(cls: type, kind: str, port: int, asset: str, tags: list[dict], **conn: Any) -> Any:
    """A ``cls`` connector made from :func:`plant_yaml`'s plant, as the service makes it."""
    plant = parse_plant(plant_yaml(kind, port, asset, tags, **conn))
    cfg = plant.connectors[0]
    return cls(cfg.name, cfg.options, plant.connector_tags("plc"))


async def collect(conn: Any, cycles: int = 2, timeout: float = 120.0) -> list[Batch]:
    """Run ``conn`` until it has delivered ``cycles`` batches, then stop it; the batches."""
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: len(batches) >= cycles, timeout, f"{cycles} poll cycles")
    finally:
        conn.stop()
        await task
    return batches


def last_values(batches: list[Batch]) -> dict[str, tuple[float, int]]:
    """(value, quality) of each signal (the last part of its path) in the last batch."""
    return {r.path.rsplit("/", 1)[1]: (r.value, r.quality) for r in batches[-1]}


def broker_up(host: str, port: int) -> bool:
    """Whether an MQTT broker accepts connections on ``host``:``port``."""
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def local_broker() -> tuple[str, int]:
    """The local Mosquitto (127.0.0.1:1883); where none runs the test is skipped, and fails under CI."""
    if not broker_up(*BROKER):
        if os.environ.get("CI") == "true":
            pytest.fail("no MQTT broker on 127.0.0.1:1883: scripts/ensure-services.sh starts mosquitto")
        pytest.skip("no MQTT broker reachable on 127.0.0.1:1883 (start mosquitto to run this test)")
    return BROKER
