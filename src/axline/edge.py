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

import logging
import os
import secrets
import threading
import time
from urllib.parse import urlparse

from axline.batch import Batch
from axline.connect.mqtt import encode_uns_batch
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
            raise ValueError(f"{path}: write the user name and the password on two lines (or user:password)")
        return user, password
    user = os.environ.get("AXLINE_BROKER_USERNAME")
    if user:
        password = os.environ.get("AXLINE_BROKER_PASSWORD")
        if not password:
            raise ValueError("AXLINE_BROKER_USERNAME is set but AXLINE_BROKER_PASSWORD is not")
        return user, password
    return None


class UnsPublisher:
    """A paho-mqtt client that publishes batches under UNS topics and waits for the broker's PUBACKs.

    ``mqtts://`` connects with TLS (verified against ``ca_file`` or the system's CAs); ``credentials``
    are (user, password) from :func:`broker_credentials`."""

    def __init__(self, url: str, client_id: str | None = None, timeout_s: float = 5.0, prefix: str = "",
                 credentials: tuple[str, str] | None = None, ca_file: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        u = urlparse(url)
        if u.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not u.hostname:
            raise ValueError(f"--broker: {url!r} is not an MQTT URL; use mqtts://host:8883 (or mqtt://host:1883)")
        if u.password:
            raise ValueError("--broker: do not put the password in the URL (ps shows it to everyone); use "
                             "--broker-credentials FILE or AXLINE_BROKER_USERNAME / AXLINE_BROKER_PASSWORD")
        self.tls = u.scheme in ("mqtts", "ssl")
        self.host, self.port = u.hostname, u.port or (8883 if self.tls else 1883)
        self.timeout_s = timeout_s
        self.prefix = prefix
        self.connected = threading.Event()
        self.messages = 0
        cid = client_id or f"axline-edge-{secrets.token_hex(4)}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311,
                                  clean_session=True)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.5, 10)
        self.client.on_connect = lambda c, u_, f, rc, p: (self.connected.set() if not rc.is_failure else None)
        self.client.on_disconnect = lambda c, u_, f, rc, p: self.connected.clear()
        if credentials is not None:
            self.client.username_pw_set(*credentials)
        elif u.username:
            raise ValueError("--broker: a user name without a password; use --broker-credentials FILE")
        if self.tls:
            import ssl

            self.client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        elif ca_file:
            raise ValueError("--broker-ca needs an mqtts:// broker URL")

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=15)
        self.client.loop_start()

    def stop(self) -> None:
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
                  ca_file: str | None = None, client_id: str | None = None) -> StoreAndForward:
    """Forward everything the service's bus carries to the central broker, through a disk spool."""
    import asyncio

    pub = UnsPublisher(broker_url, client_id=client_id, credentials=credentials, ca_file=ca_file)
    pub.start()
    spool = DiskSpool(os.path.join(service.plant.base_dir, "data", "spool", "uplink"), max_bytes=int(spool_mb * 2**20))
    safety = getattr(service, "safety", None)
    uplink = StoreAndForward(pub.publish_batch, spool, retry_on=(ConnectionError, OSError, TimeoutError),
                             on_event=safety.system_event if safety is not None else None, name="uplink")
    service.bus.subscribe("uplink", uplink.put)
    service._tasks.append(asyncio.create_task(uplink.run(), name="uplink"))
    service.uplink = uplink
    service.publisher = pub
    return uplink
