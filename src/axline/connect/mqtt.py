"""MQTT connector for JSON payloads.

A tag's ``source.address`` names a topic, where in the payload its value is, and options (its
timestamp, quality and write topic); the grammar is in ``json_mapping.py``. Examples::

    plant/line1/press/temp                       payload 21.5, or {"value": 21.5, "ts": 1767225600000}
    sensors/+/data#$.temperature                 {"temperature": 21.5, ...} from any sensor
    press1/status#$.axes[2].load;ts=$.time:iso    {"time": "2026-01-01T00:00:00Z", "axes": [...]}

The value the selector points at may be a number (or true/false), ``null`` (stored as NaN with
quality BAD), an object ``{"value": v, "ts": t, "q": code}`` (``timestamp``/``quality`` also
accepted), or the batch form ``{"ts": [t, ...], "value": [v, ...], "q": [code, ...]}``. Timestamps
without a ``ts=`` option come from the object's ``ts``; without any, the receive time is used. The
unit ``auto`` (default) reads numbers by magnitude (>= 1e17 ns, >= 1e14 us, >= 1e11 ms, else s;
right for times after 1973) and strings as ISO 8601 (UTC when no offset is given).

Writes (only to tags marked ``writable``) publish ``{"ts": ns, "value": v}`` (or the plain number,
option ``write_format``) with QoS 1 to the address's ``write=`` topic, else to ``write_topic``
(default ``{topic}/set``), and wait for the broker's acknowledgement.

The unified namespace is the trivial case: a tag's default address is its path, so a topic equal
to the tag path with payload ``{"ts": ns, "value": v, "q": 0}`` maps without configuration.
``encode_uns_batch`` / ``decode_uns`` in ``uns.py`` are that format's codec (the edge -> central
bridge).

Malformed input never raises out of the parser: ``parse_json_payload`` returns readings (a value
of the wrong type becomes a NaN reading with quality BAD) and ``DeadLetter`` records with the reason.

The grammar is compiled in ``json_mapping.py``, payloads are read in ``json_payload.py``, and the
broker session is ``broker.py``'s, shared with the UNS and Sparkplug connectors.
"""

from __future__ import annotations

import time
from typing import Any

from axline.batch import Batch, Row
from axline.connect.base import check_write
from axline.connect.broker import BROKER_OPTIONS, BrokerConnector
from axline.connect.deadletter import DeadLetter
from axline.connect.json_mapping import (
    TS_UNITS,
    JsonAddress,
    JsonMapping,
    PayloadError,
    check_topic_filter,
    compile_selector,
    parse_address,
)
from axline.connect.json_payload import parse_json_payload, parse_json_readings, timestamp_ns
from axline.connect.registry import Option, Schema
from axline.plant import Tag

# the JSON grammar's names, importable from the connector that uses them
__all__ = [
    "TS_UNITS",
    "JsonAddress",
    "JsonMapping",
    "MqttConnector",
    "PayloadError",
    "compile_selector",
    "parse_address",
    "parse_json_payload",
    "timestamp_ns",
]


def _format_number(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


class MqttConnector(BrokerConnector):
    """Subscribes to the topics of its tags' addresses and maps JSON payloads to tags."""

    schema = Schema({
        **BROKER_OPTIONS,
        "qos": Option(int, 1, min=0, max=2, help="subscription QoS"),
        "subscribe": Option((list, type(None)), None,
                            help="topic filters to subscribe to instead of the tags' topics, e.g. ['plant/#']"),
        "timestamp_unit": Option(str, "auto", choices=TS_UNITS,
                                 help="unit of numeric timestamps in payloads (auto reads the magnitude)"),
        "unmapped": Option(str, "ignore", choices=("ignore", "deadletter", "uns"),
                           help="messages on topics no tag maps: ignore (counted), deadletter, or uns "
                                "(topic taken as the tag path)"),
        "write_topic": Option(str, "{topic}/set",
                              help="where writes go unless the address has ';write=': {topic} is the tag's "
                                   "topic, {path} its path"),
        "write_format": Option(str, "json", choices=("json", "plain"),
                               help='write payload: json {"ts": ns, "value": v} or plain (the number as text)'),
    })

    def __init__(self, name: str, options: dict[str, Any], tags: list[Tag]) -> None:
        super().__init__(name, options, tags)
        sub = self.options["subscribe"]
        if sub is not None:
            if not sub or not all(isinstance(s, str) for s in sub):
                raise ValueError(f"connector {name!r}: 'subscribe' must be a non-empty list of topic filters")
            for s in sub:
                check_topic_filter(s, f"connector {name!r} subscribe")
        self.mapping = JsonMapping.from_tags(tags, self.options["timestamp_unit"], self.options["unmapped"])
        self._addr = {t.path: parse_address(t.source.address if t.source else t.path) for t in tags}
        try:
            self.options["write_topic"].format(topic="t", path="p")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"connector {name!r}: write_topic {self.options['write_topic']!r} may only use "
                             f"{{topic}} and {{path}} ({e})") from None

    def topic_filters(self) -> list[str]:
        """The ``subscribe`` option, else the distinct topics of the tags."""
        return list(self.options["subscribe"] or self.mapping.topic_filters())

    def subscribe_qos(self) -> int:
        """The QoS of the subscriptions (the ``qos`` option)."""
        return self.options["qos"]

    def handle_message(self, topic: str, payload: bytes, now_ns: int
                       ) -> tuple[Batch | list[Row], list[DeadLetter]]:
        """Decode a JSON message through the tag mapping (single readings as plain rows, no arrays per
        message); unreadable parts become dead letters."""
        return parse_json_readings(topic, payload, self.mapping, now_ns)

    def write_topic_of(self, tag: Tag) -> str:
        """The topic a write to ``tag`` publishes to."""
        addr = self._addr.get(tag.path)
        if addr is None:
            raise ValueError(f"tag {tag.path} does not belong to connector {self.name!r}")
        if addr.write_topic:
            return addr.write_topic
        topic = self.options["write_topic"].format(topic=addr.topic, path=tag.path)
        try:
            check_topic_filter(topic, f"write topic of {tag.path}", wildcards=False)
        except ValueError:
            raise ValueError(f"tag {tag.path} reads from {addr.topic!r}, which has a wildcard; give it a write "
                             f"topic in its address, e.g. '{addr.topic.replace('#', 'x').replace('+', 'x')}"
                             f";write=<topic>'") from None
        return topic

    async def write(self, tag: Tag, value: float) -> None:
        """Publish ``value`` to the tag's write topic with QoS 1 and wait for the broker's PUBACK."""
        v = check_write(tag, value)
        topic = self.write_topic_of(tag)
        if self.options["write_format"] == "plain":
            payload = _format_number(v)
        else:
            payload = f'{{"ts":{time.time_ns()},"value":{_format_number(v)}}}'
        await self.publish(topic, payload.encode(), qos=1)
