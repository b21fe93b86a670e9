"""Discovery over Modbus TCP: scan the register tables in blocks, bisect refused blocks, poll what
answers and classify it (``registers.py``)."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

import numpy as np

from axline.discover.registers import classify_bits, classify_registers
from axline.discover.signal import Signal, ident, runs

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
    for a, b in runs(addresses):
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
    min_polls: int = 1,
) -> tuple[list[Signal], dict]:
    """Scan a Modbus TCP device, poll what answers for ``listen_s`` and classify it.

    Returns the signals (one per bit, float32 register pair or single register) and an info dict
    with the answering and refused ranges per table. ``poll_interval_s`` defaults to
    ``listen_s / 40`` (at least 0.1 s). Polling goes on past ``listen_s`` until ``min_polls`` polls
    are done, so a slow device or a busy host still yields enough samples to classify.
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
    if min_polls < 1:
        raise ValueError(f"min_polls must be >= 1, got {min_polls}")
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
                    "answered": runs(sorted(values)),
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
            if time.monotonic() - t0 + interval > listen_s and len(times) >= min_polls:
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
