"""MELSEC MC 3E binary connector against the protocol-level server axline.sim.mc_server (real TCP)."""

from __future__ import annotations

import asyncio
import math
import struct

import numpy as np
import pytest

import _connect
from _connect import collect, last_values
from _wait import wait_for
from axline.batch import BAD_CONFIG, BAD_OUT_OF_RANGE, BAD_SENSOR, GOOD, Batch
from axline.connect.base import CONNECTED
from axline.connect.melsec import (
    CMD_BATCH_READ,
    DEVICES,
    McClient,
    McError,
    MelsecConnector,
    Route,
    device_spec,
    pack_bits,
    parse_address,
    plan_reads,
    request_frame,
    unpack_bits,
)
from axline.sim.mc_server import McMemory, McServer


def plant_yaml(port: int, tags: list[dict], **conn) -> str:
    return _connect.plant_yaml("melsec", port, "mold1", tags, **conn)


def make_connector(port: int, tags: list[dict], **conn) -> MelsecConnector:
    return _connect.make_connector(MelsecConnector, "melsec", port, "mold1", tags, **conn)


@pytest.fixture
async def plc():
    server = await McServer(memory=McMemory({"D": 1000})).start()
    yield server
    await server.stop()


def words_le(fmt: str, value: float) -> list[int]:
    """Words of a value as MELSEC stores it (little-endian, low word first), independent of codec."""
    b = struct.pack("<" + fmt, value)
    return list(struct.unpack(f"<{len(b) // 2}H", b))


# ---------------------------------------------------------------------------------------------
# Grammar and frames
# ---------------------------------------------------------------------------------------------
def test_address_grammar_decimal_and_hex_devices():
    assert (parse_address("D100", "t").number, parse_address("D100", "t").type) == (100, "int16")
    assert parse_address("W1A", "t").number == 0x1A
    assert parse_address("WFF:uint16", "t").number == 0xFF  # a hex number that starts with a letter
    assert parse_address("XA0", "t").device.name == "X" and parse_address("XA0", "t").number == 0xA0
    assert parse_address("X1F", "t").number == 31 and parse_address("M10", "t").number == 10
    assert parse_address("R5:float32", "t").points == 2
    a = parse_address("d210:int32 scale=0.01 offset=5", "t")
    assert (a.device.name, a.type, a.scaling.scale, a.scaling.offset) == ("D", "int32", 0.01, 5.0)


@pytest.mark.parametrize(
    "address, fragment",
    [
        ("ZR100", "device 'ZR' is not supported"),
        ("D1A", "D numbers are decimal"),
        ("D100:float64", "type 'float64' is not known"),
        ("M5:int16", "bit device and takes no type"),
        ("X1 scale=2", "do not apply to bits"),
        ("100", "not a device address"),
        ("D16777215:int32", "too large"),
    ],
)
def test_bad_address_is_refused_at_start_naming_the_tag(address, fragment):
    with pytest.raises(ValueError) as e:
        make_connector(5007, [{"signal": "ok", "address": "D0"}, {"signal": "wrong", "address": address}])
    assert "s/a/l1/mold1/mold1/wrong" in str(e.value) and fragment in str(e.value)


def test_writable_inputs_are_refused():
    with pytest.raises(ValueError, match="input image"):
        make_connector(5007, [{"signal": "x", "address": "X10", "writable": "true"}])


def test_frames_match_the_manual():
    # batch read of D100..D102 in word units, monitoring timer 0x10 (MELSEC communication manual)
    frame = request_frame(Route(), 0x10, CMD_BATCH_READ, 0x0000, device_spec(DEVICES["D"], 100, 3))
    assert frame == bytes.fromhex("500000FFFF03000C00100001040000640000A80300")
    # bit units: one nibble per point, the first point in the high nibble
    assert pack_bits([0, 0, 0, 1, 0, 0, 1, 1]) == bytes([0x00, 0x01, 0x00, 0x11])
    assert pack_bits([1, 0, 1]) == bytes([0x10, 0x10])
    assert unpack_bits(bytes([0x10, 0x01]), 3).tolist() == [1, 0, 0]


def test_plan_groups_per_device():
    addrs = [
        parse_address(s, "t")
        for s in ["D0", "D1:int32", "D10:float32", "D40", "R0", "M0", "M63", "M200", "X0", "W10"]
    ]
    reqs = plan_reads(addrs, max_word_gap=16, max_bit_gap=64)
    got = [(r.device.name, r.head, r.points) for r in reqs]
    assert got == [
        ("D", 0, 12),
        ("D", 40, 1),
        ("W", 0x10, 1),
        ("R", 0, 1),
        ("M", 0, 64),
        ("M", 200, 1),
        ("X", 0, 1),
    ]
    assert sorted(int(p) for r in reqs for p in r.positions) == list(range(len(addrs)))
    many = [parse_address(f"D{i}", "t") for i in range(0, 1000, 2)]
    assert [(r.head, r.points) for r in plan_reads(many)] == [(0, 959), (960, 39)]  # 960 words at most


# ---------------------------------------------------------------------------------------------
# The server on its own
# ---------------------------------------------------------------------------------------------
async def test_server_answers_error_end_codes(plc):
    client = McClient("127.0.0.1", plc.port, timeout_s=10.0)
    await client.connect()
    try:
        with pytest.raises(McError) as e:
            await client.request(0x0999, 0x0000, device_spec(DEVICES["D"], 0, 1))
        assert e.value.end_code == 0xC059
        with pytest.raises(McError) as e:
            await client.read_words(DEVICES["D"], 999, 2)  # D has 1000 points
        assert e.value.end_code == 0xC056
        with pytest.raises(McError) as e:
            await client.read_bits(DEVICES["D"], 0, 1)
        assert e.value.end_code == 0xC05C
        with pytest.raises(McError) as e:
            await client.read_words(DEVICES["D"], 0, 961)
        assert e.value.end_code == 0xC051
        await client.write_words(DEVICES["D"], 5, [1, 2, 0xFFFF])
        assert plc.memory.words["D"][5:8].tolist() == [1, 2, 0xFFFF]
        assert (await client.read_words(DEVICES["D"], 5, 3)).tolist() == [1, 2, 0xFFFF]
        await client.write_bits(DEVICES["M"], 3, [1, 0, 1])
        assert plc.memory.bits["M"][2:7].tolist() == [0, 1, 0, 1, 0]
        plc.memory.bits["M"][16] = 1
        # word units on a bit device: 16 points per word, lowest device in bit 0
        assert (await client.read_words(DEVICES["M"], 0, 2)).tolist() == [0b101000, 1]
    finally:
        await client.close()
    assert [r.end_code for r in plc.requests[:4]] == [0xC059, 0xC056, 0xC05C, 0xC051]


async def test_server_response_bytes_match_the_manual(plc):
    plc.memory.words["D"][100:103] = [0x1995, 0x1202, 0x1130]
    reader, writer = await asyncio.open_connection("127.0.0.1", plc.port)
    try:
        writer.write(bytes.fromhex("500000FFFF03000C00100001040000640000A80300"))
        got = await asyncio.wait_for(reader.readexactly(11 + 6), 30)
        assert got == bytes.fromhex("D00000FFFF030008000000" + "95190212" + "3011")
        # an unknown command: end code C059 followed by the error information (route, command, subcommand)
        writer.write(bytes.fromhex("500000FFFF03000C00100099090000640000A80300"))
        got = await asyncio.wait_for(reader.readexactly(11 + 9), 30)
        assert got == bytes.fromhex("D00000FFFF03000B0059C0" + "00FFFF0300" + "99090000")
    finally:
        writer.close()


# ---------------------------------------------------------------------------------------------
# The connector against the server
# ---------------------------------------------------------------------------------------------
async def test_reads_every_type_in_one_request_per_device(plc):
    mem = plc.memory
    mem.words["D"][0] = words_le("h", -1234)[0]
    mem.words["D"][1] = words_le("H", 54321)[0]
    mem.words["D"][2:4] = words_le("i", -123456789)
    mem.words["D"][4:6] = words_le("I", 3_000_000_000)
    mem.words["D"][6:8] = words_le("f", -12.375)
    mem.words["D"][8] = 650
    mem.words["R"][7] = 42
    mem.words["W"][0x1A] = 7
    mem.bits["M"][[10, 12]] = 1
    mem.bits["X"][0x1F] = 1
    mem.bits["Y"][0x20] = 1
    mem.bits["B"][0xA] = 1
    conn = make_connector(
        plc.port,
        [
            {"signal": "i16", "address": "D0"},
            {"signal": "u16", "address": "D1:uint16"},
            {"signal": "i32", "address": "D2:int32"},
            {"signal": "u32", "address": "D4:uint32"},
            {"signal": "f32", "address": "D6:float32"},
            {"signal": "scaled", "address": "D8 scale=0.1 offset=-40"},
            {"signal": "r7", "address": "R7"},
            {"signal": "w1a", "address": "W1A"},
            {"signal": "m10", "address": "M10"},
            {"signal": "m11", "address": "M11"},
            {"signal": "m12", "address": "M12"},
            {"signal": "x1f", "address": "X1F"},
            {"signal": "y20", "address": "Y20"},
            {"signal": "ba", "address": "BA"},
        ],
    )
    batches = await collect(conn)
    got = last_values(batches)
    expected = {
        "i16": -1234,
        "u16": 54321,
        "i32": -123456789,
        "u32": 3_000_000_000,
        "f32": -12.375,
        "scaled": 25.0,
        "r7": 42,
        "w1a": 7,
        "m10": 1,
        "m11": 0,
        "m12": 1,
        "x1f": 1,
        "y20": 1,
        "ba": 1,
    }
    for sig, value in expected.items():
        assert got[sig] == (pytest.approx(value), GOOD), sig
    assert len(conn.requests) == 7  # D, W, R, M, X, Y, B: one request each
    reads = [r for r in plc.requests if r.command == CMD_BATCH_READ]
    assert 7 * len(batches) <= len(reads) < 7 * (len(batches) + 1)
    assert any(r.device == "D" and r.head == 0 and r.points == 9 and r.subcommand == 0 for r in reads)
    assert any(r.device == "M" and r.head == 10 and r.points == 3 and r.subcommand == 1 for r in reads)


async def test_nan_out_of_range_and_missing_device_get_quality_codes(plc):
    plc.memory.words["D"][0:2] = words_le("f", math.nan)
    plc.memory.words["D"][2] = 500
    plc.memory.words["D"][3] = 50
    conn = make_connector(
        plc.port,
        [
            {"signal": "nan_value", "address": "D0:float32"},
            {"signal": "too_high", "address": "D2", "range": "[0, 100]"},
            {"signal": "fine", "address": "D3", "range": "[0, 100]"},
            {"signal": "past_end", "address": "D5000"},  # this PLC has D0..D999
        ],
    )
    got = last_values(await collect(conn))
    assert math.isnan(got["nan_value"][0]) and got["nan_value"][1] == BAD_SENSOR
    assert got["too_high"] == (500.0, BAD_OUT_OF_RANGE)
    assert got["fine"] == (50.0, GOOD)
    assert math.isnan(got["past_end"][0]) and got["past_end"][1] == BAD_CONFIG


async def test_writes_reach_the_plc_and_are_checked(plc):
    conn = make_connector(
        plc.port,
        [
            {
                "signal": "setpoint",
                "address": "D100:float32 scale=0.1",
                "writable": "true",
                "range": "[0, 500]",
            },
            {"signal": "speed", "address": "D110 scale=0.5 offset=10", "writable": "true"},
            {"signal": "count", "address": "R20:int32", "writable": "true"},
            {"signal": "reject", "address": "M300", "writable": "true", "kind": "bool"},
            {"signal": "link", "address": "B1F", "writable": "true", "kind": "bool"},
            {"signal": "output", "address": "Y0"},
        ],
    )
    tags = {t.signal: t for t in conn.tags}
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "connected")
        await conn.write(tags["setpoint"], 123.5)
        await conn.write(tags["speed"], -20)
        await conn.write(tags["count"], -70000)
        await conn.write(tags["reject"], 1)
        await conn.write(tags["link"], True)
        mem = plc.memory
        assert mem.words["D"][100:102].tolist() == words_le("f", 1235.0)
        assert mem.words["D"][110] == (-60) & 0xFFFF
        assert mem.words["R"][20:22].tolist() == words_le("i", -70000)
        assert mem.bits["M"][299:302].tolist() == [0, 1, 0]
        assert mem.bits["B"][0x1F] == 1
        assert mem.get("D100:float32 scale=0.1") == pytest.approx(123.5)
        with pytest.raises(PermissionError, match="not writable"):
            await conn.write(tags["output"], 1)
        with pytest.raises(ValueError, match="outside its range"):
            await conn.write(tags["setpoint"], 600)
        with pytest.raises(ValueError, match="outside the device type's range"):
            await conn.write(tags["speed"], 1e6)
        with pytest.raises(ValueError, match="0 or 1"):
            await conn.write(tags["reject"], 0.5)
        assert mem.words["D"][110] == (-60) & 0xFFFF
        n = len(batches)
        await wait_for(lambda: len(batches) > n + 1, 120, "a poll after the writes")
        got = last_values(batches)
        assert (
            got["setpoint"][0] == pytest.approx(123.5) and got["count"][0] == -70000 and got["reject"][0] == 1
        )
    finally:
        conn.stop()
        await task
    with pytest.raises(ConnectionError, match="not connected"):
        await conn.write(tags["speed"], 1)


async def test_reconnects_after_the_plc_restarts_and_does_not_hang_on_a_silent_one(plc):
    port = plc.port
    plc.memory.put("D0", 11)
    conn = make_connector(port, [{"signal": "v", "address": "D0"}], timeout_s=2)
    batches: list[Batch] = []
    states: list[str] = []
    conn.on_state = lambda c: states.append(c.state)
    task = asyncio.create_task(conn.run(batches.append))
    restarted = None
    try:
        await wait_for(lambda: len(batches) >= 2, 120, "first readings")
        await plc.stop()
        await wait_for(lambda: conn.state != CONNECTED, 120, "the connector to notice the dead PLC")
        assert "closed" in (conn.last_error or "") or "Connect" in (conn.last_error or "")
        restarted = await McServer(port=port, memory=plc.memory).start()
        restarted.memory.put("D0", 22)
        await wait_for(
            lambda: conn.state == CONNECTED and last_values(batches)["v"][0] == 22.0,
            120,
            "reconnect and new readings",
        )
        # a PLC that accepts requests but never answers: the timeout ends the session
        restarted.silent = True
        await wait_for(lambda: conn.state != CONNECTED, 120, "the timeout on a silent PLC")
        assert "did not answer" in (conn.last_error or "")
        restarted.silent = False
        restarted.memory.put("D0", 33)
        await wait_for(
            lambda: conn.state == CONNECTED and last_values(batches)["v"][0] == 33.0,
            120,
            "recovery after the silence",
        )
    finally:
        conn.stop()
        await task
        if restarted is not None:
            await restarted.stop()
    assert conn.connects >= 3 and states.count(CONNECTED) >= 3
    values = np.concatenate([b.value for b in batches])
    assert {11.0, 22.0, 33.0} <= set(values.tolist())
