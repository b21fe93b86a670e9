"""The central server's side of edge -> central: subscribe to unified-namespace topics on the central
broker, where the topic is the tag path and the payload is what ``axline edge`` publishes.

The subscription is a persistent MQTT session (a fixed client id, clean_session false, QoS 1), so
messages the broker accepted while this server was away wait at the broker and arrive when it is
back; together with the edges' store-and-forward and the service's drop of repeats, every reading
arrives once.
"""

from __future__ import annotations

import socket
from typing import Any

from axline.batch import Batch
from axline.connect.deadletter import DeadLetter
from axline.connect.mqtt import BROKER_OPTIONS, BrokerConnector, PayloadError, decode_uns
from axline.connect.registry import Option, Schema


class UnsConnector(BrokerConnector):
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
        return list(self.options["topics"])

    def _make_client(self):
        client = super()._make_client()
        if self.options["persistent"]:
            # paho takes clean_session only in its constructor and reads it at connect time
            client._clean_session = False
        return client

    def handle_message(self, topic: str, payload: bytes, now_ns: int) -> tuple[Batch | None, list[DeadLetter]]:
        try:
            return decode_uns(topic, payload, self.options["prefix"]), []
        except PayloadError as e:
            return None, [DeadLetter(str(e), topic, bytes(payload), now_ns)]
