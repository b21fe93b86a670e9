"""Sparkplug B connector (a host application): follows the births, data and deaths of the edge
nodes of a group, requests rebirths after a gap, and writes commands.

Topics, the tag mapping (explicit ``group/edge/device:Metric`` or the metric's default path) and
the decoder are described and implemented in ``sparkplug_decode.py``; the broker session is
``broker.py``'s; ``sparkplug_node.py`` is a small edge node publisher.

Writes publish NCMD/DCMD with the metric (QoS 0, as Sparkplug B requires for commands).
"""

from __future__ import annotations

import time
from typing import Any

from axline.batch import Batch
from axline.connect import sparkplug_pb as pb
from axline.connect.base import CONNECTED, check_write
from axline.connect.broker import BROKER_OPTIONS, BrokerConnector
from axline.connect.deadletter import DeadLetter
from axline.connect.registry import Option, Schema
from axline.connect.sparkplug_decode import (
    NAMESPACE,
    NS_PER_MS,
    SparkplugDecoder,
    SparkplugResult,
    command_value,
    default_path,
    parse_address,
    parse_topic,
    rebirth_payload,
)
from axline.connect.sparkplug_node import SparkplugEdgeNode
from axline.plant import Tag

# the names of the Sparkplug B parts, importable from the connector
__all__ = [
    "NAMESPACE",
    "SparkplugConnector",
    "SparkplugDecoder",
    "SparkplugEdgeNode",
    "SparkplugResult",
    "command_value",
    "default_path",
    "parse_address",
    "parse_topic",
    "rebirth_payload",
]


class SparkplugConnector(BrokerConnector):
    """A Sparkplug B host application: reads births/data/deaths, requests rebirths, writes commands."""

    schema = Schema({
        **BROKER_OPTIONS,
        "group": Option((str, type(None)), None, help="Sparkplug group id to follow; default: all groups"),
        "unmapped": Option(str, "ignore", choices=("ignore", "deadletter", "accept"),
                           help="metrics no tag maps: ignore (counted), deadletter, or accept under their "
                                "default path"),
        "rebirth_on_gap": Option(bool, True, help="request a rebirth after a seq gap or an unknown alias"),
        "rebirth_min_interval_s": Option(float, 5.0, min=0, max=3600,
                                         help="at most one rebirth request per edge node per interval"),
        "host_id": Option((str, type(None)), None,
                          help="primary host id: publish Sparkplug 3.0 STATE (online/offline) under it"),
    })

    def __init__(self, name: str, options: dict[str, Any], tags: list[Tag]) -> None:
        super().__init__(name, options, tags)
        g = self.options["group"]
        if g is not None and (not g or any(c in g for c in "/+#")):
            raise ValueError(f"connector {name!r}: group {g!r} must be a non-empty id without '/', '+' or '#'")
        self.decoder = SparkplugDecoder(tags, unmapped=self.options["unmapped"],
                                        rebirth_min_interval_s=self.options["rebirth_min_interval_s"])
        self._client_for_thread = None
        self.rebirths_requested = 0
        self.skipped = 0

    def topic_filters(self) -> list[str]:
        """The Sparkplug B topics to subscribe: node and device births, deaths and data."""
        g = self.options["group"] or "+"
        return [f"{NAMESPACE}/{g}/{t}/+" for t in ("NBIRTH", "NDEATH", "NDATA")] + \
               [f"{NAMESPACE}/{g}/{t}/+/+" for t in ("DBIRTH", "DDEATH", "DDATA")]

    def _state_topic(self) -> str:
        return f"{NAMESPACE}/STATE/{self.options['host_id']}"

    def _state_payload(self, online: bool) -> bytes:
        return f'{{"online":{"true" if online else "false"},"timestamp":{int(time.time() * 1000)}}}'.encode()

    def configure_client(self, client) -> None:
        """Set the host application's death certificate (STATE) as the client's will."""
        if self.options["host_id"]:
            client.will_set(self._state_topic(), self._state_payload(False), qos=1, retain=True)

    def on_connected(self, client) -> None:
        """Forget sequence numbers and announce the host application online."""
        self.decoder.reset_sequences()
        if self.options["host_id"]:
            client.publish(self._state_topic(), self._state_payload(True), qos=1, retain=True)

    def before_disconnect(self, client) -> None:
        """Announce the host application offline."""
        if self.options["host_id"]:
            client.publish(self._state_topic(), self._state_payload(False), qos=1, retain=True)

    def handle_message(self, topic: str, payload: bytes, now_ns: int) -> tuple[Batch | None, list[DeadLetter]]:
        """Decode a Sparkplug B message; ask for a rebirth when a sequence gap shows."""
        res = self.decoder.handle(topic, payload, now_ns)
        self.skipped += res.skipped
        if res.rebirth and self.options["rebirth_on_gap"]:
            client = self._client_for_thread
            for group, edge in res.rebirth:
                if client is not None:
                    client.publish(f"{NAMESPACE}/{group}/NCMD/{edge}", rebirth_payload(now_ns // NS_PER_MS), qos=0)
                    self.rebirths_requested += 1
        return res.batch, res.dead_letters

    def _make_client(self):
        client = super()._make_client()
        self._client_for_thread = client
        return client

    async def write(self, tag: Tag, value: float) -> None:
        """Publish a DCMD (or NCMD for a node-level metric) that sets the tag's metric to ``value``."""
        v = check_write(tag, value)
        if self._client is None or self.state != CONNECTED:
            raise ConnectionError(f"connector {self.name!r} is not connected; the write to {tag.path} was not sent")
        where = self.decoder.tag_metric.get(tag.path)
        if where is None:
            raise ConnectionError(f"tag {tag.path}: no edge node has announced it in a birth yet, so it is not known "
                                  f"where to send the write; give it an explicit address 'group/edge/device:Metric'")
        group, edge, device, metric, dt = where
        if not self.decoder.is_online(group, edge, device):
            raise ConnectionError(f"tag {tag.path}: edge node {group}/{edge}" + (f" device {device}" if device else "")
                                  + " is offline (no birth, or a death certificate was received); the write was not sent")
        if dt == pb.UNKNOWN:
            dt = pb.BOOLEAN if tag.kind == "bool" else pb.DOUBLE
        try:
            cv = command_value(dt, v)
        except ValueError as e:
            raise ValueError(f"write to {tag.path}: {e}") from None
        now_ms = int(time.time() * 1000)
        payload = pb.encode_payload(pb.Payload(timestamp=now_ms, metrics=[
            pb.Metric(name=metric, timestamp=now_ms, datatype=dt, value=cv)]))
        topic = f"{NAMESPACE}/{group}/{'DCMD' if device else 'NCMD'}/{edge}" + (f"/{device}" if device else "")
        await self.publish(topic, payload, qos=0)
