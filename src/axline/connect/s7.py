"""Siemens S7 connector (python-snap7's asyncio client, S7 communication over ISO-on-TCP, port 102).

A tag's ``source.address`` is an S7 absolute address with an optional type and scaling::

    DB<n>.DBX<byte>.<bit>            bit of a data block                     e.g. DB1.DBX8.0
    DB<n>.DBB<byte>[:byte|sint]      byte (default: byte, unsigned)          e.g. DB1.DBB2
    DB<n>.DBW<byte>[:int|uint|word]  16-bit (default: int, signed)           e.g. DB1.DBW4:int
    DB<n>.DBD<byte>[:real|dint|udint|dword]  32-bit (default: real)          e.g. DB1.DBD0:real
    M<byte>.<bit>, MB<byte>, MW<byte>, MD<byte>     merker (flag) memory, same types
    I<byte>.<bit>, IB, IW, ID        process inputs (German E... also accepted)
    Q<byte>.<bit>, QB, QW, QD        process outputs (German A... also accepted)

followed optionally by `` scale=<number> offset=<number>`` (value = raw * scale + offset). Values
are big-endian as in the PLC. The data blocks must allow PUT/GET access (on S7-1200/1500: not
"optimized block access", and "permit access with PUT/GET" enabled).

Reads are grouped per area and data block into spans of nearby bytes (``max_gap_bytes``), one
``read_area`` per span and poll cycle. A span the PLC refuses (a missing DB, an address past its
end) marks its tags BAD_CONFIG; a dead PLC raises and ``run`` reconnects.

Writes go to DB and M areas only. A bit is written by reading its byte, changing the bit and
writing the byte back (snap7's own ``db_write_bool`` does the same; its test server does not
honour single-bit writes), so a bit that the PLC program changes in the same byte at the same
instant can be overwritten: give write-back bits their own byte where that matters.
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
from snap7.async_client import AsyncClient
from snap7.error import S7ProtocolError
from snap7.type import Area

from axline.batch import BAD_CONFIG
from axline.connect import codec
from axline.connect.polled import PolledConnector, ReadRefused, polled_schema
from axline.connect.registry import Option
from axline.plant import Tag

log = logging.getLogger(__name__)

# type -> numpy dtype (big-endian)
S7_TYPES: dict[str, str] = {
    "bool": "u1",
    "byte": "u1",
    "sint": "i1",
    "int": ">i2",
    "uint": ">u2",
    "word": ">u2",
    "dint": ">i4",
    "udint": ">u4",
    "dword": ">u4",
    "real": ">f4",
}
_WIDTH_TYPES = {
    "X": ("bool",),
    "B": ("byte", "sint"),
    "W": ("int", "uint", "word"),
    "D": ("real", "dint", "udint", "dword"),
}
_AREAS = {"DB": Area.DB, "M": Area.MK, "I": Area.PE, "E": Area.PE, "Q": Area.PA, "A": Area.PA}
_AREA_NAMES = {Area.DB: "DB", Area.MK: "M", Area.PE: "I", Area.PA: "Q"}
WRITABLE_AREAS = (Area.DB, Area.MK)
ALLOWED_FORMS = (
    "'DB<n>.DBX<byte>.<bit>', 'DB<n>.DBB<byte>[:byte|sint]', 'DB<n>.DBW<byte>[:int|uint|word]', "
    "'DB<n>.DBD<byte>[:real|dint|udint|dword]', 'M<byte>.<bit>', 'MB|MW|MD<byte>[:type]', and the "
    "same for I and Q; optionally followed by ' scale=<number> offset=<number>'"
)
_DB_RE = re.compile(r"^DB(\d+)\.DB([XBWD])(\d+)(?:\.(\d+))?$", re.IGNORECASE)
_MIQ_RE = re.compile(r"^([MIEQA])([BWD]?)(\d+)(?:\.(\d+))?$", re.IGNORECASE)


@dataclass(frozen=True)
class S7Address:
    """One parsed tag address."""

    area: Area
    db: int
    byte: int
    bit: int  # -1 unless type is bool
    type: str
    scaling: codec.Scaling

    @property
    def size(self) -> int:
        """How many bytes the value spans."""
        return 1 if self.type == "bool" else np.dtype(S7_TYPES[self.type]).itemsize


def parse_address(text: str, tag_path: str) -> S7Address:
    """Parse a tag's S7 address; a mistake raises ValueError naming the tag and the allowed forms."""
    core, scaling = codec.split_options(text, tag_path, ALLOWED_FORMS)

    def bad(problem: str) -> ValueError:
        return ValueError(f"tag {tag_path}: S7 address {text!r}: {problem}; allowed forms: {ALLOWED_FORMS}")

    addr, _, type_name = core.partition(":")
    type_name = type_name.lower()
    m = _DB_RE.match(addr)
    if m:
        area, db, width, byte, bit = Area.DB, int(m.group(1)), m.group(2).upper(), int(m.group(3)), m.group(4)
        if db < 1 or db > 65535:
            raise bad(f"data block number {db} is outside 1..65535")
    else:
        m = _MIQ_RE.match(addr)
        if not m:
            raise bad("not an S7 address")
        area, db, byte, bit = _AREAS[m.group(1).upper()], 0, int(m.group(3)), m.group(4)
        width = m.group(2).upper() or "X"
    if width == "X":
        if bit is None:
            raise bad("a bit address needs '.<bit>', e.g. DB1.DBX8.0 or M10.3")
        if int(bit) > 7:
            raise bad(f"bit {bit} is outside 0..7")
    elif bit is not None:
        raise bad(f"'.{bit}' only goes with a bit address (DBX or M/I/Q without B, W or D)")
    allowed = _WIDTH_TYPES[width]
    type_name = type_name or allowed[0]
    if type_name not in allowed:
        what = "bit" if width == "X" else f"{np.dtype(S7_TYPES[allowed[0]]).itemsize}-byte ({width})"
        raise bad(f"type {type_name!r} does not fit a {what} address; use {', '.join(allowed)}")
    if byte > 65535:
        raise bad(f"byte offset {byte} is outside 0..65535")
    if type_name == "bool" and scaling != codec.Scaling():
        raise bad("scale and offset do not apply to bits")
    return S7Address(area, db, byte, int(bit) if width == "X" else -1, type_name, scaling)


@dataclass
class S7Read:
    """One read_area of a poll cycle and how its bytes become tag values."""

    area: Area
    db: int
    start: int
    size: int
    positions: np.ndarray
    groups: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]  # (type, members, byte offsets, bits)


def plan_reads(
    addresses: list[S7Address], max_gap_bytes: int = 16, max_block_bytes: int = 400
) -> list[S7Read]:
    """Group addresses per area and data block into spans read with one request each."""
    keys = sorted({(int(a.area), a.db) for a in addresses})
    reads: list[S7Read] = []
    for area_code, db in keys:
        members = [i for i, a in enumerate(addresses) if (int(a.area), a.db) == (area_code, db)]
        items = [(addresses[i].byte, addresses[i].size) for i in members]
        for start, size, idx in codec.group_spans(items, max_gap_bytes, max_block_bytes):
            positions = np.array([members[j] for j in idx], dtype=np.int64)
            by_type: dict[str, list[int]] = {}
            for k, p in enumerate(positions):
                by_type.setdefault(addresses[p].type, []).append(k)
            groups = []
            for type_name, ks in by_type.items():
                ks_arr = np.array(ks, dtype=np.int64)
                offs = np.array([addresses[positions[k]].byte - start for k in ks], dtype=np.int64)
                bits = np.array([max(addresses[positions[k]].bit, 0) for k in ks], dtype=np.int64)
                groups.append((type_name, ks_arr, offs, bits))
            reads.append(S7Read(Area(area_code), db, start, size, positions, groups))
    return reads


def _label(area: Area, db: int) -> str:
    return f"DB{db}" if area == Area.DB else _AREA_NAMES[area]


class S7Connector(PolledConnector):
    """Polls a Siemens S7 PLC (S7-300/400/1200/1500 with PUT/GET); writes DB and M tags."""

    schema = polled_schema(
        "PLC IP address or host name", 102, "ISO-on-TCP port",
        {
            "rack": Option(int, 0, min=0, max=7, help="rack of the CPU"),
            "slot": Option(int, 1, min=0, max=31, help="slot of the CPU (S7-1200/1500: 1, S7-300: 2)"),
        },
        {
            "max_gap_bytes": Option(
                int, 16, min=0, max=4096, help="unused bytes read to join two tags into one read"
            ),
            "max_block_bytes": Option(
                int,
                400,
                min=1,
                max=65535,
                help="largest span read at once (larger spans than one PDU are split)",
            ),
        },
    )
    plan_reads = staticmethod(plan_reads)
    PLAN_OPTIONS = ("max_gap_bytes", "max_block_bytes")
    PLAN_HINT = "raise max_block_bytes"
    WRITABLE = WRITABLE_AREAS
    write_target = staticmethod(attrgetter("area"))
    READ_ONLY = (
        "tag {tag.path} is marked writable but its address {tag.source.address!r} is a process input or "
        "output; only DB and M addresses can be written"
    )
    RAW_DTYPES = S7_TYPES

    # -- grammar ----------------------------------------------------------------------------------
    def parse(self, address: str, tag_path: str) -> S7Address:
        """``DB1.DBD0:real`` and the like."""
        return parse_address(address, tag_path)

    def decode(self, req: S7Read, data: np.ndarray, raw: np.ndarray) -> None:
        """Bits from their byte, the other types big-endian at their byte offset."""
        for type_name, members, offs, bits in req.groups:
            if type_name == "bool":
                vals = ((data[offs] >> bits) & 1).astype(np.float64)
            else:
                vals = codec.decode_bytes(data, offs, S7_TYPES[type_name])
            raw[req.positions[members]] = vals

    def is_bit(self, address: S7Address) -> bool:
        """``bool`` addresses are bits."""
        return address.type == "bool"

    # -- wire calls -------------------------------------------------------------------------------
    def new_client(self) -> AsyncClient:
        """A snap7 asyncio client."""
        return AsyncClient()

    async def connect_client(self, client: AsyncClient) -> None:
        """Connect to rack and slot within the timeout; the same timeout for every answer."""
        o = self.options
        await asyncio.wait_for(client.connect(o["host"], o["rack"], o["slot"], o["port"]), o["timeout_s"] + 1)
        if client.connection is not None:
            client.connection.timeout = o["timeout_s"]

    async def close_client(self, client: AsyncClient) -> None:
        """Disconnect, giving up after a second."""
        try:
            await asyncio.wait_for(client.disconnect(), 1.0)
        except Exception:  # noqa: BLE001 - the PLC may be gone already
            pass

    def request_key(self, req: S7Read) -> tuple[int, int, int]:
        """Area, data block and start byte."""
        return (int(req.area), req.db, req.start)

    async def read_request(self, client: AsyncClient, req: S7Read) -> np.ndarray:
        """One ``read_area``; a failed read operation (missing DB, past its end) is a refusal."""
        try:
            async with self._lock:
                data = await asyncio.wait_for(
                    client.read_area(req.area, req.db, req.start, req.size), self.options["timeout_s"] + 1
                )
        except S7ProtocolError as e:
            if not str(e).startswith("Read operation failed"):
                raise
            raise ReadRefused(
                BAD_CONFIG,
                f"PLC refused reading {_label(req.area, req.db)} bytes {req.start}..{req.start + req.size - 1} "
                f"({e}); its {len(req.positions)} tags get quality bad_config (check the addresses and that "
                f"the DB exists with PUT/GET access)",
            ) from None
        if len(data) < req.size:
            raise S7ProtocolError(f"PLC returned {len(data)} bytes, {req.size} were asked")
        return np.frombuffer(bytes(data), dtype=np.uint8)

    async def write_bit(self, client: AsyncClient, tag: Tag, address: S7Address, value: bool) -> None:
        """Read the bit's byte, change the bit, write the byte back."""
        timeout = self.options["timeout_s"] + 1
        a = address
        async with self._lock:
            cur = await asyncio.wait_for(client.read_area(a.area, a.db, a.byte, 1), timeout)
            b = cur[0] | (1 << a.bit) if value else cur[0] & ~(1 << a.bit) & 0xFF
            await asyncio.wait_for(client.write_area(a.area, a.db, a.byte, bytearray([b])), timeout)

    async def write_raw(self, client: AsyncClient, tag: Tag, address: S7Address, raw: int | float) -> None:
        """Write the value's bytes, big-endian."""
        data = bytearray(struct.pack(">" + np.dtype(self.RAW_DTYPES[address.type]).char, raw))
        async with self._lock:
            await asyncio.wait_for(
                client.write_area(address.area, address.db, address.byte, data), self.options["timeout_s"] + 1
            )
