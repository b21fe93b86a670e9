"""OPC UA connector (asyncua): subscriptions delivering whole batches, polling as fallback, writes.

A tag's ``source.address`` is either a full NodeId (``ns=2;s=Line1.Temp``, ``i=2258``) or a string
identifier in the namespace named by the ``namespace`` option (the virtual factory's default).
"""

from __future__ import annotations

import asyncio
import logging
import math

import numpy as np
from asyncua import Client, ua
from asyncua.common.subscription import Subscription

from axline.batch import BAD, BAD_NO_CONNECTION, BAD_OUT_OF_RANGE, BAD_SENSOR, GOOD, UNCERTAIN, Batch
from axline.connect.base import CONNECTED, Connector, Sink
from axline.connect.registry import Option, Schema
from axline.plant import Tag

log = logging.getLogger(__name__)
_EPOCH_NS = 0


_BAD_CODES = {
    ua.StatusCodes.BadSensorFailure: BAD_SENSOR,
    ua.StatusCodes.BadDeviceFailure: BAD_SENSOR,
    ua.StatusCodes.BadOutOfRange: BAD_OUT_OF_RANGE,
    ua.StatusCodes.BadNoCommunication: BAD_NO_CONNECTION,
    ua.StatusCodes.BadNotConnected: BAD_NO_CONNECTION,
    ua.StatusCodes.BadCommunicationError: BAD_NO_CONNECTION,
}


def _status_quality(code: int) -> int:
    severity = code >> 30
    if severity == 0:
        return GOOD
    if severity == 1:
        return UNCERTAIN
    return _BAD_CODES.get(code & 0xFFFF0000, BAD)


def _to_ns(dt) -> int | None:
    if dt is None:
        return None
    return int(dt.timestamp() * 1_000_000) * 1000


class _BatchSubscription(Subscription):
    """A subscription that turns each publish response into one Batch instead of one task per value."""

    def __init__(self, *args, on_batch, now_ns, **kw) -> None:
        super().__init__(*args, **kw)
        self._on_batch = on_batch
        self._now_ns = now_ns
        self.handle_to_idx: dict[int, int] = {}
        self.paths: tuple[str, ...] = ()

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:  # type: ignore[override]
        import time

        self.last_publish_at = time.monotonic()
        data = publish_result.NotificationMessage.NotificationData
        if not data:
            return
        self.last_sequence_number = int(publish_result.NotificationMessage.SequenceNumber)
        idx, ts, val, q = [], [], [], []
        h2i = self.handle_to_idx
        now = None
        for notif in data:
            if not isinstance(notif, ua.DataChangeNotification):
                continue
            for item in notif.MonitoredItems:
                i = h2i.get(item.ClientHandle)
                if i is None:
                    continue
                dv = item.Value
                t = _to_ns(dv.SourceTimestamp) or _to_ns(dv.ServerTimestamp)
                if t is None:
                    now = now or self._now_ns()
                    t = now
                v = dv.Value.Value if dv.Value is not None else None
                qual = _status_quality(dv.StatusCode.value) if dv.StatusCode is not None else GOOD
                try:
                    fv = float(v)
                except (TypeError, ValueError):
                    fv, qual = math.nan, max(qual, BAD)
                idx.append(i)
                ts.append(t)
                val.append(fv)
                q.append(qual)
        if idx:
            self._on_batch(Batch(self.paths, np.array(idx, dtype=np.int32), np.array(ts, dtype=np.int64),
                                 np.array(val, dtype=np.float64), np.array(q, dtype=np.uint8)))


class OpcUaConnector(Connector):
    schema = Schema({
        "endpoint": Option(str, help="server URL, e.g. opc.tcp://192.168.0.10:4840"),
        "namespace": Option(str, "urn:axline:sim", help="namespace URI for addresses that are not full NodeIds"),
        "mode": Option(str, "subscribe", choices=("subscribe", "poll"), help="subscribe, or poll as fallback"),
        "publishing_interval_ms": Option(float, 100.0, min=10, max=60000, help="subscription publishing interval"),
        "sampling_interval_ms": Option(float, 0.0, min=0, max=60000,
                                       help="server sampling interval; 0 = every change"),
        "trigger": Option(str, "status_value", choices=("status_value", "status_value_timestamp"),
                          help="report on a change of value (OPC UA default), or on every new sample"),
        "deadband": Option(float, 0.0, min=0, help="absolute deadband: changes smaller than this are not reported"),
        "queue_size": Option(int, 1000, min=1, max=100000, help="values the server queues per tag between publishes"),
        "poll_interval_ms": Option(float, 1000.0, min=10, max=600000, help="interval in poll mode"),
        "username": Option((str, type(None)), None, help="user name, if the server asks for one"),
        "password": Option((str, type(None)), None, help="password for username"),
        "timeout_s": Option(float, 5.0, min=0.5, max=120, help="request timeout"),
    })

    def __init__(self, name, options, tags) -> None:
        super().__init__(name, options, tags)
        self._client: Client | None = None
        self._nodes: dict[str, ua.NodeId] = {}

    def _resolve(self, address: str, ns_idx: int) -> ua.NodeId:
        if address.startswith(("ns=", "i=", "s=", "g=", "b=")):
            return ua.NodeId.from_string(address)
        return ua.NodeId(address, ns_idx)

    async def session(self, sink: Sink) -> None:
        o = self.options
        # asyncua's keep-alive watchdog defaults to 1 s: a busy server would look dead and the
        # client would reconnect over and over; give it the request timeout instead
        client = Client(o["endpoint"], timeout=o["timeout_s"], watchdog_intervall=max(5.0, o["timeout_s"]))
        if o["username"]:
            client.set_user(o["username"])
            client.set_password(o["password"] or "")
        self._client = client
        async with client:
            ns_idx = 0
            if any(not t.source.address.startswith(("ns=", "i=")) for t in self.tags if t.source):
                try:
                    ns_idx = await client.get_namespace_index(o["namespace"])
                except ValueError:
                    raise RuntimeError(f"namespace {o['namespace']!r} not found on {o['endpoint']}") from None
            self._nodes = {t.path: self._resolve(t.source.address, ns_idx) for t in self.tags if t.source}
            paths = tuple(self._nodes)
            self.connects += 1
            self._set_state(CONNECTED)

            def deliver(batch: Batch) -> None:
                self.readings += len(batch)
                sink(batch)

            if o["mode"] == "poll":
                await self._poll(client, paths, deliver)
            else:
                await self._subscribe(client, paths, deliver)

    async def _subscribe(self, client: Client, paths: tuple[str, ...], deliver) -> None:
        o = self.options
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = o["publishing_interval_ms"]
        params.RequestedLifetimeCount = 10000
        params.RequestedMaxKeepAliveCount = client.get_keepalive_count(o["publishing_interval_ms"])
        params.MaxNotificationsPerPublish = 0  # no limit
        params.PublishingEnabled = True
        params.Priority = 0
        import time

        sub = _BatchSubscription(client.uaclient.session, params, handler=self,
                                 on_batch=deliver, now_ns=time.time_ns)
        await sub.init()
        sub.paths = paths
        nodes = [client.get_node(self._nodes[p]) for p in paths]
        flt = ua.DataChangeFilter()
        flt.Trigger = (ua.DataChangeTrigger.StatusValueTimestamp if o["trigger"] == "status_value_timestamp"
                       else ua.DataChangeTrigger.StatusValue)
        if o["deadband"] > 0:
            flt.DeadbandType = ua.DeadbandType.Absolute
            flt.DeadbandValue = o["deadband"]
        results = await sub._subscribe(nodes, ua.AttributeIds.Value, flt, queuesize=o["queue_size"],
                                       sampling_interval=o["sampling_interval_ms"])
        bad = [p for p, r in zip(paths, results, strict=True) if isinstance(r, ua.StatusCode)]
        if bad:
            log.warning("connector %s: %d tags could not be subscribed (first: %s); check their addresses",
                        self.name, len(bad), bad[0])
            self._report_bad(bad, deliver)
        for handle, data in sub._monitored_items.items():
            p = next((p for p, n in zip(paths, nodes, strict=True) if n.nodeid == data.node.nodeid), None)
            if p is not None:
                sub.handle_to_idx[handle] = paths.index(p)
        try:
            while not self._stopping.is_set():
                await asyncio.sleep(1.0)
                # the session's keep-alive raises through client calls when the server is gone
                await client.check_connection()
        finally:
            try:
                await asyncio.wait_for(sub.delete(), 2)
            except Exception:  # noqa: BLE001 - server may be gone already
                pass

    def _report_bad(self, paths: list[str], deliver) -> None:
        import time

        now = time.time_ns()
        deliver(Batch(paths, np.arange(len(paths)), np.full(len(paths), now), np.full(len(paths), np.nan),
                      np.full(len(paths), BAD_NO_CONNECTION)))

    async def _poll(self, client: Client, paths: tuple[str, ...], deliver) -> None:
        import time

        interval = self.options["poll_interval_ms"] / 1000
        nodeids = [self._nodes[p] for p in paths]
        while not self._stopping.is_set():
            t0 = time.monotonic()
            params = ua.ReadParameters()
            for nid in nodeids:
                rv = ua.ReadValueId()
                rv.NodeId = nid
                rv.AttributeId = ua.AttributeIds.Value
                params.NodesToRead.append(rv)
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            dvs = await client.uaclient.read(params)
            now = time.time_ns()
            ts = np.array([_to_ns(dv.SourceTimestamp) or now for dv in dvs], dtype=np.int64)
            vals, qs = [], []
            for dv in dvs:
                try:
                    vals.append(float(dv.Value.Value))
                    qs.append(_status_quality(dv.StatusCode.value))
                except (TypeError, ValueError, AttributeError):
                    vals.append(math.nan)
                    qs.append(BAD)
            deliver(Batch(paths, np.arange(len(paths)), ts, np.array(vals), np.array(qs)))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - t0)))

    async def write(self, tag: Tag, value: float) -> None:
        if not tag.writable:
            raise PermissionError(f"tag {tag.path} is not writable; mark it 'writable: true' in the plant file")
        if self._client is None or self.state != CONNECTED:
            raise ConnectionError(f"connector {self.name!r} is not connected; the write to {tag.path} was not sent")
        node = self._client.get_node(self._nodes[tag.path])
        vtype = await node.read_data_type_as_variant_type()
        if vtype == ua.VariantType.Boolean:
            variant = ua.Variant(bool(value), vtype)
        elif vtype in (ua.VariantType.Double, ua.VariantType.Float):
            variant = ua.Variant(float(value), vtype)
        else:
            variant = ua.Variant(int(value), vtype)
        await node.write_value(ua.DataValue(variant))

    # asyncua calls these on the handler when given one; the batch path does not need them
    def status_change_notification(self, status) -> None:  # pragma: no cover
        log.info("connector %s: subscription status %s", self.name, status)
