"""A minimal Sparkplug B edge node (publisher), for tests and the virtual factory."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from axline.connect import sparkplug_pb as pb
from axline.connect.broker import new_client
from axline.connect.sparkplug_decode import BDSEQ_METRIC, NAMESPACE, NS_PER_MS, REBIRTH_METRIC

log = logging.getLogger(__name__)


class SparkplugEdgeNode:
    """A minimal Sparkplug B edge node over paho-mqtt (blocking calls; paho's thread does the I/O).

    ``connect`` sets the NDEATH last will (with ``bdSeq``), publishes NBIRTH and a DBIRTH per device.
    ``publish_data`` sends NDATA/DDATA by alias with the next ``seq``. A rebirth command re-publishes
    the births; other commands are appended to ``commands`` and passed to ``on_command``.
    """

    def __init__(self, group: str, edge: str, *, host: str = "127.0.0.1", port: int = 1883,
                 node_metrics: dict[str, int] | None = None, devices: dict[str, dict[str, int]] | None = None,
                 client_id: str | None = None, username: str | None = None, password: str | None = None,
                 on_command: Callable[[str | None, str, Any], None] | None = None) -> None:
        for what, ident in (("group", group), ("edge", edge), *(("device", d) for d in (devices or {}))):
            if not ident or any(c in ident for c in "/+#"):
                raise ValueError(f"{what} id {ident!r} must be non-empty and contain no '/', '+' or '#'")
        self.group, self.edge = group, edge
        self.host, self.port = host, port
        self.on_command = on_command
        self.commands: list[tuple[str | None, str, Any]] = []
        self.rebirth_requests = 0
        self.seq = 0
        self.bdseq = 0
        self._lock = threading.RLock()
        self._metrics: dict[tuple[str | None, str], tuple[int, int]] = {}  # -> (alias, datatype)
        self.values: dict[tuple[str | None, str], Any] = {}
        alias = 0
        for name, dt in (node_metrics or {}).items():
            alias += 1
            self._metrics[(None, name)] = (alias, dt)
        self.devices = {d: dict(ms) for d, ms in (devices or {}).items()}
        for d, ms in self.devices.items():
            for name, dt in ms.items():
                alias += 1
                self._metrics[(d, name)] = (alias, dt)
        self._client = None
        self._cid = client_id or f"axline-edge-{edge}-{secrets.token_hex(4)}"
        self._auth = (username, password)

    def alias(self, name: str, device: str | None = None) -> int:
        """The alias of metric ``name`` (of ``device``)."""
        return self._metrics[(device, name)][0]

    def _topic(self, mtype: str, device: str | None = None) -> str:
        return f"{NAMESPACE}/{self.group}/{mtype}/{self.edge}" + (f"/{device}" if device else "")

    def _next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) % 256
        return s

    def connect(self, timeout_s: float = 5.0) -> None:
        """Connect to the broker with the node's death certificate and publish its birth."""
        client = new_client(self._cid, username=self._auth[0] or None, password=self._auth[1])
        death = pb.encode_payload(pb.Payload(timestamp=int(time.time() * 1000), metrics=[
            pb.Metric(name=BDSEQ_METRIC, datatype=pb.INT64, value=self.bdseq)]))
        client.will_set(self._topic("NDEATH"), death, qos=1, retain=False)
        connected, subscribed = threading.Event(), threading.Event()
        client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
        client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        client.on_message = self._on_command
        client.connect(self.host, self.port, keepalive=30)
        client.loop_start()
        if connected.wait(timeout_s):
            topics = [(self._topic("NCMD"), 1)] + [(self._topic("DCMD", d), 1) for d in self.devices]
            client.subscribe(topics)
        if not subscribed.wait(timeout_s):
            client.loop_stop()
            raise ConnectionError(f"edge node {self.group}/{self.edge}: no connection to {self.host}:{self.port}")
        self._client = client
        self.publish_birth()

    def publish_birth(self) -> None:
        """NBIRTH (seq 0, bdSeq, Node Control/Rebirth, node metrics) and one DBIRTH per device."""
        with self._lock:
            now = int(time.time() * 1000)
            self.seq = 0
            metrics = [pb.Metric(name=BDSEQ_METRIC, timestamp=now, datatype=pb.INT64, value=self.bdseq),
                       pb.Metric(name=REBIRTH_METRIC, timestamp=now, datatype=pb.BOOLEAN, value=False)]
            metrics += self._birth_metrics(None, now)
            self._send("NBIRTH", None, metrics, now)
            for d in self.devices:
                self._send("DBIRTH", d, self._birth_metrics(d, now), now)

    def _birth_metrics(self, device: str | None, now: int) -> list[pb.Metric]:
        out = []
        for (d, name), (alias, dt) in self._metrics.items():
            if d == device:
                v = self.values.get((d, name))
                out.append(pb.Metric(name=name, alias=alias, timestamp=now, datatype=dt, value=v, is_null=v is None))
        return out

    def _send(self, mtype: str, device: str | None, metrics: list[pb.Metric], now: int, qos: int = 0):
        if self._client is None:
            raise ConnectionError(f"edge node {self.group}/{self.edge} is not connected; call connect() first")
        payload = pb.encode_payload(pb.Payload(timestamp=now, metrics=metrics, seq=self._next_seq()))
        return self._client.publish(self._topic(mtype, device), payload, qos=qos)

    def publish_data(self, values: dict[str, Any], device: str | None = None, ts_ns: int | None = None,
                     by_alias: bool = True) -> None:
        """NDATA (``device`` None) or DDATA with ``values`` (metric name -> value), by alias by default."""
        with self._lock:
            now = int(time.time() * 1000)
            tms = now if ts_ns is None else ts_ns // NS_PER_MS
            metrics = []
            for name, v in values.items():
                if (device, name) not in self._metrics:
                    raise KeyError(f"metric {name!r} was not declared for {'the node' if device is None else device}")
                alias, dt = self._metrics[(device, name)]
                self.values[(device, name)] = v
                metrics.append(pb.Metric(name=None if by_alias else name, alias=alias if by_alias else None,
                                         timestamp=tms, datatype=dt, value=v, is_null=v is None))
            self._send("DDATA" if device else "NDATA", device, metrics, now)

    def publish_device_death(self, device: str) -> None:
        """Publish the death of ``device``."""
        with self._lock:
            self._send("DDEATH", device, [], int(time.time() * 1000))

    def _on_command(self, client, userdata, msg) -> None:
        try:
            p = pb.decode_payload(msg.payload)
            parts = msg.topic.split("/")
        except (ValueError, UnicodeDecodeError):
            log.warning("edge node %s/%s: malformed command on %r ignored", self.group, self.edge, msg.topic)
            return
        device = parts[4] if len(parts) == 5 else None
        for m in p.metrics:
            if device is None and m.name == REBIRTH_METRIC and m.value is True:
                self.rebirth_requests += 1
                self.publish_birth()
                continue
            name = m.name
            if name is None and m.alias is not None:
                name = next((n for (d, n), (a, _) in self._metrics.items() if a == m.alias and d == device), None)
            if name is None:
                continue
            self.commands.append((device, name, m.value))
            if self.on_command is not None:
                self.on_command(device, name, m.value)

    def disconnect(self) -> None:
        """A clean shutdown: publish NDEATH, then disconnect (the broker drops the will)."""
        client = self._client
        if client is None:
            return
        death = pb.encode_payload(pb.Payload(timestamp=int(time.time() * 1000), metrics=[
            pb.Metric(name=BDSEQ_METRIC, datatype=pb.INT64, value=self.bdseq)]))
        client.publish(self._topic("NDEATH"), death, qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        self._client = None
        self.bdseq = (self.bdseq + 1) % 256

    def drop(self) -> None:
        """Lose the connection without a DISCONNECT (as a power cut would): the broker publishes the will."""
        client = self._client
        if client is None:
            return
        client.loop_stop()
        sock = client.socket()
        if sock is not None:
            sock.close()
        self._client = None
        self.bdseq = (self.bdseq + 1) % 256
