"""Publish axline's computed KPIs and alarm states back as OPC UA nodes, for the plant's SCADA / HMI.

``axline serve --config plant.yaml --publish-opcua opc.tcp://127.0.0.1:4841/axline`` starts an OPC UA
server next to the dashboard. Under ``Objects/axline`` (namespace ``urn:axline:kpi``), per line::

    <line>/OEE, Availability, Performance, Quality      Double, 0..1 (NaN while unknown)
    <line>/PartsTotal, PartsGood, PartsRejected         Int64
    <line>/CycleTime_s, Takt_s                          Double
    <line>/Shift, State                                 String
    <line>/Alarms/Active, Unacknowledged, Shelved, Suppressed, HighPriority   Int32
    <line>/<asset>/State                                String (running, down, alarm, ...)
    <line>/<asset>/Alarms                               Int32 (open alarms)

The nodes are read-only and refreshed every ``period_s``. On loopback the endpoint has no security
(a local HMI or gateway); any other address needs axline's certificate and key (``axline certs``)
and a folder of trusted client certificates: only Basic256Sha256 SignAndEncrypt is offered and
only those clients get in.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from axline import i18n

log = logging.getLogger(__name__)
NAMESPACE = "urn:axline:kpi"
ALARM_COUNTS = ("Active", "Unacknowledged", "Shelved", "Suppressed", "HighPriority")


def _loopback(endpoint: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    host = (urlsplit(endpoint).hostname or "").strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class KpiPublisher:
    """An OPC UA server that mirrors KPIs and alarm states of ``service``."""

    def __init__(self, service: Any, endpoint: str, *, certificate: str | None = None, private_key: str | None = None,
                 trusted_clients: str | None = None, period_s: float = 1.0) -> None:
        if not endpoint.startswith("opc.tcp://"):
            raise ValueError(f"the OPC UA endpoint must look like opc.tcp://127.0.0.1:4841/axline, got {endpoint!r}")
        if not _loopback(endpoint) and not (certificate and private_key and trusted_clients):
            raise ValueError(
                f"refusing to publish on {endpoint} without security: give --publish-cert, --publish-key (from "
                "`axline certs`) and --publish-trusted (a folder of client certificates allowed in), or use "
                "opc.tcp://127.0.0.1:...")
        for what, p in (("certificate", certificate), ("private key", private_key)):
            if p and not Path(p).is_file():
                raise FileNotFoundError(f"OPC UA {what} {p} does not exist; make one with `axline certs DIR`")
        if trusted_clients and not Path(trusted_clients).is_dir():
            raise FileNotFoundError(f"trusted client certificate folder {trusted_clients} does not exist")
        if not 0.1 <= period_s <= 60:
            raise ValueError(f"period_s must be between 0.1 and 60, got {period_s}")
        self.svc = service
        self.endpoint = endpoint
        self.certificate, self.private_key, self.trusted = certificate, private_key, trusted_clients
        self.period_s = period_s
        self.server: Any = None
        self.nodes: dict[str, Any] = {}
        self.updates = 0
        self.errors = 0
        self.last_error: str | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the OPC UA server with a node per line KPI and keep the values fresh."""
        from asyncua import Server, ua

        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("axline KPIs")
        if self.certificate:
            await server.load_certificate(self.certificate)
            await server.load_private_key(self.private_key)
        if _loopback(self.endpoint) and not self.certificate:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            from asyncua.crypto.truststore import TrustStore
            from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            store = TrustStore([Path(self.trusted)], [])
            await store.load()
            server.set_certificate_validator(CertificateValidator(
                CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store))
        idx = await server.register_namespace(NAMESPACE)
        root = await server.nodes.objects.add_object(idx, "axline")
        plant = self.svc.plant_json()
        for ln in plant.get("lines", []):
            lo = await root.add_object(idx, ln["id"])
            for name, val, vt in (("OEE", math.nan, ua.VariantType.Double),
                                  ("Availability", math.nan, ua.VariantType.Double),
                                  ("Performance", math.nan, ua.VariantType.Double),
                                  ("Quality", math.nan, ua.VariantType.Double),
                                  ("PartsTotal", 0, ua.VariantType.Int64), ("PartsGood", 0, ua.VariantType.Int64),
                                  ("PartsRejected", 0, ua.VariantType.Int64),
                                  ("CycleTime_s", math.nan, ua.VariantType.Double),
                                  ("Takt_s", float(ln.get("takt_s") or math.nan), ua.VariantType.Double),
                                  ("Shift", "", ua.VariantType.String), ("State", "unknown", ua.VariantType.String)):
                self.nodes[f"{ln['id']}/{name}"] = await lo.add_variable(idx, name, ua.Variant(val, vt))
            al = await lo.add_object(idx, "Alarms")
            for name in ALARM_COUNTS:
                self.nodes[f"{ln['id']}/Alarms/{name}"] = await al.add_variable(idx, name, ua.Variant(0, ua.VariantType.Int32))
            for a in ln.get("assets", []):
                ao = await lo.add_object(idx, a["id"])
                self.nodes[f"{ln['id']}/{a['id']}/State"] = await ao.add_variable(
                    idx, "State", ua.Variant("unknown", ua.VariantType.String))
                self.nodes[f"{ln['id']}/{a['id']}/Alarms"] = await ao.add_variable(
                    idx, "Alarms", ua.Variant(0, ua.VariantType.Int32))
        await server.start()
        self.server = server
        self._task = asyncio.create_task(self._loop(), name="opcua-publish")
        log.info("publishing KPIs and alarm states on %s", self.endpoint)

    async def stop(self) -> None:
        """Stop updating and stop the OPC UA server."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def values(self) -> dict[str, Any]:
        """Node key -> value now (blocking: reads alarms from the historian)."""
        from axline.alarms.lifecycle import load_alarms

        plant = self.svc.plant_json()
        kpi = self.svc.kpi_json().get("lines", {})
        status = self.svc.status_json().get("lines", {})
        now = int(self.svc.now_ns())
        alarms = load_alarms(self.svc.historian, now, max(0, now - 7 * 24 * 3600 * 10**9), None, None, 5000)
        out: dict[str, Any] = {}
        for ln in plant.get("lines", []):
            lid, k, st = ln["id"], kpi.get(ln["id"], {}), status.get(ln["id"], {})
            for name, key in (("OEE", "oee"), ("Availability", "availability"), ("Performance", "performance"),
                              ("Quality", "quality"), ("CycleTime_s", "cycle_time_s")):
                v = k.get(key)
                out[f"{lid}/{name}"] = float(v) if isinstance(v, int | float) else math.nan
            for name, key in (("PartsTotal", "parts_total"), ("PartsGood", "parts_good"),
                              ("PartsRejected", "parts_rejected")):
                out[f"{lid}/{name}"] = int(k.get(key) or 0)
            out[f"{lid}/Shift"] = str(k.get("shift") or "")
            out[f"{lid}/State"] = str(st.get("state") or "unknown")
            prefix = ln.get("path", lid)
            mine = [a for a in alarms if a["source"] == prefix or a["source"].startswith(prefix + "/")]
            out[f"{lid}/Alarms/Active"] = sum(a["state"] in ("active", "acknowledged") for a in mine)
            out[f"{lid}/Alarms/Unacknowledged"] = sum(a["state"] in ("active", "returned") for a in mine)
            out[f"{lid}/Alarms/Shelved"] = sum(a["state"] == "shelved" for a in mine)
            out[f"{lid}/Alarms/Suppressed"] = sum(a["state"] == "suppressed" and a.get("end_ts") is None for a in mine)
            out[f"{lid}/Alarms/HighPriority"] = sum(a["state"] in ("active", "acknowledged", "returned")
                                                    and a["priority"] == "high" for a in mine)
            stations = st.get("stations", {})
            for a in ln.get("assets", []):
                s = stations.get(a["path"], {})
                out[f"{lid}/{a['id']}/State"] = str(s.get("state") or "unknown")
                out[f"{lid}/{a['id']}/Alarms"] = int(s.get("alarms") or 0)
        return out

    async def update_once(self) -> None:
        """Write the current KPIs into their OPC UA nodes."""
        from asyncua import ua

        values = await asyncio.get_running_loop().run_in_executor(None, self.values)
        for key, v in values.items():
            node = self.nodes.get(key)
            if node is None:
                continue
            vt = (ua.VariantType.Double if isinstance(v, float) else ua.VariantType.String if isinstance(v, str)
                  else ua.VariantType.Int32 if "/Alarms" in key else ua.VariantType.Int64)
            await node.write_value(ua.Variant(v, vt))
        self.updates += 1

    async def _loop(self) -> None:
        from axline.service_events import FailureReporter

        failures = FailureReporter(self.svc, self, source="axline/opcua-publish", code="publish.error", log=log)
        await failures.run_forever(self.update_once, lambda: self.period_s, "OPC UA publishing failed")


def add_arguments(parser: Any) -> None:
    """``axline serve`` options that publish KPIs and alarm states over OPC UA."""
    parser.add_argument("--publish-opcua", metavar="ENDPOINT", default=None,
                        help="also serve KPIs and alarm states as OPC UA nodes, e.g. opc.tcp://127.0.0.1:4841/axline")
    parser.add_argument("--publish-cert", default=None, help="axline's certificate (from `axline certs`), "
                                                             "needed beyond loopback")
    parser.add_argument("--publish-key", default=None, help="axline's private key, needed beyond loopback")
    parser.add_argument("--publish-trusted", default=None, help="folder of client certificates allowed to connect")


async def start_from_args(service: Any, args: Any) -> KpiPublisher | None:
    """Start the publisher when ``--publish-opcua`` was given."""
    endpoint = getattr(args, "publish_opcua", None)
    if not endpoint:
        return None
    pub = KpiPublisher(service, endpoint, certificate=args.publish_cert, private_key=args.publish_key,
                       trusted_clients=args.publish_trusted)
    await pub.start()
    from axline.service_events import register_worker

    register_worker(service, "opcua_publish", pub)
    print(i18n.say("cli.opcua_publishing", endpoint=endpoint), flush=True)
    return pub
