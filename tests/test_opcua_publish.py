"""KPIs and alarm states published as OPC UA nodes, read back by a real OPC UA client."""

from __future__ import annotations

import math

import pytest
from asyncua import Client

from _fake_service import FakeService, open_test_historian
from axline.alarms import lifecycle as lc
from axline.opcua_publish import NAMESPACE, KpiPublisher
from conftest import free_port


async def test_kpis_and_alarm_states_reach_an_opc_ua_client(tmp_path):
    hist = open_test_historian(tmp_path)
    svc = FakeService(hist, tick_s=10, history_s=60)
    url = f"opc.tcp://127.0.0.1:{free_port()}/axline"
    pub = KpiPublisher(svc, url, period_s=0.2)
    await pub.start()
    try:
        await pub.update_once()
        async with Client(url, timeout=60) as client:
            idx = await client.get_namespace_index(NAMESPACE)

            async def read(*path):
                node = await client.nodes.objects.get_child([f"{idx}:axline", *[f"{idx}:{p}" for p in path]])
                return await node.read_value()

            assert await read("line1", "OEE") == pytest.approx(0.78)
            assert await read("line1", "PartsTotal") == 400
            assert await read("line1", "Shift") == "A"
            assert await read("line1", "Alarms", "Active") == 1
            assert await read("line1", "Alarms", "Unacknowledged") == 1
            assert await read("line1", "Alarms", "HighPriority") == 1
            assert await read("line1", "cnc1", "State") in ("running", "alarm")
            assert math.isnan(await read("line1", "CycleTime_s")) is False
            ev = next(e for e in hist.events(kinds=["alarm"]) if e.id == svc.alarm_id)
            hist.update_event(ev.id, **lc.acknowledge(ev, "kim", svc.now_ns()))
            await pub.update_once()
            assert await read("line1", "Alarms", "Unacknowledged") == 0
            assert await read("line1", "Alarms", "Active") == 1  # acknowledged, still there
    finally:
        await pub.stop()
        hist.close()


def test_publishing_beyond_loopback_needs_security(tmp_path):
    svc = object()
    with pytest.raises(ValueError, match="without security"):
        KpiPublisher(svc, "opc.tcp://0.0.0.0:4841/axline")
    with pytest.raises(ValueError, match="opc.tcp://"):
        KpiPublisher(svc, "http://127.0.0.1:4841")
    with pytest.raises(FileNotFoundError, match="axline certs"):
        KpiPublisher(svc, "opc.tcp://0.0.0.0:4841/axline", certificate=str(tmp_path / "no.der"),
                     private_key=str(tmp_path / "no.pem"), trusted_clients=str(tmp_path))


async def test_the_publisher_started_with_serve_shows_in_health(tmp_path):
    from types import SimpleNamespace

    from axline.opcua_publish import start_from_args

    hist = open_test_historian(tmp_path)
    svc = FakeService(hist, tick_s=10, history_s=60)
    svc.workers = {}
    args = SimpleNamespace(publish_opcua=f"opc.tcp://127.0.0.1:{free_port()}/axline", publish_cert=None,
                           publish_key=None, publish_trusted=None)
    pub = await start_from_args(svc, args)
    try:
        assert svc.workers == {"opcua_publish": pub}
        assert (pub.errors, pub.last_error) == (0, None)
    finally:
        await pub.stop()
        hist.close()
