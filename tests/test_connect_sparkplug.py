"""Sparkplug B: the hand-written protobuf codec (checked against Google's protobuf runtime), the host
state machine (births, aliases, seq, deaths), and connector + edge node against a real Mosquitto broker."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import random
import secrets
import struct

import numpy as np
import pytest

from _connect import local_broker
from _wait import wait_for
from axline.batch import BAD, BAD_NO_CONNECTION, BAD_OUT_OF_RANGE, GOOD, Batch
from axline.connect import registry
from axline.connect import sparkplug_pb as pb
from axline.connect.base import CONNECTED
from axline.connect.sparkplug import (
    SparkplugConnector,
    SparkplugDecoder,
    SparkplugEdgeNode,
    command_value,
    default_path,
    parse_address,
    parse_topic,
)
from axline.plant import parse_plant

T0_MS = 1_767_225_600_000
MS = 1_000_000


@pytest.fixture
def broker() -> tuple[str, int]:
    return local_broker()


@pytest.fixture
def uid() -> str:
    return f"g{os.getpid()}{secrets.token_hex(3)}"


# ---------------------------------------------------------------------------------------------
# the codec, checked against the protobuf runtime (an independent implementation of the wire format)
# ---------------------------------------------------------------------------------------------
def _reference_payload_class():
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name=f"spb_ref_{secrets.token_hex(4)}.proto", package="spbref",
                                             syntax="proto2")
    payload = fdp.message_type.add(name="Payload")
    dataset = payload.nested_type.add(name="DataSet")
    dataset.field.add(name="num_of_columns", number=1, type=F.TYPE_UINT64, label=F.LABEL_OPTIONAL)
    dataset.field.add(name="columns", number=2, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, num, typ in [("name", 1, F.TYPE_STRING), ("alias", 2, F.TYPE_UINT64), ("timestamp", 3, F.TYPE_UINT64),
                           ("datatype", 4, F.TYPE_UINT32), ("is_historical", 5, F.TYPE_BOOL),
                           ("is_transient", 6, F.TYPE_BOOL), ("is_null", 7, F.TYPE_BOOL)]:
        metric.field.add(name=name, number=num, type=typ, label=F.LABEL_OPTIONAL)
    for name, num, typ in [("int_value", 10, F.TYPE_UINT32), ("long_value", 11, F.TYPE_UINT64),
                           ("float_value", 12, F.TYPE_FLOAT), ("double_value", 13, F.TYPE_DOUBLE),
                           ("boolean_value", 14, F.TYPE_BOOL), ("string_value", 15, F.TYPE_STRING),
                           ("bytes_value", 16, F.TYPE_BYTES)]:
        metric.field.add(name=name, number=num, type=typ, label=F.LABEL_OPTIONAL, oneof_index=0)
    metric.field.add(name="dataset_value", number=17, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                     type_name=".spbref.Payload.DataSet", oneof_index=0)
    payload.field.add(name="timestamp", number=1, type=F.TYPE_UINT64, label=F.LABEL_OPTIONAL)
    payload.field.add(name="metrics", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                      type_name=".spbref.Payload.Metric")
    payload.field.add(name="seq", number=3, type=F.TYPE_UINT64, label=F.LABEL_OPTIONAL)
    payload.field.add(name="uuid", number=4, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    payload.field.add(name="body", number=5, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("spbref.Payload"))


_VALUE_TYPES = [pb.INT8, pb.INT16, pb.INT32, pb.INT64, pb.UINT8, pb.UINT16, pb.UINT32, pb.UINT64, pb.FLOAT,
                pb.DOUBLE, pb.BOOLEAN, pb.STRING, pb.DATETIME, pb.TEXT, pb.BYTES]


def random_metric(rng: random.Random, name: bool = True) -> pb.Metric:
    dt = rng.choice(_VALUE_TYPES)
    if dt in pb.INT_TYPES:
        bits, signed = pb.INT_TYPES[dt]
        v = rng.randint(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else rng.randint(0, (1 << bits) - 1)
    elif dt == pb.FLOAT:
        v = struct.unpack("<f", struct.pack("<f", rng.uniform(-1e6, 1e6)))[0]
    elif dt == pb.DOUBLE:
        v = rng.choice([rng.uniform(-1e300, 1e300), rng.random(), -0.0, math.inf])
    elif dt == pb.BOOLEAN:
        v = rng.random() < 0.5
    elif dt == pb.BYTES:
        v = rng.randbytes(rng.randint(0, 8))
    else:
        v = "".join(rng.choice("aZ09 /._한글") for _ in range(rng.randint(0, 10)))
    null = rng.random() < 0.1
    return pb.Metric(name=f"m/{rng.randint(0, 99)} x" if name else None, alias=rng.choice([None, rng.randint(0, 2**40)]),
                     timestamp=rng.choice([None, T0_MS + rng.randint(0, 10**6)]), datatype=dt,
                     value=None if null else v, is_null=null, is_historical=rng.random() < 0.1,
                     value_field=pb.VALUE_NONE)


def random_payload(rng: random.Random) -> pb.Payload:
    return pb.Payload(timestamp=rng.choice([None, T0_MS + rng.randint(0, 10**9)]),
                      metrics=[random_metric(rng, rng.random() < 0.7) for _ in range(rng.randint(0, 6))],
                      seq=rng.choice([None, rng.randint(0, 255)]), uuid=rng.choice([None, "", "u-1"]),
                      body=rng.choice([None, b"", b"\x00\x01"]))


def same_metric(a: pb.Metric, b: pb.Metric) -> bool:
    va, vb = a.value, b.value
    if a.is_null or a.value is None:
        va = None
    if isinstance(va, float) and isinstance(vb, float):
        values_equal = struct.pack("<d", va) == struct.pack("<d", vb)
    else:
        values_equal = va == vb and type(va) is type(vb)
    return values_equal and (a.name, a.alias, a.timestamp, a.datatype, a.is_null, a.is_historical) == \
        (b.name, b.alias, b.timestamp, b.datatype, b.is_null, b.is_historical)


def test_codec_agrees_with_the_protobuf_runtime_both_ways():
    Ref = _reference_payload_class()
    rng = random.Random(5)
    for _ in range(300):
        p = random_payload(rng)
        wire = pb.encode_payload(p)
        ref = Ref()
        ref.ParseFromString(wire)
        assert len(ref.metrics) == len(p.metrics)
        assert (ref.timestamp if ref.HasField("timestamp") else None) == p.timestamp
        assert (ref.seq if ref.HasField("seq") else None) == p.seq
        for m, r in zip(p.metrics, ref.metrics, strict=True):
            assert (r.name if r.HasField("name") else None) == m.name
            assert r.datatype == m.datatype
            which = r.WhichOneof("value")
            if m.is_null:
                assert which is None and r.is_null
                continue
            got = getattr(r, which)
            if m.datatype in pb.INT_TYPES:
                bits, signed = pb.INT_TYPES[m.datatype]
                assert which == ("int_value" if bits <= 32 else "long_value")
                got &= (1 << bits) - 1
                if signed and got >> (bits - 1):
                    got -= 1 << bits
            assert got == m.value or (isinstance(got, float) and math.isnan(got) and math.isnan(m.value))
        # and back: the runtime's bytes decode to the same payload
        back = pb.decode_payload(ref.SerializeToString())
        assert (back.timestamp, back.seq, back.uuid, back.body) == (p.timestamp, p.seq, p.uuid, p.body)
        assert all(same_metric(a, b) for a, b in zip(p.metrics, back.metrics, strict=True))


def test_unknown_fields_and_datasets_are_skipped():
    Ref = _reference_payload_class()
    ref = Ref()
    m = ref.metrics.add(name="table", datatype=pb.DATASET)
    m.dataset_value.num_of_columns = 2
    m.dataset_value.columns.extend(["a", "b"])
    ref.metrics.add(name="x", datatype=pb.DOUBLE, double_value=2.5)
    wire = ref.SerializeToString() + bytes([(250 << 3 | 0) & 0x7F | 0x80, 250 >> 4, 7])  # unknown field 250
    p = pb.decode_payload(wire)
    assert [x.name for x in p.metrics] == ["table", "x"]
    assert p.metrics[0].value is None and p.metrics[0].value_field == pb.VALUE_OTHER
    assert p.metrics[1].value == 2.5


@pytest.mark.parametrize("data, words", [
    (b"\x08", "truncated varint"),
    (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
    (b"\x12\x05\x0a\x01", "runs past the end"),
    (b"\x12\x03\x0a\x01\xff", "not UTF-8"),
    (b"\x33", "field 6 has unsupported wire type 3"),
    (b"\x00", "field number 0"),
    (b"\x12\x02\x60\x00", "metric 0: metric float_value has wire type 0, expected 5"),
])
def test_malformed_bytes_raise_one_clear_error(data, words):
    with pytest.raises(pb.SparkplugDecodeError) as e:
        pb.decode_payload(data)
    assert words in str(e.value)


def test_encode_refuses_values_that_do_not_fit():
    with pytest.raises(ValueError, match="outside the Int8 range -128..127"):
        pb.encode_payload(pb.Payload(metrics=[pb.Metric(name="x", datatype=pb.INT8, value=200)]))
    with pytest.raises(ValueError, match="needs a str"):
        pb.encode_payload(pb.Payload(metrics=[pb.Metric(name="x", datatype=pb.STRING, value=1)]))
    assert command_value(pb.INT16, 7.0) == 7 and command_value(pb.BOOLEAN, 1.0) is True
    with pytest.raises(ValueError, match="whole number"):
        command_value(pb.INT32, 1.5)


def test_topics_addresses_and_default_paths():
    assert parse_topic("spBv1.0/g/DDATA/e/d") == ("DDATA", "g", "e", "d")
    assert parse_topic("spBv1.0/g/NBIRTH/e") == ("NBIRTH", "g", "e", None)
    assert parse_topic("spBv1.0/g/NBIRTH/e/d") is None
    assert parse_topic("spBv1.0/g/XDATA/e") is None
    assert parse_address("g/e/d:Motor Temp") == ("g", "e", "d", "Motor Temp")
    assert parse_address("g/e:Running") == ("g", "e", None, "Running")
    assert parse_address("site/area/line/cell/asset/sig") is None
    with pytest.raises(ValueError, match="group/edge/device:Metric Name"):
        parse_address("g:x")
    assert default_path("Site", "Edge 1", "dev", "Press/Motor Temp (C)") == "site/edge_1/dev/press/motor_temp__c_"


# ---------------------------------------------------------------------------------------------
# the host state machine (pure)
# ---------------------------------------------------------------------------------------------
def _msg(seq, metrics, ts=T0_MS) -> bytes:
    return pb.encode_payload(pb.Payload(timestamp=ts, seq=seq, metrics=metrics))


def _birth_metrics(bd=0):
    return [pb.Metric(name="bdSeq", datatype=pb.INT64, value=bd),
            pb.Metric(name="Running", alias=1, datatype=pb.BOOLEAN, value=True)]


@pytest.fixture
def decoder() -> SparkplugDecoder:
    d = SparkplugDecoder(unmapped="ignore", rebirth_min_interval_s=0)
    d.add_tag("s/a/l/c/m/running", "g/e:Running")
    d.add_tag("s/a/l/c/m/temp", "g/e/d:Temp", 0, 100)
    d.add_tag("s/a/l/c/m/label", "g/e/d:Label")
    d.add_tag("g/e/d/press/count", "g/e/d/press/count")  # a default path
    return d


def _rows(res):
    return [(r.path, r.ts, r.value, r.quality) for r in res.batch]


def test_births_aliases_and_data(decoder):
    r = decoder.handle("spBv1.0/g/NBIRTH/e", _msg(0, _birth_metrics()), 1)
    assert _rows(r) == [("s/a/l/c/m/running", T0_MS * MS, 1.0, GOOD)] and not r.dead_letters
    assert r.births == [("g", "e", None)] and r.skipped == 0  # bdSeq is plumbing, not counted
    r = decoder.handle("spBv1.0/g/DBIRTH/e/d", _msg(1, [
        pb.Metric(name="Temp", alias=2, datatype=pb.DOUBLE, value=20.0),
        pb.Metric(name="press/count", alias=3, datatype=pb.INT32, value=-4),
        pb.Metric(name="Label", alias=4, datatype=pb.STRING, value="ok"),
        pb.Metric(name="Other", alias=5, datatype=pb.FLOAT, value=1.0)]), 1)
    got = {p: (v, q) for p, _, v, q in _rows(r)}
    assert got["s/a/l/c/m/temp"] == (20.0, GOOD) and got["g/e/d/press/count"] == (-4.0, GOOD)
    assert math.isnan(got["s/a/l/c/m/label"][0]) and got["s/a/l/c/m/label"][1] == BAD and len(got) == 3
    assert "is String; a tag holds numbers" in r.dead_letters[0].reason
    assert r.skipped == 1  # 'Other' maps to no tag
    # DATA by alias only, with its own timestamp; out of range is flagged
    r = decoder.handle("spBv1.0/g/DDATA/e/d", _msg(2, [
        pb.Metric(alias=2, timestamp=T0_MS + 5, datatype=pb.DOUBLE, value=150.0),
        pb.Metric(alias=3, datatype=pb.INT32, value=7)]), 1)
    assert _rows(r) == [("s/a/l/c/m/temp", (T0_MS + 5) * MS, 150.0, BAD_OUT_OF_RANGE),
                        ("g/e/d/press/count", T0_MS * MS, 7.0, GOOD)]
    assert not r.dead_letters and not r.rebirth
    assert decoder.tag_metric["s/a/l/c/m/temp"] == ("g", "e", "d", "Temp", pb.DOUBLE)


def test_seq_gap_and_unknown_alias_request_a_rebirth(decoder):
    decoder.handle("spBv1.0/g/NBIRTH/e", _msg(0, _birth_metrics()), 1)
    r = decoder.handle("spBv1.0/g/NDATA/e", _msg(4, [pb.Metric(alias=1, datatype=pb.BOOLEAN, value=False)]), 2)
    assert "sequence gap from g/e: expected seq 1, got 4" in r.dead_letters[0].reason
    assert r.rebirth == [("g", "e")]
    assert _rows(r) == [("s/a/l/c/m/running", T0_MS * MS, 0.0, GOOD)]  # the data itself is kept
    r = decoder.handle("spBv1.0/g/NDATA/e", _msg(5, [pb.Metric(alias=99, datatype=pb.DOUBLE, value=1.0)]), 3)
    assert "unknown alias 99" in r.dead_letters[0].reason and r.rebirth == [("g", "e")]
    # seq wraps 255 -> 0 without a gap
    for s in range(6, 256):
        assert not decoder.handle("spBv1.0/g/NDATA/e", _msg(s, [pb.Metric(alias=1, value=True,
                                                                           datatype=pb.BOOLEAN)]), 4).dead_letters
    assert not decoder.handle("spBv1.0/g/NDATA/e", _msg(0, [pb.Metric(alias=1, value=True,
                                                                      datatype=pb.BOOLEAN)]), 5).dead_letters


def test_data_before_birth_and_rebirth_rate_limit():
    d = SparkplugDecoder(rebirth_min_interval_s=5)
    r = d.handle("spBv1.0/g/NDATA/e", _msg(3, [pb.Metric(alias=1, datatype=pb.DOUBLE, value=1.0)]), 10**9)
    assert r.rebirth == [("g", "e")]
    assert any("whose birth was not seen" in x.reason for x in r.dead_letters)
    r = d.handle("spBv1.0/g/NDATA/e", _msg(9, [pb.Metric(alias=1, datatype=pb.DOUBLE, value=1.0)]), 2 * 10**9)
    assert r.rebirth == [] and r.dead_letters  # still recorded, but no second request within 5 s
    r = d.handle("spBv1.0/g/NDATA/e", _msg(12, [pb.Metric(alias=1, datatype=pb.DOUBLE, value=1.0)]), 7 * 10**9)
    assert r.rebirth == [("g", "e")]


def test_deaths_mark_tags_bad_no_connection(decoder):
    decoder.handle("spBv1.0/g/NBIRTH/e", _msg(0, _birth_metrics(bd=7)), 1)
    decoder.handle("spBv1.0/g/DBIRTH/e/d", _msg(1, [pb.Metric(name="Temp", alias=2, datatype=pb.DOUBLE, value=1.0)]), 1)
    r = decoder.handle("spBv1.0/g/DDEATH/e/d", _msg(2, []), 55)
    assert _rows(r)[0][0] == "s/a/l/c/m/temp" and _rows(r)[0][1] == 55 and _rows(r)[0][3] == BAD_NO_CONNECTION
    assert r.deaths == [("g", "e", "d")]
    # a will from an older session (other bdSeq) does not kill the current one
    stale = pb.encode_payload(pb.Payload(metrics=[pb.Metric(name="bdSeq", datatype=pb.INT64, value=6)]))
    r = decoder.handle("spBv1.0/g/NDEATH/e", stale, 60)
    assert len(r.batch) == 0 and "stale NDEATH" in r.dead_letters[0].reason
    death = pb.encode_payload(pb.Payload(metrics=[pb.Metric(name="bdSeq", datatype=pb.INT64, value=7)]))
    r = decoder.handle("spBv1.0/g/NDEATH/e", death, 70)
    assert sorted(p for p, *_ in _rows(r)) == ["s/a/l/c/m/running", "s/a/l/c/m/temp"]
    assert set(r.batch.quality.tolist()) == {BAD_NO_CONNECTION} and np.isnan(r.batch.value).all()
    assert (r.batch.ts == 70).all()


def test_malformed_messages_are_dead_letters(decoder):
    r = decoder.handle("spBv1.0/g/NDATA/e", b"\x12\x05\x0a", 1)
    assert "malformed Sparkplug payload" in r.dead_letters[0].reason and len(r.batch) == 0
    r = decoder.handle("spBv1.0/g/BOGUS/e", b"", 1)
    assert "not a Sparkplug B topic" in r.dead_letters[0].reason
    r = decoder.handle("spBv1.0/g/NCMD/e", b"\xff", 1)
    assert r.ignored and not r.dead_letters
    r = decoder.handle("spBv1.0/g/DBIRTH/e/d", _msg(0, [pb.Metric(name="Temp", alias=2, datatype=pb.DOUBLE,
                                                                  value=1.0)]), 1)
    assert "before the NBIRTH" in r.dead_letters[0].reason and r.rebirth == [("g", "e")]


# ---------------------------------------------------------------------------------------------
# connector + edge node over the broker
# ---------------------------------------------------------------------------------------------
def _plant(uid: str, extra: str = "") -> tuple:
    text = f"""
plant: {{site: {uid}, area: edge1}}
connectors:
  - {{name: spb, type: sparkplug, host: 127.0.0.1, port: 1883, group: {uid}, batch_interval_ms: 20,
      rebirth_min_interval_s: 0.0{extra}}}
lines:
  - id: line1
    assets:
      - id: press1
        cell: press
        connector: spb
        tags:
          - {{signal: temp, unit: degC, range: [0, 100]}}
          - {{signal: count, kind: counter}}
          - {{signal: speed_sp, unit: rpm, writable: true, range: [0, 3000],
              source: {{address: "{uid}/edge1/line1:Speed Setpoint"}}}}
          - {{signal: running, kind: bool, writable: true, source: {{address: "{uid}/edge1:Running"}}}}
"""
    plant = parse_plant(text)
    cfg = plant.connectors[0]
    conn = registry.connector_class(cfg.type)(cfg.name, cfg.options, plant.connector_tags(cfg.name))
    return plant, conn


def _latest(batches: list[Batch]) -> dict[str, tuple[float, int]]:
    out = {}
    for b in batches:
        for r in b:
            out[r.path] = (r.value, r.quality)
    return out


async def test_edge_node_to_connector_over_the_broker(broker, uid):
    plant, conn = _plant(uid)
    assert isinstance(conn, SparkplugConnector)
    tag = {t.signal: t for t in plant.all_tags()}
    p = {s: t.path for s, t in tag.items()}
    node = SparkplugEdgeNode(uid, "edge1", node_metrics={"Running": pb.BOOLEAN},
                             devices={"line1": {"press/press1/temp": pb.DOUBLE, "press/press1/count": pb.INT32,
                                                "Speed Setpoint": pb.FLOAT}})
    node.values.update({("line1", "press/press1/temp"): 20.0, ("line1", "press/press1/count"): 5,
                        ("line1", "Speed Setpoint"): 1000.0, (None, "Running"): True})
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "the connector to connect")
        with pytest.raises(ConnectionError, match="announced it in a birth"):
            await conn.write(dataclasses.replace(tag["temp"], writable=True), 1)
        await asyncio.to_thread(node.connect)
        await wait_for(lambda: len(_latest(batches)) == 4, 120, "the birth values of 4 tags")
        assert _latest(batches) == {p["temp"]: (20.0, GOOD), p["count"]: (5.0, GOOD), p["speed_sp"]: (1000.0, GOOD),
                                    p["running"]: (1.0, GOOD)}
        # DDATA by alias
        node.publish_data({"press/press1/temp": 25.5, "press/press1/count": 6}, device="line1")
        await wait_for(lambda: _latest(batches)[p["count"]] == (6.0, GOOD), 120, "DDATA")
        assert _latest(batches)[p["temp"]] == (25.5, GOOD)
        node.publish_data({"press/press1/temp": 150.0}, device="line1")
        await wait_for(lambda: _latest(batches)[p["temp"]] == (150.0, BAD_OUT_OF_RANGE), 120, "an out-of-range value")
        # a seq gap: dead letter, rebirth request, the node publishes its births again
        node.seq = (node.seq + 5) % 256
        node.publish_data({"press/press1/temp": 30.0}, device="line1")
        await wait_for(lambda: node.rebirth_requests == 1, 120, "the rebirth request to reach the edge node")
        await wait_for(lambda: conn.dead_letters.count >= 1, 120, "the gap's dead letter")
        assert "sequence gap" in conn.dead_letters.recent()[0]["reason"]
        assert conn.rebirths_requested == 1
        n_before = sum(map(len, batches))
        await wait_for(lambda: sum(map(len, batches)) >= n_before + 4, 120, "the births after the rebirth")
        node.publish_data({"press/press1/temp": 31.0}, device="line1")
        await wait_for(lambda: _latest(batches)[p["temp"]] == (31.0, GOOD), 120, "data after the rebirth")
        assert conn.dead_letters.count == 1  # no further gaps after the rebirth
        # writes: DCMD to the device, NCMD to the node; refused for a read-only tag
        await conn.write(tag["speed_sp"], 1500)
        await conn.write(tag["running"], 0)
        with pytest.raises(PermissionError, match="not writable"):
            await conn.write(tag["temp"], 1)
        await wait_for(lambda: len(node.commands) == 2, 120, "the commands at the edge node")
        assert node.commands == [("line1", "Speed Setpoint", 1500.0), (None, "Running", False)]
        # deaths
        node.publish_device_death("line1")
        await wait_for(lambda: _latest(batches)[p["temp"]][1] == BAD_NO_CONNECTION, 120, "DDEATH")
        assert _latest(batches)[p["running"]] == (1.0, GOOD)
        node.drop()  # the broker publishes the NDEATH will
        await wait_for(lambda: _latest(batches)[p["running"]][1] == BAD_NO_CONNECTION, 120, "the NDEATH will")
        assert math.isnan(_latest(batches)[p["running"]][0])
        with pytest.raises(ConnectionError, match="offline"):
            await conn.write(tag["speed_sp"], 1)
        assert conn.state == CONNECTED
    finally:
        node.disconnect()
        conn.stop()
        await task
    assert conn.readings == sum(map(len, batches))


async def test_primary_host_state_is_published_and_withdrawn(broker, uid):
    import paho.mqtt.client as mqtt

    plant, conn = _plant(uid, extra=f", host_id: host-{uid}")
    seen: list[dict] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"obs-{uid}")
    sub.on_message = lambda c, u, m: seen.append(json.loads(m.payload)) if m.payload else None
    sub.connect(*broker)
    sub.loop_start()
    sub.subscribe(f"spBv1.0/STATE/host-{uid}", qos=1)
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "the connector to connect")
        await wait_for(lambda: any(s["online"] for s in seen), 120, "STATE online")
    finally:
        conn.stop()
        await task
    await wait_for(lambda: not seen[-1]["online"], 120, "STATE offline")
    # clear the retained message so the broker does not keep it
    sub.publish(f"spBv1.0/STATE/host-{uid}", b"", qos=1, retain=True).wait_for_publish(60)
    sub.disconnect()
    sub.loop_stop()
    assert all(isinstance(s["timestamp"], int) for s in seen)
