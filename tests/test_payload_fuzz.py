"""Fuzzing the payload parsers: MQTT JSON (``parse_json_payload``, the UNS codec) and Sparkplug B
(``decode_payload`` and the host state machine) with more than 100,000 generated inputs.

Bulk inputs come from a seeded generator of valid payloads and byte-level mutations of them (fast);
hypothesis adds structure-aware cases. Properties: nothing raises (beyond the documented
``SparkplugDecodeError`` of the raw decoder), every input yields readings or dead letters (or, for
Sparkplug, a birth/death/counted metric), readings satisfy the quality rules, valid inputs round-trip
exactly.
"""

from __future__ import annotations

import json
import math
import random
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axline.batch import BAD, BAD_SENSOR, GOOD, UNCERTAIN, Batch
from axline.connect import sparkplug_pb as pb
from axline.connect.mqtt import JsonMapping, PayloadError, parse_json_payload
from axline.connect.sparkplug import SparkplugDecoder
from axline.connect.uns import decode_uns, encode_uns_batch

NOW = 1_767_225_600_000_000_000
N_JSON = 55_000
N_SPARKPLUG = 50_000

MAPPING = JsonMapping.from_addresses([
    ("f/num", "f/num", -1e6, 1e6),
    ("f/obj", "f/obj#$.a.b[1];ts=$.t:ms", 0.0, 1e9),
    ("f/batch", "f/batch"),
    ("f/wild", "f/w/+/x#/v/0;q=$.q"),
])
RANGES = {"f/num": (-1e6, 1e6), "f/obj": (0.0, 1e9), "f/batch": (-math.inf, math.inf), "f/wild": (-math.inf, math.inf)}
JSON_TOKENS = [b"{", b"}", b"[", b"]", b'"', b",", b":", b"null", b"true", b"-", b"1e999", b"-0", b"NaN",
               b"Infinity", b'"\\ud800"', b"99999999999999999999999999", b"\xff", b"\x00", b"0.5", b'"value"',
               b'"ts"', b'"q"', b'{"value":', b"[" * 40]
PB_TOKENS = [b"\x80", b"\xff" * 10, b"\x12", b"\x12\xff\x01", b"\x0b", b"\x00", b"\x7a\x02\xc3\x28", b"\x65",
             b"\x69", b"\x50\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x20\x0c", b"\x10\x05"]


def mutate(rng: random.Random, data: bytes, tokens: list[bytes]) -> bytes:
    """1-4 random edits: byte set, bit flip, token insert, delete, truncate, duplicate a slice."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        n = len(b)
        if op == 0 and n:
            b[rng.randrange(n)] = rng.randrange(256)
        elif op == 1 and n:
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 2:
            i = rng.randint(0, n)
            b[i:i] = rng.choice(tokens)
        elif op == 3 and n:
            i = rng.randrange(n)
            del b[i:i + rng.randint(1, 8)]
        elif op == 4 and n:
            del b[rng.randint(0, n - 1):]
        elif n:
            i = rng.randrange(n)
            j = rng.randint(0, n)
            b[j:j] = b[i:i + rng.randint(1, 16)]
    return bytes(b)


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------
def _float(rng: random.Random, lo: float = -1e6, hi: float = 1e6) -> float:
    return rng.choice([rng.uniform(lo, hi), float(rng.randint(int(lo), int(hi))), 0.0, rng.random() * 1e-300])


def valid_json(rng: random.Random) -> tuple[str, bytes, list[tuple[str, int, float, int]]]:
    """A valid payload on a mapped topic and exactly the readings it must give."""
    kind = rng.randrange(5)
    if kind == 0:
        v = _float(rng)
        return "f/num", repr(v).encode(), [("f/num", NOW, v, GOOD)]
    if kind == 1:
        v, t, q = _float(rng), rng.randint(10**17, 9 * 10**18), rng.choice([GOOD, UNCERTAIN])
        return "f/num", json.dumps({"value": v, "ts": t, "q": q}).encode(), [("f/num", t, v, q)]
    if kind == 2:
        v, t = _float(rng, 0, 1e9), rng.randint(10**11, 9 * 10**12)
        doc = {"t": t, "a": {"b": [rng.random(), v], "c": "x"}}
        return "f/obj", json.dumps(doc).encode(), [("f/obj", t * 1_000_000, v, GOOD)]
    if kind == 3:
        n = rng.randint(1, 20)
        ts = [rng.randint(0, 2**63 - 1) for _ in range(n)]
        vals = [None if rng.random() < 0.1 else _float(rng, -1e300, 1e300) for _ in range(n)]
        qs = [BAD_SENSOR if v is None else rng.choice([GOOD, UNCERTAIN]) for v in vals]
        doc = {"ts": ts, "value": vals, "q": qs}
        # ts in ns (>= 1e17 for 'auto'); smaller ones would be read as s/ms/us by magnitude
        doc["ts"] = ts = [max(t, 10**17) for t in ts]
        exp = [("f/batch", t, math.nan if v is None else v, q) for t, v, q in zip(ts, vals, qs, strict=True)]
        return "f/batch", json.dumps(doc).encode(), exp
    v, q = _float(rng), rng.choice([GOOD, UNCERTAIN])
    dev = rng.choice(["a", "b1", "x y", "한"])
    return f"f/w/{dev}/x", json.dumps({"v": [v, 1], "q": q}, ensure_ascii=False).encode(), [("f/wild", NOW, v, q)]


def random_json(rng: random.Random, depth: int = 0):
    """Arbitrary JSON values: right shapes with wrong types, wrong shapes."""
    k = rng.randrange(9 if depth < 3 else 5)
    if k == 0:
        return None
    if k == 1:
        return rng.random() < 0.5
    if k == 2:
        return rng.choice([rng.randint(-(2**70), 2**70), rng.random(), 1e308, -0.0])
    if k == 3:
        return rng.choice(["", "x", "2026-01-01T00:00:00Z", "1.5", "\u0000", "NaN"])
    if k == 4:
        return rng.randint(0, 300)
    if k in (5, 6):
        keys = ["value", "ts", "q", "a", "b", "t", "v", "timestamp", "quality", "0"]
        return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def check_json_result(topic: str, payload: bytes, batch: Batch, dead) -> None:
    assert isinstance(batch, Batch)
    assert len(batch) + len(dead) >= 1, (topic, payload)
    for d in dead:
        assert d.reason and not d.reason.startswith("internal"), d.reason
        assert d.topic == topic and d.payload == payload
    if len(batch):
        assert set(batch.paths) <= set(RANGES)
        assert batch.ts.dtype == np.int64 and batch.value.dtype == np.float64 and batch.quality.dtype == np.uint8
        good = batch.quality < BAD
        vals = batch.value[good]
        assert np.isfinite(vals).all(), (topic, payload)
        for i in np.flatnonzero(good):
            lo, hi = RANGES[batch.paths[batch.idx[i]]]
            assert lo <= batch.value[i] <= hi, (topic, payload)


def same_readings(batch: Batch, expected: list[tuple[str, int, float, int]]) -> bool:
    got = [(r.path, r.ts, r.value, r.quality) for r in batch]
    if len(got) != len(expected):
        return False
    for (p, t, v, q), (ep, et, ev, eq) in zip(got, expected, strict=True):
        if (p, t, q) != (ep, et, eq) or struct.pack("<d", v) != struct.pack("<d", float(ev)):
            if not (math.isnan(v) and math.isnan(ev) and (p, t, q) == (ep, et, eq)):
                return False
    return True


def fuzz_json(n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"valid": 0, "mutated": 0, "random": 0, "readings": 0, "dead": 0}
    while sum(counts[k] for k in ("valid", "mutated", "random")) < n:
        topic, payload, expected = valid_json(rng)
        batch, dead = parse_json_payload(topic, payload, MAPPING, NOW)
        assert not dead, (payload, [d.reason for d in dead])
        assert same_readings(batch, expected), (payload, list(batch), expected)
        counts["valid"] += 1
        for _ in range(3):
            bad = mutate(rng, payload, JSON_TOKENS)
            batch, dead = parse_json_payload(topic, bad, MAPPING, NOW)
            check_json_result(topic, bad, batch, dead)
            counts["mutated"] += 1
            counts["readings"] += len(batch)
            counts["dead"] += len(dead)
        doc = json.dumps(random_json(rng)).encode()
        batch, dead = parse_json_payload(topic, doc, MAPPING, NOW)
        check_json_result(topic, doc, batch, dead)
        counts["random"] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Sparkplug B
# ---------------------------------------------------------------------------------------------
_TYPES = [pb.INT8, pb.INT16, pb.INT32, pb.INT64, pb.UINT8, pb.UINT16, pb.UINT32, pb.UINT64, pb.FLOAT, pb.DOUBLE,
          pb.BOOLEAN, pb.STRING, pb.DATETIME, pb.BYTES]
_F32 = struct.Struct("<f")


def random_metric(rng: random.Random, alias: int, named: bool) -> pb.Metric:
    dt = rng.choice(_TYPES)
    if dt in pb.INT_TYPES:
        bits, signed = pb.INT_TYPES[dt]
        v = rng.randint(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else rng.randint(0, (1 << bits) - 1)
    elif dt == pb.FLOAT:
        v = _F32.unpack(_F32.pack(rng.uniform(-1e6, 1e6)))[0]
    elif dt == pb.DOUBLE:
        v = rng.uniform(-1e300, 1e300)
    elif dt == pb.BOOLEAN:
        v = rng.random() < 0.5
    elif dt == pb.BYTES:
        v = rng.randbytes(rng.randint(0, 6))
    else:
        v = rng.choice(["", "run", "정지", "1.5"])
    return pb.Metric(name=f"m{alias}" if named else None, alias=alias, datatype=dt,
                     timestamp=rng.choice([None, 1_767_225_600_000 + rng.randint(0, 10**7)]), value=v)


SPB_TOPICS = ["spBv1.0/g/NBIRTH/e", "spBv1.0/g/DBIRTH/e/d", "spBv1.0/g/NDATA/e", "spBv1.0/g/DDATA/e/d",
              "spBv1.0/g/NDEATH/e", "spBv1.0/g/DDEATH/e/d"]


def check_spb_result(res, topic: str, payload: bytes) -> None:
    b = res.batch
    assert isinstance(b, Batch)
    assert len(b) or res.dead_letters or res.births or res.deaths or res.skipped or res.protocol, (topic, payload)
    for d in res.dead_letters:
        assert d.reason and not d.reason.startswith("internal"), d.reason
    if len(b):
        good = b.quality < BAD
        assert np.isfinite(b.value[good]).all()
        assert (b.ts >= 0).all()


def fuzz_sparkplug(n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    decoder = SparkplugDecoder(unmapped="accept", rebirth_min_interval_s=0)
    decoder.add_tag("s/a/l/c/m/one", "g/e/d:m1", -10, 10)
    counts = {"valid": 0, "mutated": 0, "random": 0, "decode_errors": 0, "readings": 0, "dead": 0}
    seq = 0
    while sum(counts[k] for k in ("valid", "mutated", "random")) < n:
        topic = rng.choice(SPB_TOPICS)
        birth = "BIRTH" in topic
        metrics = [random_metric(rng, a, birth or rng.random() < 0.2) for a in range(1, rng.randint(1, 6) + 1)]
        if topic.endswith("NBIRTH/e"):
            metrics.insert(0, pb.Metric(name="bdSeq", datatype=pb.INT64, value=rng.randint(0, 255)))
            seq = 0
        p = pb.Payload(timestamp=1_767_225_600_000, metrics=metrics, seq=seq)
        seq = (seq + 1) % 256
        wire = pb.encode_payload(p)
        back = pb.decode_payload(wire)
        assert back.seq == p.seq and back.timestamp == p.timestamp and len(back.metrics) == len(p.metrics)
        for a, b in zip(p.metrics, back.metrics, strict=True):
            assert (a.name, a.alias, a.datatype, a.timestamp, a.value) == (b.name, b.alias, b.datatype, b.timestamp,
                                                                           b.value), (a, b)
        res = decoder.handle(topic, wire, NOW)
        check_spb_result(res, topic, wire)
        counts["valid"] += 1
        for _ in range(3):
            bad = mutate(rng, wire, PB_TOKENS)
            try:
                pb.decode_payload(bad)
            except pb.SparkplugDecodeError:
                counts["decode_errors"] += 1
            t = rng.choice(SPB_TOPICS)
            res = decoder.handle(t, bad, NOW)
            check_spb_result(res, t, bad)
            counts["mutated"] += 1
            counts["readings"] += len(res.batch)
            counts["dead"] += len(res.dead_letters)
        junk = rng.randbytes(rng.randint(0, 40))
        try:
            pb.decode_payload(junk)
        except pb.SparkplugDecodeError:
            counts["decode_errors"] += 1
        t = rng.choice(SPB_TOPICS)
        res = decoder.handle(t, junk, NOW)
        check_spb_result(res, t, junk)
        counts["random"] += 1
    return counts


def test_fuzz_payload_parsers_with_more_than_100k_inputs():
    js = fuzz_json(N_JSON, seed=1)
    sp = fuzz_sparkplug(N_SPARKPLUG, seed=2)
    total = sum(js[k] for k in ("valid", "mutated", "random")) + sum(sp[k] for k in ("valid", "mutated", "random"))
    assert total >= 100_000, (js, sp)
    # the generators reach both outcomes, not only one
    assert js["valid"] >= 10_000 and js["readings"] > 1_000 and js["dead"] > 10_000, js
    assert sp["valid"] >= 10_000 and sp["readings"] > 1_000 and sp["dead"] > 1_000 and sp["decode_errors"] > 1_000, sp


# ---------------------------------------------------------------------------------------------
# structure-aware cases (hypothesis)
# ---------------------------------------------------------------------------------------------
_paths = st.sampled_from(["a/b/c/d/e/x", "a/b/c/d/e/y", "z/한/1"])
_readings = st.lists(st.tuples(_paths, st.integers(0, 2**63 - 1), st.floats(), st.integers(0, 255)),
                     min_size=1, max_size=25)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(_readings)
def test_uns_round_trip_is_exact(readings):
    batch = Batch.from_readings(readings)
    back = Batch.concat([decode_uns(t, p) for t, p in encode_uns_batch(batch)])
    for path in batch.paths:
        a, b = batch.for_paths([path]), back.for_paths([path])
        assert a.ts.tolist() == b.ts.tolist() and a.quality.tolist() == b.quality.tolist()
        assert np.array_equal(a.value, b.value, equal_nan=True)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
                         st.sampled_from(["value", "ts", "q", "a", "b", "t", "v"]), kids, max_size=4), max_leaves=12)


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["f/num", "f/obj", "f/batch", "f/w/1/x"]), _json)
def test_any_json_document_gives_readings_or_dead_letters(topic, doc):
    payload = json.dumps(doc).encode()
    batch, dead = parse_json_payload(topic, payload, MAPPING, NOW)
    check_json_result(topic, payload, batch, dead)
    try:
        decode_uns("a/b", payload)
    except PayloadError:
        pass


@settings(max_examples=400, deadline=None, database=None)
@given(st.binary(max_size=120))
def test_sparkplug_decoder_only_raises_its_own_error(data):
    try:
        p = pb.decode_payload(data)
    except pb.SparkplugDecodeError as e:
        assert str(e)
        return
    assert isinstance(p, pb.Payload)
    # what decodes, re-encodes (when its values fit their datatypes) and decodes the same
    try:
        again = pb.decode_payload(pb.encode_payload(p))
    except ValueError:
        return
    assert [(m.name, m.alias, m.datatype) for m in again.metrics] == [(m.name, m.alias, m.datatype) for m in p.metrics]
