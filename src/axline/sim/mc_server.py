"""A MELSEC PLC at protocol level: an asyncio MC protocol server (3E frame, binary code).

It holds a device memory (D, W, R word devices; M, X, Y, B bit devices) and answers batch read
(0x0401) and batch write (0x1401) in word units (subcommand 0x0000) and bit units (0x0001) the
way a Q/L/iQ-R CPU does, with the PLC's error end codes:

- 0xC059: unknown command or subcommand
- 0xC05B: a device code the CPU does not have
- 0xC05C: bit-unit access to a word device
- 0xC051: number of points 0 or above the limit (960 words, 7168 bits)
- 0xC056: access past the last device address
- 0xC061: request data length does not match the points

Tests use it as a real peer of :class:`axline.connect.melsec.MelsecConnector`; the virtual
factory can use it to impersonate a MELSEC PLC (``put``/``get`` take the connector's addresses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from dataclasses import dataclass

import numpy as np

from axline.connect import codec
from axline.connect.melsec import (
    CMD_BATCH_READ,
    CMD_BATCH_WRITE,
    DEVICE_BY_CODE,
    DEVICES,
    MAX_BIT_POINTS,
    MAX_WORD_POINTS,
    SUB_BIT,
    SUB_WORD,
    SUBHEADER_REQUEST,
    SUBHEADER_RESPONSE,
    pack_bits,
    parse_address,
    unpack_bits,
)

log = logging.getLogger(__name__)

# points per device (a Q CPU's defaults are of this order)
DEFAULT_SIZES = {"D": 12288, "W": 0x2000, "R": 32768, "M": 8192, "X": 0x2000, "Y": 0x2000, "B": 0x2000}

ERR_POINTS = 0xC051
ERR_RANGE = 0xC056
ERR_COMMAND = 0xC059
ERR_DEVICE = 0xC05B
ERR_REQUEST = 0xC05C
ERR_LENGTH = 0xC061


@dataclass(frozen=True)
class McRequest:
    """One request the server answered (for tests and diagnostics)."""

    command: int
    subcommand: int
    device: str
    head: int
    points: int
    end_code: int


class McError(Exception):
    """An MC protocol request refused with ``end_code``."""
    def __init__(self, end_code: int) -> None:
        self.end_code = end_code
        super().__init__(f"0x{end_code:04X}")


class McMemory:
    """Device memory: uint16 per word device point, uint8 (0/1) per bit device point."""

    def __init__(self, sizes: dict[str, int] | None = None) -> None:
        sizes = {**DEFAULT_SIZES, **(sizes or {})}
        unknown = set(sizes) - set(DEVICES)
        if unknown:
            raise ValueError(f"sizes: unknown devices {sorted(unknown)}; known: {', '.join(DEVICES)}")
        for name, n in sizes.items():
            if not isinstance(n, int) or not 1 <= n <= 0xFFFFFF:
                raise ValueError(f"sizes[{name!r}] must be an integer in 1..16777215, got {n!r}")
        self.words = {n: np.zeros(sizes[n], dtype=np.uint16) for n, d in DEVICES.items() if not d.is_bit}
        self.bits = {n: np.zeros(sizes[n], dtype=np.uint8) for n, d in DEVICES.items() if d.is_bit}

    def size(self, device: str) -> int:
        """How many points the device ``device`` has."""
        return len(self.words[device]) if device in self.words else len(self.bits[device])

    def put(self, address: str, value: float) -> None:
        """Store an engineering value at a connector-style address ("D200:float32", "M10", ...)."""
        a = parse_address(address, address)
        if a.device.is_bit:
            self.bits[a.device.name][a.number] = 1 if value else 0
            return
        raw = codec.to_raw(value, a.scaling.scale, a.scaling.offset, codec.WORD_TYPES[a.type][1], address)
        words = codec.encode_words(raw, a.type, "cdab")
        self.words[a.device.name][a.number : a.number + len(words)] = words

    def get(self, address: str) -> float:
        """The engineering value at a connector-style address."""
        a = parse_address(address, address)
        if a.device.is_bit:
            return float(self.bits[a.device.name][a.number])
        raw = codec.decode_words(self.words[a.device.name], np.array([a.number]), a.type, "cdab")[0]
        return float(raw * a.scaling.scale + a.scaling.offset)


class McServer:
    """An asyncio MC 3E binary server; ``port=0`` picks a free port (see ``port`` after ``start``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, memory: McMemory | None = None) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.host, self.port = host, port
        self.memory = memory or McMemory()
        self.requests: list[McRequest] = []
        self.silent = False  # when True, requests are read but never answered (a hung PLC)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> McServer:
        """Start listening; returns the server (its ``port`` is the one bound)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection (as a PLC that is switched off)."""
        srv, self._server = self._server, None
        if srv is not None:
            srv.close()
        for w in list(self._writers):
            w.close()
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(w.wait_closed(), 1.0)
        self._writers.clear()
        if srv is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1.0)

    async def __aenter__(self) -> McServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readexactly(9)
                sub = struct.unpack(">H", head[:2])[0]
                net, pc, io, st, length = struct.unpack("<BBHBH", head[2:])
                if sub != SUBHEADER_REQUEST:
                    log.warning("MC server: subheader 0x%04X is not a 3E binary request; closing", sub)
                    return
                body = await reader.readexactly(length)
                if self.silent:
                    continue
                end_code, data, command, subcommand = self._handle(body)
                route = struct.pack("<BBHB", net, pc, io, st)
                if end_code:
                    payload = struct.pack("<H", end_code) + route + struct.pack("<HH", command, subcommand)
                else:
                    payload = struct.pack("<H", 0) + data
                writer.write(
                    struct.pack(">H", SUBHEADER_RESPONSE) + route + struct.pack("<H", len(payload)) + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _handle(self, body: bytes) -> tuple[int, bytes, int, int]:
        """Answer one request body (timer onwards): (end code, response data, command, subcommand)."""
        if len(body) < 6:
            return ERR_LENGTH, b"", 0, 0
        _timer, command, subcommand = struct.unpack("<HHH", body[:6])
        name, head, points = "?", -1, 0
        try:
            if command not in (CMD_BATCH_READ, CMD_BATCH_WRITE) or subcommand not in (SUB_WORD, SUB_BIT):
                raise McError(ERR_COMMAND)
            if len(body) < 12:
                raise McError(ERR_LENGTH)
            head = int.from_bytes(body[6:9], "little")
            code = body[9]
            points = struct.unpack("<H", body[10:12])[0]
            dev = DEVICE_BY_CODE.get(code)
            if dev is None:
                raise McError(ERR_DEVICE)
            name = dev.name
            data = (
                self._read(dev.name, dev.is_bit, subcommand, head, points)
                if command == CMD_BATCH_READ
                else self._write(dev.name, dev.is_bit, subcommand, head, points, body[12:])
            )
            end = 0
        except McError as e:
            data, end = b"", e.end_code
        self.requests.append(McRequest(command, subcommand, name, head, points, end))
        return end, data, command, subcommand

    def _check(self, name: str, is_bit: bool, subcommand: int, head: int, points: int) -> int:
        """Validate an access; the number of device points it touches."""
        if subcommand == SUB_BIT and not is_bit:
            raise McError(ERR_REQUEST)
        limit = MAX_BIT_POINTS if subcommand == SUB_BIT else MAX_WORD_POINTS
        if not 1 <= points <= limit:
            raise McError(ERR_POINTS)
        span = points * 16 if (is_bit and subcommand == SUB_WORD) else points
        if head + span > self.memory.size(name):
            raise McError(ERR_RANGE)
        return span

    def _read(self, name: str, is_bit: bool, subcommand: int, head: int, points: int) -> bytes:
        span = self._check(name, is_bit, subcommand, head, points)
        if not is_bit:
            return self.memory.words[name][head : head + span].astype("<u2").tobytes()
        bits = self.memory.bits[name][head : head + span]
        if subcommand == SUB_BIT:
            return pack_bits(bits)
        # word units on a bit device: 16 points per word, the lowest device in bit 0
        words = (bits.reshape(points, 16).astype(np.uint16) << np.arange(16, dtype=np.uint16)).sum(axis=1)
        return words.astype("<u2").tobytes()

    def _write(self, name: str, is_bit: bool, subcommand: int, head: int, points: int, data: bytes) -> bytes:
        span = self._check(name, is_bit, subcommand, head, points)
        if subcommand == SUB_BIT:
            if len(data) != (points + 1) // 2:
                raise McError(ERR_LENGTH)
            self.memory.bits[name][head : head + span] = unpack_bits(data, points)
            return b""
        if len(data) != 2 * points:
            raise McError(ERR_LENGTH)
        words = np.frombuffer(data, dtype="<u2").astype(np.uint16)
        if is_bit:
            self.memory.bits[name][head : head + span] = ((words[:, None] >> np.arange(16)) & 1).ravel()
        else:
            self.memory.words[name][head : head + span] = words
        return b""
