"""The unified namespace (UNS): the payload codec the edge publishes with, and the central server's
connector that reads it.

Codec: the topic is the tag path (after an optional prefix) and the payload ``{"ts": ns, "value": v,
"q": code}`` or the batch form ``{"ts": [...], "value": [...], "q": [...]}``; ``encode_uns_batch``
and ``decode_uns`` are exact inverses.

Connector: subscribe to unified-namespace topics on the central broker, where the payload is what
``axline edge`` publishes. The subscription is a persistent MQTT session (a fixed client id,
clean_session false, QoS 1), so messages the broker accepted while this server was away wait at the
broker and arrive when it is back; together with the edges' store-and-forward and the service's
drop of repeats, every reading arrives once.
"""

from __future__ import annotations

import json
import math
import socket
from typing import Any

import numpy as np

from axline.batch import Batch
from axline.connect.broker import BROKER_OPTIONS, BrokerConnector
from axline.connect.deadletter import DeadLetter
from axline.connect.json_mapping import JsonAddress, PayloadError
from axline.connect.json_payload import extract, load_json
from axline.connect.registry import Option, Schema


def _num(v: float) -> str:
    if v != v:
        return "null"
    if v == math.inf:
        return "1e999"
    if v == -math.inf:
        return "-1e999"
    return repr(v)


def encode_uns_batch(batch: Batch, prefix: str = "") -> list[tuple[str, bytes]]:
    """One message per tag path: topic = ``prefix`` + path, payload ``{"ts": ns, "value": v[, "q": q]}``
    or the batch form ``{"ts": [...], "value": [...][, "q": [...]]}``. ``q`` is left out when all GOOD.

    Standard JSON: NaN is written as ``null``, +-infinity as ``1e999``/``-1e999`` (which parse back
    to infinity), so ``decode_uns`` gives back exactly the same timestamps, values and qualities.
    """
    n = len(batch)
    if not n:
        return []
    idx = batch.idx
    if len(batch.paths) == 1:
        groups = [np.arange(n)]
    else:
        order = np.argsort(idx, kind="stable")
        cuts = np.flatnonzero(np.diff(idx[order])) + 1
        groups = np.split(order, cuts)
    ts_all, val_all, q_all = batch.ts, batch.value, batch.quality
    out = []
    dumps = json.dumps
    for g in groups:
        topic = prefix + batch.paths[int(idx[g[0]])]
        if len(g) == 1:
            i = int(g[0])
            q = int(q_all[i])
            qs = f',"q":{q}' if q else ""
            body = f'{{"ts":{int(ts_all[i])},"value":{_num(float(val_all[i]))}{qs}}}'
        else:
            vals = val_all[g]
            if np.isfinite(vals).all():
                vs = dumps(vals.tolist(), separators=(",", ":"))
            else:
                vs = "[" + ",".join(_num(v) for v in vals.tolist()) + "]"
            qv = q_all[g]
            qs = f',"q":{dumps(qv.tolist(), separators=(",", ":"))}' if qv.any() else ""
            body = f'{{"ts":{dumps(ts_all[g].tolist(), separators=(",", ":"))},"value":{vs}{qs}}}'
        out.append((topic, body.encode()))
    return out


def decode_uns(topic: str, payload: bytes, prefix: str = "") -> Batch:
    """The inverse of ``encode_uns_batch`` for one message: tag path = topic without ``prefix``.

    Timestamps are integer ns. Raises ``PayloadError`` (a ValueError) saying what is wrong.
    """
    if prefix:
        if not topic.startswith(prefix):
            raise PayloadError(f"topic {topic!r} does not start with the prefix {prefix!r}")
        topic = topic[len(prefix):]
    if not topic:
        raise PayloadError("empty topic: no tag path")
    root = load_json(payload)
    ts, val, q, soft = extract(root, _UNS_ADDR, "ns", 0)
    if soft:
        raise PayloadError(soft)
    if not isinstance(ts, np.ndarray):
        if type(root) is not dict or not any(k in root for k in ("ts", "timestamp")):
            raise PayloadError("the UNS form needs 'ts' (ns since epoch), e.g. {\"ts\": 1767225600000000000, "
                               "\"value\": 1.5}")
        return Batch((topic,), np.zeros(1, dtype=np.int32), np.array([ts], dtype=np.int64),
                      np.array([val], dtype=np.float64), np.array([q], dtype=np.uint8))
    return Batch((topic,), np.zeros(len(ts), dtype=np.int32), ts, val, q)



_UNS_ADDR = JsonAddress("#")


class UnsConnector(BrokerConnector):
    """Reads unified-namespace topics from the central broker in a persistent session."""

    schema = Schema({
        **BROKER_OPTIONS,
        "topics": Option(list, ["#"], help="topic filters to take, e.g. ['changwon/#'] for one site"),
        "prefix": Option(str, "", help="topic prefix in front of the tag path, if the edges use one"),
        "persistent": Option(bool, True, help="keep the broker session (and queued messages) across restarts"),
    })

    def __init__(self, name: str, options: dict[str, Any], tags) -> None:
        super().__init__(name, options, tags)
        if self.options["persistent"] and not self.options["client_id"]:
            # a persistent session needs the same client id every time this server connects
            self.options["client_id"] = f"axline-central-{socket.gethostname()}-{name}"

    def topic_filters(self) -> list[str]:
        """The topics to subscribe (the ``topics`` option)."""
        return list(self.options["topics"])

    def _make_client(self):
        client = super()._make_client()
        if self.options["persistent"]:
            # paho takes clean_session only in its constructor and reads it at connect time
            client._clean_session = False
        return client

    def handle_message(self, topic: str, payload: bytes, now_ns: int) -> tuple[Batch | None, list[DeadLetter]]:
        """Decode a UNS message; an unreadable one becomes a dead letter."""
        try:
            return decode_uns(topic, payload, self.options["prefix"]), []
        except PayloadError as e:
            return None, [DeadLetter(str(e), topic, bytes(payload), now_ns)]
