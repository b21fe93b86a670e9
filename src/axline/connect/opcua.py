"""OPC UA connector (asyncua): subscriptions delivering whole batches, polling as fallback, writes,
and a secure channel (Basic256Sha256, Sign or SignAndEncrypt) with certificates and user/password.

A tag's ``source.address`` is either a full NodeId (``ns=2;s=Line1.Temp``, ``i=2258``) or a string
identifier in the namespace named by the ``namespace`` option (the virtual factory's default).

Security (certificates)
-----------------------
Plain ``security_policy: None`` sends everything in clear text; use it only on an isolated machine
network. For ``Basic256Sha256``:

1. Make axline's own application certificate and key once (self-signed, valid 2 years)::

       python -m axline.connect.certs /etc/axline/pki     # axline_cert.pem, axline_key.pem

   or from Python ``axline.connect.certs.create_self_signed_certificate(cert, key)``. The key is
   written readable only by its owner; keep it on the axline PC. The certificate's application URI
   (``urn:axline:client`` unless ``--uri``) is sent to the server as axline's ApplicationUri.
2. Trust the certificate on the server: copy ``axline_cert.pem`` (or ``--der``) into the server's
   trusted-client folder, or accept it in the PLC/server's certificate page after a first attempt
   (many servers put an unknown client into a "rejected" list you can move to "trusted").
3. Pin the server: save the server's certificate (from its certificate page, or the one UaExpert
   shows) and give it as ``server_certificate``. Without it axline takes whatever certificate the
   server's endpoint list shows (trust on first use), which a man in the middle could replace.
4. In the plant file::

       connectors:
         - name: press_plc
           type: opcua
           endpoint: opc.tcp://192.168.0.10:4840
           security_policy: Basic256Sha256
           security_mode: SignAndEncrypt        # or Sign: signed, not encrypted
           certificate: /etc/axline/pki/axline_cert.pem
           private_key: /etc/axline/pki/axline_key.pem
           server_certificate: /etc/axline/pki/press_plc.der
           username: axline
           password: "..."

Certificate and key files may be PEM or DER, whatever their names. Relative paths are taken
relative to the plant file's folder by the service (it resolves ``certificate``, ``private_key``
and ``server_certificate`` like other paths), and relative to the working folder when the
connector is built directly. A missing or unreadable file, a key that does not belong to the
certificate, or an expired certificate stops the connector at start with a ValueError that says
what to do. A refused password, an untrusted certificate or a policy the server does not offer
shows in the connector's ``last_error`` (and the dashboard) while it keeps retrying.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import math
from dataclasses import dataclass

import numpy as np
from asyncua import Client, ua
from asyncua.common.subscription import Subscription
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.crypto.uacrypto import CertProperties, x509_from_der
from cryptography.hazmat.primitives import serialization

from axline.batch import BAD, BAD_NO_CONNECTION, BAD_OUT_OF_RANGE, BAD_SENSOR, GOOD, UNCERTAIN, Batch
from axline.connect import certs
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
                stamped_here = t is None
                if stamped_here:  # the server gave no time: stamp on arrival, and say so
                    now = now or self._now_ns()
                    t = now
                v = dv.Value.Value if dv.Value is not None else None
                qual = _status_quality(dv.StatusCode.value) if dv.StatusCode is not None else GOOD
                if stamped_here and qual == GOOD:
                    qual = UNCERTAIN
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


_POLICIES = {"Basic256Sha256": SecurityPolicyBasic256Sha256}
_MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}

# status codes of a refused login, and of a refused secure channel, turned into errors that say what to do
_LOGIN_REFUSED = {ua.StatusCodes.BadUserAccessDenied, ua.StatusCodes.BadIdentityTokenInvalid,
                  ua.StatusCodes.BadIdentityTokenRejected}
_CHANNEL_REFUSED = {ua.StatusCodes.BadSecurityPolicyRejected, ua.StatusCodes.BadSecurityModeRejected,
                    ua.StatusCodes.BadSecurityChecksFailed, ua.StatusCodes.BadCertificateInvalid,
                    ua.StatusCodes.BadCertificateUntrusted, ua.StatusCodes.BadCertificateTimeInvalid,
                    ua.StatusCodes.BadCertificateUriInvalid, ua.StatusCodes.BadCertificateUseNotAllowed,
                    ua.StatusCodes.BadCertificateRevoked, ua.StatusCodes.BadCertificateIssuerRevoked,
                    ua.StatusCodes.BadCertificateRevocationUnknown, ua.StatusCodes.BadCertificateHostNameInvalid,
                    ua.StatusCodes.BadNoValidCertificates}


def _policy_name(ep: ua.EndpointDescription) -> str:
    return ep.SecurityPolicyUri.rsplit("#", 1)[-1]


def _first_certificate(der: bytes) -> bytes:
    """The first certificate of a DER certificate or chain (servers may announce a chain)."""
    return x509_from_der(der).public_bytes(serialization.Encoding.DER)


def _thumbprint(der: bytes) -> str:
    """The SHA-1 thumbprint of a DER certificate as OPC UA tools show it (hex, upper case)."""
    return hashlib.sha1(der).hexdigest().upper()


@dataclass(frozen=True)
class _Security:
    """axline's certificate material, read and checked once when the connector is built."""

    policy: type
    mode: ua.MessageSecurityMode
    cert_der: bytes
    key_der: bytes
    server_cert_der: bytes | None
    application_uri: str
    cert_path: str


class OpcUaConnector(Connector):
    """Reads an OPC UA server by subscription (or polling), with optional security, and writes setpoints."""
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
        "security_policy": Option(str, "None", choices=("None", *_POLICIES),
                                  help="secure channel: None (clear text) or Basic256Sha256 (needs certificate)"),
        "security_mode": Option(str, "SignAndEncrypt", choices=tuple(_MODES),
                                help="with a security policy: Sign, or SignAndEncrypt (signed and encrypted)"),
        "certificate": Option((str, type(None)), None,
                              help="axline's client certificate file (PEM or DER); make one with "
                                   "`python -m axline.connect.certs <folder>`"),
        "private_key": Option((str, type(None)), None, help="the private key file of certificate (PEM or DER)"),
        "private_key_password": Option((str, type(None)), None, help="password of private_key, if it has one"),
        "server_certificate": Option((str, type(None)), None,
                                     help="the server's certificate file, to pin it (recommended); "
                                          "without it the one the server announces is trusted"),
        "application_uri": Option((str, type(None)), None,
                                  help="axline's ApplicationUri; default: the URI in certificate"),
        "timeout_s": Option(float, 5.0, min=0.5, max=120, help="request timeout"),
    })

    def __init__(self, name, options, tags) -> None:
        super().__init__(name, options, tags)
        self._client: Client | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._security = self._load_security()

    def _load_security(self) -> _Security | None:
        """Read and check the certificate files now, so a mistake stops the connector at start."""
        o = self.options
        policy = o.get("security_policy", "None")
        if policy == "None":
            if o.get("certificate") or o.get("server_certificate"):
                log.warning("connector %s: certificate files are set but security_policy is None; "
                            "they are not used (set security_policy: Basic256Sha256)", self.name)
            return None
        where = f"connector {self.name!r}"
        missing = [k for k in ("certificate", "private_key") if not o.get(k)]
        if missing:
            raise ValueError(f"{where}: security_policy {policy} needs {' and '.join(map(repr, missing))}: "
                             f"the files of axline's own certificate and private key; {certs.MAKE_HINT}")
        cert, cert_der = certs.load_certificate(o["certificate"], f"{where}: certificate")
        key, key_der = certs.load_private_key(o["private_key"], o.get("private_key_password"),
                                              f"{where}: private_key")
        if not certs.key_matches_certificate(key, cert):
            raise ValueError(f"{where}: private_key {o['private_key']!r} does not belong to certificate "
                             f"{o['certificate']!r}; give the key that was made with that certificate")
        if key.key_size < 2048 or key.key_size > 4096:
            raise ValueError(f"{where}: the key of certificate {o['certificate']!r} has {key.key_size} bits; "
                             f"{policy} needs 2048 to 4096; {certs.MAKE_HINT}")
        now = dt.datetime.now(dt.UTC)
        if cert.not_valid_after_utc < now:
            raise ValueError(f"{where}: certificate {o['certificate']!r} expired on "
                             f"{cert.not_valid_after_utc:%Y-%m-%d}; {certs.MAKE_HINT}")
        if cert.not_valid_before_utc > now:
            raise ValueError(f"{where}: certificate {o['certificate']!r} is valid only from "
                             f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check this computer's clock")
        cert_uri = certs.application_uri_of(cert)
        uri = o.get("application_uri") or cert_uri
        if uri is None:
            raise ValueError(f"{where}: certificate {o['certificate']!r} has no application URI in its "
                             f"subjectAltName, which OPC UA servers require; {certs.MAKE_HINT}")
        if cert_uri is not None and uri != cert_uri:
            raise ValueError(f"{where}: application_uri {uri!r} differs from the URI in certificate "
                             f"({cert_uri!r}); servers refuse that: remove application_uri or make a "
                             "certificate with that URI")
        server_der = None
        if o.get("server_certificate"):
            _, server_der = certs.load_certificate(o["server_certificate"], f"{where}: server_certificate")
        return _Security(_POLICIES[policy], _MODES[o.get("security_mode", "SignAndEncrypt")], cert_der, key_der,
                         server_der, uri, str(o["certificate"]))

    async def _connect(self, client: Client) -> None:
        """Set up security and log in; refusals become errors that say what to check."""
        o, s = self.options, self._security
        wanted = f"{o['security_policy']}/{o['security_mode']}" if s is not None else "None"
        try:
            if s is not None:
                client.application_uri = s.application_uri
                await client.set_security(
                    s.policy, CertProperties(s.cert_der, "der"), CertProperties(s.key_der, "der"),
                    server_certificate=CertProperties(s.server_cert_der, "der") if s.server_cert_der else None,
                    mode=s.mode)
            await client.connect()
        except ua.UaStatusCodeError as e:
            code, name = e.code & 0xFFFF0000, type(e).__name__
            if code in _LOGIN_REFUSED:
                raise PermissionError(
                    f"{o['endpoint']} refused the login of user {o.get('username')!r} ({name}): wrong user name "
                    "or password, or the user may not log in; check username/password") from e
            if code in _CHANNEL_REFUSED:
                await self._check_pinned(e)
                raise ConnectionError(
                    f"{o['endpoint']} refused the secure channel ({name}): check that the server offers "
                    f"security {wanted} and trusts axline's certificate "
                    f"({s.cert_path if s else 'none set: set security_policy and certificate'})") from e
            raise
        except ua.UaError as e:
            if str(e).startswith("No matching endpoints"):
                eps = await self._server_endpoints()
                offered = ", ".join(sorted({f"{_policy_name(ep)}/{ep.SecurityMode.name.rstrip('_')}"
                                            for ep in eps})) if isinstance(eps, list) else eps
                raise ConnectionError(
                    f"{o['endpoint']} offers no endpoint with security {wanted}; it offers: {offered}; set "
                    "security_policy and security_mode to one of these") from e
            raise
        except (TimeoutError, ConnectionError, OSError) as e:
            await self._check_pinned(e)
            raise

    async def _server_endpoints(self) -> list[ua.EndpointDescription] | str:
        """The endpoints the server announces (asked over an unsecured channel), or why they could not be read."""
        probe = Client(self.options["endpoint"], timeout=self.options["timeout_s"])
        try:
            return await asyncio.wait_for(probe.connect_and_get_server_endpoints(), self.options["timeout_s"] + 1)
        except Exception as e:  # noqa: BLE001 - only decorates another error
            return f"(could not list them: {type(e).__name__})"

    async def _check_pinned(self, cause: BaseException) -> None:
        """After a failed secure connect with a pinned server certificate: say so if the server's differs."""
        s = self._security
        if s is None or s.server_cert_der is None:
            return
        eps = await self._server_endpoints()
        if not isinstance(eps, list):
            return
        try:
            announced = {_first_certificate(ep.ServerCertificate) for ep in eps
                         if ep.SecurityPolicyUri == s.policy.URI and ep.ServerCertificate}
        except ValueError:
            return
        if announced and s.server_cert_der not in announced:
            got = ", ".join(sorted(_thumbprint(a) for a in announced))
            raise ConnectionError(
                f"{self.options['endpoint']} shows a certificate (SHA-1 thumbprint {got}) other than the pinned "
                f"server_certificate {self.options['server_certificate']!r} ({_thumbprint(s.server_cert_der)}); "
                "if the server's certificate was renewed, save the new one there, otherwise someone may be "
                "between axline and the server") from cause

    def _resolve(self, address: str, ns_idx: int) -> ua.NodeId:
        if address.startswith(("ns=", "i=", "s=", "g=", "b=")):
            return ua.NodeId.from_string(address)
        return ua.NodeId(address, ns_idx)

    async def session(self, sink: Sink) -> None:
        """Connect, resolve the tags' nodes and hand value changes to ``sink`` until the connection fails or
        stops."""
        o = self.options
        # asyncua's keep-alive watchdog defaults to 1 s: a busy server would look dead and the
        # client would reconnect over and over; give it the request timeout instead
        client = Client(o["endpoint"], timeout=o["timeout_s"], watchdog_intervall=max(5.0, o["timeout_s"]))
        if o["username"]:
            client.set_user(o["username"])
            client.set_password(o["password"] or "")
        self._client = client
        await self._connect(client)
        try:
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
        finally:
            await client.disconnect()

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
        # asyncua numbers client handles one after another from the subscription's counter; map them
        # before the request goes out, or the first publish (the initial values) can arrive unmapped
        first = sub._client_handle + 1
        sub.handle_to_idx = {first + i: i for i in range(len(paths))}
        results = await sub._subscribe(nodes, ua.AttributeIds.Value, flt, queuesize=o["queue_size"],
                                       sampling_interval=o["sampling_interval_ms"])
        bad = [p for p, r in zip(paths, results, strict=True) if isinstance(r, ua.StatusCode)]
        if bad:
            log.warning("connector %s: %d tags could not be subscribed (first: %s); check their addresses",
                        self.name, len(bad), bad[0])
            self._report_bad(bad, deliver)
        items = sub._monitored_items
        if any(h in items and items[h].node.nodeid != nodes[i].nodeid for h, i in sub.handle_to_idx.items()):
            # another asyncua numbering: map by node id instead (initial values may then be missed)
            by_node = {n.nodeid: i for i, n in enumerate(nodes)}
            sub.handle_to_idx = {h: by_node[d.node.nodeid] for h, d in items.items() if d.node.nodeid in by_node}
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
        """Write ``value`` to a writable tag in the node's own data type."""
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
        """Log a change of the subscription's status."""
        log.info("connector %s: subscription status %s", self.name, status)
