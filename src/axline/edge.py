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


class UnsPublisher:
    """A paho-mqtt client that publishes batches under UNS topics and waits for the broker's PUBACKs."""

    def __init__(self, url: str, client_id: str | None = None, timeout_s: float = 5.0, prefix: str = "") -> None:
        import paho.mqtt.client as mqtt

        u = urlparse(url)
        if u.scheme not in ("mqtt", "tcp") or not u.hostname:
            raise ValueError(f"--broker: {url!r} is not an MQTT URL; use mqtt://host:1883")
        self.host, self.port = u.hostname, u.port or 1883
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
        if u.username:
            self.client.username_pw_set(u.username, u.password)

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


def attach_uplink(service, broker_url: str, spool_mb: float = 1024.0) -> StoreAndForward:
    """Forward everything the service's bus carries to the central broker, through a disk spool."""
    import asyncio

    pub = UnsPublisher(broker_url)
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
