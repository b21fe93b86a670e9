"""`axline discover`: list what a machine offers before anyone buys anything.

Browses (OPC UA), scans and polls (Modbus TCP) or listens to (MQTT, Sparkplug B) a machine, then
writes a draft plant file and a data-readiness inventory (which signals, their types and units, how
often they change, gaps) as Markdown and HTML.

- ``opcua://host:4840`` (or ``opc.tcp://``): browse the address space, subscribe for ``--listen``.
- ``modbus://host:502 --scan hr:0-199,co:0-63 --unit-id 1``: read the ranges in blocks (at most 125
  registers or 2000 bits a request); a block the device refuses with an exception is bisected to
  find the addresses that answer. Over ``--listen`` the answering addresses are polled and
  classified (constant or changing, and how often); register pairs that decode to a smoothly
  changing float32 are proposed as ``float32``, other registers as ``int16``/``uint16`` (a guess,
  marked ``# guess:`` in the draft).
- ``mqtt://[user[:password]@]host:1883 --topics 'plant/#'``: subscribe (default ``#``) for
  ``--listen``; per topic the message count, rate, largest gap and payload kind (number, JSON
  object with numeric fields, Sparkplug B, binary, text). Each numeric JSON field becomes a signal
  addressed in the MQTT connector's grammar (``topic#$.field``); Sparkplug B metrics (from births)
  become tags of a ``sparkplug`` connector (``group/edge/device:Metric``).
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from axline.plant import UNITS


@dataclass
class Signal:
    machine: str  # the asset the signal belongs to (browse parent)
    name: str
    address: str
    dtype: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    writable: bool = False
    value: object = None
    times: list[float] = field(default_factory=list)  # arrival times (s) while listening
    kind: str = ""  # plant tag kind to draft ("bool"), when known
    note: str = ""  # what was seen (constant/changing, payload kind), shown in the inventory
    guess: str = ""  # why the type is a guess; drafted as a '# guess:' comment
    period_s: float | None = None  # typical time between updates seen, drafted as period_s
    connector: str = ""  # connector name in the draft ('' = the first one)
    commented: bool = False  # drafted as a commented-out line (e.g. a register that stayed 0)

    def rate_hz(self, window_s: float) -> float:
        return len(self.times) / window_s if window_s > 0 else 0.0

    def max_gap_s(self, window_s: float, t0: float) -> float:
        if not self.times:
            return window_s
        t = np.array([t0, *sorted(self.times), t0 + window_s])
        return float(np.diff(t).max())


_SAFE = re.compile(r"[^a-z0-9_]+")


def ident(text: str) -> str:
    s = _SAFE.sub("_", text.strip().lower()).strip("_")
    return s if s and s[0].isalnum() else f"x_{s}" if s else "x"


def guess_unit(raw: str) -> str:
    """Map a unit string a device reports to axline's unit list ('' when unknown)."""
    if not raw:
        return ""
    aliases = {
        "°c": "degC",
        "c": "degC",
        "celsius": "degC",
        "°f": "degF",
        "l/m": "L/min",
        "lpm": "L/min",
        "m³/h": "m3/h",
        "nm³/h": "Nm3/h",
        "kw·h": "kWh",
        "kw h": "kWh",
        "r/min": "rpm",
        "1/min": "rpm",
        "percent": "%",
        "pct": "%",
        "sec": "s",
        "µm": "um",
        "m/s²": "m/s2",
    }
    if raw in UNITS:
        return raw
    low = raw.lower()
    if low in aliases:
        return aliases[low]
    for u in UNITS:
        if u.lower() == low:
            return u
    return ""


# -- OPC UA ------------------------------------------------------------------------------------------
async def discover_opcua(
    url: str, listen_s: float = 10.0, max_nodes: int = 20000
) -> tuple[list[Signal], dict]:
    from asyncua import Client, ua

    signals: list[Signal] = []
    async with Client(url, timeout=10) as client:
        objects = client.nodes.objects
        stack = [(objects, [])]
        seen = 0
        while stack and seen < max_nodes:
            node, trail = stack.pop()
            for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
                seen += 1
                if child.nodeid.NamespaceIndex == 0:
                    continue  # the server's own nodes
                nclass = await child.read_node_class()
                name = (await child.read_browse_name()).Name
                if nclass == ua.NodeClass.Object:
                    stack.append((child, [*trail, name]))
                elif nclass == ua.NodeClass.Variable:
                    if name in ("EngineeringUnits", "EURange") or "#" in str(child.nodeid.Identifier):
                        continue  # properties, read below with their variable
                    signals.append(await _describe_opcua(child, name, trail))
        t0 = time.monotonic()
        if listen_s > 0 and signals:
            by_id = {s.address: s for s in signals}

            class Handler:
                def datachange_notification(self, node, val, data):  # noqa: N802 - asyncua's name
                    s = by_id.get(node.nodeid.to_string())
                    if s is not None:
                        s.times.append(time.monotonic() - t0)

            sub = await client.create_subscription(100, Handler())
            nodes = [client.get_node(s.address) for s in signals]
            await sub.subscribe_data_change(nodes, queuesize=100, sampling_interval=0)
            t0 = time.monotonic()
            await asyncio.sleep(listen_s)
            await sub.delete()
        info = {
            "protocol": "opcua",
            "endpoint": url,
            "listened_s": listen_s,
            "namespaces": await client.get_namespace_array(),
        }
    return signals, info


async def _describe_opcua(node, name: str, trail: list[str]) -> Signal:
    from asyncua import ua

    try:
        dv = await node.read_data_value()
        value = dv.Value.Value if dv.Value else None
        vtype = dv.Value.VariantType.name if dv.Value else "Null"
    except Exception:  # noqa: BLE001 - a node we may not read is still worth listing
        value, vtype = None, "unreadable"
    unit, lo, hi = "", None, None
    for prop in await node.get_properties():
        pname = (await prop.read_browse_name()).Name
        try:
            pval = await prop.read_value()
        except Exception:  # noqa: BLE001
            continue
        if pname == "EngineeringUnits":
            unit = (
                pval
                if isinstance(pval, str)
                else getattr(pval, "DisplayName", None) and pval.DisplayName.Text or ""
            )
        elif pname == "EURange":
            if isinstance(pval, list | tuple) and len(pval) == 2:
                lo, hi = float(pval[0]), float(pval[1])
            elif hasattr(pval, "Low"):
                lo, hi = float(pval.Low), float(pval.High)
    try:
        access = await node.read_attribute(ua.AttributeIds.UserAccessLevel)
        writable = bool(access.Value.Value & ua.AccessLevel.CurrentWrite.mask)
    except Exception:  # noqa: BLE001
        writable = False
    machine = "/".join(trail[-2:]) if len(trail) >= 2 else (trail[-1] if trail else "root")
    return Signal(
        machine=machine,
        name=name,
        address=node.nodeid.to_string(),
        dtype=vtype,
        unit=str(unit or ""),
        lo=lo,
        hi=hi,
        writable=writable,
        value=value,
    )


# -- Modbus TCP ---------------------------------------------------------------------------------------
MODBUS_TABLES = ("hr", "ir", "co", "di")
MODBUS_BIT_TABLES = ("co", "di")
DEFAULT_MODBUS_SCAN = "hr:0-199,ir:0-99,co:0-63,di:0-63"
MODBUS_MAX_REGISTERS = 125  # per read request (Modbus specification)
MODBUS_MAX_BITS = 2000
TABLE_NAMES = {"hr": "holding registers", "ir": "input registers", "co": "coils", "di": "discrete inputs"}
NO_ANSWER, SHORT_ANSWER, NOT_PROBED = -1, -2, -3
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server busy",
    10: "gateway path unavailable",
    11: "gateway target did not respond",
    NO_ANSWER: "no answer (timeout)",
    SHORT_ANSWER: "short answer",
    NOT_PROBED: "not probed (request limit)",
}
_BISECT_CODES = (2, 3)  # some addresses of the block do not exist: split it to find those that do
_SCAN_ITEM = re.compile(r"(hr|ir|co|di):(\d+)(?:-(\d+))?")


def parse_scan(text: str) -> dict[str, list[tuple[int, int]]]:
    """``"hr:0-199,co:5"`` -> ``{"hr": [(0, 199)], "co": [(5, 5)]}``: inclusive ranges per table, merged."""
    out: dict[str, list[tuple[int, int]]] = {}
    items = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ValueError(f"--scan: {text!r} names no range; write e.g. {DEFAULT_MODBUS_SCAN}")
    for item in items:
        m = _SCAN_ITEM.fullmatch(item)
        if not m:
            raise ValueError(
                f"--scan: {item!r} is not a range; write <table>:<first>-<last> with table hr, ir, "
                f"co or di and addresses 0..65535, e.g. {DEFAULT_MODBUS_SCAN}"
            )
        first = int(m.group(2))
        last = int(m.group(3)) if m.group(3) is not None else first
        if not first <= last <= 65535:
            raise ValueError(f"--scan: {item!r}: need first <= last within 0..65535")
        out.setdefault(m.group(1), []).append((first, last))
    for table, ranges in out.items():
        merged: list[tuple[int, int]] = []
        for a, b in sorted(ranges):
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        out[table] = merged
    return out


def _runs(addresses: list[int] | np.ndarray) -> list[tuple[int, int]]:
    """Sorted addresses -> inclusive runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for a in addresses:
        a = int(a)
        if runs and a == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], a)
        else:
            runs.append((a, a))
    return runs


class _ModbusReader:
    """Reads blocks of one table; counts requests and answers (None, code) for refusals and timeouts."""

    def __init__(self, client, unit_id: int, timeout_s: float, max_requests: int) -> None:
        self.client, self.unit_id, self.timeout_s = client, unit_id, timeout_s
        self.max_requests = max_requests
        self.requests = 0
        self.codes: Counter[int] = Counter()

    async def read(self, table: str, start: int, count: int) -> tuple[np.ndarray | None, int]:
        from pymodbus.exceptions import ModbusException

        c = self.client
        fn = {
            "hr": c.read_holding_registers,
            "ir": c.read_input_registers,
            "co": c.read_coils,
            "di": c.read_discrete_inputs,
        }[table]
        self.requests += 1
        try:
            rr = await asyncio.wait_for(fn(start, count=count, device_id=self.unit_id), self.timeout_s + 1)
        except (TimeoutError, ModbusException):
            self.codes[NO_ANSWER] += 1
            if not c.connected and not await c.connect():
                raise ConnectionError(
                    "the Modbus device closed the connection and refused a new one"
                ) from None
            return None, NO_ANSWER
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0) or 0)
            self.codes[code] += 1
            return None, code
        if table in MODBUS_BIT_TABLES:
            return np.array(rr.bits[:count], dtype=np.float64), 0
        regs = np.array(rr.registers, dtype=np.float64)
        if len(regs) < count:
            self.codes[SHORT_ANSWER] += 1
            return None, SHORT_ANSWER
        return regs[:count], 0


async def _scan_block(
    reader: _ModbusReader,
    table: str,
    start: int,
    count: int,
    values: dict[int, float],
    refused: list[tuple[int, int, int]],
) -> None:
    """Read a block; on an illegal-address answer bisect it down to single addresses."""
    if reader.requests >= reader.max_requests:
        refused.append((start, start + count - 1, NOT_PROBED))
        return
    data, code = await reader.read(table, start, count)
    if data is not None:
        values.update(zip(range(start, start + count), data.tolist(), strict=True))
    elif code in _BISECT_CODES and count > 1:
        half = count // 2
        await _scan_block(reader, table, start, half, values, refused)
        await _scan_block(reader, table, start + half, count - half, values, refused)
    else:
        refused.append((start, start + count - 1, code))


def _merge_refused(refused: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for a, b, code in sorted(refused):
        if out and out[-1][2] == code and a == out[-1][1] + 1:
            out[-1] = (out[-1][0], b, code)
        else:
            out.append((a, b, code))
    return out


def _poll_blocks(table: str, addresses: list[int]) -> list[tuple[int, int]]:
    """(start, count) read requests covering the answering addresses, each within one run."""
    limit = MODBUS_MAX_BITS if table in MODBUS_BIT_TABLES else MODBUS_MAX_REGISTERS
    blocks = []
    for a, b in _runs(addresses):
        for s in range(a, b + 1, limit):
            blocks.append((s, min(limit, b + 1 - s)))
    return blocks


async def discover_modbus(
    host: str,
    port: int = 502,
    scan: str | dict = DEFAULT_MODBUS_SCAN,
    unit_id: int = 1,
    listen_s: float = 10.0,
    timeout_s: float = 2.0,
    poll_interval_s: float | None = None,
    max_requests: int = 20000,
) -> tuple[list[Signal], dict]:
    """Scan a Modbus TCP device, poll what answers for ``listen_s`` and classify it.

    Returns the signals (one per bit, float32 register pair or single register) and an info dict
    with the answering and refused ranges per table. ``poll_interval_s`` defaults to
    ``listen_s / 40`` (at least 0.1 s).
    """
    from pymodbus.client import AsyncModbusTcpClient

    ranges = parse_scan(scan) if isinstance(scan, str) else scan
    if not 0 <= unit_id <= 255:
        raise ValueError(f"--unit-id must be within 0..255, got {unit_id}")
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be within 1..65535, got {port}")
    if listen_s < 0:
        raise ValueError(f"--listen must be >= 0 s, got {listen_s}")
    if not 0.1 <= timeout_s <= 60:
        raise ValueError(f"timeout_s must be within 0.1..60 s, got {timeout_s}")
    if max_requests < 1:
        raise ValueError(f"max_requests must be >= 1, got {max_requests}")
    interval = poll_interval_s if poll_interval_s is not None else max(0.1, listen_s / 40)
    if interval <= 0:
        raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}")
    client = AsyncModbusTcpClient(
        host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0, name="axline-discover"
    )
    try:
        try:
            connected = await asyncio.wait_for(client.connect(), timeout_s + 1)
        except TimeoutError:
            connected = False
        if not connected:
            raise ConnectionError(
                f"cannot connect to Modbus device {host}:{port}; check the host, the port "
                f"and that nothing else holds the device's only connection"
            )
        reader = _ModbusReader(client, unit_id, timeout_s, max_requests)
        answered: dict[str, dict[int, float]] = {}
        report = []
        for table in MODBUS_TABLES:
            if table not in ranges:
                continue
            limit = MODBUS_MAX_BITS if table in MODBUS_BIT_TABLES else MODBUS_MAX_REGISTERS
            values: dict[int, float] = {}
            refused: list[tuple[int, int, int]] = []
            for first, last in ranges[table]:
                for start in range(first, last + 1, limit):
                    await _scan_block(reader, table, start, min(limit, last + 1 - start), values, refused)
            answered[table] = values
            report.append(
                {
                    "table": table,
                    "scanned": ranges[table],
                    "answered": _runs(sorted(values)),
                    "refused": _merge_refused(refused),
                }
            )
        if not any(answered.values()):
            seen = ", ".join(
                f"{EXCEPTION_NAMES.get(c, f'exception {c}')} x{n}" for c, n in reader.codes.items()
            )
            raise ConnectionError(
                f"Modbus device {host}:{port} unit {unit_id} answered no address of the scan "
                f"({seen or 'no reply'}); check --unit-id (often 1, 0 or 255 for TCP devices) and --scan "
                f"against the device's register map"
            )
        scan_requests = reader.requests
        tables = {t: sorted(v) for t, v in answered.items() if v}
        blocks = {t: _poll_blocks(t, a) for t, a in tables.items()}
        rows: dict[str, list[np.ndarray]] = {t: [] for t in tables}
        times: list[float] = []
        t0 = time.monotonic()
        while True:
            tick = time.monotonic()
            for t, addrs in tables.items():
                row = np.full(len(addrs), np.nan)
                pos = 0
                for start, count in blocks[t]:
                    data, _ = await reader.read(t, start, count)
                    if data is not None:
                        row[pos : pos + count] = data
                    pos += count
                rows[t].append(row)
            times.append((tick + time.monotonic()) / 2 - t0)
            if time.monotonic() - t0 + interval > listen_s:
                break
            await asyncio.sleep(max(0.0, tick + interval - time.monotonic()))
        window = round(max(listen_s, times[-1]), 2) if listen_s > 0 else 0.0
    finally:
        client.close()
    t_arr = np.array(times)
    signals: list[Signal] = []
    machine = f"modbus/{ident(host)}_unit{unit_id}"
    for t, addrs in tables.items():
        samples = np.vstack(rows[t])
        if t in MODBUS_BIT_TABLES:
            signals += classify_bits(t, addrs, samples, t_arr, machine)
        else:
            signals += classify_registers(t, addrs, samples, t_arr, machine)
    info = {
        "protocol": "modbus",
        "endpoint": f"modbus://{host}:{port} unit {unit_id}",
        "listened_s": window,
        "polls": len(times),
        "poll_interval_s": round(interval, 3),
        "requests": scan_requests,
        "scan": report,
        "exceptions": {EXCEPTION_NAMES.get(c, f"exception {c}"): n for c, n in reader.codes.items()},
        "connectors": [{"name": "plc1", "type": "modbus", "host": host, "port": port, "unit_id": unit_id}],
    }
    return signals, info


def _check_samples(addresses: list[int], samples: np.ndarray, times: np.ndarray) -> None:
    if samples.ndim != 2 or samples.shape != (len(times), len(addresses)):
        raise ValueError(
            f"samples must be polls x addresses = ({len(times)}, {len(addresses)}), got shape {samples.shape}"
        )


def _change_times(col: np.ndarray, times: np.ndarray) -> list[float]:
    """Poll times at which a column's value differs from the previous valid sample."""
    ok = ~np.isnan(col)
    v, t = col[ok], times[ok]
    if len(v) < 2:
        return []
    return t[1:][v[1:] != v[:-1]].tolist()


def _describe_changes(n_changes: int, n_polls: int, value: str) -> str:
    if n_changes == 0:
        return f"constant {value} over {n_polls} polls"
    return f"changing: {n_changes} changes in {n_polls} polls, last {value}"


def classify_bits(
    table: str, addresses: list[int], samples: np.ndarray, times: np.ndarray, machine: str = "modbus"
) -> list[Signal]:
    """One bool signal per coil or discrete input; ``samples`` is polls x addresses (0/1, NaN = no answer)."""
    _check_samples(addresses, samples, times)
    out = []
    for j, a in enumerate(addresses):
        col = samples[:, j]
        changes = _change_times(col, times)
        valid = col[~np.isnan(col)]
        last = int(valid[-1]) if len(valid) else None
        out.append(
            Signal(
                machine=machine,
                name=f"{table}{a}",
                address=f"{table}:{a}",
                dtype="bool",
                value=last,
                times=changes,
                kind="bool",
                note=_describe_changes(len(changes), len(valid), str(last)),
                commented=not changes and last == 0,
            )
        )
    return out


def _float32(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    words = (hi.astype(np.uint32) << np.uint32(16)) | lo.astype(np.uint32)
    return words.astype(np.uint32).view(np.float32).astype(np.float64)


def _is_round(x: float) -> bool:
    return x != 0 and abs(x - float(f"{x:.5g}")) <= 1e-6 * abs(x)


def float32_score(first: np.ndarray, second: np.ndarray, order: str) -> tuple[int, str, float]:
    """How well two register columns (same polls, no NaN) look like one float32 in ``order``.

    3: a plausible float that changes smoothly and whose low word moves with it; 2: the same with a
    low word that stays 0 (coarse values such as 20.5, 21.0; big-endian order only); 1: a constant
    plausible float with a short decimal form (e.g. 21.3) and a non-zero low word; 0: not a float.
    Returns the score, the reason (for the draft's '# guess:' comment) and the roughness (mean
    absolute second difference over the span): of two overlapping candidates the smoother is the
    real pair, as a wrong low word adds noise.
    """
    hi, lo = (first, second) if order == "abcd" else (second, first)
    f = _float32(hi, lo)
    mag = np.abs(f)
    if len(f) == 0 or not np.all(np.isfinite(f)) or np.all(f == 0):
        return 0, "", 0.0
    if not np.all((mag == 0) | ((mag >= 1e-6) & (mag <= 1e9))):
        return 0, "", 0.0
    d = np.abs(np.diff(f))
    changes = int(np.count_nonzero(d))
    if changes == 0:
        if lo[0] != 0 and _is_round(float(f[0])):
            return (
                1,
                f"constant; the pair decodes to the float {float(f[0]):.6g} (could also be two int16)",
                0.0,
            )
        return 0, "", 0.0
    if len(f) < 4:
        return 0, "", 0.0
    lo_changes = int(np.count_nonzero(np.diff(lo)))
    lo_moves = lo_changes * 2 >= changes
    if not (lo_moves or (order == "abcd" and np.all(lo == 0))):
        return 0, "", 0.0
    span = float(f.max() - f.min())
    if float(np.median(d)) > 0.2 * span:
        return 0, "", 0.0
    roughness = float(np.mean(np.abs(np.diff(f, 2)))) / span
    return (
        3 if lo_moves else 2,
        f"the pair decodes to a float moving smoothly over {float(f.min()):.6g}..{float(f.max()):.6g}",
        roughness,
    )


def _int_type(values: np.ndarray) -> str:
    v = values[~np.isnan(values)]
    if not len(v) or v.max() < 0x8000:
        return "int16"
    signed = np.where(v >= 0x8000, v - 65536, v)
    if np.ptp(signed) < np.ptp(v) or np.abs(signed).max() <= 10000:
        return "int16"  # crosses zero, or small negative numbers rather than values near 65535
    return "uint16"


def classify_registers(
    table: str, addresses: list[int], samples: np.ndarray, times: np.ndarray, machine: str = "modbus"
) -> list[Signal]:
    """Signals for answering registers: float32 pairs where the data says so, else int16/uint16 guesses.

    ``samples`` is polls x addresses of raw register values (0..65535, NaN = no answer).
    """
    _check_samples(addresses, samples, times)
    index = {a: j for j, a in enumerate(addresses)}
    candidates = []  # (score, roughness, order preference, address, order, reason)
    for a in addresses:
        if a + 1 not in index:
            continue
        c0, c1 = samples[:, index[a]], samples[:, index[a + 1]]
        ok = ~np.isnan(c0) & ~np.isnan(c1)
        if not ok.any():
            continue
        for pref, order in enumerate(("abcd", "cdab")):
            score, reason, roughness = float32_score(c0[ok], c1[ok], order)
            if score:
                candidates.append((score, roughness, pref, a, order, reason))
    pairs: dict[int, tuple[str, str]] = {}
    taken: set[int] = set()
    for _score, _rough, _pref, a, order, reason in sorted(
        candidates, key=lambda c: (-c[0], c[1], c[2], c[3])
    ):
        if a in taken or a + 1 in taken:
            continue
        taken.update((a, a + 1))
        pairs[a] = (order, reason)
    out = []
    for a in addresses:
        if a in pairs:
            order, reason = pairs[a]
            c0, c1 = samples[:, index[a]], samples[:, index[a + 1]]
            ok = ~np.isnan(c0) & ~np.isnan(c1)
            hi, lo = (c0[ok], c1[ok]) if order == "abcd" else (c1[ok], c0[ok])
            f = _float32(hi, lo)
            changes = times[ok][1:][f[1:] != f[:-1]].tolist()
            suffix = "" if order == "abcd" else ":cdab"
            out.append(
                Signal(
                    machine=machine,
                    name=f"{table}{a}",
                    address=f"{table}:{a}:float32{suffix}",
                    dtype="float32",
                    value=float(f[-1]),
                    times=changes,
                    note=_describe_changes(len(changes), len(f), f"{float(f[-1]):.6g}")
                    + f"; registers {a}..{a + 1}"
                    + ("" if order == "abcd" else ", low word first"),
                    guess=f"float32{suffix} ({reason})",
                )
            )
            continue
        if a - 1 in pairs:
            continue
        col = samples[:, index[a]]
        valid = col[~np.isnan(col)]
        dtype = _int_type(col)
        last = None
        if len(valid):
            last = int(valid[-1]) - (65536 if dtype == "int16" and valid[-1] >= 0x8000 else 0)
        changes = _change_times(col, times)
        why = "no float32 pair found"
        if dtype == "uint16":
            why = "values above 32767; " + why
        elif len(valid) and valid.max() >= 0x8000:
            why = "values above 32767 read as small negatives; " + why
        out.append(
            Signal(
                machine=machine,
                name=f"{table}{a}",
                address=f"{table}:{a}:{dtype}",
                dtype=dtype,
                value=last,
                times=changes,
                note=_describe_changes(len(changes), len(valid), str(last)),
                guess=f"{dtype} ({why})",
                commented=not changes and last == 0,
            )
        )
    return out


# -- MQTT ---------------------------------------------------------------------------------------------
_TS_KEYS = ("ts", "time", "timestamp")
_VALUE_FORM_KEYS = frozenset({"value", "ts", "timestamp", "q", "quality"})
_PLAIN_KEY = re.compile(r"[^.\[\]'\"\s;#$]+")
_MAX_LEAVES = 500
_MAX_DEPTH = 8
SPARKPLUG_PREFIX = "spBv1.0/"


def _selector(path: tuple) -> str | None:
    """A JSON path -> the MQTT connector's dotted selector; None when a key cannot be written in it."""
    out = "$"
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _PLAIN_KEY.fullmatch(p):
            out += "." + p
        elif "'" not in p and ";" not in p and p:
            out += f"['{p}']"
        else:
            return None
    return out


def _is_number(x) -> bool:
    return isinstance(x, int | float) and (isinstance(x, bool) or math.isfinite(x))


def _is_value_form(d: dict) -> bool:
    """``{"value": v, "ts": t, "q": c}`` or the batch form ``{"ts": [...], "value": [...]}``."""
    if "value" not in d or not set(d) <= _VALUE_FORM_KEYS:
        return False
    v = d["value"]
    return _is_number(v) or v is None or (isinstance(v, list) and bool(v) and all(_is_number(x) for x in v))


def _leaves(node, path: tuple, out: list, depth: int = 0) -> None:
    if len(out) >= _MAX_LEAVES or depth > _MAX_DEPTH:
        return
    if _is_number(node):
        out.append((path, node))
    elif isinstance(node, dict):
        if path and _is_value_form(node):
            v = node["value"]
            out.append((path, v[-1] if isinstance(v, list) else v))
            return
        for k, v in node.items():
            _leaves(v, (*path, str(k)), out, depth + 1)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _leaves(v, (*path, i), out, depth + 1)


def _looks_like_time(x) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, int | float):
        return x >= 1e9  # seconds (or ms/us/ns) since 1970 after 2001
    return isinstance(x, str) and re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", x) is not None


@dataclass
class PayloadInfo:
    """What one message carries: its kind and the numeric values found (selector, name, value)."""

    kind: str  # number, json, json (no numbers), text, binary, empty
    fields: list[tuple[str, str, float | bool]] = field(default_factory=list)
    ts_selector: str | None = None  # where the message's own timestamp is
    skipped: int = 0  # numeric fields whose key cannot be addressed


def classify_payload(topic: str, payload: bytes) -> PayloadInfo:
    """Kind of an MQTT payload and its numeric fields as the MQTT connector would address them."""
    last = topic.rsplit("/", 1)[-1] or "value"
    if not payload:
        return PayloadInfo("empty")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        return PayloadInfo("binary")
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return PayloadInfo("binary")
    try:
        root = json.loads(text)
    except (ValueError, RecursionError):
        return PayloadInfo("text")
    if _is_number(root):
        return PayloadInfo("number", [("$", ident(last), root)])
    if isinstance(root, dict) and _is_value_form(root):
        v = root["value"]
        v = v[-1] if isinstance(v, list) else v
        if v is None:
            return PayloadInfo("json (no numbers)")
        return PayloadInfo("json", [("$", ident(last), v)])
    if not isinstance(root, dict | list):
        return PayloadInfo("text")
    ts_sel = None
    if isinstance(root, dict):
        for k in _TS_KEYS:
            if k in root and _looks_like_time(root[k]):
                ts_sel = f"$.{k}"
                break
    found: list = []
    _leaves(root, (), found)
    fields, skipped = [], 0
    for path, value in found:
        sel = _selector(path)
        if sel is None:
            skipped += 1
            continue
        if sel == ts_sel:
            continue
        fields.append((sel, ident("_".join(str(p) for p in path)), value))
    if not fields:
        return PayloadInfo("json (no numbers)", [], None, skipped)
    return PayloadInfo("json", fields, ts_sel, skipped)


@dataclass
class _TopicSeen:
    count: int = 0
    retained: int = 0
    bytes: int = 0
    times: list[float] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    fields: dict[str, list] = field(default_factory=dict)  # selector -> [name, times, last value, bool]
    ts_selector: str | None = None
    skipped: int = 0
    problems: Counter = field(default_factory=Counter)


class MqttListener:
    """Collects what arrives on a broker: per topic counts, times, payload kinds and fields.

    ``record`` is called from paho's network thread; everything is kept under a lock.
    """

    def __init__(self, max_topics: int = 5000) -> None:
        self.max_topics = max_topics
        self.topics: dict[str, _TopicSeen] = {}
        self.dropped_topics = 0
        self.metrics: dict[tuple[str, str, str | None, str], dict] = {}  # Sparkplug B metrics seen in births
        self._aliases: dict[tuple[str, str], dict[int, tuple[str | None, str]]] = {}
        self._lock = threading.Lock()
        self.t0 = time.monotonic()

    def record(self, topic: str, payload: bytes, retained: bool, now: float | None = None) -> None:
        t = (time.monotonic() if now is None else now) - self.t0
        with self._lock:
            seen = self.topics.get(topic)
            if seen is None:
                if len(self.topics) >= self.max_topics:
                    self.dropped_topics += 1
                    return
                seen = self.topics[topic] = _TopicSeen()
            seen.count += 1
            seen.bytes += len(payload)
            if retained:
                seen.retained += 1
            else:
                seen.times.append(t)
            if topic.startswith(SPARKPLUG_PREFIX):
                self._sparkplug(topic, payload, retained, t, seen)
                return
            info = classify_payload(topic, payload)
            seen.kinds[info.kind] += 1
            seen.skipped = max(seen.skipped, info.skipped)
            if info.ts_selector:
                seen.ts_selector = info.ts_selector
            for sel, name, value in info.fields:
                f = seen.fields.setdefault(sel, [name, [], None, isinstance(value, bool)])
                if not retained:
                    f[1].append(t)
                f[2] = value

    def _sparkplug(self, topic: str, payload: bytes, retained: bool, t: float, seen: _TopicSeen) -> None:
        from axline.connect import sparkplug_pb as pb
        from axline.connect.sparkplug import parse_topic

        parsed = parse_topic(topic)
        if parsed is None:
            seen.kinds[
                "sparkplug B state"
                if topic.startswith(SPARKPLUG_PREFIX + "STATE/")
                else "sparkplug B (other)"
            ] += 1
            return
        mtype, group, edge, device = parsed
        seen.kinds[f"sparkplug B {mtype}"] += 1
        if mtype in ("NCMD", "DCMD", "NDEATH", "DDEATH"):
            return
        try:
            msg = pb.decode_payload(payload)
        except ValueError as e:
            seen.problems[f"undecodable: {e}"] += 1
            return
        aliases = self._aliases.setdefault((group, edge), {})
        for m in msg.metrics:
            if mtype.endswith("BIRTH"):
                if not m.name:
                    continue
                if m.alias is not None:
                    aliases[m.alias] = (device, m.name)
                if m.name == "bdSeq" or m.name.startswith(
                    ("Node Control/", "Device Control/", "Properties/")
                ):
                    continue
                key = (group, edge, device, m.name)
                entry = self.metrics.setdefault(key, {"datatype": m.datatype, "times": [], "value": None})
                entry["datatype"] = m.datatype
                entry["value"] = m.value
                continue
            name = m.name
            dev = device
            if name is None and m.alias is not None and m.alias in aliases:
                dev, name = aliases[m.alias]
            entry = self.metrics.get((group, edge, dev, name)) if name else None
            if entry is None:
                seen.problems["metric without a birth seen (wait for a rebirth or listen longer)"] += 1
                continue
            if not retained:
                entry["times"].append(t)
            entry["value"] = m.value

    def results(
        self, window: float, host: str, port: int, username: str | None = None, tls: bool = False
    ) -> tuple[list[Signal], dict]:
        """Signals per numeric field or metric and the per-topic rows of the inventory."""
        from axline.connect.mqtt import parse_address
        from axline.connect.sparkplug import parse_topic
        from axline.connect.sparkplug_pb import BOOLEAN, DATATYPE_NAMES, NUMERIC_TYPES

        signals: list[Signal] = []
        rows = []
        with self._lock:
            for topic in sorted(self.topics):
                seen = self.topics[topic]
                sp = parse_topic(topic) if topic.startswith(SPARKPLUG_PREFIX) else None
                if sp is not None:
                    machine = f"{sp[1]}/{sp[2]}" + (f"/{sp[3]}" if sp[3] else "")
                else:
                    machine = topic.rsplit("/", 1)[0] if "/" in topic.strip("/") else "root"
                kind = " / ".join(k for k, _ in seen.kinds.most_common()) or "-"
                problems = [f"{p} x{n}" for p, n in seen.problems.items()]
                if seen.skipped:
                    problems.append(
                        f"{seen.skipped} numeric field(s) with keys the address grammar cannot name"
                    )
                n_signals = 0
                for sel, (name, times, value, is_bool) in seen.fields.items():
                    address = topic if sel == "$" else f"{topic}#{sel}"
                    if seen.ts_selector:
                        address += f";ts={seen.ts_selector}"
                    try:
                        parse_address(address)
                    except ValueError as e:
                        problems.append(f"cannot address {sel}: {e}")
                        continue
                    n_signals += 1
                    signals.append(
                        Signal(
                            machine=machine,
                            name=name,
                            address=address,
                            dtype="bool" if is_bool else "number",
                            value=value,
                            times=list(times),
                            kind="bool" if is_bool else "",
                            note=f"topic {topic}" + ("" if sel == "$" else f", field {sel}"),
                            period_s=_typical_period(times),
                            connector="broker1",
                        )
                    )
                live = len(seen.times)
                rows.append(
                    {
                        "machine": machine,
                        "topic": topic,
                        "kind": kind,
                        "messages": seen.count,
                        "retained": seen.retained,
                        "per_s": round(live / window, 2) if window else None,
                        "max_gap_s": round(_max_gap(seen.times, window), 2) if window else None,
                        "avg_bytes": round(seen.bytes / seen.count) if seen.count else 0,
                        "signals": n_signals,
                        "problems": "; ".join(problems),
                    }
                )
            for (group, edge, device, name), entry in sorted(self.metrics.items(), key=lambda kv: str(kv[0])):
                dt = entry["datatype"]
                numeric = dt in NUMERIC_TYPES
                where = f"{group}/{edge}" + (f"/{device}" if device else "")
                signals.append(
                    Signal(
                        machine=where,
                        name=name,
                        address=f"{where}:{name}",
                        dtype=DATATYPE_NAMES.get(dt, str(dt)),
                        value=entry["value"],
                        times=list(entry["times"]),
                        kind="bool" if dt == BOOLEAN else "",
                        note="Sparkplug B metric"
                        + ("" if numeric else "; not a number: axline stores numbers only"),
                        period_s=_typical_period(entry["times"]),
                        connector="sparkplug1",
                        commented=not numeric,
                    )
                )
        options: dict = {"host": host, "port": port}
        if username:
            options["username"] = username
        if tls:
            options["tls"] = True
        connectors = []
        if any(s.connector == "broker1" for s in signals):
            connectors.append({"name": "broker1", "type": "mqtt", **options})
        if any(s.connector == "sparkplug1" for s in signals):
            connectors.append({"name": "sparkplug1", "type": "sparkplug", **options})
        info = {
            "protocol": "mqtt",
            "endpoint": f"mqtt://{host}:{port}",
            "listened_s": round(window, 2),
            "topics": rows,
            "dropped_topics": self.dropped_topics,
            "connectors": connectors,
            "needs_password": bool(username),
        }
        return signals, info


def _max_gap(times: list[float], window: float) -> float:
    t = np.array([0.0, *sorted(times), window])
    return float(np.diff(t).max())


def _typical_period(times: list[float]) -> float | None:
    if len(times) < 3:
        return None
    p = float(np.median(np.diff(np.sort(times))))
    return min(86400.0, max(0.001, float(f"{p:.3g}"))) if p > 0 else None


def discover_mqtt(
    host: str,
    port: int = 1883,
    topics: list[str] | tuple[str, ...] = ("#",),
    listen_s: float = 10.0,
    username: str | None = None,
    password: str | None = None,
    tls: bool = False,
    timeout_s: float = 5.0,
    max_topics: int = 5000,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
) -> tuple[list[Signal], dict]:
    """Subscribe to ``topics`` for ``listen_s`` seconds and describe what arrives.

    ``ready`` (optional) is set once the subscription is in place and the listening window starts;
    ``stop`` (optional) ends the window early (half a second after it is set, for messages in flight).
    Rates are per second of the window actually listened.
    """
    import paho.mqtt.client as mqtt

    if not 1 <= port <= 65535:
        raise ValueError(f"port must be within 1..65535, got {port}")
    if listen_s <= 0:
        raise ValueError(
            f"--listen must be > 0 s for MQTT (messages only arrive while listening), got {listen_s}"
        )
    if max_topics < 1:
        raise ValueError(f"max_topics must be >= 1, got {max_topics}")
    topics = [t.strip() for t in topics if t.strip()]
    if not topics:
        raise ValueError("--topics names no topic filter; give e.g. 'plant/#' or leave it out for '#'")
    for t in topics:
        levels = t.split("/")
        if any(
            ("#" in lv and (lv != "#" or i != len(levels) - 1)) or ("+" in lv and lv != "+")
            for i, lv in enumerate(levels)
        ):
            raise ValueError(
                f"--topics: {t!r} is not a valid MQTT topic filter; '+' fills one whole level and "
                f"'#' only the last one, e.g. 'plant/+/press/#'"
            )
    listener = MqttListener(max_topics)
    subscribed = threading.Event()
    refused: list[str] = []
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"axline-discover-{secrets.token_hex(4)}"
    )
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set()

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
            subscribed.set()
            return
        c.subscribe([(t, 0) for t in topics])

    def on_subscribe(c, userdata, mid, reason_codes, properties) -> None:
        bad = [str(r) for r in reason_codes if r.is_failure]
        if bad:
            refused.append(f"subscription refused: {', '.join(bad)}")
        listener.t0 = time.monotonic()
        subscribed.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = lambda c, u, msg: listener.record(msg.topic, msg.payload, bool(msg.retain))
    try:
        client.connect(host, port, keepalive=max(5, int(timeout_s * 2)))
    except OSError as e:
        raise ConnectionError(
            f"cannot connect to MQTT broker {host}:{port} ({e}); check the host and port"
        ) from None
    client.loop_start()
    try:
        if not subscribed.wait(timeout_s):
            raise ConnectionError(
                f"MQTT broker {host}:{port} did not accept the connection and subscription "
                f"within {timeout_s:g} s"
            )
        if refused:
            raise ConnectionError(
                f"MQTT broker {host}:{port} refused: {'; '.join(refused)} (check the user name, "
                f"password and the broker's access rules for {', '.join(topics)})"
            )
        if ready is not None:
            ready.set()
        if stop is None:
            time.sleep(listen_s)
        elif stop.wait(listen_s):
            time.sleep(min(0.5, max(0.0, listener.t0 + listen_s - time.monotonic())))
        window = time.monotonic() - listener.t0
    finally:
        client.disconnect()
        client.loop_stop()
    signals, info = listener.results(window, host, port, username, tls)
    info["subscribed"] = topics
    return signals, info


# -- outputs ------------------------------------------------------------------------------------------
_BARE = re.compile(r"[a-z][a-z0-9_\-]*")
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "none"}


def _yaml(value) -> str:
    """A YAML flow scalar for an option value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    text = str(value)
    if _BARE.fullmatch(text) and text not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def _quoted(text: str) -> str:
    return json.dumps(str(text), ensure_ascii=False)


_MODBUS_ADDR = re.compile(r"(hr|ir|co|di):(\d+)(:\w+)?")


def _zero_summary(signals: list[Signal]) -> list[str]:
    """Comment lines naming the Modbus addresses that answered but stayed 0 (listed in the inventory)."""
    import textwrap

    by_table: dict[str, list[int]] = {}
    for s in signals:
        m = _MODBUS_ADDR.fullmatch(s.address)
        by_table.setdefault(m.group(1), []).append(int(m.group(2)))
    text = "; ".join(
        f"{t} " + ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in _runs(sorted(addrs)))
        for t, addrs in by_table.items()
    )
    return textwrap.wrap(
        f"answered but stayed 0 while polled (see the inventory): {text}",
        width=108,
        initial_indent="          # ",
        subsequent_indent="          #   ",
    )


def draft_plant(signals: list[Signal], info: dict, connector: str = "plc1") -> str:
    """A plant file to start from: one asset per machine, one tag per signal, the address filled in.

    ``info["connectors"]`` (Modbus, MQTT) lists the connector entries to write; without it one
    connector named ``connector`` with ``info['endpoint']`` is written (OPC UA).
    """
    lines = [
        "# Draft plant file written by `axline discover`. Review it: pick the signals you need,",
        "# fix units marked 'check', set ranges and periods, then `axline check` it.",
    ]
    if any(s.guess for s in signals):
        lines.append(
            "# Types marked '# guess:' were inferred from the values seen; confirm them in the device manual."
        )
    header_end, commented_note = len(lines), False
    lines += ["plant: {site: site1, area: area1, timezone: Asia/Seoul}", "connectors:"]
    conns = info.get("connectors")
    if conns:
        default = conns[0]["name"]
        if info.get("needs_password"):
            lines.append("  # add 'password: ...' to the connector entries below (not written here)")
        for c in conns:
            lines.append(f"  - {{{', '.join(f'{k}: {_yaml(v)}' for k, v in c.items())}}}")
    else:
        default = connector
        lines.append(f'  - {{name: {connector}, type: {info["protocol"]}, endpoint: "{info["endpoint"]}"}}')
    lines += ["lines:", "  - id: line1", "    assets:"]
    machines: dict[tuple[str, str], list[Signal]] = {}
    for s in signals:
        machines.setdefault((s.connector or default, s.machine), []).append(s)
    used: set[str] = set()
    for (conn, machine), sigs in machines.items():
        parts = machine.split("/")
        aid = ident(parts[-1])
        cell = ident(parts[-2]) if len(parts) >= 2 else aid
        while f"{cell}/{aid}" in used:
            aid += "_2"
        used.add(f"{cell}/{aid}")
        lines += [
            f"      - id: {aid}",
            f"        cell: {cell}",
            f"        connector: {conn}",
            "        tags:",
        ]
        all_commented = all(s.commented for s in sigs)
        zeros = (
            [] if all_commented else [s for s in sigs if s.commented and _MODBUS_ADDR.fullmatch(s.address)]
        )
        if zeros:
            lines += _zero_summary(zeros)
        names: set[str] = set()
        for s in sigs:
            if zeros and s in zeros:
                continue
            sig = ident(s.name)
            while sig in names:
                sig += "_2"
            names.add(sig)
            unit = guess_unit(s.unit)
            parts = [f"signal: {sig}", f'unit: "{unit}"']
            if s.lo is not None and s.hi is not None and s.lo < s.hi:
                parts.append(f"range: [{s.lo:g}, {s.hi:g}]")
            if s.dtype == "Boolean" or s.kind == "bool":
                parts.append("kind: bool")
            if s.writable:
                parts.append("writable: true")
            if s.period_s is not None:
                parts.append(f"period_s: {s.period_s:g}")
            parts.append(f"source: {{address: {_quoted(s.address)}}}")
            notes = [f"check unit: device says {s.unit!r}"] if s.unit and not unit else []
            if s.guess:
                notes.append(f"guess: {s.guess}")
            note = f"  # {'; '.join(notes)}" if notes else ""
            bullet = "# - " if s.commented and not all_commented else "- "
            if bullet != "- " and not commented_note:
                commented_note = True
                lines.insert(
                    header_end,
                    "# Commented-out tags are not numbers (or stayed 0); uncomment those you need.",
                )
            lines.append(f"          {bullet}{{{', '.join(parts)}}}{note}")
    return "\n".join(lines) + "\n"


def _fmt(x) -> str:
    return "-" if x is None else str(x)


def inventory_rows(signals: list[Signal], info: dict) -> list[dict]:
    window = info.get("listened_s", 0)
    rows = []
    for s in signals:
        rows.append(
            {
                "machine": s.machine,
                "signal": s.name,
                "address": s.address,
                "type": s.dtype,
                "unit": s.unit or "-",
                "range": f"{s.lo:g} .. {s.hi:g}" if s.lo is not None else "-",
                "writable": "yes" if s.writable else "no",
                "updates_per_s": round(s.rate_hz(window), 2) if window else None,
                "max_gap_s": round(s.max_gap_s(window, 0.0), 1) if window else None,
                "value": s.value,
                "note": s.note,
            }
        )
    return rows


def refused_text(refused: list[tuple[int, int, int]]) -> str:
    """``[(20, 49, 2)]`` -> ``"20-49: illegal data address"`` ("none" when empty)."""
    return (
        "; ".join(
            f"{a if a == b else f'{a}-{b}'}: {EXCEPTION_NAMES.get(c, f'exception {c}')}"
            for a, b, c in refused
        )
        or "none"
    )


def _scan_lines(info: dict) -> list[str]:
    """Markdown lines on the Modbus scan: answering and refused ranges per table."""
    if "scan" not in info:
        return []

    def spans(rs) -> str:
        return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b, *_ in rs) or "none"

    out = [
        "## Scan",
        "",
        f"{info['requests']} read requests to scan; polled {info['polls']} times every "
        f"{info['poll_interval_s']:g} s. "
        "A refused range answered with the Modbus exception shown (illegal data address: the device has no "
        "such address).",
        "",
        "| table | scanned | answering | refused |",
        "|---|---|---|---|",
    ]
    for t in info["scan"]:
        refused = refused_text(t["refused"])
        out.append(
            f"| {t['table']} ({TABLE_NAMES[t['table']]}) | {spans(t['scanned'])} | "
            f"{spans(t['answered'])} | {refused} |"
        )
    return [*out, ""]


def _topic_lines(topics: list[dict]) -> list[str]:
    if not topics:
        return []
    out = [
        "| topic | payload | messages (retained) | msg/s | max gap (s) | signals | problems |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in topics:
        out.append(
            f"| `{r['topic']}` | {r['kind']} | {r['messages']} ({r['retained']}) | {_fmt(r['per_s'])} | "
            f"{_fmt(r['max_gap_s'])} | {r['signals']} | {r['problems'] or '-'} |"
        )
    return [*out, ""]


def inventory_markdown(signals: list[Signal], info: dict) -> str:
    rows = inventory_rows(signals, info)
    topics = info.get("topics", [])
    machines = sorted({r["machine"] for r in rows} | {t["machine"] for t in topics})
    notes = any(r["note"] for r in rows)
    out = [
        f"# Data-readiness inventory — {info['endpoint']}",
        "",
        f"{len(rows)} signals on {len(machines)} machine(s); listened {info.get('listened_s', 0):g} s.",
        "A signal that did not update while listening has `max gap` equal to the window: it may be static "
        "(a setting) or not wired.",
        "",
    ]
    if "topics" in info:
        out += [
            f"{len(topics)} topic(s) seen on {', '.join(info.get('subscribed', ['#']))}; machines are topic "
            "prefixes (Sparkplug B: group/edge/device).",
            "",
        ]
    out += _scan_lines(info)
    for m in machines:
        mine = [r for r in rows if r["machine"] == m]
        live = sum(1 for r in mine if r["updates_per_s"])
        out += [f"## {m}", "", f"{len(mine)} signals, {live} updating.", ""]
        out += _topic_lines([t for t in topics if t["machine"] == m])
        if not mine:
            continue
        out += [
            "| signal | type | unit | range | writable | updates/s | max gap (s) | address |"
            + (" note |" if notes else ""),
            "|---|---|---|---|---|---:|---:|---|" + ("---|" if notes else ""),
        ]
        for r in mine:
            out.append(
                f"| {r['signal']} | {r['type']} | {r['unit']} | {r['range']} | {r['writable']} | "
                f"{r['updates_per_s'] if r['updates_per_s'] is not None else '-'} | "
                f"{r['max_gap_s'] if r['max_gap_s'] is not None else '-'} | `{r['address']}` |"
                + (f" {r['note'] or '-'} |" if notes else "")
            )
        out.append("")
    return "\n".join(out)


def inventory_html(signals: list[Signal], info: dict) -> str:
    rows = inventory_rows(signals, info)
    e = html.escape
    notes = any(r["note"] for r in rows)
    body = "".join(
        f"<tr><td>{e(r['machine'])}</td><td>{e(r['signal'])}</td><td>{e(r['type'])}</td>"
        f"<td>{e(r['unit'])}</td><td>{e(r['range'])}</td><td>{e(r['writable'])}</td>"
        f"<td>{_fmt(r['updates_per_s'])}</td><td>{_fmt(r['max_gap_s'])}</td>"
        f"<td><code>{e(r['address'])}</code></td>"
        + (f"<td>{e(r['note'] or '-')}</td>" if notes else "")
        + "</tr>"
        for r in rows
    )
    extra = ""
    if "scan" in info:
        trs = "".join(
            f"<tr><td>{e(t['table'])} ({e(TABLE_NAMES[t['table']])})</td>"
            f"<td>{e(', '.join(f'{a}-{b}' for a, b in t['answered']) or 'none')}</td>"
            f"<td>{e(refused_text(t['refused']))}"
            f"</td></tr>"
            for t in info["scan"]
        )
        extra += (
            f"<h2>Scan / 주소 탐색</h2><p>{info['requests']} requests, {info['polls']} polls</p>"
            f"<table><tr><th>table / 영역</th><th>answering / 응답</th><th>refused / 거부</th></tr>{trs}</table>"
        )
    if info.get("topics"):
        trs = "".join(
            f"<tr><td>{e(t['machine'])}</td><td><code>{e(t['topic'])}</code></td><td>{e(t['kind'])}</td>"
            f"<td>{t['messages']} ({t['retained']})</td><td>{_fmt(t['per_s'])}</td>"
            f"<td>{_fmt(t['max_gap_s'])}</td>"
            f"<td>{t['signals']}</td><td>{e(t['problems'] or '-')}</td></tr>"
            for t in info["topics"]
        )
        extra += (
            f"<h2>Topics / 토픽</h2><table><tr><th>machine / 설비</th><th>topic / 토픽</th>"
            f"<th>payload / 형식</th><th>messages (retained) / 메시지 (보존)</th><th>msg/s</th>"
            f"<th>max gap (s) / 최대 공백</th><th>signals / 신호</th><th>problems / 문제</th></tr>{trs}</table>"
        )
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>axline inventory</title>"
        f"<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}"
        f"td,th{{border:1px solid #ccc;padding:4px 8px}}th{{background:#eee}}</style>"
        f"<h1>Data-readiness inventory / 데이터 준비도 목록</h1><p>{e(info['endpoint'])}: {len(rows)} signals</p>"
        f"{extra + '<h2>Signals / 신호</h2>' if extra else ''}"
        f"<table><tr><th>machine / 설비</th><th>signal / 신호</th><th>type</th><th>unit / 단위</th><th>range</th>"
        f"<th>writable / 쓰기</th><th>updates/s</th><th>max gap (s)</th><th>address</th>"
        + ("<th>note / 비고</th>" if notes else "")
        + f"</tr>{body}</table></html>"
    )


def add_arguments(p) -> None:
    p.add_argument(
        "url",
        help="opcua://host:4840[/path] (or opc.tcp://...), modbus://host:502, "
        "mqtt://[user[:password]@]host:1883",
    )
    p.add_argument("--listen", default="10s", help="how long to watch updates, e.g. 30s or 2m (default 10s)")
    p.add_argument("--out", default="discovery", help="folder for draft-plant.yaml and inventory.md/.html")
    p.add_argument(
        "--scan",
        default=None,
        help=f"Modbus: ranges to scan as <table>:<first>-<last>,... with tables hr, ir, co, di "
        f"(default {DEFAULT_MODBUS_SCAN})",
    )
    p.add_argument("--unit-id", type=int, default=1, help="Modbus: unit (slave) id, 0..255 (default 1)")
    p.add_argument(
        "--topics", default=None, help="MQTT: comma-separated topic filters to subscribe to (default '#')"
    )


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*", text)
    if not m:
        raise ValueError(f"--listen: {text!r} is not a duration; use e.g. 30s, 2m, 500ms")
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


def run(args) -> int:
    u = urlparse(args.url)
    listen = parse_duration(args.listen)
    scheme = u.scheme.lower()
    try:
        port = u.port
    except ValueError:
        raise ValueError(f"{args.url}: the port is not a number within 0..65535") from None
    if scheme in ("opcua", "opc.tcp"):
        endpoint = args.url.replace("opcua://", "opc.tcp://", 1)
        signals, info = asyncio.run(discover_opcua(endpoint, listen))
    elif scheme == "modbus":
        if not u.hostname:
            raise ValueError(
                f"{args.url}: no host; write modbus://HOST[:PORT], e.g. modbus://192.168.0.10:502"
            )
        scan = getattr(args, "scan", None) or DEFAULT_MODBUS_SCAN
        signals, info = asyncio.run(
            discover_modbus(u.hostname, port or 502, scan, getattr(args, "unit_id", 1), listen)
        )
    elif scheme in ("mqtt", "mqtts"):
        if not u.hostname:
            raise ValueError(f"{args.url}: no host; write mqtt://HOST[:PORT], e.g. mqtt://192.168.0.20:1883")
        topics = (getattr(args, "topics", None) or "#").split(",")
        signals, info = discover_mqtt(
            u.hostname,
            port or (8883 if scheme == "mqtts" else 1883),
            topics,
            listen,
            username=u.username,
            password=u.password,
            tls=scheme == "mqtts",
        )
    else:
        raise ValueError(
            f"{args.url}: discovery speaks opcua:// (opc.tcp://), modbus:// and mqtt:// (mqtts://); "
            f"got scheme {u.scheme!r}"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "inventory.md").write_text(inventory_markdown(signals, info), encoding="utf-8")
    (out / "inventory.html").write_text(inventory_html(signals, info), encoding="utf-8")
    if not signals:
        print(
            f"no signals found at {info['endpoint']} (nothing numeric arrived or answered); wrote "
            f"{out}/inventory.md and {out}/inventory.html but no draft plant file. Listen longer (--listen), "
            f"or check --topics / --scan / --unit-id"
        )
        return 1
    (out / "draft-plant.yaml").write_text(draft_plant(signals, info), encoding="utf-8")
    machines = len({s.machine for s in signals})
    print(
        f"{len(signals)} signals on {machines} machine(s) at {info['endpoint']}; "
        f"wrote {out}/draft-plant.yaml, "
        f"{out}/inventory.md and {out}/inventory.html"
    )
    return 0
