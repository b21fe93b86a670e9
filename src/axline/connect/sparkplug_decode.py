"""Sparkplug B as a host application reads it: topics, tag mapping, and the pure decoder that turns
births, data and deaths into readings.

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

The connector is ``sparkplug.py``; a small edge node publisher is ``sparkplug_node.py``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from axline.batch import BAD, BAD_NO_CONNECTION, BAD_OUT_OF_RANGE, Batch
from axline.connect import sparkplug_pb as pb
from axline.connect.deadletter import DeadLetter
from axline.plant import Tag

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
NODE_TYPES = frozenset({"NBIRTH", "NDEATH", "NDATA", "NCMD"})
DEVICE_TYPES = frozenset({"DBIRTH", "DDEATH", "DDATA", "DCMD"})
REBIRTH_METRIC = "Node Control/Rebirth"
BDSEQ_METRIC = "bdSeq"
_PLUMBING = ("Node Control/", "Device Control/", "Properties/")
_NORM_RE = re.compile(r"[^a-z0-9_/\-]")
NS_PER_MS = 1_000_000
_MAX_MS = (2**63 - 1) // NS_PER_MS


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
        """Read tag ``path`` from the metric at ``address``, within ``lo`` .. ``hi``."""
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
        """Decode one message into a batch and dead letters (never raises)."""
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
                t = tms * NS_PER_MS
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
