"""The MQTT broker client that the MQTT, UNS and Sparkplug connectors share (paho-mqtt), its
connection options, and ``new_client``, the one place a paho client is made (also for the edge
uplink and the Sparkplug edge node)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from typing import Any, ClassVar

import numpy as np

from axline.batch import Batch, Row
from axline.connect.base import CONNECTED, Connector, Sink
from axline.connect.deadletter import DeadLetter, DeadLetterStore
from axline.connect.registry import Option, Schema
from axline.plant import Tag

log = logging.getLogger(__name__)


def new_client(client_id: str, *, username: str | None = None, password: str | None = None, tls: bool = False,
               ca_file: str | None = None, clean_session: bool = True, reconnect_on_failure: bool = True,
               buffered_reads: bool = False):
    """A paho-mqtt client (MQTT 3.1.1, callback API 2) with its credentials and TLS set.

    TLS verifies the broker's certificate against ``ca_file`` (default: the system's CAs).
    ``buffered_reads`` reads what the socket holds in one call and handles every whole packet in it
    (for subscribers that receive many small messages).
    """
    import paho.mqtt.client as mqtt

    cls = _buffered_client_class() if buffered_reads else mqtt.Client
    client = cls(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                 clean_session=clean_session, reconnect_on_failure=reconnect_on_failure)
    if username is not None:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set(ca_certs=ca_file)
    return client


_READ_CHUNK = 65536
_READ_REFILLS = 8  # buffer refills per network-loop pass, so that writes and keep-alives still get their turn
_buffered_cls = None


def _buffered_client_class():
    """paho's Client reading the socket in chunks.

    paho reads a packet with three ``recv`` calls (command byte, length, body) and one ``select`` per
    packet. This class serves those reads from a buffer filled by one ``recv`` of up to 64 KiB, and a
    network-loop pass handles every packet the buffer holds before paho waits on ``select`` again, so
    no byte is left waiting in the buffer. A new connection starts with an empty buffer.
    """
    global _buffered_cls
    if _buffered_cls is not None:
        return _buffered_cls
    import paho.mqtt.client as mqtt

    class BufferedClient(mqtt.Client):
        """paho's Client with chunked socket reads."""

        _rsock = None
        _rbuf = b""
        _rpos = 0
        _refills = 0

        def _sock_recv(self, bufsize: int) -> bytes:
            if self._sock is not self._rsock:  # a new connection: nothing of the old one is kept
                self._rsock, self._rbuf, self._rpos = self._sock, b"", 0
            if self._rpos >= len(self._rbuf):
                if self._refills <= 0:
                    return super()._sock_recv(bufsize)
                self._refills -= 1
                data = super()._sock_recv(_READ_CHUNK)
                if len(data) <= bufsize:  # also b"" (closed)
                    return data
                self._rbuf, self._rpos = data, 0
            end = self._rpos + bufsize
            out = self._rbuf[self._rpos:end]
            self._rpos = end
            return out

        def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
            self._refills = _READ_REFILLS
            try:
                rc = super().loop_read(max_packets)
                while (rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None
                       and self._sock is self._rsock and self._rpos < len(self._rbuf)):
                    rc = self._packet_read()
                    if rc > 0:
                        return self._loop_rc_handle(rc)
                    if rc == mqtt.MQTTErrorCode.MQTT_ERR_AGAIN:  # the socket is empty, or paho paused a long
                        rc = mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS  # packet: go on while the buffer holds bytes
                return rc
            finally:
                self._refills = 0

    _buffered_cls = BufferedClient
    return BufferedClient


BROKER_OPTIONS: dict[str, Option] = {
    "host": Option(str, "127.0.0.1", help="broker host name or IP address"),
    "port": Option(int, 1883, min=1, max=65535, help="broker TCP port (8883 is usual with TLS)"),
    "client_id": Option((str, type(None)), None, help="MQTT client id; default axline-<connector>-<random>"),
    "username": Option((str, type(None)), None, help="user name, if the broker asks for one"),
    "password": Option((str, type(None)), None, help="password for username"),
    "tls": Option(bool, False, help="connect with TLS"),
    "ca_file": Option((str, type(None)), None, help="CA certificate file for TLS; default: the system's"),
    "keepalive_s": Option(int, 30, min=5, max=3600, help="MQTT keep-alive interval"),
    "connect_timeout_s": Option(float, 5.0, min=0.5, max=120, help="time allowed to connect and subscribe"),
    "batch_interval_ms": Option(float, 50.0, min=1, max=5000,
                                help="messages arriving within this interval are delivered as one batch"),
    "dead_letter_dir": Option((str, type(None)), None,
                              help="folder for dead letters (JSON lines); default: the last 200 kept in memory"),
    "dead_letter_max_mb": Option(float, 10.0, min=0.01, max=100000, help="disk space the dead letters may use"),
}

_SUBSCRIBE_CHUNK = 100
MAX_PENDING_READINGS = 500_000  # readings received but not yet handed to the service; then backpressure


class _Rows:
    """Single readings gathered as plain Python values in columns; one Batch is made of them per flush."""

    __slots__ = ("lookup", "idx", "ts", "value", "quality")

    def __init__(self) -> None:
        self.lookup: dict[str, int] = {}
        self.idx: list[int] = []
        self.ts: list[int] = []
        self.value: list[float] = []
        self.quality: list[int] = []

    def add(self, rows: list[Row]) -> None:
        """Append rows (path, ts, value, quality)."""
        lookup = self.lookup
        for path, ts, value, q in rows:
            i = lookup.get(path)
            if i is None:
                i = lookup[path] = len(lookup)
            self.idx.append(i)
            self.ts.append(ts)
            self.value.append(value)
            self.quality.append(q)

    def batch(self) -> Batch:
        """The rows as one Batch, in their order."""
        return Batch(list(self.lookup), np.array(self.idx, dtype=np.int32), np.array(self.ts, dtype=np.int64),
                     np.array(self.value, dtype=np.float64), np.array(self.quality, dtype=np.uint8))


class BrokerConnector(Connector):
    """A connector that talks to an MQTT broker through paho-mqtt.

    paho runs its network loop in a thread. Each message is parsed there by ``handle_message``
    (which must not raise; it returns a Batch or, cheaper, a list of plain ``(path, ts, value,
    quality)`` rows, which are gathered in columns of Python values until a flush makes one Batch of
    them); readings are gathered under a lock and handed to the asyncio loop with
    ``loop.call_soon_threadsafe``, which delivers one batch per ``batch_interval_ms``. A lost
    connection ends the session with ConnectionError so that ``Connector.run`` reconnects with backoff.
    """

    schema: ClassVar[Schema]

    def __init__(self, name: str, options: dict[str, Any], tags: list[Tag]) -> None:
        options = self.schema.validate(options) if _needs_defaults(self.schema, options) else options
        super().__init__(name, options, tags)
        max_bytes = max(4096, int(options["dead_letter_max_mb"] * 2**20))
        self.dead_letters = DeadLetterStore(options["dead_letter_dir"], max_bytes=max_bytes,
                                            max_payload_bytes=min(4096, max_bytes // 4))
        self.messages = 0
        self._client = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: list[Batch | _Rows] = []  # in arrival order
        self._rows: _Rows | None = None  # the last entry of _pending while it gathers rows
        self._pending_readings = 0
        self._drained = threading.Event()  # set whenever the pending list is below its bound
        self._drained.set()
        self.backpressure_waits = 0
        self._wake: asyncio.Event | None = None
        self._failure: str | None = None
        self._ready = False
        self._closing = False
        self._sub_mids: set[int] = set()
        self._last_warn = 0.0
        self._unwarned = 0

    # -- hooks ----------------------------------------------------------------------------------
    def topic_filters(self) -> list[str]:
        """What to subscribe to."""
        raise NotImplementedError

    def handle_message(self, topic: str, payload: bytes, now_ns: int
                       ) -> tuple[Batch | list[Row] | None, list[DeadLetter]]:
        """Runs in paho's network thread; must not raise. Readings as a Batch or a list of rows."""
        raise NotImplementedError

    def configure_client(self, client) -> None:
        """Called before connecting (e.g. to set a will)."""

    def on_connected(self, client) -> None:
        """Called in the network thread once the broker accepted the connection."""

    def subscribe_qos(self) -> int:
        """The MQTT QoS of the subscriptions."""
        return 1

    # -- the session ----------------------------------------------------------------------------
    def _make_client(self):
        o = self.options
        cid = o["client_id"] or f"axline-{self.name}-{secrets.token_hex(4)}"
        client = new_client(cid, username=o["username"] or None, password=o["password"], tls=o["tls"],
                            ca_file=o["ca_file"], reconnect_on_failure=False, buffered_reads=True)
        client.connect_timeout = o["connect_timeout_s"]
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.configure_client(client)
        return client

    def _signal(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop is closed: the session is over
                pass

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._failure = f"the broker refused the connection: {reason_code}"
            self._signal()
            return
        try:
            self.on_connected(client)
            filters = list(dict.fromkeys(self.topic_filters()))
            qos = self.subscribe_qos()
            for i in range(0, len(filters), _SUBSCRIBE_CHUNK):
                rc, mid = client.subscribe([(f, qos) for f in filters[i:i + _SUBSCRIBE_CHUNK]])
                if rc != 0:
                    raise ConnectionError(f"subscribe failed (paho error {rc})")
                self._sub_mids.add(mid)
            if not self._sub_mids:
                self._ready = True
        except Exception as e:  # noqa: BLE001 - reported to the session, which raises it
            self._failure = f"{type(e).__name__}: {e}"
        self._signal()

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        refused = [str(rc) for rc in reason_code_list if rc.is_failure]
        if refused:
            self._failure = f"the broker refused a subscription ({', '.join(refused)}); check its ACL"
        self._sub_mids.discard(mid)
        if not self._sub_mids:
            self._ready = True
        self._signal()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._closing:
            if self._failure is None:
                self._failure = f"connection to the broker lost ({reason_code})"
            self._signal()

    def _on_message(self, client, userdata, msg) -> None:
        now = time.time_ns()
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            self._dead([DeadLetter("topic is not UTF-8", repr(msg._topic)[:200], bytes(msg.payload), now)])
            return
        self.messages += 1
        try:
            batch, dead = self.handle_message(topic, msg.payload, now)
        except Exception as e:  # noqa: BLE001 - never let a parser bug stop paho's thread
            log.exception("connector %s: handler failed on topic %r", self.name, topic)
            batch, dead = None, [DeadLetter(f"internal error: {type(e).__name__}: {e}", topic, bytes(msg.payload), now)]
        if dead:
            self._dead(dead)
        if batch is not None and len(batch):
            with self._lock:
                first = self._pending_readings == 0
                if type(batch) is list:
                    rows = self._rows
                    if rows is None:
                        rows = self._rows = _Rows()
                        self._pending.append(rows)
                    rows.add(batch)
                else:
                    self._pending.append(batch)
                    self._rows = None
                self._pending_readings += len(batch)
                full = self._pending_readings >= MAX_PENDING_READINGS
                if full:
                    self._drained.clear()
            if first or full:
                self._signal()
            if full:
                # bounded: stop reading from the broker until the service took what waits (QoS 1
                # messages stay with the broker meanwhile); never drop, never grow without limit
                self.backpressure_waits += 1
                while not self._drained.wait(1.0) and not self._closing and not self._stopping.is_set():
                    self._signal()

    def _dead(self, letters: list[DeadLetter]) -> None:
        try:
            self.dead_letters.add_many(letters, self.name)
        except OSError as e:
            log.error("connector %s: cannot write dead letters: %s", self.name, e)
        now = time.monotonic()
        self._unwarned += len(letters)
        if now - self._last_warn > 10:
            log.warning("connector %s: %d message(s) sent to the dead-letter store; latest: %s (topic %s)",
                        self.name, self._unwarned, letters[-1].reason, letters[-1].topic)
            self._last_warn, self._unwarned = now, 0

    def _flush(self, sink: Sink) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._rows = None
            self._pending_readings = 0
            self._drained.set()
        if pending:
            batch = Batch.concat([p.batch() if type(p) is _Rows else p for p in pending])
            self.readings += len(batch)
            sink(batch)

    async def session(self, sink: Sink) -> None:
        """Connect to the broker, subscribe and hand decoded batches to ``sink`` until the connection fails or
        stops."""
        loop = asyncio.get_running_loop()
        o = self.options
        self._loop, self._wake = loop, asyncio.Event()
        self._failure, self._ready, self._closing = None, False, False
        self._sub_mids = set()
        client = self._make_client()
        started = False
        try:
            await loop.run_in_executor(None, client.connect, o["host"], o["port"], o["keepalive_s"])
            client.loop_start()
            started = True
            deadline = loop.time() + o["connect_timeout_s"]
            while not self._ready and self._failure is None and not self._stopping.is_set():
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise TimeoutError(f"broker {o['host']}:{o['port']} did not acknowledge the connection and "
                                       f"subscriptions within {o['connect_timeout_s']} s") from None
                self._wake.clear()
            if self._failure is not None:
                raise ConnectionError(self._failure)
            if self._stopping.is_set():
                return
            self._client = client
            self.connects += 1
            self._set_state(CONNECTED)
            self._wake.set()  # messages may have arrived while subscribing
            interval = o["batch_interval_ms"] / 1000
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._pending and self._failure is None and not self._stopping.is_set():
                    await asyncio.sleep(interval)  # gather what arrives within the interval
                self._flush(sink)
                if self._failure is not None:
                    raise ConnectionError(self._failure)
                if self._stopping.is_set():
                    return
        finally:
            self._closing = True
            self._client = None
            try:
                self.before_disconnect(client)
                client.disconnect()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                pass
            if started:
                await loop.run_in_executor(None, client.loop_stop)
            self._flush(sink)

    def before_disconnect(self, client) -> None:
        """Called before a clean disconnect (e.g. to publish a death certificate)."""

    def stop(self) -> None:
        """Stop the connector and wake its session so that it ends."""
        super().stop()
        if self._wake is not None:
            self._wake.set()

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      timeout_s: float = 5.0) -> None:
        """Publish and wait until the broker acknowledged it (QoS 1/2) or it was sent (QoS 0)."""
        client = self._client
        if client is None or self.state != CONNECTED:
            raise ConnectionError(f"connector {self.name!r} is not connected to the broker; nothing was published")
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != 0:
            raise ConnectionError(f"connector {self.name!r}: publish to {topic!r} failed (paho error {info.rc})")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, info.wait_for_publish, timeout_s)
        except (RuntimeError, ValueError) as e:
            raise ConnectionError(f"connector {self.name!r}: publish to {topic!r} failed: {e}") from None
        if not info.is_published():
            raise ConnectionError(f"connector {self.name!r}: the broker did not acknowledge the publish to "
                                  f"{topic!r} within {timeout_s} s")



def _needs_defaults(schema: Schema, options: dict[str, Any]) -> bool:
    """Options from the plant loader are complete; hand-made ones (tests, scripts) get defaults."""
    return any(k not in options for k in schema.options)
