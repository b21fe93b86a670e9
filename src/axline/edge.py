"""`axline edge`: one PC per line collects its machines and forwards every reading to a central
MQTT broker under unified-namespace topics (the topic is the tag path), with store-and-forward.

The edge keeps its own embedded historian and dashboard (the line keeps working when the network
does not) and publishes each batch as one QoS 1 message per tag (``encode_uns_batch``). A batch
counts as delivered only when the broker acknowledged every message of it; otherwise it waits in
an on-disk spool and is sent again, in order, when the broker is back. A batch that was partly
delivered before a failure is sent again whole: the central server drops readings it already has
(same tag, not newer than what it stored), so nothing is lost and nothing is stored twice.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import threading
import time
from urllib.parse import urlparse

from axline import i18n
from axline.batch import Batch
from axline.connect.broker import new_client
from axline.connect.uns import encode_uns_batch
from axline.spool import DiskSpool, StoreAndForward

log = logging.getLogger(__name__)


def broker_credentials(path: str | None = None) -> tuple[str, str] | None:
    """The edge's broker user and password: from a file (``user`` and ``password`` on two lines, or
    ``user:password`` on one), else from AXLINE_BROKER_USERNAME / AXLINE_BROKER_PASSWORD, else None.
    Never from the command line, where ``ps`` shows them."""
    if path:
        lines = [ln.strip() for ln in open(path, encoding="utf-8").read().splitlines() if ln.strip()]
        if len(lines) == 1 and ":" in lines[0]:
            user, _, password = lines[0].partition(":")
        elif len(lines) == 2:
            user, password = lines
        else:
            raise ValueError(i18n.pair("edge.credentials_file", file=path))
        return user, password
    user = os.environ.get("AXLINE_BROKER_USERNAME")
    if user:
        password = os.environ.get("AXLINE_BROKER_PASSWORD")
        if not password:
            raise ValueError(i18n.pair("edge.password_missing"))
        return user, password
    return None


def is_loopback(host: str) -> bool:
    """True for a broker on this machine (``localhost`` or a loopback address)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class UnsPublisher:
    """A paho-mqtt client that publishes batches under UNS topics and waits for the broker's PUBACKs.

    ``mqtts://`` connects with TLS (verified against ``ca_file`` or the system's CAs); ``credentials``
    are (user, password) from :func:`broker_credentials`. Credentials travel only over TLS, or to a
    broker on this machine, unless ``allow_plain_credentials`` forces it. A broker that refuses the
    connection (wrong password, not authorised) is logged, counted, raised as a system event through
    ``on_event`` and shown in :meth:`status`."""

    def __init__(self, url: str, client_id: str | None = None, timeout_s: float = 5.0, prefix: str = "",
                 credentials: tuple[str, str] | None = None, ca_file: str | None = None,
                 allow_plain_credentials: bool = False, on_event=None) -> None:
        u = urlparse(url)
        if u.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not u.hostname:
            raise ValueError(i18n.pair("edge.bad_url", url=repr(url)))
        if u.password:
            raise ValueError(i18n.pair("edge.password_in_url"))
        self.tls = u.scheme in ("mqtts", "ssl")
        self.host, self.port = u.hostname, u.port or (8883 if self.tls else 1883)
        if credentials is not None and not self.tls and not is_loopback(self.host) and not allow_plain_credentials:
            raise ValueError(i18n.pair("edge.plain_credentials", host=self.host))
        self.on_event = on_event
        self.connect_failures = 0
        self.last_connect_error: str | None = None
        self._failing_reason: str | None = None
        self.timeout_s = timeout_s
        self.prefix = prefix
        self.connected = threading.Event()
        self.messages = 0
        cid = client_id or f"axline-edge-{secrets.token_hex(4)}"
        if credentials is None and u.username:
            raise ValueError(i18n.pair("edge.user_without_password"))
        if ca_file and not self.tls:
            raise ValueError(i18n.pair("edge.ca_needs_tls"))
        user, password = credentials if credentials is not None else (None, None)
        self.client = new_client(cid, username=user, password=password, tls=self.tls, ca_file=ca_file)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.5, 10)
        self.client.on_connect = lambda c, u_, f, rc, p: self._on_connect(rc)
        self.client.on_disconnect = lambda c, u_, f, rc, p: self.connected.clear()

    def _on_connect(self, rc) -> None:
        if not getattr(rc, "is_failure", bool(rc)):
            if self._failing_reason is not None:
                log.info("broker %s:%s accepted the connection again", self.host, self.port)
            self._failing_reason = None
            self.connected.set()
            return
        reason = str(rc)
        self.connect_failures += 1
        self.last_connect_error = reason
        log.warning("broker %s:%s refused the connection: %s", self.host, self.port, reason)
        if reason != self._failing_reason:  # one event per new reason, not one per retry
            self._failing_reason = reason
            if self.on_event is not None:
                try:
                    self.on_event("uplink.broker_refused", "error",
                                  i18n.text("event.uplink.broker_refused", host=self.host, port=self.port, reason=reason),
                                  {"reason": reason, "host": self.host, "port": self.port})
                except Exception:  # the event sink must not break paho's network thread
                    log.exception("could not raise the broker-refused event")

    def status(self) -> dict:
        """Broker address, TLS, connection state and failures for health."""
        return {"host": self.host, "port": self.port, "tls": self.tls, "connected": self.connected.is_set(),
                "connect_failures": self.connect_failures, "last_connect_error": self.last_connect_error}

    def start(self) -> None:
        """Connect to the broker in the background."""
        self.client.connect_async(self.host, self.port, keepalive=15)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect from the broker."""
        self.client.disconnect()
        self.client.loop_stop()

    def publish_batch(self, batch: Batch) -> None:
        """Publish and wait for every PUBACK; raise ConnectionError if the broker did not take it all."""
        if not self.connected.is_set():
            raise ConnectionError(f"not connected to the broker {self.host}:{self.port}")
        infos = []
        for topic, payload in encode_uns_batch(batch, self.prefix):
            info = self.client.publish(topic, payload, qos=1)
            if info.rc != 0:
                raise ConnectionError(f"publish to {topic!r} failed (paho error {info.rc})")
            infos.append(info)
        deadline = time.monotonic() + self.timeout_s  # one deadline for the whole batch, not one per message
        for info in infos:
            try:
                info.wait_for_publish(max(0.001, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as e:
                raise ConnectionError(f"publish failed: {e}") from None
            if not info.is_published():
                raise ConnectionError(f"the broker {self.host}:{self.port} did not acknowledge within "
                                      f"{self.timeout_s} s")
        self.messages += len(infos)


def attach_uplink(service, broker_url: str, spool_mb: float = 1024.0, credentials: tuple[str, str] | None = None,
                  ca_file: str | None = None, client_id: str | None = None,
                  allow_plain_credentials: bool = False) -> StoreAndForward:
    """Forward everything the service's bus carries to the central broker, through a disk spool."""
    import asyncio

    safety = getattr(service, "safety", None)
    pub = UnsPublisher(broker_url, client_id=client_id, credentials=credentials, ca_file=ca_file,
                       allow_plain_credentials=allow_plain_credentials,
                       on_event=safety.system_event if safety is not None else None)
    pub.start()
    spool = DiskSpool(os.path.join(service.plant.base_dir, "data", "spool", "uplink"), max_bytes=int(spool_mb * 2**20))
    uplink = StoreAndForward(pub.publish_batch, spool, retry_on=(ConnectionError, OSError, TimeoutError),
                             on_event=safety.system_event if safety is not None else None, name="uplink")
    service.bus.subscribe("uplink", uplink.put)
    service._tasks.append(asyncio.create_task(uplink.run(), name="uplink"))
    service.uplink = uplink
    service.publisher = pub
    return uplink
