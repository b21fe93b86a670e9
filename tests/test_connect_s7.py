"""Siemens S7 connector against python-snap7's S7 server on a free local port (nothing mocked)."""

from __future__ import annotations

import asyncio
import math
import struct

import numpy as np
import pytest
from snap7.server import Server
from snap7.type import Area, SrvArea

import _connect
from _connect import collect, last_values
from _wait import wait_for
from axline.batch import BAD_CONFIG, BAD_OUT_OF_RANGE, BAD_SENSOR, GOOD, Batch
from axline.connect.base import CONNECTED
from axline.connect.s7 import S7Connector, parse_address, plan_reads


def plant_yaml(port: int, tags: list[dict], **conn) -> str:
    return _connect.plant_yaml("s7", port, "oven1", tags, **conn)


def make_connector(port: int, tags: list[dict], **conn) -> S7Connector:
    return _connect.make_connector(S7Connector, "s7", port, "oven1", tags, **conn)


class Plc:
    """snap7's S7 server with DB1, DB2, M, I and Q areas; records the reads it answers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.db1, self.db2 = bytearray(64), bytearray(16)
        self.mk, self.pe, self.pa = bytearray(32), bytearray(8), bytearray(8)
        self.reads: list[tuple[int, int, int, int]] = []
        self.srv: Server | None = None

    def start(self) -> Plc:
        srv = Server(log=False)
        srv.register_area(SrvArea.DB, 1, self.db1)
        srv.register_area(SrvArea.DB, 2, self.db2)
        srv.register_area(SrvArea.MK, 0, self.mk)
        srv.register_area(SrvArea.PE, 0, self.pe)
        srv.register_area(SrvArea.PA, 0, self.pa)
        srv.set_read_events_callback(
            lambda ev: self.reads.append((ev.EvtParam1, ev.EvtParam2, ev.EvtParam3, ev.EvtParam4))
        )
        srv.start(tcp_port=self.port)
        self.srv = srv
        return self

    def stop(self) -> None:
        if self.srv is not None:
            self.srv.stop()
            self.srv = None


@pytest.fixture
def plc(port):
    p = Plc(port).start()
    yield p
    p.stop()


# ---------------------------------------------------------------------------------------------
def test_address_grammar():
    a = parse_address("DB1.DBD0:real scale=2 offset=1", "t")
    assert (a.area, a.db, a.byte, a.bit, a.type, a.size, a.scaling.scale) == (
        Area.DB,
        1,
        0,
        -1,
        "real",
        4,
        2.0,
    )
    assert parse_address("DB3.DBX8.7", "t").bit == 7
    assert parse_address("db1.dbw4", "t").type == "int"
    assert parse_address("MW10:word", "t").area == Area.MK
    assert parse_address("I0.1", "t").area == Area.PE and parse_address("E0.1", "t").area == Area.PE
    assert parse_address("QB2", "t").type == "byte" and parse_address("AB2", "t").area == Area.PA
    assert parse_address("MD4:dint", "t").size == 4


@pytest.mark.parametrize(
    "address, fragment",
    [
        ("DB1.DBW4:real", "type 'real' does not fit a 2-byte (W) address"),
        ("DB1.DBX8", "needs '.<bit>'"),
        ("DB1.DBX8.9", "bit 9 is outside 0..7"),
        ("DB1.DBW4.1", "only goes with a bit address"),
        ("DB0.DBW0", "outside 1..65535"),
        ("X1.0", "not an S7 address"),
        ("M10", "needs '.<bit>'"),
        ("M10.1 scale=3", "do not apply to bits"),
    ],
)
def test_bad_address_is_refused_at_start_naming_the_tag(port, address, fragment):
    with pytest.raises(ValueError) as e:
        make_connector(
            port, [{"signal": "ok", "address": "DB1.DBW0"}, {"signal": "wrong", "address": address}]
        )
    assert "s/a/l1/oven1/oven1/wrong" in str(e.value) and fragment in str(e.value)


def test_writable_inputs_are_refused(port):
    with pytest.raises(ValueError, match="only DB and M addresses can be written"):
        make_connector(port, [{"signal": "x", "address": "IW0", "writable": "true"}])


def test_plan_groups_per_area_and_block():
    addrs = [
        parse_address(s, "t")
        for s in [
            "DB1.DBD0",
            "DB1.DBW4",
            "DB1.DBX8.0",
            "DB1.DBX8.3",
            "DB1.DBD60",
            "DB2.DBW0",
            "MW2",
            "M0.1",
            "I0.0",
            "QB1",
        ]
    ]
    reqs = plan_reads(addrs, max_gap_bytes=16)
    got = [(r.area, r.db, r.start, r.size) for r in reqs]
    assert got == [
        (Area.PE, 0, 0, 1),
        (Area.PA, 0, 1, 1),
        (Area.MK, 0, 0, 4),
        (Area.DB, 1, 0, 9),
        (Area.DB, 1, 60, 4),
        (Area.DB, 2, 0, 2),
    ]
    assert sorted(int(p) for r in reqs for p in r.positions) == list(range(len(addrs)))
    assert [(r.start, r.size) for r in plan_reads(addrs[:5], max_gap_bytes=100)] == [(0, 64)]


async def test_reads_every_type_in_one_read_per_area(plc, port):
    db = plc.db1
    db[0:4] = struct.pack(">f", -12.375)
    db[4:6] = struct.pack(">h", -1234)
    db[6:8] = struct.pack(">H", 54321)
    db[8] = 0b0000_1001
    db[9] = 200
    db[10] = struct.pack(">b", -5)[0]
    db[12:16] = struct.pack(">i", -123456789)
    db[16:20] = struct.pack(">I", 3_000_000_000)
    db[20:22] = struct.pack(">H", 650)
    plc.mk[2:4] = struct.pack(">h", 77)
    plc.mk[0] = 0b10
    plc.pe[0] = 0b1
    plc.pa[1] = 42
    conn = make_connector(
        port,
        [
            {"signal": "real", "address": "DB1.DBD0:real"},
            {"signal": "int", "address": "DB1.DBW4:int"},
            {"signal": "word", "address": "DB1.DBW6:word"},
            {"signal": "b0", "address": "DB1.DBX8.0"},
            {"signal": "b1", "address": "DB1.DBX8.1"},
            {"signal": "b3", "address": "DB1.DBX8.3"},
            {"signal": "byte", "address": "DB1.DBB9"},
            {"signal": "sint", "address": "DB1.DBB10:sint"},
            {"signal": "dint", "address": "DB1.DBD12:dint"},
            {"signal": "udint", "address": "DB1.DBD16:udint"},
            {"signal": "scaled", "address": "DB1.DBW20:uint scale=0.1 offset=-40"},
            {"signal": "mw", "address": "MW2"},
            {"signal": "m01", "address": "M0.1"},
            {"signal": "i00", "address": "I0.0"},
            {"signal": "qb1", "address": "QB1"},
        ],
    )
    batches = await collect(conn)
    got = last_values(batches)
    expected = {
        "real": -12.375,
        "int": -1234,
        "word": 54321,
        "b0": 1,
        "b1": 0,
        "b3": 1,
        "byte": 200,
        "sint": -5,
        "dint": -123456789,
        "udint": 3_000_000_000,
        "scaled": 25.0,
        "mw": 77,
        "m01": 1,
        "i00": 1,
        "qb1": 42,
    }
    for sig, value in expected.items():
        assert got[sig][0] == pytest.approx(value), sig
        assert got[sig][1] == GOOD, sig
    assert len(conn.requests) == 4  # DB1, M, I, Q
    cycles_read = len(plc.reads) / len(conn.requests)
    assert len(batches) <= cycles_read < len(batches) + 1
    assert (int(SrvArea.DB), 1, 0, 22) in plc.reads


async def test_nan_out_of_range_and_missing_block_get_quality_codes(plc, port):
    plc.db1[0:4] = struct.pack(">f", math.nan)
    plc.db1[4:6] = struct.pack(">h", 500)
    plc.db1[6:8] = struct.pack(">h", 50)
    conn = make_connector(
        port,
        [
            {"signal": "nan_value", "address": "DB1.DBD0"},
            {"signal": "too_high", "address": "DB1.DBW4", "range": "[0, 100]"},
            {"signal": "fine", "address": "DB1.DBW6", "range": "[0, 100]"},
            {"signal": "no_db", "address": "DB9.DBW0"},
            {"signal": "past_end", "address": "DB2.DBD100"},
        ],
    )
    got = last_values(await collect(conn))
    assert math.isnan(got["nan_value"][0]) and got["nan_value"][1] == BAD_SENSOR
    assert got["too_high"] == (500.0, BAD_OUT_OF_RANGE)
    assert got["fine"] == (50.0, GOOD)
    assert got["no_db"][1] == BAD_CONFIG and got["past_end"][1] == BAD_CONFIG


async def test_writes_reach_the_plc_and_are_checked(plc, port):
    plc.db1[8] = 0b1000_0001
    conn = make_connector(
        port,
        [
            {
                "signal": "setpoint",
                "address": "DB1.DBD0:real scale=0.1",
                "writable": "true",
                "range": "[0, 500]",
            },
            {"signal": "speed", "address": "DB1.DBW4:int", "writable": "true"},
            {"signal": "reject", "address": "DB1.DBX8.3", "writable": "true", "kind": "bool"},
            {"signal": "flag", "address": "M1.0", "writable": "true", "kind": "bool"},
            {"signal": "count", "address": "MD4:udint", "writable": "true"},
            {"signal": "input", "address": "IW0"},
        ],
    )
    tags = {t.signal: t for t in conn.tags}
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "connected")
        await conn.write(tags["setpoint"], 123.5)
        await conn.write(tags["speed"], -300)
        await conn.write(tags["reject"], 1)
        await conn.write(tags["flag"], True)
        await conn.write(tags["count"], 4_000_000_000)
        assert struct.unpack(">f", plc.db1[0:4])[0] == 1235.0
        assert struct.unpack(">h", plc.db1[4:6])[0] == -300
        assert plc.db1[8] == 0b1000_1001  # the other bits of the byte kept
        assert plc.mk[1] == 1
        assert struct.unpack(">I", plc.mk[4:8])[0] == 4_000_000_000
        await conn.write(tags["reject"], 0)
        assert plc.db1[8] == 0b1000_0001
        with pytest.raises(PermissionError, match="not writable"):
            await conn.write(tags["input"], 1)
        with pytest.raises(ValueError, match="outside its range"):
            await conn.write(tags["setpoint"], 600)
        with pytest.raises(ValueError, match="outside the device type's range"):
            await conn.write(tags["speed"], 40000)
        with pytest.raises(ValueError, match="0 or 1"):
            await conn.write(tags["flag"], 2)
        assert struct.unpack(">h", plc.db1[4:6])[0] == -300
        n = len(batches)
        await wait_for(lambda: len(batches) > n + 1, 120, "a poll after the writes")
        assert last_values(batches)["setpoint"][0] == pytest.approx(123.5)
    finally:
        conn.stop()
        await task
    with pytest.raises(ConnectionError, match="not connected"):
        await conn.write(tags["speed"], 1)


async def test_reconnects_after_the_plc_restarts(plc, port):
    plc.db1[0:2] = struct.pack(">h", 11)
    conn = make_connector(port, [{"signal": "v", "address": "DB1.DBW0"}])
    batches: list[Batch] = []
    states: list[str] = []
    conn.on_state = lambda c: states.append(c.state)
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: len(batches) >= 2, 120, "first readings")
        await asyncio.to_thread(plc.stop)
        await wait_for(lambda: conn.state != CONNECTED, 120, "the connector to notice the dead PLC")
        assert conn.last_error
        plc.db1[0:2] = struct.pack(">h", 22)
        await asyncio.to_thread(plc.start)
        await wait_for(
            lambda: conn.state == CONNECTED and last_values(batches)["v"][0] == 22.0,
            120,
            "reconnect and new readings",
        )
    finally:
        conn.stop()
        await task
    assert conn.connects >= 2 and states.count(CONNECTED) >= 2
    values = np.concatenate([b.value for b in batches])
    assert 11.0 in values and 22.0 in values
