"""Modbus TCP connector (pymodbus async client): polls registers and bits in few requests, writes back.

A tag's ``source.address`` has the form::

    <table>:<address>[:<type>][:<order>] [scale=<number>] [offset=<number>]

- ``table``: ``hr`` holding registers (read/write), ``ir`` input registers (read only),
  ``co`` coils (read/write), ``di`` discrete inputs (read only).
- ``address``: the protocol address, 0-based decimal, 0..65535 (a register documented as 40101 in
  the Modicon 1-based style is ``hr:100``).
- ``type`` (registers only): ``int16`` (default), ``uint16``, ``int32``, ``uint32``, ``float32``,
  ``float64``; bits take no type (``bool`` is accepted).
- ``order`` (registers only): ``abcd`` (big-endian, Modbus default), ``cdab`` (low word first),
  ``badc`` (bytes swapped in each word), ``dcba`` (little-endian); 16-bit types also take ``ab``/``ba``.
  Without it the connector's ``order`` option applies. See :mod:`axline.connect.codec`.
- ``scale``/``offset``: value = raw * scale + offset (written values are converted back).

Examples: ``"hr:100:float32"``, ``"hr:200:int32:cdab scale=0.01"``, ``"ir:3:int16 scale=0.1 offset=-40"``,
``"co:5"``, ``"di:7"``.

Tags are grouped into the fewest read requests: registers of one table within ``max_register_gap``
of each other and at most 125 registers per request; bits at most 2000 per request. A Modbus
exception for one request (e.g. an address the device does not have) marks that request's tags
with a quality code and the others carry on; a dead or silent device raises and ``run`` reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from axline.batch import BAD, BAD_CONFIG, BAD_SENSOR
from axline.connect import codec
from axline.connect.polled import PolledConnector, ReadRefused, polled_schema
from axline.connect.registry import Option
from axline.plant import Tag

log = logging.getLogger(__name__)

TABLES = ("hr", "ir", "co", "di")
BIT_TABLES = ("co", "di")
WRITABLE_TABLES = ("hr", "co")
MAX_REGISTERS = 125  # per read request (Modbus spec)
MAX_BITS = 2000
ALLOWED_FORMS = (
    "'<hr|ir>:<0..65535>[:int16|uint16|int32|uint32|float32|float64][:abcd|cdab|badc|dcba]' or "
    "'<co|di>:<0..65535>', optionally followed by ' scale=<number> offset=<number>', "
    "e.g. 'hr:100:float32:cdab scale=0.1'"
)

# Modbus exception code -> quality of the request's tags
_EXCEPTION_QUALITY = {1: BAD_CONFIG, 2: BAD_CONFIG, 3: BAD_CONFIG, 4: BAD_SENSOR}


@dataclass(frozen=True)
class ModbusAddress:
    """One parsed tag address."""

    table: str
    address: int
    type: str  # "bool" for bits
    order: str
    scaling: codec.Scaling

    @property
    def words(self) -> int:
        """How many registers the value spans (1 for a coil or input)."""
        return 1 if self.table in BIT_TABLES else codec.WORD_TYPES[self.type][0]


def parse_address(text: str, tag_path: str, default_order: str = "abcd") -> ModbusAddress:
    """Parse a tag's Modbus address; a mistake raises ValueError naming the tag and the allowed forms."""
    core, scaling = codec.split_options(text, tag_path, ALLOWED_FORMS)
    parts = core.split(":")

    def bad(problem: str) -> ValueError:
        return ValueError(
            f"tag {tag_path}: Modbus address {text!r}: {problem}; allowed forms: {ALLOWED_FORMS}"
        )

    table = parts[0].lower()
    if table not in TABLES:
        raise bad(f"table {parts[0]!r} is not known (use hr, ir, co or di)")
    if len(parts) < 2 or not parts[1].isdigit():
        raise bad("the register or bit number is missing or not a decimal number")
    address = int(parts[1])
    if address > 65535:
        raise bad(f"address {address} is outside 0..65535")
    rest = [p.lower() for p in parts[2:]]
    if table in BIT_TABLES:
        if rest not in ([], ["bool"]):
            raise bad(f"{table} holds single bits and takes no type or order (got {':'.join(parts[2:])!r})")
        if scaling != codec.Scaling():
            raise bad("scale and offset do not apply to bits")
        return ModbusAddress(table, address, "bool", "abcd", scaling)
    type_name = rest[0] if rest else "int16"
    if type_name not in codec.WORD_TYPES:
        raise bad(f"type {rest[0]!r} is not known (use {', '.join(codec.WORD_TYPES)})")
    order = rest[1] if len(rest) > 1 else default_order
    if len(rest) > 2:
        raise bad("too many ':' parts")
    if order not in codec.ORDERS + codec.ORDERS_16 or (
        order in codec.ORDERS_16 and codec.WORD_TYPES[type_name][0] > 1
    ):
        raise bad(
            f"order {order!r} is not known for {type_name} (use abcd, cdab, badc or dcba"
            f"{'; ab or ba for 16-bit types' if codec.WORD_TYPES[type_name][0] == 1 else ''})"
        )
    if address + codec.WORD_TYPES[type_name][0] - 1 > 65535:
        raise bad(f"{type_name} at {address} runs past register 65535")
    return ModbusAddress(table, address, type_name, order, scaling)


@dataclass
class ReadRequest:
    """One read request of a poll cycle and how to decode it into tag values."""

    table: str
    start: int
    count: int
    positions: np.ndarray  # index into the connector's paths of each tag read here
    offsets: np.ndarray  # start of each tag within the response (register or bit offset)
    groups: list[tuple[str, str, np.ndarray]]  # (type, order, member indices into positions)


def plan_reads(
    addresses: list[ModbusAddress],
    max_register_gap: int = 10,
    max_registers: int = MAX_REGISTERS,
    max_bit_gap: int = 64,
    max_bits: int = MAX_BITS,
) -> list[ReadRequest]:
    """Group addresses into the fewest read requests (per table, adjacent or near addresses)."""
    requests: list[ReadRequest] = []
    for table in TABLES:
        members = [i for i, a in enumerate(addresses) if a.table == table]
        if not members:
            continue
        bits = table in BIT_TABLES
        items = [(addresses[i].address, addresses[i].words) for i in members]
        spans = codec.group_spans(
            items, max_bit_gap if bits else max_register_gap, max_bits if bits else max_registers
        )
        for start, count, idx in spans:
            positions = np.array([members[j] for j in idx], dtype=np.int64)
            offsets = np.array([addresses[p].address - start for p in positions], dtype=np.int64)
            groups: dict[tuple[str, str], list[int]] = {}
            for k, p in enumerate(positions):
                groups.setdefault((addresses[p].type, addresses[p].order), []).append(k)
            requests.append(
                ReadRequest(
                    table,
                    start,
                    count,
                    positions,
                    offsets,
                    [(t, o, np.array(m, dtype=np.int64)) for (t, o), m in groups.items()],
                )
            )
    return requests


class ModbusConnector(PolledConnector):
    """Polls a Modbus TCP device; writes coils and holding registers of writable tags."""

    schema = polled_schema(
        "device IP address or host name", 502, "TCP port",
        {"unit_id": Option(int, 1, min=0, max=255, help="Modbus unit (slave) id")},
        {
            "order": Option(
                str,
                "abcd",
                choices=codec.ORDERS,
                help="word/byte order of multi-register values when a tag's address names none",
            ),
            "max_register_gap": Option(
                int, 10, min=0, max=124, help="unused registers read to join two tags into one request"
            ),
            "max_registers_per_request": Option(
                int, MAX_REGISTERS, min=1, max=MAX_REGISTERS, help="registers per read request (device limit)"
            ),
            "max_bit_gap": Option(
                int, 64, min=0, max=1999, help="unused bits read to join two tags into one request"
            ),
            "max_bits_per_request": Option(int, MAX_BITS, min=1, max=MAX_BITS, help="bits per read request"),
        },
    )
    plan_reads = staticmethod(plan_reads)
    PLAN_OPTIONS = ("max_register_gap", "max_registers_per_request", "max_bit_gap", "max_bits_per_request")
    PLAN_HINT = "raise max_registers_per_request or max_bits_per_request"
    WRITABLE = WRITABLE_TABLES
    write_target = staticmethod(attrgetter("table"))
    READ_ONLY = (
        "tag {tag.path} is marked writable but its address {tag.source.address!r} is in a read-only table; "
        "only hr (holding registers) and co (coils) can be written"
    )
    RAW_DTYPES = {t: dtype for t, (_, dtype) in codec.WORD_TYPES.items()}
    BIT_NAME = "coil"

    # -- grammar ----------------------------------------------------------------------------------
    def parse(self, address: str, tag_path: str) -> ModbusAddress:
        """``hr:100:float32`` and the like; the connector's ``order`` where the address names none."""
        return parse_address(address, tag_path, self.options["order"])

    def decode(self, req: ReadRequest, data: np.ndarray, raw: np.ndarray) -> None:
        """Bits as they are, registers decoded per type and word order."""
        if req.table in BIT_TABLES:
            raw[req.positions] = data[req.offsets]
            return
        for type_name, order, members in req.groups:
            raw[req.positions[members]] = codec.decode_words(data, req.offsets[members], type_name, order)

    def is_bit(self, address: ModbusAddress) -> bool:
        """Coils are bits (the only writable bit table)."""
        return address.table == "co"

    # -- wire calls -------------------------------------------------------------------------------
    def new_client(self) -> AsyncModbusTcpClient:
        """A pymodbus client without its own retries (``run`` reconnects)."""
        o = self.options
        return AsyncModbusTcpClient(
            o["host"],
            port=o["port"],
            timeout=o["timeout_s"],
            retries=0,
            reconnect_delay=0,
            name=f"axline-{self.name}",
        )

    async def connect_client(self, client: AsyncModbusTcpClient) -> None:
        """Connect within the timeout."""
        o = self.options
        if not await asyncio.wait_for(client.connect(), o["timeout_s"] + 1):
            raise ConnectionError(f"cannot connect to Modbus device {o['host']}:{o['port']}")

    async def close_client(self, client: AsyncModbusTcpClient) -> None:
        """Close the TCP connection."""
        client.close()

    def request_key(self, req: ReadRequest) -> tuple[str, int]:
        """Table and start address."""
        return (req.table, req.start)

    async def read_request(self, client: AsyncModbusTcpClient, req: ReadRequest) -> np.ndarray:
        """One read function call; a Modbus exception answer is a refusal with its quality."""
        unit = self.options["unit_id"]
        fn = {
            "hr": client.read_holding_registers,
            "ir": client.read_input_registers,
            "co": client.read_coils,
            "di": client.read_discrete_inputs,
        }[req.table]
        async with self._lock:
            rr = await asyncio.wait_for(
                fn(req.start, count=req.count, device_id=unit), self.options["timeout_s"] + 1
            )
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0) or 0)
            raise ReadRefused(
                _EXCEPTION_QUALITY.get(code, BAD),
                f"device answered exception {code} to reading {req.table} {req.start}.."
                f"{req.start + req.count - 1}; its {len(req.positions)} tags get a bad quality "
                f"(check the addresses)",
            )
        if req.table in BIT_TABLES:
            return np.array(rr.bits[: req.count], dtype=np.float64)
        regs = np.array(rr.registers, dtype=np.uint16)
        if len(regs) < req.count:
            raise ModbusException(f"device returned {len(regs)} registers, {req.count} were asked")
        return regs

    async def write_bit(self, client: AsyncModbusTcpClient, tag: Tag, address: ModbusAddress, value: bool) -> None:
        """Write one coil."""
        await self._send(client.write_coil(address.address, value, device_id=self.options["unit_id"]), tag)

    async def write_raw(self, client: AsyncModbusTcpClient, tag: Tag, address: ModbusAddress, raw: int | float) -> None:
        """Write the register(s) of a value in the address's word order."""
        unit = self.options["unit_id"]
        words = codec.encode_words(raw, address.type, address.order)
        if len(words) == 1:
            call = client.write_register(address.address, words[0], device_id=unit)
        else:
            call = client.write_registers(address.address, words, device_id=unit)
        await self._send(call, tag)

    async def _send(self, call, tag: Tag) -> None:
        """Await a write call under the lock; a Modbus exception answer is a refused write."""
        async with self._lock:
            rr = await asyncio.wait_for(call, self.options["timeout_s"] + 1)
        if rr.isError():
            raise ConnectionError(
                f"tag {tag.path}: device refused the write with Modbus exception "
                f"{getattr(rr, 'exception_code', '?')}"
            )
