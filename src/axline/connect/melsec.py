"""Mitsubishi MELSEC connector: MC protocol, 3E frame, binary code, over TCP (asyncio streams).

Works with Q/L/iQ-R/iQ-F CPUs and Ethernet modules whose port is set to "MC protocol, binary".

A tag's ``source.address`` is a device, a number and an optional type and scaling::

    <device><number>[:<type>] [scale=<number>] [offset=<number>]

- word devices: ``D`` (data register, decimal number), ``R`` (file register, decimal),
  ``W`` (link register, hexadecimal); types ``int16`` (default), ``uint16``, ``int32``, ``uint32``,
  ``float32``. 32-bit values take two words, low word first, as MELSEC stores them.
- bit devices: ``M`` (internal relay, decimal), ``X`` (input, hexadecimal), ``Y`` (output,
  hexadecimal), ``B`` (link relay, hexadecimal); value 0 or 1.

Examples: ``"D100"``, ``"D200:float32"``, ``"D210:int32 scale=0.01"``, ``"R5:uint16"``, ``"W1A"``,
``"M10"``, ``"X1F"``, ``"Y20"``, ``"B0"``.

Reads: batch read (command 0x0401) per device, word units (subcommand 0x0000) for word devices
and bit units (0x0001) for bit devices, nearby addresses joined into one request (at most 960
words or 7168 bits). An error end code for one request (e.g. 0xC056, address out of range) marks
its tags BAD_CONFIG and the others carry on; a dead or silent PLC raises and ``run`` reconnects.
Writes: batch write (0x1401) to D, R, W, M and B; X and Y are the PLC's I/O and are not written.
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct
from dataclasses import dataclass
from operator import attrgetter

import numpy as np

from axline.batch import BAD_CONFIG
from axline.connect import codec
from axline.connect.polled import PolledConnector, ReadRefused, polled_schema
from axline.connect.registry import Option
from axline.plant import Tag

log = logging.getLogger(__name__)

# Frame constants (3E, binary)
SUBHEADER_REQUEST = 0x5000  # as the manual writes it: bytes 50 00 on the wire (packed big-endian)
SUBHEADER_RESPONSE = 0xD000  # bytes D0 00
CMD_BATCH_READ = 0x0401
CMD_BATCH_WRITE = 0x1401
SUB_WORD = 0x0000
SUB_BIT = 0x0001
MAX_WORD_POINTS = 960
MAX_BIT_POINTS = 7168
MAX_DEVICE_NUMBER = 0xFFFFFF


@dataclass(frozen=True)
class Device:
    """A MELSEC device kind."""

    name: str
    code: int
    is_bit: bool
    base: int  # 10 or 16: how its numbers are written


DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        Device("D", 0xA8, False, 10),
        Device("W", 0xB4, False, 16),
        Device("R", 0xAF, False, 10),
        Device("M", 0x90, True, 10),
        Device("X", 0x9C, True, 16),
        Device("Y", 0x9D, True, 16),
        Device("B", 0xA0, True, 16),
    )
}
DEVICE_BY_CODE: dict[int, Device] = {d.code: d for d in DEVICES.values()}
WRITABLE_DEVICES = ("D", "R", "W", "M", "B")
MC_WORD_TYPES = ("int16", "uint16", "int32", "uint32", "float32")
ALLOWED_FORMS = (
    "'D<decimal>|R<decimal>|W<hex>[:int16|uint16|int32|uint32|float32]' or "
    "'M<decimal>|X<hex>|Y<hex>|B<hex>', optionally followed by ' scale=<number> offset=<number>', "
    "e.g. 'D200:float32' or 'X1F'"
)
_ADDR_RE = re.compile(r"^([A-Za-z]+)([0-9A-Fa-f]+)$")

END_CODE_TEXT = {
    0xC050: "ASCII data that cannot be converted to binary",
    0xC051: "number of points outside the allowed range",
    0xC052: "number of points outside the allowed range",
    0xC053: "number of points outside the allowed range",
    0xC054: "number of points outside the allowed range",
    0xC056: "read/write past the last device address",
    0xC058: "request data length does not match",
    0xC059: "command or subcommand not supported",
    0xC05B: "the CPU cannot read or write this device",
    0xC05C: "error in the request (e.g. bit access to a word device)",
    0xC061: "request data length does not match the number of points",
}


class McError(Exception):
    """The PLC answered with an error end code."""

    def __init__(self, end_code: int, what: str = "") -> None:
        self.end_code = end_code
        text = END_CODE_TEXT.get(end_code, "see the MELSEC manual's error code list")
        super().__init__(f"{what + ': ' if what else ''}MC end code 0x{end_code:04X} ({text})")


@dataclass(frozen=True)
class McAddress:
    """One parsed tag address."""

    device: Device
    number: int
    type: str  # "bool" for bit devices
    scaling: codec.Scaling

    @property
    def points(self) -> int:
        """How many device points the value spans (1 for a bit, the type's words otherwise)."""
        return 1 if self.device.is_bit else codec.WORD_TYPES[self.type][0]


def parse_address(text: str, tag_path: str) -> McAddress:
    """Parse a tag's MELSEC address; a mistake raises ValueError naming the tag and the allowed forms."""
    core, scaling = codec.split_options(text, tag_path, ALLOWED_FORMS)

    def bad(problem: str) -> ValueError:
        return ValueError(
            f"tag {tag_path}: MELSEC address {text!r}: {problem}; allowed forms: {ALLOWED_FORMS}"
        )

    addr, _, type_name = core.partition(":")
    m = _ADDR_RE.match(addr)
    if not m:
        raise bad("not a device address")
    letters, digits = m.group(1).upper(), m.group(2)
    # a hexadecimal number may start with letters (XA0, WFF): take the known device name first
    if letters not in DEVICES:
        known = next((d for d in DEVICES if letters.startswith(d) and DEVICES[d].base == 16), None)
        if known is None:
            raise bad(f"device {letters!r} is not supported (use {', '.join(DEVICES)})")
        digits = letters[len(known) :] + digits
        letters = known
    dev = DEVICES[letters]
    try:
        number = int(digits, dev.base)
    except ValueError:
        raise bad(
            f"{dev.name} numbers are {'decimal' if dev.base == 10 else 'hexadecimal'}, got {digits!r}"
        ) from None
    type_name = type_name.lower()
    if dev.is_bit:
        if type_name not in ("", "bool"):
            raise bad(f"{dev.name} is a bit device and takes no type (got {type_name!r})")
        if scaling != codec.Scaling():
            raise bad("scale and offset do not apply to bits")
        type_name = "bool"
    else:
        type_name = type_name or "int16"
        if type_name not in MC_WORD_TYPES:
            raise bad(f"type {type_name!r} is not known (use {', '.join(MC_WORD_TYPES)})")
    points = 1 if dev.is_bit else codec.WORD_TYPES[type_name][0]
    if number + points - 1 > MAX_DEVICE_NUMBER:
        raise bad(f"device number {number} is too large")
    return McAddress(dev, number, type_name, scaling)


# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """Access route of a 3E frame: network, PC, request destination module I/O and station numbers."""

    network: int = 0
    pc: int = 0xFF
    io: int = 0x03FF
    station: int = 0


def device_spec(dev: Device, head: int, points: int) -> bytes:
    """Head device number (3 bytes), device code, number of points (binary 3E layout)."""
    return struct.pack("<I", head)[:3] + bytes([dev.code]) + struct.pack("<H", points)


def request_frame(route: Route, timer: int, command: int, subcommand: int, data: bytes) -> bytes:
    """A 3E binary request: subheader, route, length, monitoring timer, command, subcommand, data."""
    body = struct.pack("<HHH", timer, command, subcommand) + data
    return (
        struct.pack(">H", SUBHEADER_REQUEST)
        + struct.pack("<BBHBH", route.network, route.pc, route.io, route.station, len(body))
        + body
    )


def pack_bits(values: list[int] | np.ndarray) -> bytes:
    """Bit-unit data: two points per byte, the first point in the high nibble (1 = ON)."""
    v = np.asarray(values, dtype=np.uint8) != 0
    if len(v) % 2:
        v = np.append(v, False)
    return ((v[0::2].astype(np.uint8) << 4) | v[1::2].astype(np.uint8)).tobytes()


def unpack_bits(data: bytes, points: int) -> np.ndarray:
    """Inverse of ``pack_bits``: 0/1 per point."""
    b = np.frombuffer(data, dtype=np.uint8)
    out = np.empty(2 * len(b), dtype=np.uint8)
    out[0::2] = b >> 4
    out[1::2] = b & 0x0F
    return (out[:points] != 0).astype(np.uint8)


class McClient:
    """A minimal MC 3E binary client over asyncio streams; one request at a time, every call timed."""

    def __init__(
        self,
        host: str,
        port: int,
        route: Route = Route(),
        timeout_s: float = 2.0,
        monitoring_timer_s: float = 1.0,
    ) -> None:
        self.host, self.port, self.route, self.timeout_s = host, port, route, timeout_s
        self.timer = max(1, round(monitoring_timer_s / 0.25))
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        """Open the TCP connection to the PLC."""
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout_s
        )

    async def close(self) -> None:
        """Close the connection."""
        w, self._writer, self._reader = self._writer, None, None
        if w is not None:
            w.close()
            try:
                await asyncio.wait_for(w.wait_closed(), 1.0)
            except Exception:  # noqa: BLE001 - closing a dead socket
                pass

    @property
    def connected(self) -> bool:
        """Whether the connection is open."""
        return self._writer is not None and not self._writer.is_closing()

    async def request(self, command: int, subcommand: int, data: bytes, what: str = "") -> bytes:
        """Send one request; return the response data after the end code, or raise McError."""
        if self._reader is None or self._writer is None:
            raise ConnectionError(f"not connected to MELSEC PLC {self.host}:{self.port}")
        frame = request_frame(self.route, self.timer, command, subcommand, data)
        async with self._lock:
            self._writer.write(frame)
            try:
                await asyncio.wait_for(self._writer.drain(), self.timeout_s)
                head = await asyncio.wait_for(self._reader.readexactly(9), self.timeout_s)
                sub = struct.unpack(">H", head[:2])[0]
                length = struct.unpack("<H", head[7:9])[0]
                if sub != SUBHEADER_RESPONSE:
                    raise ConnectionError(
                        f"MELSEC PLC {self.host}:{self.port} sent subheader 0x{sub:04X}, not a 3E "
                        f"binary response; check that the port is set to MC protocol, binary"
                    )
                body = await asyncio.wait_for(self._reader.readexactly(length), self.timeout_s)
            except TimeoutError:
                raise TimeoutError(
                    f"MELSEC PLC {self.host}:{self.port} did not answer within {self.timeout_s:g} s"
                ) from None
            except asyncio.IncompleteReadError:
                raise ConnectionError(f"MELSEC PLC {self.host}:{self.port} closed the connection") from None
        if len(body) < 2:
            raise ConnectionError("MC response too short")
        end_code = struct.unpack("<H", body[:2])[0]
        if end_code:
            raise McError(end_code, what)
        return body[2:]

    async def read_words(self, dev: Device, head: int, points: int) -> np.ndarray:
        """Batch read in word units: uint16 per word."""
        data = await self.request(
            CMD_BATCH_READ,
            SUB_WORD,
            device_spec(dev, head, points),
            f"reading {points} words from {dev.name}{head}",
        )
        if len(data) != 2 * points:
            raise ConnectionError(f"MC response has {len(data)} bytes, {2 * points} were expected")
        return np.frombuffer(data, dtype="<u2").astype(np.uint16)

    async def read_bits(self, dev: Device, head: int, points: int) -> np.ndarray:
        """Batch read in bit units: 0/1 per point."""
        data = await self.request(
            CMD_BATCH_READ,
            SUB_BIT,
            device_spec(dev, head, points),
            f"reading {points} bits from {dev.name}{head}",
        )
        if len(data) != (points + 1) // 2:
            raise ConnectionError(f"MC response has {len(data)} bytes, {(points + 1) // 2} were expected")
        return unpack_bits(data, points)

    async def write_words(self, dev: Device, head: int, words: list[int]) -> None:
        """Write ``words`` to device ``dev`` from point ``head`` on."""
        data = device_spec(dev, head, len(words)) + struct.pack(f"<{len(words)}H", *words)
        await self.request(CMD_BATCH_WRITE, SUB_WORD, data, f"writing {len(words)} words to {dev.name}{head}")

    async def write_bits(self, dev: Device, head: int, bits: list[int]) -> None:
        """Write ``bits`` to device ``dev`` from point ``head`` on."""
        data = device_spec(dev, head, len(bits)) + pack_bits(bits)
        await self.request(CMD_BATCH_WRITE, SUB_BIT, data, f"writing {len(bits)} bits to {dev.name}{head}")


# ---------------------------------------------------------------------------------------------
# Connector
# ---------------------------------------------------------------------------------------------
@dataclass
class McRead:
    """One batch read of a poll cycle and how it becomes tag values."""

    device: Device
    head: int
    points: int
    positions: np.ndarray
    offsets: np.ndarray
    groups: list[tuple[str, np.ndarray]]  # (type, member indices into positions)


def plan_reads(
    addresses: list[McAddress],
    max_word_gap: int = 16,
    max_words: int = MAX_WORD_POINTS,
    max_bit_gap: int = 64,
    max_bits: int = MAX_BIT_POINTS,
) -> list[McRead]:
    """Group addresses per device into the fewest batch reads."""
    reads: list[McRead] = []
    for dev in DEVICES.values():
        members = [i for i, a in enumerate(addresses) if a.device is dev]
        if not members:
            continue
        items = [(addresses[i].number, addresses[i].points) for i in members]
        spans = codec.group_spans(
            items, max_bit_gap if dev.is_bit else max_word_gap, max_bits if dev.is_bit else max_words
        )
        for head, points, idx in spans:
            positions = np.array([members[j] for j in idx], dtype=np.int64)
            offsets = np.array([addresses[p].number - head for p in positions], dtype=np.int64)
            by_type: dict[str, list[int]] = {}
            for k, p in enumerate(positions):
                by_type.setdefault(addresses[p].type, []).append(k)
            reads.append(
                McRead(
                    dev,
                    head,
                    points,
                    positions,
                    offsets,
                    [(t, np.array(ks, dtype=np.int64)) for t, ks in by_type.items()],
                )
            )
    return reads


class MelsecConnector(PolledConnector):
    """Polls a Mitsubishi MELSEC PLC over MC protocol 3E binary; writes D/R/W words and M/B bits."""

    schema = polled_schema(
        "PLC or Ethernet module IP address", 5007, "TCP port set for MC protocol (binary) in the PLC",
        {
            "network": Option(int, 0, min=0, max=255, help="network number (0: the connected station)"),
            "pc": Option(int, 0xFF, min=0, max=255, help="PC number (255: the connected station)"),
            "io": Option(
                int, 0x03FF, min=0, max=0xFFFF, help="request destination module I/O number (0x3FF: own CPU)"
            ),
            "station": Option(int, 0, min=0, max=255, help="request destination module station number"),
        },
        {
            "monitoring_timer_s": Option(
                float, 1.0, min=0.25, max=60, help="how long the PLC may take to answer"
            ),
            "max_word_gap": Option(
                int, 16, min=0, max=959, help="unused words read to join two tags into one request"
            ),
            "max_words_per_request": Option(
                int, MAX_WORD_POINTS, min=1, max=MAX_WORD_POINTS, help="words per read"
            ),
            "max_bit_gap": Option(
                int, 64, min=0, max=MAX_BIT_POINTS - 1, help="unused bits read to join two tags"
            ),
            "max_bits_per_request": Option(
                int, MAX_BIT_POINTS, min=1, max=MAX_BIT_POINTS, help="bits per read"
            ),
        },
    )
    plan_reads = staticmethod(plan_reads)
    PLAN_OPTIONS = ("max_word_gap", "max_words_per_request", "max_bit_gap", "max_bits_per_request")
    PLAN_HINT = "raise max_words_per_request or max_bits_per_request"
    WRITABLE = WRITABLE_DEVICES
    write_target = staticmethod(attrgetter("device.name"))
    RAW_DTYPES = {t: codec.WORD_TYPES[t][1] for t in MC_WORD_TYPES}

    # -- grammar ----------------------------------------------------------------------------------
    def parse(self, address: str, tag_path: str) -> McAddress:
        """``D200:float32`` and the like."""
        return parse_address(address, tag_path)

    def read_only_text(self, tag: Tag, address: McAddress) -> str:
        """X and Y are the PLC's I/O images; only the devices in ``WRITABLE_DEVICES`` are written."""
        dev = address.device.name
        return (
            f"tag {tag.path} is marked writable but {dev} is the PLC's "
            f"{'input' if dev == 'X' else 'output'} image; only "
            f"{', '.join(WRITABLE_DEVICES)} devices can be written"
        )

    def decode(self, req: McRead, data: np.ndarray, raw: np.ndarray) -> None:
        """Bits as they are, words decoded per type, low word first."""
        if req.device.is_bit:
            raw[req.positions] = data[req.offsets]
            return
        for type_name, members in req.groups:
            raw[req.positions[members]] = codec.decode_words(data, req.offsets[members], type_name, "cdab")

    def is_bit(self, address: McAddress) -> bool:
        """Bit devices (M, B) are bits."""
        return address.device.is_bit

    # -- wire calls -------------------------------------------------------------------------------
    def new_client(self) -> McClient:
        """An MC protocol client on the connector's route."""
        o = self.options
        return McClient(
            o["host"],
            o["port"],
            Route(o["network"], o["pc"], o["io"], o["station"]),
            o["timeout_s"],
            o["monitoring_timer_s"],
        )

    async def connect_client(self, client: McClient) -> None:
        """Open the TCP connection."""
        await client.connect()

    async def close_client(self, client: McClient) -> None:
        """Close the TCP connection."""
        await client.close()

    def request_key(self, req: McRead) -> tuple[str, int]:
        """Device and head number."""
        return (req.device.name, req.head)

    async def read_request(self, client: McClient, req: McRead) -> np.ndarray:
        """One batch read in bit or word units; an error end code is a refusal (BAD_CONFIG)."""
        try:
            if req.device.is_bit:
                return await client.read_bits(req.device, req.head, req.points)
            return await client.read_words(req.device, req.head, req.points)
        except McError as e:
            raise ReadRefused(
                BAD_CONFIG, f"{e}; its {len(req.positions)} tags get quality bad_config (check the addresses)"
            ) from None

    async def write_bit(self, client: McClient, tag: Tag, address: McAddress, value: bool) -> None:
        """Batch write of one bit."""
        await client.write_bits(address.device, address.number, [int(value)])

    async def write_raw(self, client: McClient, tag: Tag, address: McAddress, raw: int | float) -> None:
        """Batch write of the value's words, low word first."""
        await client.write_words(address.device, address.number, codec.encode_words(raw, address.type, "cdab"))
