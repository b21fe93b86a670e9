"""The base of the polled PLC connectors (Modbus TCP, S7, MELSEC), in the manner of a data-update
coordinator: the base owns what every polled protocol does alike, each protocol keeps only its
address grammar and its wire calls.

The base does, once per connector: validate the options (``POLL_OPTIONS`` is the part of the schema
every polled connector shares), parse each tag's address (``parse``), refuse a writable tag whose
address is outside the writable parts (``write_target`` not in ``WRITABLE``, said by
``READ_ONLY``), plan the reads (the protocol's ``plan_reads`` with the options named in
``PLAN_OPTIONS``; a plan that cannot be made names the options to raise, ``PLAN_HINT``) and keep the per-tag scale, offset and range as arrays.
Per session: open the client, poll every ``poll_interval_ms`` until stopped or failed, close it;
``Connector.run`` reconnects with backoff. Per poll: one wire read per planned request
(``read_request``), decoded into the raw values (``decode``); a request the device refuses raises
``ReadRefused`` and only its tags get the refusal's quality (logged once until it reads again),
while any other error ends the session. Writes: the checks every PLC write makes (writable, this
connector's tag, in range, connected), 0/1 for bits, scale and offset inverted and the raw value
checked to fit its device type (``RAW_DTYPES``), then the protocol's ``write_bit`` or ``write_raw``.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any, ClassVar

import numpy as np

from axline.batch import Batch
from axline.connect import codec
from axline.connect.base import CONNECTED, Connector, Sink
from axline.connect.registry import Option, Schema
from axline.plant import Tag

log = logging.getLogger(__name__)

#: the options every polled connector has, between its addressing options and its own
POLL_OPTIONS: dict[str, Option] = {
    "poll_interval_ms": Option(float, 1000.0, min=10, max=600000, help="time between poll cycles"),
    "timeout_s": Option(float, 2.0, min=0.1, max=60, help="connect and response timeout"),
}


def polled_schema(host_help: str, port: int, port_help: str, addressing: dict[str, Option],
                  own: dict[str, Option]) -> Schema:
    """A polled connector's schema: ``host`` (required), ``port`` (with its default), the addressing
    options (unit, rack, route), the shared ``POLL_OPTIONS``, then the protocol's own options."""
    return Schema({
        "host": Option(str, help=host_help),
        "port": Option(int, port, min=1, max=65535, help=port_help),
        **addressing,
        **POLL_OPTIONS,
        **own,
    })


class ReadRefused(Exception):
    """The device refused one read request (the connection is fine): its tags get ``quality``."""

    def __init__(self, quality: int, message: str) -> None:
        super().__init__(message)
        self.quality = quality
        self.message = message


class PolledConnector(Connector):
    """A connector that polls a device in planned requests; subclasses give grammar and wire calls."""

    schema: ClassVar[Schema]
    #: the options passed, in order, to ``plan_reads`` after the addresses
    PLAN_OPTIONS: ClassVar[tuple[str, ...]]
    #: which options to raise when the reads cannot be planned
    PLAN_HINT: ClassVar[str]
    #: the tables, areas or devices (as ``write_target`` names them) that may be written
    WRITABLE: ClassVar[tuple[Any, ...]]
    #: the error for a tag marked writable at a read-only address (``str.format`` with tag, address)
    READ_ONLY: ClassVar[str]
    #: the numpy dtype of the device value of each address type (a written value must fit it)
    RAW_DTYPES: ClassVar[dict[str, str]]
    #: what a bit is called in the write error ("a bit takes 0 or 1")
    BIT_NAME: ClassVar[str] = "bit"

    def __init__(self, name: str, options: dict[str, Any], tags: list[Tag]) -> None:
        """Validate the options, parse and check the addresses, plan the reads."""
        options = self.schema.validate(options)
        super().__init__(name, options, tags)
        self._tags = [t for t in tags if t.source]
        self.addresses = {t.path: self.parse(t.source.address, t.path) for t in self._tags}
        for t in self._tags:
            if t.writable and self.write_target(self.addresses[t.path]) not in self.WRITABLE:
                raise ValueError(self.read_only_text(t, self.addresses[t.path]))
        self.paths = tuple(t.path for t in self._tags)
        addrs = [self.addresses[p] for p in self.paths]
        try:
            self.requests = self.plan_reads(addrs, *(options[k] for k in self.PLAN_OPTIONS))
        except ValueError as e:
            raise ValueError(f"connector {name!r}: {e}; {self.PLAN_HINT}") from None
        self._scale = np.array([a.scaling.scale for a in addrs], dtype=np.float64)
        self._offset = np.array([a.scaling.offset for a in addrs], dtype=np.float64)
        self._lo = np.array([t.lo for t in self._tags], dtype=np.float64)
        self._hi = np.array([t.hi for t in self._tags], dtype=np.float64)
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._warned: set[Hashable] = set()

    # -- the protocol's grammar ---------------------------------------------------------------
    @abc.abstractmethod
    def parse(self, address: str, tag_path: str) -> Any:
        """The parsed address of a tag (with ``.scaling``); ValueError naming the tag when wrong."""

    write_target: ClassVar[Callable[[Any], Any]]
    """The table, area or device of an address, as ``WRITABLE`` names them."""

    def read_only_text(self, tag: Tag, address: Any) -> str:
        """The error for a tag marked writable whose address may not be written."""
        return self.READ_ONLY.format(tag=tag, address=address)

    plan_reads: ClassVar[Callable[..., list[Any]]]
    """The protocol's read planner: ``plan_reads(addresses, *options)`` -> the requests of one poll
    cycle, each with ``positions`` (indices into ``paths``); ValueError when it cannot be done."""

    # -- the protocol's wire calls ------------------------------------------------------------
    @abc.abstractmethod
    def new_client(self) -> Any:
        """A client for one session, not yet connected."""

    @abc.abstractmethod
    async def connect_client(self, client: Any) -> None:
        """Connect; raise when the device cannot be reached."""

    @abc.abstractmethod
    async def close_client(self, client: Any) -> None:
        """Close the session's client (the device may be gone already)."""

    @abc.abstractmethod
    async def read_request(self, client: Any, req: Any) -> np.ndarray:
        """One wire read of a planned request; ``ReadRefused`` when the device refuses it."""

    @abc.abstractmethod
    def request_key(self, req: Any) -> Hashable:
        """What names a request in the once-only refusal warnings."""

    @abc.abstractmethod
    def decode(self, req: Any, data: np.ndarray, raw: np.ndarray) -> None:
        """Put the raw values of a request's tags from ``data`` into ``raw`` (indexed like ``paths``)."""

    @abc.abstractmethod
    def is_bit(self, address: Any) -> bool:
        """Whether a writable address holds one bit (written as 0 or 1)."""

    @abc.abstractmethod
    async def write_bit(self, client: Any, tag: Tag, address: Any, value: bool) -> None:
        """Write one bit of ``tag``."""

    @abc.abstractmethod
    async def write_raw(self, client: Any, tag: Tag, address: Any, raw: int | float) -> None:
        """Write a raw device value of ``tag`` (already checked to fit its ``RAW_DTYPES`` entry)."""

    # -- what the base does -------------------------------------------------------------------
    async def session(self, sink: Sink) -> None:
        """Connect, poll until stopped or failed, close."""
        client = self.new_client()
        try:
            await self.connect_client(client)
            self._client = client
            await self.poll_loop(sink, self.options["poll_interval_ms"] / 1000)
        finally:
            self._client = None
            await self.close_client(client)

    async def poll_loop(self, sink: Sink, interval_s: float) -> None:
        """Once connected: mark the connection up, then hand ``poll_once``'s batch to ``sink`` every
        ``interval_s`` (from the start of one poll to the next) until stopped. A failing poll raises
        out of here, and ``run`` reconnects."""
        self.connects += 1
        self._set_state(CONNECTED)
        while not self._stopping.is_set():
            t0 = time.monotonic()
            batch = await self.poll_once()
            if len(batch):
                self.readings += len(batch)
                sink(batch)
            try:
                await asyncio.wait_for(self._stopping.wait(), max(0.0, interval_s - (time.monotonic() - t0)))
            except TimeoutError:
                pass

    async def poll_once(self) -> Batch:
        """Read every tag once (one request per planned span); one batch of all tags."""
        n = len(self.paths)
        raw = np.full(n, np.nan)
        ts = np.zeros(n, dtype=np.int64)
        forced_q = np.zeros(n, dtype=np.uint8)
        for req in self.requests:
            data, quality = await self._read(req)
            ts[req.positions] = time.time_ns()
            if data is None:
                forced_q[req.positions] = quality
                continue
            self.decode(req, data, raw)
        values = raw * self._scale + self._offset
        q = codec.quality_of(values, self._lo, self._hi)
        bad = forced_q > 0
        q[bad] = forced_q[bad]
        return Batch(self.paths, np.arange(n), ts, values, q)

    async def _read(self, req: Any) -> tuple[np.ndarray | None, int]:
        """(data, 0), or (None, quality) when the device refused the request."""
        client = self._client
        if client is None:
            raise ConnectionError("not connected")
        key = self.request_key(req)
        try:
            data = await self.read_request(client, req)
        except ReadRefused as e:
            if key not in self._warned:
                self._warned.add(key)
                log.warning("connector %s: %s", self.name, e.message)
            return None, e.quality
        self._warned.discard(key)
        return data, 0

    async def write(self, tag: Tag, value: float) -> None:
        """Write a tag: checked (writable, this connector's, in range, connected), a bit as 0 or 1,
        a word with scale and offset inverted and checked to fit the device type."""
        addr = codec.check_write_target(self, tag, value, self.addresses)
        if self.is_bit(addr):
            v = float(value)
            if v not in (0.0, 1.0):
                raise ValueError(f"tag {tag.path}: a {self.BIT_NAME} takes 0 or 1, got {value!r}")
            await self.write_bit(self._client, tag, addr, bool(v))
            return
        raw = codec.to_raw(value, addr.scaling.scale, addr.scaling.offset, self.RAW_DTYPES[addr.type], f"tag {tag.path}")
        await self.write_raw(self._client, tag, addr, raw)
