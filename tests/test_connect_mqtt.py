"""MQTT JSON connector: address grammar, the pure parser, the UNS codec, and the connector against a
real Mosquitto broker (127.0.0.1:1883, or a private one started on a free port for the reconnect test)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import shutil
import subprocess
import threading
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from _connect import broker_up, local_broker
from _wait import wait_for
from axline.batch import BAD, BAD_OUT_OF_RANGE, BAD_SENSOR, GOOD, UNCERTAIN, Batch
from axline.connect import registry
from axline.connect.base import CONNECTED, DISCONNECTED
from axline.connect.deadletter import DeadLetter, DeadLetterStore, payload_of
from axline.connect.mqtt import (
    JsonMapping,
    MqttConnector,
    PayloadError,
    parse_address,
    parse_json_payload,
    timestamp_ns,
)
from axline.connect.uns import decode_uns, encode_uns_batch
from axline.plant import parse_plant

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


@pytest.fixture
def broker() -> tuple[str, int]:
    return local_broker()


@pytest.fixture
def uid() -> str:
    """A unique id for topics and plant ids, so parallel runs do not see each other's messages."""
    return f"t{os.getpid()}{secrets.token_hex(3)}"


class Peer:
    """A plain paho client: publishes like a device does and records what it receives."""

    def __init__(self, host: str, port: int, subscribe: list[str] = ()) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"peer-{secrets.token_hex(4)}")
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        if subscribe:
            self.client.subscribe([(t, 1) for t in subscribe])
            assert self._subscribed.wait(60), "peer subscription not acknowledged"

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(60)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def rows(b: Batch) -> list[tuple[str, int, float, int]]:
    return [(r.path, r.ts, r.value, r.quality) for r in b]


def _collect(batches: list[Batch]) -> dict[str, list[tuple[int, float, int]]]:
    out: dict[str, list[tuple[int, float, int]]] = {}
    for b in batches:
        for r in b:
            out.setdefault(r.path, []).append((r.ts, r.value, r.quality))
    return out


# ---------------------------------------------------------------------------------------------
# address grammar
# ---------------------------------------------------------------------------------------------
def test_address_grammar_parses_topic_selector_and_options():
    a = parse_address("sensors/+/data#$.temperature")
    assert (a.topic, a.selector, a.ts_selector) == ("sensors/+/data", ("temperature",), None)
    a = parse_address("press1/status#$.axes[2]['spindle load'];ts=$.time:iso;q=$.q;write=press1/cmd")
    assert a.topic == "press1/status"
    assert a.selector == ("axes", "2", "spindle load")
    assert (a.ts_selector, a.ts_unit, a.q_selector, a.write_topic) == (("time",), "iso", ("q",), "press1/cmd")
    a = parse_address("line/#")  # a '#' wildcard, not a selector
    assert (a.topic, a.selector) == ("line/#", ())
    a = parse_address("line/##/a~1b/0")  # wildcard topic, then a JSON pointer
    assert (a.topic, a.selector) == ("line/#", ("a/b", "0"))


@pytest.mark.parametrize("address, words", [
    ("", "empty"),
    ("a/b+/c", "'+' must fill a whole level"),
    ("a/#/c", "'#' must be the whole last level"),
    ("a/b#$.x..y", "cannot read"),
    ("a/b;bogus=1", "unknown option 'bogus'"),
    ("a/b;ts", "needs a value"),
    ("a/b;write=a/+/c", "cannot have '+' or '#'"),
])
def test_address_mistakes_get_one_clear_message(address, words):
    with pytest.raises(ValueError, match=None) as e:
        parse_address(address)
    assert words in str(e.value)


def test_a_typo_in_a_plant_file_connector_option_is_named():
    text = """
plant: {site: s, area: a}
connectors: [{name: mq, type: mqtt, hots: 127.0.0.1}]
lines: [{id: l1, assets: [{id: a1, tags: [{signal: x}]}]}]
"""
    with pytest.raises(ValueError) as e:
        parse_plant(text)
    assert "connectors[0].hots: unknown option (did you mean 'host'?)" in str(e.value)


# ---------------------------------------------------------------------------------------------
# the pure parser
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def mapping() -> JsonMapping:
    return JsonMapping.from_addresses([
        ("p/temp", "plant/temp", 0.0, 100.0),
        ("p/hum", "sensors/+/data#$.humidity;ts=$.time:ms"),
        ("p/load", "dev/status#/axes/1/load;q=$.q"),
        ("p/when", "dev/status#$.count;ts=$.at"),
    ])


def test_numbers_objects_and_timestamps(mapping):
    now = T0 + 123
    b, dead = parse_json_payload("plant/temp", b"21.5", mapping, now)
    assert not dead and rows(b) == [("p/temp", now, 21.5, GOOD)]
    b, dead = parse_json_payload("plant/temp", b'{"value": 22, "ts": 1767225600.25}', mapping, now)
    assert not dead and list(b)[0].ts == T0 + 250_000_000 and list(b)[0].value == 22.0
    b, dead = parse_json_payload("sensors/s7/data", b'{"humidity": 40.5, "time": 1767225600123}', mapping, now)
    assert not dead and [(r.path, r.ts, r.value) for r in b] == [("p/hum", T0 + 123_000_000, 40.5)]
    payload = b'{"axes": [{"load": 1}, {"load": 2.5}], "q": 1, "count": 7, "at": "2026-01-01T09:00:00+09:00"}'
    b, dead = parse_json_payload("dev/status", payload, mapping, now)
    assert not dead
    got = {r.path: r for r in b}
    assert (got["p/load"].value, got["p/load"].quality, got["p/load"].ts) == (2.5, UNCERTAIN, now)
    assert (got["p/when"].value, got["p/when"].ts) == (7.0, T0)


def test_bad_values_are_recorded_with_a_quality_code(mapping):
    now = T0
    b, dead = parse_json_payload("plant/temp", b"150", mapping, now)
    assert list(b)[0].quality == BAD_OUT_OF_RANGE and not dead
    b, dead = parse_json_payload("plant/temp", b"null", mapping, now)
    r = list(b)[0]
    assert math.isnan(r.value) and r.quality == BAD and not dead
    b, dead = parse_json_payload("plant/temp", b'"hot"', mapping, now)
    r = list(b)[0]
    assert math.isnan(r.value) and r.quality == BAD
    assert len(dead) == 1 and "is text, expected a number" in dead[0].reason and dead[0].payload == b'"hot"'
    b, dead = parse_json_payload("plant/temp", b'{"value": 5, "q": 5}', mapping, now)
    assert list(b)[0].quality == BAD_SENSOR  # the device's own code is kept


@pytest.mark.parametrize("payload, reason", [
    (b"", "empty payload"),
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00", "not UTF-8 text"),
    (b'{"value": 1} trailing', "not valid JSON"),
    (b"[" * 50_000, "nested too deeply"),
    (b'{"temp": 1}', "has no 'value' key"),
    (b'{"value": 1, "ts": "yesterday"}', "not ISO 8601"),
    (b'{"value": 1, "ts": 1e30}', "outside 1970..2262"),
    (b'{"value": [1, 2], "ts": [1]}', "as long as 'value'"),
    (b'{"value": [], "ts": []}', "empty 'value' list"),
])
def test_malformed_payloads_become_dead_letters(mapping, payload, reason):
    b, dead = parse_json_payload("plant/temp", payload, mapping, T0)
    assert len(b) == 0
    assert len(dead) == 1 and reason in dead[0].reason, [d.reason for d in dead]
    assert dead[0].topic == "plant/temp" and dead[0].payload == payload


def test_missing_path_and_unmapped_topics():
    m = JsonMapping.from_addresses([("p/hum", "sensors/+/data#$.humidity")], unmapped="deadletter")
    b, dead = parse_json_payload("sensors/a/data", b'{"temp": 1}', m, T0)
    assert len(b) == 0 and "$.humidity not found" in dead[0].reason
    b, dead = parse_json_payload("other", b"1", m, T0)
    assert len(b) == 0 and dead[0].reason == "no tag is mapped to this topic"
    m = JsonMapping.from_addresses([("p/hum", "sensors/+/data#$.humidity")], unmapped="ignore")
    b, dead = parse_json_payload("other", b"1", m, T0)
    assert len(b) == 0 and not dead and m.unmapped_count == 1
    m = JsonMapping.from_addresses([], unmapped="uns")
    b, dead = parse_json_payload("s/a/l/c/x/temp", b'{"ts": %d, "value": 3}' % T0, m, T0)
    assert rows(b) == [("s/a/l/c/x/temp", T0, 3.0, GOOD)] and not dead


def test_the_network_thread_delivers_what_the_parser_reads_in_arrival_order(mapping, tmp_path, monkeypatch):
    """Single readings are gathered as plain values and made into one batch per flush; that batch holds
    exactly the readings (qualities, times, dead letters) the parser gives per message, in order."""
    from types import SimpleNamespace

    conn = MqttConnector("m", {"host": "127.0.0.1", "port": 1, "unmapped": "deadletter",
                               "dead_letter_dir": str(tmp_path / "dead")}, [])
    conn.mapping = mapping
    msgs = [
        ("plant/temp", b"21.5"),
        ("plant/temp", b"150"),  # out of range
        ("plant/temp", b"null"),
        ("plant/temp", b'{"value": 5, "q": 5, "ts": 1767225600.25}'),
        ("plant/temp", b'{"value": [1, 2, 300], "ts": [1767225601, 1767225602, 1767225603], "q": [0, 1, 0]}'),
        ("sensors/s7/data", b'{"humidity": 40.5, "time": 1767225600123}'),
        ("dev/status", b'{"axes": [{"load": 1}, {"load": "x"}], "q": 1, "count": 7, "at": "2026-01-01T09:00:00Z"}'),
        ("plant/temp", b'{"value": [4, 5], "ts": [1767225604, 1767225605]}'),
        ("plant/temp", b'"hot"'),
        ("plant/temp", b"{not json"),
        ("nobody/listens", b"1"),  # ignored, counted
        ("plant/temp", b"1e400"),  # infinity
    ]
    now = T0 + 7
    expected: list[tuple] = []
    n_dead = 0
    for topic, payload in msgs:
        b, dead = parse_json_payload(topic, payload, mapping, now)
        expected += rows(b)
        n_dead += len(dead)
    got: list[Batch] = []
    monkeypatch.setattr(time, "time_ns", lambda: now)  # the receive time the parser was given above
    for k, (topic, payload) in enumerate(msgs):
        conn._on_message(None, None, SimpleNamespace(topic=topic, payload=payload))
        if k == 5:
            conn._flush(got.append)
    conn._flush(got.append)

    def same(rs):  # NaN compared as a marker
        return [(p, t, "nan" if math.isnan(v) else v, q) for p, t, v, q in rs]

    assert len(got) == 2 and same(r for b in got for r in rows(b)) == same(expected)
    assert conn.messages == len(msgs) and conn.readings == len(expected) == 14
    assert conn.dead_letters.count == n_dead == 3
    assert mapping.unmapped_count == 2  # the unmapped topic, counted by both readings above
    assert [q for *_, q in expected] == [GOOD, BAD_OUT_OF_RANGE, BAD, BAD_SENSOR, GOOD, UNCERTAIN, BAD_OUT_OF_RANGE,
                                         GOOD, BAD, GOOD, GOOD, GOOD, BAD, BAD]


def test_timestamp_units():
    assert timestamp_ns(1767225600, "auto") == T0
    assert timestamp_ns(1767225600000, "auto") == T0
    assert timestamp_ns(1767225600000000, "auto") == T0
    assert timestamp_ns(T0, "auto") == T0
    assert timestamp_ns(1767225600, "ms") == 1767225600 * 1_000_000
    assert timestamp_ns("2026-01-01T00:00:00.000001Z", "auto") == T0 + 1000
    assert timestamp_ns("2026-01-01T00:00:00", "iso") == T0  # no offset: UTC
    with pytest.raises(PayloadError, match="unit is iso"):
        timestamp_ns(5, "iso")
    with pytest.raises(PayloadError, match="true/false"):
        timestamp_ns(True, "auto")


def test_dead_letter_store_is_bounded_and_keeps_the_newest(tmp_path):
    store = DeadLetterStore(tmp_path / "dl", max_bytes=16384, max_payload_bytes=1000, keep_recent=10)
    for i in range(400):
        store.add(DeadLetter(f"bad thing: number {i}", f"t/{i}", bytes([i % 256]) * 1500, T0 + i), source="c1")
    assert store.count == 400 and store.reasons["bad thing"] == 400
    assert store.disk_bytes() <= 16384 + 4096  # the bound plus at most one line
    rows = store.read_all()
    assert rows[-1]["topic"] == "t/399" and rows[0]["topic"] != "t/0"  # oldest dropped, newest kept
    assert [r["topic"] for r in rows] == [f"t/{i}" for i in range(400 - len(rows), 400)]  # nothing lost in between
    last = rows[-1]
    assert last["truncated"] and last["payload_size"] == 1500 and payload_of(last) == bytes([399 % 256]) * 1000
    assert last["source"] == "c1" and last["reason"] == "bad thing: number 399" and last["time"].endswith("Z")
    assert [r["topic"] for r in store.recent(3)] == ["t/397", "t/398", "t/399"]
    store.close()
    again = DeadLetterStore(tmp_path / "dl", max_bytes=16384, max_payload_bytes=1000)
    again.add(DeadLetter("later", "t/x", b"", T0))
    again.close()
    assert again.read_all()[-1]["topic"] == "t/x" and again.read_all()[-2]["topic"] == "t/399"
    with pytest.raises(ValueError, match="max_payload_bytes must be in 0..4096"):
        DeadLetterStore(None, max_bytes=16384, max_payload_bytes=5000)
    memory = DeadLetterStore(None, keep_recent=2)
    memory.add_many([DeadLetter("r", "a", b"1", 0), DeadLetter("r", "b", b"2", 0), DeadLetter("r", "c", b"3", 0)])
    assert [r["topic"] for r in memory.recent()] == ["b", "c"] and memory.read_all() == []


# ---------------------------------------------------------------------------------------------
# the unified-namespace codec
# ---------------------------------------------------------------------------------------------
def test_uns_codec_round_trips_exactly_including_nan_and_infinity():
    rng = np.random.default_rng(3)
    n = 500
    paths = [f"s/a/l1/c/m{i}/v" for i in range(7)]
    idx = rng.integers(0, len(paths), n)
    ts = T0 + np.arange(n, dtype=np.int64) * 1_000_003
    val = rng.normal(size=n) * 1e3
    val[::50] = np.nan
    val[7], val[8] = np.inf, -np.inf
    q = rng.choice([GOOD, GOOD, GOOD, BAD, BAD_SENSOR], n).astype(np.uint8)
    batch = Batch(paths, idx, ts, val, q)
    msgs = encode_uns_batch(batch, prefix="uns/")
    assert sorted(t for t, _ in msgs) == sorted(f"uns/{p}" for p in paths)
    for _, payload in msgs:
        json.loads(payload, parse_constant=lambda c: pytest.fail(f"non-standard JSON token {c}"))
    back = Batch.concat([decode_uns(t, p, prefix="uns/") for t, p in msgs])
    for path in paths:
        a, b = batch.for_paths([path]), back.for_paths([path])
        np.testing.assert_array_equal(a.ts, b.ts)
        np.testing.assert_array_equal(a.value, b.value)  # NaN == NaN here, inf exact
        np.testing.assert_array_equal(a.quality, b.quality)
    single = encode_uns_batch(Batch.from_readings([("x/y", T0, 1.5, GOOD)]))
    assert single == [("x/y", b'{"ts":%d,"value":1.5}' % T0)]


def test_decode_uns_rejects_what_is_not_the_uns_form():
    with pytest.raises(PayloadError, match="needs 'ts'"):
        decode_uns("a/b", b"1.5")
    with pytest.raises(PayloadError, match="prefix"):
        decode_uns("a/b", b'{"ts": 1, "value": 1}', prefix="z/")
    with pytest.raises(PayloadError, match="not valid JSON"):
        decode_uns("a/b", b"{")


# ---------------------------------------------------------------------------------------------
# the connector against the broker
# ---------------------------------------------------------------------------------------------
def _plant(uid: str, port: int, extra: str = "", dead_dir: str = "") -> tuple:
    dead = f", dead_letter_dir: '{dead_dir}'" if dead_dir else ""
    text = f"""
plant: {{site: {uid}, area: area1}}
connectors:
  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {port}, batch_interval_ms: 20{dead}{extra}}}
lines:
  - id: line1
    assets:
      - id: press1
        cell: press
        connector: broker
        tags:
          - {{signal: temp, unit: degC, range: [0, 100], source: {{address: "{uid}/press/temp"}}}}
          - {{signal: hum, unit: "%RH", source: {{address: "{uid}/sensors/+/data#$.humidity;ts=$.time:ms"}}}}
          - {{signal: load, source: {{address: "{uid}/dev#/axes/1/load;q=$.q"}}}}
          - {{signal: setpoint, unit: degC, writable: true, range: [0, 200], source: {{address: "{uid}/press/sp"}}}}
          - {{signal: speed, writable: true, source: {{address: "{uid}/sensors/+/speed"}}}}
          - {{signal: uns_a}}
          - {{signal: uns_b}}
"""
    plant = parse_plant(text)
    cfg = plant.connectors[0]
    conn = registry.connector_class(cfg.type)(cfg.name, cfg.options, plant.connector_tags(cfg.name))
    return plant, conn


async def test_json_mapping_end_to_end(broker, uid, tmp_path):
    plant, conn = _plant(uid, broker[1], dead_dir=str(tmp_path / "dead"))
    assert isinstance(conn, MqttConnector)
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    peer = Peer(*broker)
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "the connector to connect")
        peer.publish(f"{uid}/press/temp", b"21.5")
        peer.publish(f"{uid}/press/temp", b'{"value": 150, "ts": 1767225600000}')
        peer.publish(f"{uid}/sensors/n1/data", b'{"humidity": 41.5, "time": 1767225600123}')
        peer.publish(f"{uid}/sensors/n2/data", b'{"humidity": 42.5, "time": 1767225601000}')
        peer.publish(f"{uid}/dev", b'{"axes": [{"load": 1}, {"load": 2.5}], "q": 1}')
        peer.publish(f"{uid}/press/temp", b"{broken")
        peer.publish(f"{uid}/press/temp", b'"hot"')
        await wait_for(lambda: sum(map(len, batches)) >= 6 and conn.dead_letters.count >= 2, 120, "6 readings")
    finally:
        peer.close()
        conn.stop()
        await task
    got = _collect(batches)
    p = f"{uid}/area1/line1/press/press1"
    assert [v for _, v, _ in got[f"{p}/temp"]][:2] == [21.5, 150.0]
    assert [q for _, _, q in got[f"{p}/temp"]][:3] == [GOOD, BAD_OUT_OF_RANGE, BAD]
    assert got[f"{p}/temp"][1][0] == T0
    assert [(t, v) for t, v, _ in got[f"{p}/hum"]] == [(T0 + 123_000_000, 41.5), (T0 + 1_000_000_000, 42.5)]
    assert got[f"{p}/load"][0][1:] == (2.5, UNCERTAIN)
    assert conn.readings == sum(map(len, batches))
    # dead letters are on disk with the reason and the raw payload
    rows = conn.dead_letters.read_all()
    reasons = [r["reason"] for r in rows]
    assert any(r.startswith("not valid JSON") for r in reasons), reasons
    assert any("is text, expected a number" in r for r in reasons), reasons
    bad = next(r for r in rows if r["reason"].startswith("not valid JSON"))
    assert payload_of(bad) == b"{broken" and bad["topic"] == f"{uid}/press/temp" and bad["source"] == "broker"
    assert conn.state == DISCONNECTED


async def test_a_burst_of_small_and_large_messages_arrives_whole_and_in_order(broker, uid):
    """The connector reads the socket in chunks: packets that straddle a chunk, and payloads larger
    than one, arrive whole, in order, and nothing waits unread once the burst is over."""
    plant, conn = _plant(uid, broker[1])
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    peer = Peer(*broker)
    sent: list[float] = []
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "the connector to connect")
        infos = []
        k = 0
        for _burst in range(3):
            for _ in range(700):
                sent.append(round(k % 100 + 0.25, 2))
                infos.append(peer.client.publish(f"{uid}/press/temp", str(sent[-1]), qos=1))
                k += 1
            vals = [round(j % 100 + 0.5, 2) for j in range(k, k + 9000)]  # about 130 kB of JSON
            ts = [1767225600000 + j for j in range(k, k + 9000)]
            infos.append(peer.client.publish(f"{uid}/press/temp", json.dumps({"ts": ts, "value": vals}), qos=1))
            sent += vals
            k += 9000
        for info in infos:
            info.wait_for_publish(30)
        await wait_for(lambda: sum(map(len, batches)) >= len(sent), 60, f"{len(sent)} readings")
    finally:
        peer.close()
        conn.stop()
        await task
    got = _collect(batches)[f"{uid}/area1/line1/press/press1/temp"]
    assert [v for _, v, _ in got] == sent
    assert all(q == GOOD for _, _, q in got) and conn.messages == 2103 and conn.dead_letters.count == 0


async def test_uns_batch_round_trip_through_the_broker(broker, uid):
    plant, conn = _plant(uid, broker[1])
    p = f"{uid}/area1/line1/press/press1"
    n = 400
    rng = np.random.default_rng(11)
    sent = Batch([f"{p}/uns_a", f"{p}/uns_b"], rng.integers(0, 2, n), T0 + np.arange(n) * 10_000_000,
                 rng.normal(size=n), np.where(rng.random(n) < 0.1, BAD_SENSOR, GOOD))
    # split into chunks as a bridge would publish them, one message per tag per chunk
    msgs = [m for k in range(0, n, 50) for m in encode_uns_batch(sent.select(np.arange(n)[k:k + 50]))]
    assert all(topic.startswith(p) for topic, _ in msgs)  # topic == tag path
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    peer = Peer(*broker)
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "the connector to connect")
        for topic, payload in msgs:
            peer.client.publish(topic, payload, qos=1)
        await wait_for(lambda: sum(map(len, batches)) >= n, 120, f"{n} readings")
    finally:
        peer.close()
        conn.stop()
        await task
    back = Batch.concat(batches)
    assert len(back) == n
    assert len(batches) < len(msgs)  # messages were gathered into fewer batches
    for path in sent.paths:
        a, b = sent.for_paths([path]), back.for_paths([path])
        np.testing.assert_array_equal(a.ts, b.ts)
        np.testing.assert_array_equal(a.value, b.value)
        np.testing.assert_array_equal(a.quality, b.quality)


async def test_writes_are_published_and_checked(broker, uid):
    plant, conn = _plant(uid, broker[1])
    tag = {t.signal: t for t in plant.all_tags()}
    with pytest.raises(ConnectionError, match="not connected"):
        await conn.write(tag["setpoint"], 10)
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    peer = Peer(*broker, subscribe=[f"{uid}/#"])
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "the connector to connect")
        await conn.write(tag["setpoint"], 42)
        await conn.write(tag["setpoint"], 42.5)
        with pytest.raises(PermissionError, match="not writable"):
            await conn.write(tag["temp"], 1)
        with pytest.raises(ValueError, match=r"outside the tag's range \[0, 200\]"):
            await conn.write(tag["setpoint"], 250)
        with pytest.raises(ValueError, match="wildcard"):
            await conn.write(tag["speed"], 1)
        await wait_for(lambda: len(peer.received) >= 2, 120, "the writes to arrive")
    finally:
        peer.close()
        conn.stop()
        await task
    assert [t for t, _ in peer.received] == [f"{uid}/press/sp/set"] * 2
    assert [json.loads(p)["value"] for _, p in peer.received] == [42, 42.5]
    assert abs(json.loads(peer.received[0][1])["ts"] - time.time_ns()) < 60 * 10**9


@pytest.fixture
def private_broker(port):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        pytest.skip("mosquitto is not installed; the reconnect test starts its own broker")

    class B:
        proc = None

        def start(self, config: str | None = None):
            args = [exe, "-c", config] if config else [exe, "-p", str(port)]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t0 = time.monotonic()
            while not broker_up("127.0.0.1", port):
                if time.monotonic() - t0 > 60:  # generous: a busy machine starts it slowly
                    raise AssertionError("private mosquitto did not start")
                time.sleep(0.05)

        def kill(self):
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(60)

    b = B()
    yield b
    b.kill()


async def test_connection_state_and_reconnect(private_broker, port, uid):
    plant, conn = _plant(uid, port, extra=", connect_timeout_s: 1.0")
    states: list[str] = []
    conn.on_state = lambda c: states.append(c.state)
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: conn.last_error is not None, 120, "a connection error to be reported")
        assert conn.state != CONNECTED and "refused" in conn.last_error.lower(), conn.last_error
        private_broker.start()
        await wait_for(lambda: conn.state == CONNECTED, 120, "the connector to connect once the broker is up")
        private_broker.kill()
        await wait_for(lambda: conn.state != CONNECTED, 120, "the lost connection to be noticed")
        assert "lost" in (conn.last_error or "") or conn.last_error
        private_broker.start()
        await wait_for(lambda: conn.state == CONNECTED, 120, "the connector to reconnect")
        peer = Peer("127.0.0.1", port)
        peer.publish(f"{uid}/press/temp", b"33")
        peer.close()
        await wait_for(lambda: sum(map(len, batches)) >= 1, 120, "a reading after reconnecting")
    finally:
        conn.stop()
        await task
    assert conn.connects == 2
    assert states.count(CONNECTED) == 2
    assert list(Batch.concat(batches))[0].value == 33.0


async def test_a_refused_login_is_reported_clearly(private_broker, port, uid, tmp_path):
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\n")
    private_broker.start(str(conf))
    plant, conn = _plant(uid, port, extra=", connect_timeout_s: 2.0")
    task = asyncio.create_task(conn.run(lambda b: None))
    try:
        await wait_for(lambda: conn.last_error is not None, 120, "the refusal to be reported")
        error, state = conn.last_error, conn.state
    finally:
        conn.stop()
        await task
    assert error == "ConnectionError: the broker refused the connection: Not authorized"
    assert state == DISCONNECTED and conn.connects == 0
