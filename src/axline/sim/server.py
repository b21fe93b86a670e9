"""Serve the virtual factory over OPC UA, exactly as a real PLC gateway would.

Every simulated tag is a variable node with the string NodeId ``ns=<urn:axline:sim>;s=<tag path>``,
placed in folders that follow the ISA-95 hierarchy. Values carry the simulated time as their
SourceTimestamp. Writable tags (setpoints, the diverter) accept client writes, which reach the
simulation. Part images land in a folder the way a real camera's FTP upload would, and the ground
truth (faults, parts) is written as JSON lines for scoring.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from asyncua import Server, ua

from axline.sim.line import VirtualLine

log = logging.getLogger(__name__)

NAMESPACE = "urn:axline:sim"
DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:4840/axline/sim"


def _variant_type(kind: str) -> ua.VariantType:
    return ua.VariantType.Boolean if kind == "bool" else ua.VariantType.Double


class SimServer:
    """A VirtualLine stepped in (scaled) real time and published on an asyncua server."""

    def __init__(
        self,
        line: VirtualLine,
        endpoint: str = DEFAULT_ENDPOINT,
        speed: float = 1.0,
        tick_s: float = 0.2,
        camera_dir: str | os.PathLike | None = None,
        truth_file: str | os.PathLike | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (times faster than real time), got {speed}")
        if not 0.01 <= tick_s <= 10:
            raise ValueError(f"tick_s must be within 0.01..10 simulated seconds, got {tick_s}")
        self.line = line
        self.endpoint = endpoint
        self.speed = speed
        self.tick_s = tick_s
        self.camera_dir = Path(camera_dir) if camera_dir else None
        self.truth_file = Path(truth_file) if truth_file else None
        self.server = Server()
        self._nodes: dict[str, ua.NodeId] = {}
        self._vtypes: dict[str, ua.VariantType] = {}
        self._writable_last: dict[str, float] = {}
        self._stop = asyncio.Event()
        self.values_published = 0
        self.client_writes: list[tuple[str, float]] = []
        self.ready = asyncio.Event()

    async def setup(self) -> None:
        """Create the OPC UA address space: a node per station signal."""
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        self.server.set_server_name("axline virtual factory")
        self.server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await self.server.register_namespace(NAMESPACE)
        folders: dict[str, object] = {}
        objects = self.server.nodes.objects
        for tag in self.line.tags:
            parts = tag.path.split("/")
            parent = objects
            for depth in range(1, len(parts)):
                key = "/".join(parts[:depth])
                if key not in folders:
                    folders[key] = await parent.add_folder(ua.NodeId(key, ns), ua.QualifiedName(parts[depth - 1], ns))
                parent = folders[key]
            vt = _variant_type(tag.kind)
            init = False if vt == ua.VariantType.Boolean else 0.0
            node = await parent.add_variable(ua.NodeId(tag.path, ns), ua.QualifiedName(parts[-1], ns),
                                             ua.Variant(init, vt))
            if tag.unit:
                await node.add_property(ua.NodeId(tag.path + "#unit", ns), "EngineeringUnits", tag.unit)
            await node.add_property(ua.NodeId(tag.path + "#range", ns), "EURange", [float(tag.lo), float(tag.hi)])
            if tag.writable:
                await node.set_writable()
                self._writable_last[tag.path] = float(init)
            self._nodes[tag.path] = node.nodeid
            self._vtypes[tag.path] = vt

    async def _publish(self, batch) -> None:
        write = self.server.write_attribute_value
        paths = batch.paths
        nodes = [self._nodes[p] for p in paths]
        vtypes = [self._vtypes[p] for p in paths]
        for i, t, v, q in zip(batch.idx.tolist(), batch.ts.tolist(), batch.value.tolist(),
                              batch.quality.tolist(), strict=True):
            dt = datetime.fromtimestamp(t / 1e9, tz=UTC)
            vt = vtypes[i]
            if q >= 2 or math.isnan(v):
                dv = ua.DataValue(ua.Variant(None, ua.VariantType.Null), StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure),
                                  SourceTimestamp=dt, ServerTimestamp=dt)
            else:
                val = bool(v) if vt == ua.VariantType.Boolean else v
                dv = ua.DataValue(ua.Variant(val, vt), SourceTimestamp=dt, ServerTimestamp=dt)
            await write(nodes[i], dv)
            if paths[i] in self._writable_last:
                self._writable_last[paths[i]] = v  # what the PLC itself shows; a client write differs
        self.values_published += len(batch)

    def _apply_client_writes(self) -> None:
        """Pass values that clients wrote to writable nodes on to the simulation."""
        for path, last in self._writable_last.items():
            dv = self.server.read_attribute_value(self._nodes[path])
            try:
                fv = float(dv.Value.Value)
            except (TypeError, ValueError, AttributeError):
                continue
            if fv != last:
                self._writable_last[path] = fv
                self.line.write(path, fv)
                self.client_writes.append((path, fv))

    def _write_outputs(self, truth) -> None:
        for part in self.line.drain_parts():
            if truth:
                truth.write(json.dumps({"type": "part", **asdict(part)}) + "\n")
        for part, image, mask in self.line.drain_images():
            if self.camera_dir is not None:
                save_image_atomic(self.camera_dir / f"part-{part.part_id:07d}.png", image)
                if mask.any():
                    save_image_atomic(self.camera_dir / "truth" / f"part-{part.part_id:07d}-mask.png", mask)
        if truth:
            truth.flush()

    async def run(self, duration_s: float | None = None) -> None:
        """Run the factory in real time times ``speed`` and serve its signals (for ``duration_s`` or until
        stopped)."""
        await self.setup()
        truth = None
        if self.truth_file:
            self.truth_file.parent.mkdir(parents=True, exist_ok=True)
            truth = self.truth_file.open("a", encoding="utf-8")
            truth.write(json.dumps({"type": "start", "start_ns": self.line.now_ns, "speed": self.speed}) + "\n")
            for f in self.line.faults:
                truth.write(json.dumps({"type": "fault", **asdict(f)}) + "\n")
            truth.flush()
        if self.camera_dir is not None:
            (self.camera_dir / "truth").mkdir(parents=True, exist_ok=True)
        # every node gets the line's current value and time before the server opens (a 1 s tag has no
        # sample in the first 0.2 s tick), so no client ever sees a value without a time
        from axline.batch import Batch

        now = self.line.now_ns
        values = self.line.current_values()
        paths = list(values)
        vals = np.array([values[p] for p in paths], dtype=np.float64)
        await self._publish(Batch(paths, np.arange(len(paths)), np.full(len(paths), now), vals,
                                  np.where(np.isnan(vals), 5, 0)))
        await self._publish(self.line.step(self.tick_s))
        self._write_outputs(truth)
        async with self.server:
            self.ready.set()
            t0 = time.monotonic()
            k = 0
            try:
                while not self._stop.is_set():
                    if duration_s is not None and time.monotonic() - t0 >= duration_s:
                        break
                    self._apply_client_writes()
                    batch = self.line.step(self.tick_s)
                    await self._publish(batch)
                    self._write_outputs(truth)
                    k += 1
                    delay = t0 + k * self.tick_s / self.speed - time.monotonic()
                    if delay > 0:
                        try:
                            await asyncio.wait_for(self._stop.wait(), delay)
                        except TimeoutError:
                            pass
                    elif k % 50 == 0:
                        await asyncio.sleep(0)  # falling behind: still let the server answer
            finally:
                if truth:
                    truth.close()

    def stop(self) -> None:
        """Stop the run."""
        self._stop.set()


def save_image_atomic(path: Path, image: np.ndarray) -> None:
    """Write a PNG under a temporary name and rename it, so a folder watcher never sees half a file."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    Image.fromarray(image).save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)


def parse_start(value: str | None) -> int | None:
    """``now`` / None -> None (the line picks the current minute); ISO 8601 -> ns."""
    if value in (None, "", "now"):
        return None
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000


def faults_from_option(value: str | None):
    """The ``--faults`` option: ``"auto"`` or ``None`` (no faults)."""
    if value in (None, "auto"):
        return "auto"
    if value == "none":
        return None
    raise ValueError(f"--faults must be 'auto' or 'none', got {value!r}")
