"""Sparkplug B connector (a host application), its pure decoder, and a small edge node publisher.

Topic namespace: ``spBv1.0/<group>/<NBIRTH|NDEATH|DBIRTH|DDEATH|NDATA|DDATA|NCMD|DCMD>/<edge>[/<device>]``.

- Births (NBIRTH, DBIRTH) define metric names, datatypes and aliases; later DATA messages may carry
  only aliases. Birth values are readings too.
- Sequence numbers (0..255, wrapping) are tracked per edge node. A gap, a DATA message from a node
  whose birth was not seen, or an unknown alias is sent to the dead-letter store with the reason,
  and a rebirth is requested (NCMD ``Node Control/Rebirth`` = true, at most once per
  ``rebirth_min_interval_s`` per node).
- A death certificate (NDEATH, also the broker's last will of the edge node, with a matching
  ``bdSeq``; or DDEATH) records a NaN reading with quality BAD_NO_CONNECTION for every tag of that
  node (or device).

Tag mapping (a tag's ``source.address``):

- explicit: ``"<group>/<edge>/<device>:<Metric Name>"`` (``"<group>/<edge>:<Metric Name>"`` for a
  node-level metric);
- default: anything else is compared with the metric's default path
  ``<group>/<edge>/<device>/<metric name>`` lower-cased, with ``/`` kept and every other character
  outside ``a-z 0-9 _ -`` replaced by ``_``. A tag's default address is its own path, so an edge node
  with group = site, edge = area, device = line and metric names ``cell/asset/signal`` maps onto
  the plant's tags without configuration.

Writes publish NCMD/DCMD with the metric (QoS 0, as Sparkplug B requires for commands).
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axline.batch import BAD, BAD_NO_CONNECTION, BAD_OUT_OF_RANGE, Batch
from axline.connect import sparkplug_pb as pb
from axline.connect.base import CONNECTED
from axline.connect.deadletter import DeadLetter
from axline.connect.mqtt import BROKER_OPTIONS, BrokerConnector, check_write
from axline.connect.registry import Option, Schema
from axline.plant import Tag

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
NODE_TYPES = frozenset({"NBIRTH", "NDEATH", "NDATA", "NCMD"})
DEVICE_TYPES = frozenset({"DBIRTH", "DDEATH", "DDATA", "DCMD"})
REBIRTH_METRIC = "Node Control/Rebirth"
BDSEQ_METRIC = "bdSeq"
_PLUMBING = ("Node Control/", "Device Control/", "Properties/")
_NORM_RE = re.compile(r"[^a-z0-9_/\-]")
_MS = 1_000_000
_MAX_MS = (2**63 - 1) // _MS


def default_path(group: str, edge: str, device: str | None, metric: str) -> str:
    """The tag path a metric maps to by default (see the module docstring)."""
    parts = [group, edge] + ([device] if device else []) + [metric]
    return _NORM_RE.sub("_", "/".join(parts).lower())


def parse_topic(topic: str) -> tuple[str, str, str, str | None] | None:
    """``spBv1.0/g/DDATA/e/d`` -> ("DDATA", "g", "e", "d"); None when it is not a Sparkplug B topic."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != NAMESPACE:
        return None
    mtype = parts[2]
    if mtype in NODE_TYPES and len(parts) == 4 and parts[1] and parts[3]:
        return mtype, parts[1], parts[3], None
    if mtype in DEVICE_TYPES and len(parts) == 5 and parts[1] and parts[3] and parts[4]:
        return mtype, parts[1], parts[3], parts[4]
    return None


def parse_address(address: str) -> tuple[str, str, str | None, str] | None:
    """An explicit address ``group/edge[/device]:Metric`` -> (group, edge, device, metric); None when the
    address is a default path. Raises ValueError on a malformed explicit address."""
    if ":" not in address:
        return None
    where, _, metric = address.partition(":")
    parts = where.split("/")
    if not metric or len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"Sparkplug address {address!r}: write it as 'group/edge/device:Metric Name' "
                         f"or 'group/edge:Metric Name'")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None, metric


@dataclass(frozen=True)
class _Target:
    slot: int  # index into SparkplugDecoder.paths
    path: str
    lo: float
    hi: float


@dataclass
class _MetricInfo:
    device: str | None
    name: str
    datatype: int
    target: _Target | None
    default: str  # default path (for "accept")


@dataclass
class _Node:
    online: bool = False
    born: bool = False
    bdseq: int | None = None
    next_seq: int | None = None
    aliases: dict[int, _MetricInfo] = field(default_factory=dict)
    names: dict[tuple[str | None, str], _MetricInfo] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)
    last_rebirth_ns: int = -(2**62)


@dataclass
class SparkplugResult:
    """What one message did: readings, dead letters, rebirths to request, births and deaths seen,
    metrics skipped (mapped to no tag) and protocol metrics consumed."""

    batch: Batch
    dead_letters: list[DeadLetter]
    rebirth: list[tuple[str, str]] = field(default_factory=list)
    births: list[tuple[str, str, str | None]] = field(default_factory=list)
    deaths: list[tuple[str, str, str | None]] = field(default_factory=list)
    skipped: int = 0
    protocol: int = 0  # protocol metrics consumed (bdSeq, Node Control/..., Properties/...)
    ignored: bool = False  # a command or STATE message: not for this host


class SparkplugDecoder:
    """Host-side Sparkplug B state machine. Pure: no I/O; ``handle`` never raises.

    ``unmapped``: what happens to metrics that map to no tag: ``ignore`` (counted in
    ``result.skipped``), ``deadletter``, or ``accept`` (readings under their default path).
    """

    def __init__(self, tags: Iterable[Tag] = (), *, unmapped: str = "ignore",
                 rebirth_min_interval_s: float = 5.0) -> None:
        if unmapped not in ("ignore", "deadletter", "accept"):
            raise ValueError(f"unmapped {unmapped!r} is not allowed; choose ignore, deadletter or accept")
        if not 0 <= rebirth_min_interval_s <= 3600:
            raise ValueError(f"rebirth_min_interval_s must be in 0..3600, got {rebirth_min_interval_s}")
        self.unmapped = unmapped
        self.rebirth_min_interval_ns = int(rebirth_min_interval_s * 1e9)
        self.paths: list[str] = []
        self._explicit: dict[tuple[str, str, str | None, str], _Target] = {}
        self._default: dict[str, _Target] = {}
        self._accepted: dict[str, _Target] = {}
        self.nodes: dict[tuple[str, str], _Node] = {}
        self.tag_metric: dict[str, tuple[str, str, str | None, str, int]] = {}  # path -> where it was born
        for t in tags:
            self.add_tag(t.path, t.source.address if t.source else t.path, t.lo, t.hi)

    def add_tag(self, path: str, address: str, lo: float = -math.inf, hi: float = math.inf) -> None:
        try:
            explicit = parse_address(address)
        except ValueError as e:
            raise ValueError(f"tag {path}: {e}") from None
        target = _Target(len(self.paths), path, float(lo), float(hi))
        self.paths.append(path)
        if explicit is not None:
            self._explicit[explicit] = target
            g, e, d, m = explicit
            self.tag_metric[path] = (g, e, d, m, pb.UNKNOWN)
        else:
            self._default[_NORM_RE.sub("_", address.lower())] = target

    def is_online(self, group: str, edge: str, device: str | None = None) -> bool:
        """Whether the node (and device) has been born and has not died since."""
        node = self.nodes.get((group, edge))
        return bool(node and node.online and (device is None or device in node.devices))

    def reset_sequences(self) -> None:
        """After our own reconnect: accept the next seq of every node as the new baseline."""
        for node in self.nodes.values():
            node.next_seq = None

    # -- the state machine ----------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, now_ns: int) -> SparkplugResult:
        try:
            return self._handle(topic, bytes(payload), now_ns)
        except Exception as e:  # noqa: BLE001 - the last guard: a bug must not kill the network thread
            log.exception("Sparkplug decoder failed on topic %r", topic)
            return SparkplugResult(Batch.empty(), [DeadLetter(f"internal decoder error: {type(e).__name__}: {e}",
                                                              topic, bytes(payload), now_ns)])

    def _handle(self, topic: str, payload: bytes, now_ns: int) -> SparkplugResult:
        parsed = parse_topic(topic)
        if parsed is None:
            if topic.startswith(NAMESPACE + "/STATE/"):
                return SparkplugResult(Batch.empty(), [], ignored=True)
            return SparkplugResult(Batch.empty(), [DeadLetter("not a Sparkplug B topic (spBv1.0/<group>/<type>/"
                                                              "<edge>[/<device>])", topic, payload, now_ns)])
        mtype, group, edge, device = parsed
        if mtype in ("NCMD", "DCMD"):
            return SparkplugResult(Batch.empty(), [], ignored=True)
        res = SparkplugResult(Batch.empty(), [])
        try:
            msg = pb.decode_payload(payload)
        except pb.SparkplugDecodeError as e:
            res.dead_letters.append(DeadLetter(f"malformed Sparkplug payload: {e}", topic, payload, now_ns))
            return res
        key = (group, edge)
        node = self.nodes.get(key)
        if node is None:
            node = self.nodes[key] = _Node()
        where = f"{group}/{edge}" + (f"/{device}" if device else "")

        def dead(reason: str) -> None:
            res.dead_letters.append(DeadLetter(reason, topic, payload, now_ns))

        def rebirth() -> None:
            if now_ns - node.last_rebirth_ns >= self.rebirth_min_interval_ns:
                node.last_rebirth_ns = now_ns
                res.rebirth.append(key)

        if mtype == "NDEATH":
            bd = _bdseq(msg)
            if node.bdseq is not None and bd is not None and bd != node.bdseq:
                dead(f"stale NDEATH of {where} ignored: bdSeq {bd}, the current session has {node.bdseq}")
                return res
            res.batch = self._death_readings(node, group, edge, None, now_ns)
            node.online, node.next_seq = False, None
            node.devices.clear()
            res.deaths.append((group, edge, None))
            return res

        # sequence numbers
        seq = msg.seq
        if mtype == "NBIRTH":
            node.next_seq = ((seq or 0) + 1) % 256
            if seq not in (None, 0):
                dead(f"NBIRTH of {where} has seq {seq}; Sparkplug B requires 0")
        elif seq is None or seq > 255:
            dead(f"{mtype} from {where} has {'no seq' if seq is None else f'seq {seq} outside 0..255'}")
            rebirth()
        else:
            if node.next_seq is not None and seq != node.next_seq:
                dead(f"sequence gap from {group}/{edge}: expected seq {node.next_seq}, got {seq}; "
                     f"messages were lost, rebirth requested")
                rebirth()
            node.next_seq = (seq + 1) % 256

        if mtype == "NBIRTH":
            node.online = node.born = True
            node.bdseq = _bdseq(msg)
            node.aliases.clear()
            node.names.clear()
            node.devices.clear()
            res.births.append((group, edge, None))
        elif mtype == "DBIRTH":
            if not node.online:
                dead(f"DBIRTH of {where} before the NBIRTH of its edge node; rebirth requested")
                rebirth()
            for a in [a for a, info in node.aliases.items() if info.device == device]:
                del node.aliases[a]
            for k in [k for k in node.names if k[0] == device]:
                del node.names[k]
            node.devices.add(device)
            res.births.append((group, edge, device))
        elif mtype == "DDEATH":
            res.batch = self._death_readings(node, group, edge, device, now_ns)
            node.devices.discard(device)
            res.deaths.append((group, edge, device))
            return res
        elif not node.online or (device is not None and device not in node.devices):
            dead(f"{mtype} from {where} whose birth was not seen; rebirth requested")
            rebirth()

        birth = mtype in ("NBIRTH", "DBIRTH")
        slots: dict[str, int] = {}
        out_paths: list[str] = []
        idx: list[int] = []
        ts: list[int] = []
        val: list[float] = []
        qual: list[int] = []
        for m in msg.metrics:
            info = None
            if birth:
                if m.name is None:
                    dead(f"{mtype} of {where}: a metric without a name (alias {m.alias})")
                    continue
                info = _MetricInfo(device, m.name, m.datatype, self._target(group, edge, device, m.name),
                                   default_path(group, edge, device, m.name))
                if m.alias is not None:
                    other = node.aliases.get(m.alias)
                    if other is not None and (other.device, other.name) != (device, m.name):
                        dead(f"{mtype} of {where}: alias {m.alias} of {m.name!r} is already used by "
                             f"{other.name!r}")
                    node.aliases[m.alias] = info
                node.names[(device, m.name)] = info
                if info.target is not None:
                    self.tag_metric[info.target.path] = (group, edge, device, m.name, m.datatype)
            else:
                if m.alias is not None and m.alias in node.aliases:
                    info = node.aliases[m.alias]
                    if info.device != device:
                        dead(f"{mtype} from {where}: alias {m.alias} belongs to "
                             f"{'the node' if info.device is None else 'device ' + info.device}")
                        continue
                elif m.name is not None:
                    info = node.names.get((device, m.name))
                    if info is None:
                        info = _MetricInfo(device, m.name, m.datatype, self._target(group, edge, device, m.name),
                                           default_path(group, edge, device, m.name))
                else:
                    dead(f"{mtype} from {where}: unknown alias {m.alias} (no birth defines it); rebirth requested")
                    rebirth()
                    continue
            target = info.target
            if target is None:
                if info.name == BDSEQ_METRIC or info.name.startswith(_PLUMBING):
                    res.protocol += 1
                    continue
                if self.unmapped == "accept" and info.datatype in pb.NUMERIC_TYPES:
                    target = self._accept(info.default)
                elif self.unmapped == "deadletter":
                    dead(f"metric {info.name!r} of {where} maps to no tag")
                    continue
                else:
                    res.skipped += 1
                    continue
            # the reading
            tms = m.timestamp if m.timestamp is not None else msg.timestamp
            if tms is None:
                t = now_ns
            elif tms > _MAX_MS:
                dead(f"metric {info.name!r} of {where}: timestamp {tms} ms is outside 1970..2262")
                continue
            else:
                t = tms * _MS
            dt = info.datatype if m.datatype == pb.UNKNOWN else m.datatype
            q = 0
            if m.is_null or m.value is None:
                v, q = math.nan, BAD
                if not m.is_null and not birth:
                    dead(f"metric {info.name!r} of {where} carries no value")
            elif isinstance(m.value, bool | int | float) and (dt in pb.NUMERIC_TYPES or dt == pb.UNKNOWN):
                v = float(m.value)
            else:
                v, q = math.nan, BAD
                dead(f"metric {info.name!r} of {where} is {pb.DATATYPE_NAMES.get(dt, f'datatype {dt}')}; "
                     f"a tag holds numbers")
            if q == 0:
                if not math.isfinite(v):
                    q = BAD
                elif v < target.lo or v > target.hi:
                    q = BAD_OUT_OF_RANGE
            j = slots.get(target.path)
            if j is None:
                j = slots[target.path] = len(out_paths)
                out_paths.append(target.path)
            idx.append(j)
            ts.append(t)
            val.append(v)
            qual.append(q)
        if mtype in ("NDATA", "DDATA") and not msg.metrics:
            dead(f"{mtype} from {where} has no metrics")
        if idx:
            res.batch = Batch(out_paths, np.array(idx, dtype=np.int32), np.array(ts, dtype=np.int64),
                              np.array(val, dtype=np.float64), np.array(qual, dtype=np.uint8))
        return res

    def _target(self, group: str, edge: str, device: str | None, name: str) -> _Target | None:
        t = self._explicit.get((group, edge, device, name))
        if t is None:
            t = self._default.get(default_path(group, edge, device, name))
        return t

    def _accept(self, path: str) -> _Target:
        t = self._accepted.get(path)
        if t is None:
            t = self._accepted[path] = _Target(-1, path, -math.inf, math.inf)
        return t

    def _death_readings(self, node: _Node, group: str, edge: str, device: str | None, now_ns: int) -> Batch:
        paths = []
        for info in node.names.values():
            if device is not None and info.device != device:
                continue
            if info.target is not None:
                paths.append(info.target.path)
            elif self.unmapped == "accept" and info.datatype in pb.NUMERIC_TYPES and info.name != BDSEQ_METRIC \
                    and not info.name.startswith(_PLUMBING):
                paths.append(info.default)
        paths = list(dict.fromkeys(paths))
        n = len(paths)
        if not n:
            return Batch.empty()
        return Batch(paths, np.arange(n, dtype=np.int32), np.full(n, now_ns, dtype=np.int64),
                     np.full(n, np.nan), np.full(n, BAD_NO_CONNECTION, dtype=np.uint8))


def _bdseq(msg: pb.Payload) -> int | None:
    for m in msg.metrics:
        if m.name == BDSEQ_METRIC and isinstance(m.value, int) and not isinstance(m.value, bool):
            return m.value
    return None


def rebirth_payload(now_ms: int | None = None) -> bytes:
    """The NCMD payload that asks an edge node to publish its births again."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return pb.encode_payload(pb.Payload(timestamp=now_ms, metrics=[
        pb.Metric(name=REBIRTH_METRIC, timestamp=now_ms, datatype=pb.BOOLEAN, value=True)]))


def command_value(datatype: int, value: float) -> int | float | bool:
    """A numeric write converted to what ``datatype`` carries; ValueError when it does not fit."""
    if datatype == pb.BOOLEAN:
        if value not in (0.0, 1.0):
            raise ValueError(f"a Boolean metric takes 0 or 1, got {value:g}")
        return bool(value)
    if datatype in pb.INT_TYPES:
        if not float(value).is_integer():
            raise ValueError(f"{pb.DATATYPE_NAMES[datatype]} metric takes a whole number, got {value:g}")
        bits, signed = pb.INT_TYPES[datatype]
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        iv = int(value)
        if not lo <= iv <= hi:
            raise ValueError(f"{value:g} is outside the {pb.DATATYPE_NAMES[datatype]} range {lo}..{hi}")
        return iv
    if datatype in (pb.FLOAT, pb.DOUBLE):
        return float(value)
    raise ValueError(f"cannot write a number to a {pb.DATATYPE_NAMES.get(datatype, str(datatype))} metric")


# ---------------------------------------------------------------------------------------------
# the connector
# ---------------------------------------------------------------------------------------------
class SparkplugConnector(BrokerConnector):
    """A Sparkplug B host application: reads births/data/deaths, requests rebirths, writes commands."""

    schema = Schema({
        **BROKER_OPTIONS,
        "group": Option((str, type(None)), None, help="Sparkplug group id to follow; default: all groups"),
        "unmapped": Option(str, "ignore", choices=("ignore", "deadletter", "accept"),
                           help="metrics no tag maps: ignore (counted), deadletter, or accept under their "
                                "default path"),
        "rebirth_on_gap": Option(bool, True, help="request a rebirth after a seq gap or an unknown alias"),
        "rebirth_min_interval_s": Option(float, 5.0, min=0, max=3600,
                                         help="at most one rebirth request per edge node per interval"),
        "host_id": Option((str, type(None)), None,
                          help="primary host id: publish Sparkplug 3.0 STATE (online/offline) under it"),
    })

    def __init__(self, name: str, options: dict[str, Any], tags: list[Tag]) -> None:
        super().__init__(name, options, tags)
        g = self.options["group"]
        if g is not None and (not g or any(c in g for c in "/+#")):
            raise ValueError(f"connector {name!r}: group {g!r} must be a non-empty id without '/', '+' or '#'")
        self.decoder = SparkplugDecoder(tags, unmapped=self.options["unmapped"],
                                        rebirth_min_interval_s=self.options["rebirth_min_interval_s"])
        self._client_for_thread = None
        self.rebirths_requested = 0
        self.skipped = 0

    def topic_filters(self) -> list[str]:
        g = self.options["group"] or "+"
        return [f"{NAMESPACE}/{g}/{t}/+" for t in ("NBIRTH", "NDEATH", "NDATA")] + \
               [f"{NAMESPACE}/{g}/{t}/+/+" for t in ("DBIRTH", "DDEATH", "DDATA")]

    def _state_topic(self) -> str:
        return f"{NAMESPACE}/STATE/{self.options['host_id']}"

    def _state_payload(self, online: bool) -> bytes:
        return f'{{"online":{"true" if online else "false"},"timestamp":{int(time.time() * 1000)}}}'.encode()

    def configure_client(self, client) -> None:
        if self.options["host_id"]:
            client.will_set(self._state_topic(), self._state_payload(False), qos=1, retain=True)

    def on_connected(self, client) -> None:
        self.decoder.reset_sequences()
        if self.options["host_id"]:
            client.publish(self._state_topic(), self._state_payload(True), qos=1, retain=True)

    def before_disconnect(self, client) -> None:
        if self.options["host_id"]:
            client.publish(self._state_topic(), self._state_payload(False), qos=1, retain=True)

    def handle_message(self, topic: str, payload: bytes, now_ns: int) -> tuple[Batch | None, list[DeadLetter]]:
        res = self.decoder.handle(topic, payload, now_ns)
        self.skipped += res.skipped
        if res.rebirth and self.options["rebirth_on_gap"]:
            client = self._client_for_thread
            for group, edge in res.rebirth:
                if client is not None:
                    client.publish(f"{NAMESPACE}/{group}/NCMD/{edge}", rebirth_payload(now_ns // _MS), qos=0)
                    self.rebirths_requested += 1
        return res.batch, res.dead_letters

    def _make_client(self):
        client = super()._make_client()
        self._client_for_thread = client
        return client

    async def write(self, tag: Tag, value: float) -> None:
        """Publish a DCMD (or NCMD for a node-level metric) that sets the tag's metric to ``value``."""
        v = check_write(tag, value)
        if self._client is None or self.state != CONNECTED:
            raise ConnectionError(f"connector {self.name!r} is not connected; the write to {tag.path} was not sent")
        where = self.decoder.tag_metric.get(tag.path)
        if where is None:
            raise ConnectionError(f"tag {tag.path}: no edge node has announced it in a birth yet, so it is not known "
                                  f"where to send the write; give it an explicit address 'group/edge/device:Metric'")
        group, edge, device, metric, dt = where
        if not self.decoder.is_online(group, edge, device):
            raise ConnectionError(f"tag {tag.path}: edge node {group}/{edge}" + (f" device {device}" if device else "")
                                  + " is offline (no birth, or a death certificate was received); the write was not sent")
        if dt == pb.UNKNOWN:
            dt = pb.BOOLEAN if tag.kind == "bool" else pb.DOUBLE
        try:
            cv = command_value(dt, v)
        except ValueError as e:
            raise ValueError(f"write to {tag.path}: {e}") from None
        now_ms = int(time.time() * 1000)
        payload = pb.encode_payload(pb.Payload(timestamp=now_ms, metrics=[
            pb.Metric(name=metric, timestamp=now_ms, datatype=dt, value=cv)]))
        topic = f"{NAMESPACE}/{group}/{'DCMD' if device else 'NCMD'}/{edge}" + (f"/{device}" if device else "")
        await self.publish(topic, payload, qos=0)


# ---------------------------------------------------------------------------------------------
# an edge node (publisher) for tests and the virtual factory
# ---------------------------------------------------------------------------------------------
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
        return self._metrics[(device, name)][0]

    def _topic(self, mtype: str, device: str | None = None) -> str:
        return f"{NAMESPACE}/{self.group}/{mtype}/{self.edge}" + (f"/{device}" if device else "")

    def _next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) % 256
        return s

    def connect(self, timeout_s: float = 5.0) -> None:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self._cid, protocol=mqtt.MQTTv311,
                             clean_session=True)
        if self._auth[0]:
            client.username_pw_set(*self._auth)
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
            tms = now if ts_ns is None else ts_ns // _MS
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

