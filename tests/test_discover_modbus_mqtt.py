"""`axline discover` for Modbus TCP (a real pymodbus server on a free port) and MQTT (the local
Mosquitto broker, unique topics per test): scan, classify, draft a plant file that loads and that
the real connectors read."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import struct
import threading
import time
from argparse import ArgumentParser

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from _connect import BROKER, local_broker
from _wait import wait_for
from axline.batch import Batch
from axline.connect import registry
from axline.connect import sparkplug_pb as pb
from axline.connect.base import CONNECTED
from axline.connect.sparkplug import SparkplugEdgeNode
from axline.discover import (
    add_arguments,
    classify_payload,
    classify_registers,
    discover_modbus,
    discover_mqtt,
    draft_plant,
    inventory_html,
    inventory_markdown,
    parse_scan,
    run,
)
from axline.plant import parse_plant

UNIT = 3
FC = {"co": 1, "di": 2, "hr": 3, "ir": 4}


def words_abcd(x: float) -> list[int]:
    b = struct.pack(">f", x)
    return [b[0] << 8 | b[1], b[2] << 8 | b[3]]


# -- pure parts ------------------------------------------------------------------------------------------
def test_parse_scan_merges_ranges_and_explains_mistakes():
    assert parse_scan("hr:0-9, hr:5-20,co:3,HR:30-31") == {"hr": [(0, 20), (30, 31)], "co": [(3, 3)]}
    with pytest.raises(ValueError, match="--scan: 'xx:0-9' is not a range.*hr, ir, co or di"):
        parse_scan("xx:0-9")
    with pytest.raises(ValueError, match="first <= last within 0..65535"):
        parse_scan("hr:10-5")
    with pytest.raises(ValueError, match="names no range"):
        parse_scan(" , ")


def test_register_classification_finds_float_pairs_and_integer_types():
    rng = np.random.default_rng(7)
    n = 30
    times = np.arange(n) * 0.1
    ramp = 20.0 + 0.37 * np.arange(n)  # abcd float at 1..2, preceded by a constant 0 register
    sine = 5.0 + 2.0 * np.sin(np.arange(n) / 5)  # cdab float at 5..6
    cols = {
        0: np.zeros(n),
        3: np.full(n, 40000.0),
        4: (np.arange(n) % 7 - 3) % 65536,
        7: rng.integers(0, 65536, n).astype(float),
        8: rng.integers(0, 65536, n).astype(float),
    }
    ab = np.array([words_abcd(x) for x in ramp], dtype=float)
    cd = np.array([words_abcd(x)[::-1] for x in sine], dtype=float)
    cols[1], cols[2] = ab[:, 0], ab[:, 1]
    cols[5], cols[6] = cd[:, 0], cd[:, 1]
    # a cdab float followed by a register that stays 0: (11, 12) read big-endian is a coarse copy of it
    cols[10], cols[11], cols[12] = cd[:, 0], cd[:, 1], np.zeros(n)
    addrs = sorted(cols)
    samples = np.column_stack([cols[a] for a in addrs])
    sigs = {s.name: s for s in classify_registers("hr", addrs, samples, times)}
    assert sorted(sigs) == ["hr0", "hr1", "hr10", "hr12", "hr3", "hr4", "hr5", "hr7", "hr8"]
    assert sigs["hr10"].address == "hr:10:float32:cdab" and sigs["hr12"].commented
    assert sigs["hr1"].address == "hr:1:float32" and sigs["hr1"].value == pytest.approx(ramp[-1], rel=1e-6)
    assert len(sigs["hr1"].times) == n - 1 and "float32" in sigs["hr1"].guess
    assert sigs["hr5"].address == "hr:5:float32:cdab" and sigs["hr5"].value == pytest.approx(
        sine[-1], rel=1e-6
    )
    assert sigs["hr0"].commented and sigs["hr0"].dtype == "int16" and not sigs["hr0"].times
    assert sigs["hr3"].address == "hr:3:uint16" and sigs["hr3"].value == 40000
    assert sigs["hr4"].address == "hr:4:int16" and sigs["hr4"].value == (n - 1) % 7 - 3
    assert sigs["hr7"].dtype in ("int16", "uint16") and sigs["hr8"].dtype in ("int16", "uint16")
    assert "constant 0 over 30 polls" == sigs["hr0"].note
    with pytest.raises(ValueError, match=r"samples must be polls x addresses = \(30, 3\)"):
        classify_registers("hr", [0, 1, 2], samples, times)


def test_payload_kinds_and_fields():
    p = classify_payload("a/b/temp", b"21.5")
    assert (p.kind, p.fields) == ("number", [("$", "temp", 21.5)])
    p = classify_payload(
        "a/b/status",
        json.dumps(
            {
                "ts": 1767225600000,
                "pressure": 3.5,
                "axes": [{"load": 1}],
                "state": "run",
                "ok": True,
                "odd key": 2,
                "semi;colon": 1,
            }
        ).encode(),
    )
    assert p.kind == "json" and p.ts_selector == "$.ts" and p.skipped == 1
    assert [(sel, name) for sel, name, _ in p.fields] == [
        ("$.pressure", "pressure"),
        ("$.axes[0].load", "axes_0_load"),
        ("$.ok", "ok"),
        ("$['odd key']", "odd_key"),
    ]
    p = classify_payload("a/b/c", b'{"value": 7, "ts": 1767225600000, "q": 0}')
    assert (p.kind, p.fields) == ("json", [("$", "c", 7)])
    assert classify_payload("a", b"on").kind == "text"
    assert classify_payload("a", b'{"state": "run"}').kind == "json (no numbers)"
    assert classify_payload("a", b"\x00\x01\xff").kind == "binary"
    assert classify_payload("a", b"").kind == "empty"


# -- Modbus against a real server -------------------------------------------------------------------------
class RampingDevice:
    """pymodbus TCP server: hr 0..19 and 50..109 (a gap of unmapped 20..49), a float32 ramp at hr 100
    (abcd) and a falling one at hr 104 (cdab), a constant int16 -1234 at hr 10, a counter at hr 60,
    coils 0..31 with coil 3 set and coil 5 toggling, discrete inputs 0..15, input registers 0..9."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.step = 0

    async def start(self) -> RampingDevice:
        regs = DataType.REGISTERS
        dev = SimDevice(
            id=UNIT,
            simdata=(
                [SimData(0, count=32, values=False, datatype=DataType.BITS)],
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [
                    SimData(0, count=20, values=0, datatype=regs),
                    SimData(50, count=60, values=0, datatype=regs),
                ],
                [SimData(0, count=10, values=0, datatype=regs)],
            ),
        )
        self.srv = ModbusTcpServer(dev, address=("127.0.0.1", self.port))
        await self.srv.serve_forever(background=True)
        await self.set("hr", 10, [(-1234) % 65536])
        await self.set("ir", 4, [500])
        await self.set("co", 3, [True])
        await self.set("di", 2, [True])
        await self.tick()
        self.task = asyncio.create_task(self._run())
        return self

    async def set(self, table: str, address: int, values: list) -> None:
        await self.srv.async_setValues(UNIT, FC[table], address, values)

    def ramp(self, step: int) -> float:
        return 20.0 + 0.37 * step

    def is_ramp_value(self, value: float) -> bool:
        """True when ``value`` is the float32 of a ramp step served so far."""
        k = round((value - 20.0) / 0.37)
        return 0 <= k <= self.step and value == float(np.float32(self.ramp(k)))

    async def tick(self) -> None:
        await self.set("hr", 100, words_abcd(self.ramp(self.step)))
        await self.set("hr", 104, words_abcd(80.0 - 0.21 * self.step)[::-1])
        await self.set("hr", 60, [self.step % 65536])
        await self.set("co", 5, [self.step % 2 == 1])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.04)
            self.step += 1
            await self.tick()

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.srv.shutdown()


async def test_modbus_scan_bisects_classifies_and_drafts_a_working_plant(port):
    dev = await RampingDevice(port).start()
    try:
        signals, info = await discover_modbus(
            "127.0.0.1",
            port,
            "hr:0-119,ir:0-15,co:0-39,di:0-15",
            unit_id=UNIT,
            listen_s=1.2,
            poll_interval_s=0.06,
            min_polls=10,  # enough samples to classify however slowly a busy machine polls
        )
        scan = {t["table"]: t for t in info["scan"]}
        assert scan["hr"]["answered"] == [(0, 19), (50, 109)]
        assert scan["hr"]["refused"] == [(20, 49, 2), (110, 119, 2)]  # illegal data address
        assert scan["ir"]["answered"] == [(0, 9)] and scan["ir"]["refused"] == [(10, 15, 2)]
        assert scan["co"]["answered"] == [(0, 31)] and scan["di"]["answered"] == [(0, 15)]
        assert info["requests"] < 200 and info["polls"] >= 10
        by = {s.name: s for s in signals}
        assert not any(f"hr{a}" in by for a in range(20, 50))
        ramp = by["hr100"]
        assert ramp.address == "hr:100:float32" and ramp.dtype == "float32" and "float32" in ramp.guess
        assert dev.is_ramp_value(ramp.value) and len(ramp.times) >= info["polls"] // 2
        assert "hr101" not in by and "hr105" not in by
        assert by["hr104"].address == "hr:104:float32:cdab" and by["hr104"].value <= 80.0
        const = by["hr10"]
        assert (const.address, const.value, const.times) == ("hr:10:int16", -1234, [])
        assert const.note.startswith("constant -1234") and not const.commented
        assert by["hr60"].times and by["hr60"].dtype == "int16"
        assert by["hr0"].commented and by["ir4"].value == 500
        assert by["co5"].kind == "bool" and by["co5"].times and by["co3"].value == 1 and not by["co3"].times
        assert by["di2"].value == 1 and by["di0"].commented

        text = draft_plant(signals, info)
        assert 'hr:100:float32"}}  # guess: float32 (the pair decodes to a float moving smoothly' in text
        assert (
            "# answered but stayed 0 while polled (see the inventory): hr 0-9, 11-19, 50-59, 61-99," in text
        )
        plant = parse_plant(text, "draft-plant.yaml")  # loads as written
        tags = {t.signal: t for t in plant.all_tags()}
        assert set(tags) == {s.name for s in signals if not s.commented}
        assert plant.connectors[0].type == "modbus" and plant.connectors[0].options["unit_id"] == UNIT
        cfg = plant.connectors[0]
        conn = registry.connector_class(cfg.type)(cfg.name, cfg.options, plant.connector_tags(cfg.name))
        batches: list[Batch] = []
        task = asyncio.create_task(conn.run(batches.append))
        try:
            await wait_for(lambda: batches, 120, "one poll of the drafted connector")
        finally:
            conn.stop()
            await task
        got = {r.path.rsplit("/", 1)[1]: r for r in batches[0]}
        assert got["hr10"].value == -1234 and got["co3"].value == 1 and got["ir4"].value == 500
        assert dev.is_ramp_value(got["hr100"].value) and got["hr100"].quality == 0
        md = inventory_markdown(signals, info)
        assert "| hr (holding registers) | 0-119 | 0-19, 50-109 | 20-49: illegal data address;" in md
        assert "hr:100:float32" in md and "주소 탐색" in inventory_html(signals, info)
    finally:
        await dev.stop()


async def test_modbus_wrong_unit_or_no_device_says_what_to_check(port):
    dev = await RampingDevice(port).start()
    try:
        with pytest.raises(ConnectionError, match="answered no address.*check --unit-id"):
            await discover_modbus("127.0.0.1", port, "hr:0-9", unit_id=UNIT + 1, listen_s=0)
    finally:
        await dev.stop()
    with pytest.raises(ConnectionError, match="cannot connect to Modbus device"):
        await discover_modbus("127.0.0.1", port, "hr:0-9", listen_s=0, timeout_s=0.5)
    with pytest.raises(ValueError, match="--unit-id must be within 0..255"):
        await discover_modbus("127.0.0.1", port, "hr:0-9", unit_id=300)


async def test_modbus_polls_at_least_min_polls_past_the_listen_window(port):
    dev = await RampingDevice(port).start()
    try:
        _, info = await discover_modbus("127.0.0.1", port, "hr:0-9", unit_id=UNIT, listen_s=0, min_polls=4)
        assert info["polls"] == 4
        _, info = await discover_modbus("127.0.0.1", port, "hr:0-9", unit_id=UNIT, listen_s=0)
        assert info["polls"] == 1
        with pytest.raises(ValueError, match="min_polls must be >= 1"):
            await discover_modbus("127.0.0.1", port, "hr:0-9", unit_id=UNIT, min_polls=0)
    finally:
        await dev.stop()


# -- MQTT against the local Mosquitto ------------------------------------------------------------------------
@pytest.fixture
def broker() -> tuple[str, int]:
    return local_broker()


@pytest.fixture
def uid() -> str:
    return f"d{os.getpid()}{secrets.token_hex(3)}"


class Publisher(threading.Thread):
    """Publishes like a line would, at known rates, once discovery listens; counts what it sent."""

    def __init__(self, uid: str, ready: threading.Event, duration_s: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.uid, self.ready, self.duration_s = uid, ready, duration_s
        self.sent: dict[str, int] = {}
        self.sent_at: dict[str, list[float]] = {}  # monotonic send times, to check the gaps discovery reports
        self.started = 0.0
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uid}")
        self.client.connect(*BROKER)
        self.client.loop_start()
        self.node = SparkplugEdgeNode(
            uid,
            "edge1",
            devices={"press2": {"Temperature": pb.DOUBLE, "Running": pb.BOOLEAN, "Recipe": pb.STRING}},
        )

    def pub(self, topic: str, payload: bytes, retain: bool = False) -> None:
        if not retain:
            self.sent_at.setdefault(topic, []).append(time.monotonic())
        self.client.publish(f"{self.uid}/{topic}", payload, qos=1, retain=retain).wait_for_publish(60)
        if not retain:
            self.sent[topic] = self.sent.get(topic, 0) + 1

    def run(self) -> None:
        try:
            assert self.ready.wait(120), "discovery did not start listening"
            self.started = time.monotonic()
            self.node.connect()
            t0 = time.monotonic()
            k = 0
            while (t := time.monotonic() - t0) < self.duration_s:
                self.pub("line1/press1/temp", f"{20 + k * 0.1:.2f}".encode())  # every 50 ms
                if k % 2 == 0:
                    self.pub(
                        "line1/press1/status",
                        json.dumps(
                            {
                                "ts": int(time.time() * 1000),
                                "pressure": 3.0 + k / 100,
                                "axes": [{"load": k}],
                                "state": "run",
                                "ok": k % 4 == 0,
                            }
                        ).encode(),
                    )
                    self.node.publish_data({"Temperature": 60.0 + k, "Running": True}, device="press2")
                if k % 10 == 0:
                    self.pub("line1/cam1/log", b"part ok")
                    self.pub("line1/cam1/raw", bytes([0, 255, 7, 1]))
                if t < 0.2 or t > 1.75:  # a silence of 1.5 s in the middle
                    self.pub("line1/oven1/temp", b"180")
                k += 1
                time.sleep(max(0.0, t0 + k * 0.05 - time.monotonic()))
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.finished.set()

    def close(self) -> None:
        self.pub("line1/press1/setpoint", b"", retain=True)  # clear the retained message
        self.node.disconnect()
        self.client.loop_stop()
        self.client.disconnect()


async def test_mqtt_listen_counts_rates_gaps_and_drafts_a_working_plant(broker, uid):
    ready = threading.Event()
    pub = Publisher(uid, ready)
    pub.pub("line1/press1/setpoint", b"55", retain=True)  # retained before we listen
    pub.start()
    try:
        # listens until the publisher is done (at most 60 s): the window follows the publisher, not the clock
        signals, info = await asyncio.to_thread(
            discover_mqtt, *broker, [f"{uid}/#", f"spBv1.0/{uid}/#"], 60.0, ready=ready, stop=pub.finished
        )
        finished_in_window = pub.finished.is_set()
        pub.join(60)
        assert pub.error is None, pub.error
        assert finished_in_window, "the publisher ran past the listening window (machine too loaded?)"
        topics = {t["topic"].removeprefix(f"{uid}/"): t for t in info["topics"]}
        for name, n in pub.sent.items():
            assert topics[name]["messages"] == n, name  # every message seen (QoS 1)
        temp, oven = topics["line1/press1/temp"], topics["line1/oven1/temp"]
        assert temp["kind"] == "number" and temp["per_s"] == pytest.approx(
            pub.sent["line1/press1/temp"] / info["listened_s"], rel=0.05
        )
        # the largest gap, window edges included, follows what was sent: the oven's 1.5 s silence shows, and a
        # stall of the publisher on a busy machine shows in both (the tolerance covers delivery delays)
        end = pub.started + info["listened_s"]

        def sent_gap(topic: str) -> float:
            return max(b - a for a, b in itertools.pairwise([pub.started, *pub.sent_at[topic], end]))

        assert sent_gap("line1/oven1/temp") >= 1.5
        assert oven["max_gap_s"] == pytest.approx(sent_gap("line1/oven1/temp"), abs=0.5)
        assert temp["max_gap_s"] == pytest.approx(sent_gap("line1/press1/temp"), abs=0.5)
        assert (
            topics["line1/press1/status"]["kind"] == "json" and topics["line1/press1/status"]["signals"] == 3
        )
        assert topics["line1/cam1/log"]["kind"] == "text" and topics["line1/cam1/raw"]["kind"] == "binary"
        assert (topics["line1/press1/setpoint"]["retained"], topics["line1/press1/setpoint"]["per_s"]) == (
            1,
            0,
        )
        spb = next(t for t in info["topics"] if t["topic"] == f"spBv1.0/{uid}/DDATA/edge1/press2")
        assert (
            spb["kind"] == "sparkplug B DDATA"
            and spb["problems"] == ""
            and spb["machine"] == f"{uid}/edge1/press2"
        )
        assert {t["machine"] for t in info["topics"]} >= {f"{uid}/line1/press1", f"{uid}/line1/cam1"}

        by = {(s.machine.removeprefix(f"{uid}/"), s.name): s for s in signals}
        pressure = by[("line1/press1", "pressure")]
        assert pressure.address == f"{uid}/line1/press1/status#$.pressure;ts=$.ts"
        assert len(pressure.times) == pub.sent["line1/press1/status"] and pressure.period_s == pytest.approx(
            0.1, rel=0.3
        )
        assert by[("line1/press1", "ok")].kind == "bool"
        assert by[("line1/press1", "temp")].address == f"{uid}/line1/press1/temp"
        sp_temp = by[("edge1/press2", "Temperature")]
        assert sp_temp.address == f"{uid}/edge1/press2:Temperature" and sp_temp.dtype == "Double"
        assert len(sp_temp.times) == pub.sent["line1/press1/status"] and sp_temp.value >= 60
        assert by[("edge1/press2", "Recipe")].commented  # not a number

        text = draft_plant(signals, info)
        plant = parse_plant(text, "draft-plant.yaml")
        assert {c.type for c in plant.connectors} == {"mqtt", "sparkplug"}
        tags = {t.path: t for t in plant.all_tags()}
        assert tags["site1/area1/line1/line1/press1/pressure"].source.address == pressure.address
        assert tags["site1/area1/line1/edge1/press2/temperature"].source.connector == "sparkplug1"
        md = inventory_markdown(signals, info)
        assert f"## {uid}/line1/cam1" in md and "| text |" in md and "토픽" in inventory_html(signals, info)
    finally:
        pub.close()

    # the drafted MQTT connector reads the drafted tags from the broker
    cfg = next(c for c in plant.connectors if c.type == "mqtt")
    conn = registry.connector_class(cfg.type)(cfg.name, cfg.options, plant.connector_tags(cfg.name))
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    peer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"peer-{uid}")
    peer.connect(*broker)
    peer.loop_start()
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "the drafted connector to connect")
        payload = {"ts": 1767225600000, "pressure": 4.25, "axes": [{"load": 9}], "ok": False}
        peer.publish(f"{uid}/line1/press1/status", json.dumps(payload).encode(), qos=1).wait_for_publish(60)
        await wait_for(lambda: sum(map(len, batches)) >= 3, 120, "the drafted tags' readings")
    finally:
        peer.loop_stop()
        peer.disconnect()
        conn.stop()
        await task
    got = {r.path.rsplit("/", 1)[1]: r for b in batches for r in b}
    assert got["pressure"].value == 4.25 and got["pressure"].ts == 1_767_225_600_000_000_000
    assert got["axes_0_load"].value == 9 and got["ok"].value == 0


def test_mqtt_bad_input_is_refused_with_a_clear_message(broker):
    with pytest.raises(ValueError, match="--topics: 'a/#/b' is not a valid MQTT topic filter"):
        discover_mqtt(*broker, ["a/#/b"], 1)
    with pytest.raises(ValueError, match="--listen must be > 0 s"):
        discover_mqtt(*broker, ["#"], 0)
    with pytest.raises(ConnectionError, match="cannot connect to MQTT broker"):
        discover_mqtt("127.0.0.1", 1, ["#"], 1)


def test_cli_dispatches_on_the_scheme_and_writes_the_files(broker, uid, tmp_path):
    p = ArgumentParser()
    add_arguments(p)
    url = f"mqtt://{broker[0]}:{broker[1]}"
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cli-{uid}")
    pub.connect(*broker)
    pub.loop_start()
    try:
        pub.publish(f"{uid}/l1/pump1/flow", b"12.5", qos=1, retain=True).wait_for_publish(60)
        args = p.parse_args([url, "--topics", f"{uid}/#", "--listen", "300ms", "--out", str(tmp_path / "a")])
        assert run(args) == 0
    finally:
        pub.publish(f"{uid}/l1/pump1/flow", b"", qos=1, retain=True).wait_for_publish(60)
        pub.loop_stop()
        pub.disconnect()
    plant = parse_plant((tmp_path / "a" / "draft-plant.yaml").read_text())
    assert [t.source.address for t in plant.all_tags()] == [f"{uid}/l1/pump1/flow"]
    assert (tmp_path / "a" / "inventory.md").read_text().startswith(f"# Data-readiness inventory — {url}")
    # nothing arrives: the inventory says so, no draft is written, the exit code is 1
    args = p.parse_args([url, "--topics", f"{uid}/none/#", "--listen", "200ms", "--out", str(tmp_path / "b")])
    assert run(args) == 1
    assert (tmp_path / "b" / "inventory.md").exists() and not (tmp_path / "b" / "draft-plant.yaml").exists()
    with pytest.raises(ValueError, match="discovery speaks opcua:// .*modbus:// and mqtt://"):
        run(p.parse_args(["http://x", "--out", str(tmp_path)]))
