"""Modbus TCP connector against a real pymodbus TCP server on a free local port (nothing mocked)."""

from __future__ import annotations

import asyncio
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

import _connect
from _connect import collect, last_values
from _wait import wait_for
from axline.batch import BAD_CONFIG, BAD_OUT_OF_RANGE, BAD_SENSOR, GOOD, Batch
from axline.connect import codec
from axline.connect.base import CONNECTED
from axline.connect.modbus import ModbusConnector, parse_address, plan_reads
from axline.plant import PlantConfigError, parse_plant

UNIT = 1
FC = {"co": 1, "di": 2, "hr": 3, "ir": 4}


def plant_yaml(port: int, tags: list[dict], **conn) -> str:
    return _connect.plant_yaml("modbus", port, "press1", tags, unit_id=UNIT, **conn)


def make_connector(port: int, tags: list[dict], **conn) -> ModbusConnector:
    return _connect.make_connector(ModbusConnector, "modbus", port, "press1", tags, unit_id=UNIT, **conn)


class Server:
    """A pymodbus TCP server with separate coil/input/holding/input-register tables; counts requests."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[tuple[str, int, int]] = []
        self.srv: ModbusTcpServer | None = None

    def _trace(self, sending: bool, pdu):
        if not sending:
            self.requests.append((type(pdu).__name__, getattr(pdu, "address", -1), getattr(pdu, "count", -1)))
        return pdu

    async def start(self) -> Server:
        bits = SimData(0, count=3000, values=False, datatype=DataType.BITS)
        regs = SimData(0, count=1000, values=0, datatype=DataType.REGISTERS)
        dev = SimDevice(
            id=UNIT,
            simdata=(
                [bits],
                [SimData(0, count=3000, values=False, datatype=DataType.BITS)],
                [regs],
                [SimData(0, count=1000, values=0, datatype=DataType.REGISTERS)],
            ),
        )
        self.srv = ModbusTcpServer(dev, address=("127.0.0.1", self.port), trace_pdu=self._trace)
        await self.srv.serve_forever(background=True)
        return self

    async def set(self, table: str, address: int, values: list) -> None:
        await self.srv.async_setValues(UNIT, FC[table], address, values)

    async def get(self, table: str, address: int, count: int) -> list:
        return await self.srv.async_getValues(UNIT, FC[table], address, count)

    async def stop(self) -> None:
        if self.srv is not None:
            await self.srv.shutdown()
            self.srv = None


@pytest.fixture
async def server(port):
    s = await Server(port).start()
    yield s
    await s.stop()


def device_words(value: float, fmt: str, order: str) -> list[int]:
    """Registers of ``value`` as a device with the given order stores them (independent of codec)."""
    be = struct.pack(">" + fmt, value)
    if len(be) == 2:
        dev = be if order in ("ab", "abcd", "cdab") else be[::-1]
    elif len(be) == 4:
        pos = {"a": 0, "b": 1, "c": 2, "d": 3}
        dev = bytes(be[pos[ch]] for ch in order)
    else:
        dev = be if order == "abcd" else struct.pack("<" + fmt, value)
    return [dev[i] << 8 | dev[i + 1] for i in range(0, len(dev), 2)]


# ---------------------------------------------------------------------------------------------
# Address grammar and grouping
# ---------------------------------------------------------------------------------------------
def test_address_grammar():
    a = parse_address("hr:100:float32:cdab scale=0.5 offset=-3", "t")
    assert (a.table, a.address, a.type, a.order, a.scaling.scale, a.scaling.offset) == (
        "hr",
        100,
        "float32",
        "cdab",
        0.5,
        -3.0,
    )
    assert parse_address("ir:7", "t", default_order="dcba").type == "int16"
    assert parse_address("hr:7:uint32", "t", default_order="dcba").order == "dcba"
    assert parse_address("co:5", "t").type == "bool"
    assert parse_address("DI:9:bool", "t").table == "di"


@pytest.mark.parametrize(
    "address, fragment",
    [
        ("xx:1", "table 'xx' is not known"),
        ("hr:1:float", "type 'float' is not known"),
        ("hr:abc", "not a decimal number"),
        ("hr:70000", "outside 0..65535"),
        ("hr:65535:float32", "runs past register 65535"),
        ("hr:1:float32:ba", "order 'ba' is not known"),
        ("co:1:int16", "takes no type"),
        ("hr:1 gain=2", "option 'gain=2' is not known"),
        ("hr:1 scale=0", "scale must not be 0"),
    ],
)
def test_bad_address_is_refused_at_start_naming_the_tag(port, address, fragment):
    with pytest.raises(ValueError) as e:
        make_connector(port, [{"signal": "good", "address": "hr:0"}, {"signal": "wrong", "address": address}])
    msg = str(e.value)
    assert "s/a/l1/press1/press1/wrong" in msg and fragment in msg


def test_plant_file_option_typo_is_named(port):
    text = plant_yaml(port, [{"signal": "a", "address": "hr:0"}]).replace("unit_id:", "unitid:")
    with pytest.raises(
        PlantConfigError, match=r"connectors\[0\]\.unitid: unknown option \(did you mean 'unit_id'\?\)"
    ):
        parse_plant(text)


@settings(max_examples=200, deadline=None)
@given(type_name=st.sampled_from(list(codec.WORD_TYPES)), order=st.sampled_from(codec.ORDERS), data=st.data())
def test_codec_round_trips_every_type_and_order(type_name, order, data):
    dtype = codec.WORD_TYPES[type_name][1]
    lo, hi = codec.raw_limits(dtype)
    if "float" in type_name:
        value = data.draw(
            st.floats(allow_nan=False, allow_infinity=False, width=32 if type_name == "float32" else 64)
        )
    else:
        value = data.draw(st.integers(int(lo), int(hi)))
    words = codec.encode_words(value, type_name, order)
    assert len(words) == codec.WORD_TYPES[type_name][0] and all(0 <= w <= 0xFFFF for w in words)
    if type_name != "float64" or order in ("abcd", "dcba"):
        assert words == device_words(value, FMT[type_name], order)
    pad = np.array([0xAAAA] + words + [0x5555], dtype=np.uint16)
    assert codec.decode_words(pad, np.array([1]), type_name, order)[0] == value


def test_writable_tag_on_a_read_only_table_is_refused(port):
    with pytest.raises(ValueError, match="read-only table"):
        make_connector(port, [{"signal": "x", "address": "ir:1", "writable": "true"}])


def test_plan_groups_near_registers_and_respects_limits():
    addrs = [
        parse_address(s, "t")
        for s in [
            "hr:0",
            "hr:1",
            "hr:2:float32",
            "hr:12:int16",  # gap of 8 after hr:2..3: joined
            "hr:30",  # gap of 17: new request
            "ir:0",
            "co:0",
            "co:1999",
            "co:2000",
            "di:5",
        ]
    ]
    reqs = plan_reads(addrs, max_register_gap=10, max_bit_gap=1999)
    got = [(r.table, r.start, r.count) for r in reqs]
    assert got == [("hr", 0, 13), ("hr", 30, 1), ("ir", 0, 1), ("co", 0, 2000), ("co", 2000, 1), ("di", 5, 1)]
    # every address lands in exactly one request, at its offset
    assert sorted(int(p) for r in reqs for p in r.positions) == list(range(len(addrs)))
    first = reqs[0]
    assert first.offsets.tolist() == [0, 1, 2, 12]
    # the 125-register limit: 200..320 fits one request (121 registers), 325 would make it 126
    far = [parse_address(s, "t") for s in ["hr:200:float64", "hr:320", "hr:325"]]
    assert [(r.start, r.count) for r in plan_reads(far, max_register_gap=124)] == [(200, 121), (325, 1)]
    assert [(r.start, r.count) for r in plan_reads(far, max_register_gap=124, max_registers=5)] == [
        (200, 4),
        (320, 1),
        (325, 1),
    ]


# ---------------------------------------------------------------------------------------------
# Against the server
# ---------------------------------------------------------------------------------------------
VALUES = {
    "int16": -1234,
    "uint16": 54321,
    "int32": -123456789,
    "uint32": 3_000_000_000,
    "float32": -12.375,
    "float64": 123456.789012,
}
FMT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}


async def test_reads_every_type_and_order_in_few_requests(server, port):
    tags, expected, reg = [], {}, 0
    for type_name, value in VALUES.items():
        orders = (
            ("ab", "ba")
            if type_name in ("int16", "uint16")
            else ("abcd", "dcba")
            if type_name == "float64"
            else codec.ORDERS
        )
        for order in orders:
            sig = f"{type_name}_{order}"
            tags.append({"signal": sig, "address": f"hr:{reg}:{type_name}:{order}"})
            words = device_words(value, FMT[type_name], order)
            await server.set("hr", reg, words)
            expected[sig] = value
            reg += len(words)
    tags += [
        {"signal": "c3", "address": "co:3"},
        {"signal": "c4", "address": "co:4"},
        {"signal": "d10", "address": "di:10"},
        {"signal": "in1", "address": "ir:1:uint16"},
    ]
    await server.set("co", 3, [True])
    await server.set("di", 10, [True])
    await server.set("ir", 1, [777])
    expected.update(c3=1.0, c4=0.0, d10=1.0, in1=777.0)
    conn = make_connector(port, tags)
    batches = await collect(conn, cycles=2)
    got = last_values(batches)
    for sig, value in expected.items():
        assert got[sig][1] == GOOD, sig
        if "float32" in sig:
            assert got[sig][0] == pytest.approx(value, rel=1e-7), sig
        else:
            assert got[sig][0] == value, sig
    # one request per table per cycle: all holding registers are adjacent
    reads = [r for r in server.requests if r[0].startswith("Read")]
    assert len(conn.requests) == 4
    assert 4 * len(batches) <= len(reads) < 4 * (len(batches) + 1)
    assert ("ReadHoldingRegistersRequest", 0, reg) in reads


async def test_scale_offset_and_default_order(server, port):
    await server.set("ir", 3, [650])  # 650 * 0.1 - 40 = 25.0
    await server.set("hr", 10, device_words(2.5, "f", "cdab"))
    conn = make_connector(
        port,
        [
            {"signal": "temp", "address": "ir:3:int16 scale=0.1 offset=-40"},
            {"signal": "flow", "address": "hr:10:float32 scale=4"},
        ],
        order="cdab",
    )
    got = last_values(await collect(conn))
    assert got["temp"] == (pytest.approx(25.0), GOOD)
    assert got["flow"] == (10.0, GOOD)


async def test_nan_out_of_range_and_missing_address_get_quality_codes(server, port):
    await server.set("hr", 0, device_words(math.nan, "f", "abcd"))
    await server.set("hr", 2, [500])
    await server.set("hr", 3, [50])
    conn = make_connector(
        port,
        [
            {"signal": "nan_value", "address": "hr:0:float32"},
            {"signal": "too_high", "address": "hr:2", "range": "[0, 100]"},
            {"signal": "fine", "address": "hr:3", "range": "[0, 100]"},
            {"signal": "missing", "address": "hr:5000"},  # the device has 1000 registers
        ],
    )
    got = last_values(await collect(conn))
    assert math.isnan(got["nan_value"][0]) and got["nan_value"][1] == BAD_SENSOR
    assert got["too_high"] == (500.0, BAD_OUT_OF_RANGE)
    assert got["fine"] == (50.0, GOOD)
    assert math.isnan(got["missing"][0]) and got["missing"][1] == BAD_CONFIG
    assert conn.readings >= 8  # every tag delivered each cycle, none dropped


async def test_writes_reach_the_server_and_are_checked(server, port):
    conn = make_connector(
        port,
        [
            {
                "signal": "setpoint",
                "address": "hr:20:float32:cdab scale=0.1",
                "writable": "true",
                "range": "[0, 500]",
            },
            {"signal": "speed", "address": "hr:30:int16 scale=0.5 offset=10", "writable": "true"},
            {"signal": "reject", "address": "co:7", "writable": "true", "kind": "bool"},
            {"signal": "count", "address": "hr:40:uint16"},
        ],
    )
    tags = {t.signal: t for t in conn.tags}
    batches: list[Batch] = []
    with pytest.raises(ConnectionError, match="not connected"):
        await conn.write(tags["setpoint"], 1.0)
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "connected")
        await conn.write(tags["setpoint"], 123.5)
        await conn.write(tags["speed"], -20.0)
        await conn.write(tags["reject"], 1)
        assert await server.get("hr", 20, 2) == device_words(1235.0, "f", "cdab")
        assert await server.get("hr", 30, 1) == [(-60) & 0xFFFF]
        assert (await server.get("co", 7, 1))[0] is True
        with pytest.raises(PermissionError, match="not writable"):
            await conn.write(tags["count"], 5)
        with pytest.raises(ValueError, match="outside its range"):
            await conn.write(tags["setpoint"], 900)
        with pytest.raises(ValueError, match="finite number"):
            await conn.write(tags["setpoint"], math.nan)
        with pytest.raises(ValueError, match="outside the device type's range"):
            await conn.write(tags["speed"], 1e6)
        assert await server.get("hr", 20, 2) == device_words(
            1235.0, "f", "cdab"
        )  # refused writes sent nothing
        n = len(batches)
        await wait_for(lambda: len(batches) > n + 1, 120, "a poll after the writes")
        got = last_values(batches)
        assert got["setpoint"][0] == pytest.approx(123.5)
        assert got["speed"][0] == -20.0 and got["reject"][0] == 1.0
    finally:
        conn.stop()
        await task


async def test_reconnects_after_the_server_restarts(server, port):
    await server.set("hr", 0, [11])
    conn = make_connector(port, [{"signal": "v", "address": "hr:0"}])
    batches: list[Batch] = []
    states: list[str] = []
    conn.on_state = lambda c: states.append(c.state)
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: len(batches) >= 2, 120, "first readings")
        await server.stop()
        await wait_for(lambda: conn.state != CONNECTED, 120, "the connector to notice the dead peer")
        assert conn.last_error
        await asyncio.sleep(0.2)
        restarted = await Server(port).start()
        await restarted.set("hr", 0, [22])
        try:
            await wait_for(
                lambda: conn.state == CONNECTED and last_values(batches)["v"][0] == 22.0,
                120,
                "reconnect and new readings",
            )
        finally:
            conn.stop()
            await task
            await restarted.stop()
    finally:
        conn.stop()
        if not task.done():
            await task
    assert conn.connects >= 2
    assert states.count(CONNECTED) >= 2
    values = np.concatenate([b.value for b in batches])
    assert 11.0 in values and 22.0 in values
