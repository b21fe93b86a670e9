"""The virtual factory's line: five stations of an auto-parts line, their physics, faults and parts.

Parts flow press -> cnc -> furnace -> vision -> packing through small buffers. The press takes a
blank every ``takt_s`` seconds; every station works one part for about ``cycle_s`` seconds. The
simulation runs on a fixed internal tick of 0.2 s, so its result does not depend on how the caller
slices time: ``step(dt)`` returns the readings of every tag whose sampling instant fell in
``(t, t + dt]``, stamped with the exact sampling instants ``start_ns + k * period``.

Everything random comes from ``np.random.default_rng([seed, stream])`` with one stream per station
(and one each for faults, changeovers and images), so the same seed, start time, faults and writes
give identical readings, parts and images.

What happens on the line:

* press1 (hydraulic press): ram force/position and hydraulic pressure follow each stroke; the pump
  motor power follows the pressure; the oil warms with a 20-minute time constant.
* cnc1 (machining): spindle speed ramps, current follows the cutting load (roughing, finishing) and
  tool wear; spindle and coolant temperatures are first-order lags; vibration grows with bearing
  wear; the coolant pump runs through a filter whose differential pressure rises as it clogs; each
  part's bore is gauged (nominal 25.000 mm, tolerance +-0.020 mm) and tool wear shrinks it.
* furnace1 (gas-fired heat treatment): two zones with heavy thermal inertia, each held at
  ``temp_setpoint`` by a PI controller on its burner's gas flow; every part carried through takes
  heat out; flue O2 and exhaust temperature follow the combustion.
* camera1 (vision): takes an image 1 s after a part arrives and works the reject diverter 1.5 s
  later. A part is diverted when the ``diverter`` tag is 1 at that instant (written by a controller
  after the image, cleared when the next part is imaged) or, with ``auto_divert``, when the built-in
  legacy check flags it (any bore out of tolerance; most, not all, visual defects).
* packer1 packs good parts. Line totals count parts, electric energy and gas.

Micro-stops (5-40 s) happen at random on every station; a changeover (8-15 min, tool change on the
CNC) about every ``changeover_interval_s`` (4 h), the first 0.6-1.0 interval after start; rare jams
(state DOWN) on the press and packer
after the warm-up. Visual defects arise at a low base rate (~1.5 % of parts) at the stations that
cause them (press: dent, crack; cnc: scratch, missing_feature; furnace: stain).

This module is the line itself: the clock, the buffers between the stations, the faults applied,
the tags and the writes. Each station's physics is a module of ``axline.sim.stations``, the tag
tables are data in ``axline.sim.signals``, and the faults (kinds, ramps, schedule, scoring) are in
``axline.sim.faults``.
"""

from __future__ import annotations

import math
import numbers
import time
from collections import deque

import numpy as np

from axline.batch import BAD_SENSOR, GOOD, NS_PER_S, Batch
from axline.sim.camera import render_part
from axline.sim.camera_long import render_long_part
from axline.sim.faults import (
    FAULT_ASSETS,
    FAULT_KINDS,
    FAULT_SEVERITY,
    FAULT_TAGS,
    SENSOR_FAULT_DEFAULTS,
    ActiveFault,
    FaultRecord,
    FaultSpec,
    fault_ramp,
    recurring_schedule,
)
from axline.sim.signals import (
    ASSET_SIGNALS,
    STATE_CHANGEOVER,
    STATE_DOWN,
    STATE_IDLE,
    STATE_MICROSTOP,
    STATE_NAMES,
    STATE_NAMES_KO,
    STATE_RUNNING,
    STATE_STOPPED,
    SimTag,
)
from axline.sim.stations.base import (
    DIMENSION_NOMINAL_MM,
    DIMENSION_TOLERANCE_MM,
    STREAM_CHANGEOVER,
    STREAM_CNC,
    STREAM_FURNACE,
    STREAM_IMAGES,
    STREAM_PACKER,
    STREAM_PRESS,
    STREAM_VISION,
    PartRecord,
    Station,
    Stream,
)
from axline.sim.stations.cnc import Cnc
from axline.sim.stations.furnace import GAS_KWH_PER_NM3 as _GAS_KWH_PER_NM3
from axline.sim.stations.furnace import Furnace
from axline.sim.stations.packer import Packer
from axline.sim.stations.press import Press
from axline.sim.stations.vision import Vision

# the names the rest of axline imports from here
__all__ = [
    "AUTO_FAULT_HORIZON_S",
    "DIMENSION_NOMINAL_MM",
    "DIMENSION_TOLERANCE_MM",
    "FAULT_ASSETS",
    "FAULT_KINDS",
    "FAULT_SEVERITY",
    "FAULT_TAGS",
    "SENSOR_FAULT_DEFAULTS",
    "STATE_CHANGEOVER",
    "STATE_DOWN",
    "STATE_IDLE",
    "STATE_MICROSTOP",
    "STATE_NAMES",
    "STATE_NAMES_KO",
    "STATE_RUNNING",
    "STATE_STOPPED",
    "TICK_S",
    "_GAS_KWH_PER_NM3",
    "FaultRecord",
    "FaultSpec",
    "PartRecord",
    "SimTag",
    "VirtualLine",
    "recurring_schedule",
]

#: how far ahead ``faults="auto"`` schedules faults (simulated seconds)
AUTO_FAULT_HORIZON_S = 48 * 3600.0
TICK_S = 0.2
_TICK_NS = 200_000_000


PART_SHAPES = ("flange", "shaft")  # what the vision station sees: a square flange, a long shaft


class VirtualLine:
    """A deterministic simulated auto-parts line (see the module docstring).

    Parameters: ``seed`` (>= 0) picks every random stream; ``start_ns`` is the simulated start
    (UTC ns; None: now, rounded down to the second); ``faults`` is ``"auto"`` (every kind recurring
    at random severities after ``warmup_s``, separated by quiet gaps), None or a list of ``FaultSpec``; ``prefix`` is
    ``site/area/line``; ``takt_s`` paces the press and ``cycle_s`` is each station's ideal cycle;
    ``buffer_size`` parts fit between two stations; ``render_images`` renders an image per part
    (``color_images`` for RGB): for ``part="flange"`` an ``image_size`` square of a turned flange,
    for ``part="shaft"`` a long shaft ``4 * image_size`` wide and ``image_size`` high; ``auto_divert`` turns the built-in legacy reject
    check on; ``changeover_interval_s`` spaces the changeovers (None: none); ``vision_wait_s`` > 0
    makes the vision station hold each part at the diverter until the controller answers
    (``diverter`` = 1 rejects, ``result_ok`` = 1 passes) or that many seconds pass (then the legacy
    check decides, with ``auto_divert``).

    Attributes: ``tags`` (stable order), ``now_ns`` (simulated clock), ``faults`` (ground truth).
    """

    def __init__(
        self,
        seed: int = 0,
        start_ns: int | None = None,
        faults: str | list[FaultSpec] | None = "auto",
        prefix: str = "changwon/plant1/line1",
        warmup_s: float = 600.0,
        takt_s: float = 12.0,
        image_size: int = 256,
        render_images: bool = True,
        auto_divert: bool = True,
        cycle_s: float = 10.0,
        buffer_size: int = 2,
        color_images: bool = False,
        changeover_interval_s: float | None = 4 * 3600.0,
        vision_wait_s: float = 0.0,
        part: str = "flange",
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if start_ns is None:
            start_ns = time.time_ns() // NS_PER_S * NS_PER_S
        if not isinstance(start_ns, int | np.integer) or start_ns < 0:
            raise ValueError(
                f"start_ns must be a non-negative integer (ns since the epoch, UTC), got {start_ns!r}")
        parts = [p for p in str(prefix).split("/")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"prefix must be 'site/area/line' (three non-empty parts), got {prefix!r}")
        if not (isinstance(warmup_s, int | float) and 0.0 <= warmup_s <= 7 * 86400):
            raise ValueError(f"warmup_s must be in 0 .. 604800 seconds, got {warmup_s!r}")
        if not (isinstance(cycle_s, int | float) and 4.0 <= cycle_s <= 600.0):
            raise ValueError(f"cycle_s must be in 4 .. 600 seconds, got {cycle_s!r}")
        if not (isinstance(takt_s, int | float) and cycle_s <= takt_s <= 3600.0):
            raise ValueError(f"takt_s must be in cycle_s ({cycle_s}) .. 3600 seconds, got {takt_s!r}")
        if not isinstance(buffer_size, int) or not 1 <= buffer_size <= 100:
            raise ValueError(f"buffer_size must be an integer in 1 .. 100, got {buffer_size!r}")
        if changeover_interval_s is not None and not (
            isinstance(changeover_interval_s, int | float) and 1200.0 <= changeover_interval_s <= 7 * 86400
        ):
            raise ValueError("changeover_interval_s must be None (no changeovers) or 1200 .. 604800 "
                             f"seconds, got {changeover_interval_s!r}")
        if not isinstance(image_size, int) or not 32 <= image_size <= 4096:
            raise ValueError(f"image_size must be an integer in 32 .. 4096 pixels, got {image_size!r}")
        self.seed = int(seed)
        self.start_ns = int(start_ns)
        self.prefix = "/".join(parts)
        self.warmup_s = float(warmup_s)
        self.takt_s = float(takt_s)
        self.cycle_s = float(cycle_s)
        self.buffer_size = buffer_size
        if part not in PART_SHAPES:
            raise ValueError(f"part must be one of {PART_SHAPES}, got {part!r}")
        if part == "shaft" and image_size < 64:
            raise ValueError(f"a shaft's image is at least 64 pixels high, got image_size={image_size!r}")
        self.image_size = image_size
        self.part = part
        self.render_images = bool(render_images)
        self.auto_divert = bool(auto_divert)
        if not (isinstance(vision_wait_s, int | float) and 0.0 <= vision_wait_s <= 60.0):
            raise ValueError(f"vision_wait_s must be in 0 .. 60 seconds, got {vision_wait_s!r}")
        self.vision_wait_s = float(vision_wait_s)
        self.color_images = bool(color_images)
        self.now_ns = self.start_ns
        self._k = 0  # index of the last simulated tick

        self._press = Press(self, Stream(self.seed, STREAM_PRESS))
        self._cnc = Cnc(self, Stream(self.seed, STREAM_CNC))
        self._furnace = Furnace(self, Stream(self.seed, STREAM_FURNACE))
        self._vision = Vision(self, Stream(self.seed, STREAM_VISION))
        self._packer = Packer(self, Stream(self.seed, STREAM_PACKER))
        self._stations: list[Station] = [self._press, self._cnc, self._furnace, self._vision, self._packer]
        for up, down in zip(self._stations[:-1], self._stations[1:], strict=True):
            buf: deque[PartRecord] = deque()
            up.out_buf = buf
            down.in_buf = buf
        self._image_rng = np.random.default_rng([self.seed, STREAM_IMAGES])
        self._co_stream = Stream(self.seed, STREAM_CHANGEOVER)
        self._co_interval = changeover_interval_s
        if changeover_interval_s is None:
            self._changeover = (math.inf, math.inf)
        else:
            start = max(self.warmup_s, self._co_stream.uniform(0.6, 1.0) * changeover_interval_s)
            self._changeover = (start, start + self._co_stream.uniform(480.0, 900.0))
        self.in_changeover = False

        # tags in a stable order
        self.tags: list[SimTag] = []
        for st in self._stations:
            self._add_tags(f"{self.prefix}/{st.CELL}/{st.ASSET}", st.SIGNALS)
        self._add_tags(f"{self.prefix}/line/totals", ASSET_SIGNALS["totals"])
        self._paths = tuple(t.path for t in self.tags)
        self._index = {p: i for i, p in enumerate(self._paths)}
        self._period_ticks = np.array([round(t.period_s / TICK_S) for t in self.tags], dtype=np.int64)
        self._period_list = self._period_ticks.tolist()
        self._asset_paths = {st.ASSET: f"{self.prefix}/{st.CELL}/{st.ASSET}" for st in self._stations}
        self._asset_paths["totals"] = f"{self.prefix}/line/totals"

        # counters of the line
        self._next_part_id = 1
        self._parts_good = 0
        self._parts_rejected = 0
        self._energy_kwh = 0.0
        self._gas_nm3 = 0.0
        self._line_power = 0.0
        self._parts_done: list[PartRecord] = []
        self._images: list[tuple[PartRecord, np.ndarray, np.ndarray]] = []
        self._row: list[float] = self._initial_row()
        self._stuck_last: dict[int, float] = {}  # last sample before a stuck sensor freezes

        # faults
        if faults == "auto":
            specs = self._auto_faults()
        elif faults is None:
            specs = []
        elif isinstance(faults, list | tuple) and all(isinstance(f, FaultSpec) for f in faults):
            specs = list(faults)
        else:
            raise ValueError("faults must be 'auto', None or a list of FaultSpec")
        self._faults = sorted((self._make_fault(f) for f in specs), key=lambda a: a.record.start_ns)
        self.faults: list[FaultRecord] = [a.record for a in self._faults]

    # -- construction helpers -------------------------------------------------------------------
    def _add_tags(self, asset_path: str, signals: tuple[tuple, ...]) -> None:
        for sig, unit, lo, hi, period, kind, writable, en, ko in signals:
            self.tags.append(SimTag(f"{asset_path}/{sig}", unit, lo, hi, period, writable, kind, en, ko))

    def _initial_row(self) -> list[float]:
        """Values at the start instant, so ``current_values()`` is meaningful before any step."""
        row: list[float] = []
        for st in self._stations:
            row.extend(st.physics(0.0, 0.0, {}))
        row.extend(self._totals_row(sum(st.electric_kw() for st in self._stations)))
        return row

    def _totals_row(self, power: float) -> list[float]:
        return [
            float(self._parts_good + self._parts_rejected),
            float(self._parts_good),
            float(self._parts_rejected),
            round(self._energy_kwh, 4),
            round(self._gas_nm3, 4),
            power,
            float(self._line_state()),
        ]

    def _resolve_asset(self, asset: str) -> str:
        name = asset.rsplit("/", 1)[-1]
        if name not in self._asset_paths or (asset != name and asset != self._asset_paths[name]):
            raise ValueError(f"unknown asset {asset!r}; use one of {sorted(self._asset_paths)} "
                             f"or their paths under {self.prefix}")
        return name

    def _make_fault(self, spec: FaultSpec) -> ActiveFault:
        if spec.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {spec.kind!r}")
        name = self._resolve_asset(spec.asset)
        if not (math.isfinite(spec.start_s) and spec.start_s >= 0):
            raise ValueError(f"fault start_s must be >= 0 seconds after the start, got {spec.start_s!r}")
        if not (math.isfinite(spec.duration_s) and spec.duration_s > 0):
            raise ValueError(f"fault duration_s must be > 0 seconds, got {spec.duration_s!r}")
        if not (math.isfinite(spec.severity) and 0 < spec.severity <= 3):
            raise ValueError(f"fault severity must be in (0, 3], got {spec.severity!r}")
        asset_path = self._asset_paths[name]
        start_ns = self.start_ns + round(spec.start_s * NS_PER_S)
        end_ns = start_ns + round(spec.duration_s * NS_PER_S)
        if spec.kind in FAULT_ASSETS:
            if FAULT_ASSETS[spec.kind] != name:
                raise ValueError(
                    f"fault {spec.kind!r} happens on asset {FAULT_ASSETS[spec.kind]!r}, not {name!r}")
            tags = tuple(f"{asset_path}/{s}" for s in FAULT_TAGS[spec.kind])
            rec = FaultRecord(spec.kind, asset_path, tags, start_ns, end_ns, float(spec.severity))
            return ActiveFault(rec, name)
        signal = spec.signal or SENSOR_FAULT_DEFAULTS[spec.kind][name]
        path = f"{asset_path}/{signal}"
        i = self._index.get(path)
        if i is None or self.tags[i].kind not in ("analog",):
            choices = [t.path.rsplit("/", 1)[-1] for t in self.tags
                       if t.path.startswith(asset_path + "/") and t.kind == "analog"]
            raise ValueError(
                f"sensor fault signal {signal!r} is not an analog tag of {name}; use one of {choices}")
        rec = FaultRecord(spec.kind, asset_path, (path,), start_ns, end_ns, float(spec.severity))
        return ActiveFault(rec, name, i, math.nan, int(self._period_ticks[i]))

    def _auto_faults(self) -> list[FaultSpec]:
        """Faults of every kind recurring at random severities through two simulated days
        (``recurring_schedule``), drawn from the seed."""
        return recurring_schedule(self.seed, AUTO_FAULT_HORIZON_S, self.warmup_s)

    # -- called by the stations ---------------------------------------------------------------------
    def _time_ns(self, t: float) -> int:
        return self.start_ns + round(t / TICK_S) * _TICK_NS

    def _new_part(self, t: float) -> PartRecord:
        part = PartRecord(part_id=self._next_part_id, start_ns=self._time_ns(t), end_ns=0, good=True,
                          defect=None, reject_reason=None, dimension_mm=DIMENSION_NOMINAL_MM, diverted=False)
        self._next_part_id += 1
        return part

    def _on_image(self, part: PartRecord) -> None:
        if self.render_images:
            if self.part == "shaft":
                image, mask = render_long_part(self._image_rng, part.defect, (4 * self.image_size, self.image_size),
                                               self.color_images)
            else:
                image, mask = render_part(self._image_rng, part.defect, self.image_size, self.color_images)
            self._images.append((part, image, mask))

    def _finish_part(self, part: PartRecord, t: float) -> None:
        part.end_ns = self._time_ns(t)
        part.good = not part.diverted
        if part.diverted:
            self._parts_rejected += 1
            if part.defect is not None:
                part.reject_reason = part.defect
            elif not part.in_tolerance:
                part.reject_reason = "dimension"
            else:
                part.reject_reason = "false_reject"
        else:
            self._parts_good += 1
        self._parts_done.append(part)

    # -- public API -----------------------------------------------------------------------------
    @property
    def paths(self) -> tuple[str, ...]:
        """The tag paths of every signal, in the order of the reading arrays."""
        return self._paths

    @property
    def writable_paths(self) -> list[str]:
        """The paths of the tags that may be written."""
        return [t.path for t in self.tags if t.writable]

    def step(self, dt_s: float) -> Batch:
        """Advance the clock by ``dt_s`` seconds; return the readings sampled in (t, t + dt]."""
        if isinstance(dt_s, bool) or not isinstance(dt_s, numbers.Real) or not (
                math.isfinite(dt_s) and 0 < dt_s <= 86400):
            raise ValueError(f"dt_s must be a number of seconds in (0, 86400], got {dt_s!r}")
        end_ns = self.now_ns + round(dt_s * NS_PER_S)
        last_k = (end_ns - self.start_ns) // _TICK_NS
        self.now_ns = end_ns
        if last_k <= self._k:
            return Batch(self._paths, np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0))
        ks = range(self._k + 1, last_k + 1)
        rows = []
        qrows: list[tuple[int, int]] = []  # (row number, tag index) of BAD_SENSOR readings
        for n, k in enumerate(ks):
            row, bad = self._tick(k)
            rows.append(row)
            if bad:
                qrows.extend((n, i) for i in bad)
        self._k = last_k
        karr = np.arange(ks.start, ks.stop, dtype=np.int64)
        values = np.array(rows, dtype=np.float64)
        emit = (karr[:, None] % self._period_ticks[None, :]) == 0
        quality = np.full(values.shape, GOOD, dtype=np.uint8)
        for n, i in qrows:
            quality[n, i] = BAD_SENSOR
        tick_i, tag_i = np.nonzero(emit)
        ts = self.start_ns + karr[tick_i] * _TICK_NS
        return Batch(self._paths, tag_i.astype(np.int32), ts, values[emit], quality[emit])

    def _tick(self, k: int) -> tuple[list[float], list[int]]:
        """Simulate one 0.2 s tick ending at tick ``k``; return the row of values and bad tags."""
        dt = TICK_S
        t = k * TICK_S
        t_ns = self.start_ns + k * _TICK_NS
        # changeover windows
        co_start, co_end = self._changeover
        if t >= co_end:
            assert self._co_interval is not None
            start = co_start + self._co_interval * self._co_stream.uniform(0.875, 1.125)
            self._changeover = (start, start + self._co_stream.uniform(480.0, 900.0))
            co_start, co_end = self._changeover
        self.in_changeover = co_start <= t < co_end
        # fault levels per asset
        levels: dict[str, dict[str, float]] = {}
        sensor: list[ActiveFault] = []
        for af in self._faults:
            rec = af.record
            if rec.start_ns > t_ns:
                break
            if t_ns >= rec.end_ns:
                continue
            if af.tag_index >= 0:
                sensor.append(af)
            else:
                elapsed = (t_ns - rec.start_ns) / NS_PER_S
                dur = (rec.end_ns - rec.start_ns) / NS_PER_S
                lv = rec.severity * fault_ramp(rec.kind, elapsed, dur)
                d = levels.setdefault(af.asset_name, {})
                d[rec.kind] = max(d.get(rec.kind, 0.0), lv)
        # flow: downstream first so that a finished part can move into the freed buffer
        for st in reversed(self._stations):
            st.advance(t, dt)
        row: list[float] = []
        none: dict[str, float] = {}
        power = 0.0
        for st in self._stations:
            row.extend(st.physics(t, dt, levels.get(st.ASSET, none)))
            power += st.electric_kw()
        self._line_power = power
        self._energy_kwh += power * dt / 3600.0
        self._gas_nm3 += self._furnace.gas_nm3_h * dt / 3600.0
        row.extend(self._totals_row(power))
        # sensor faults act on the readings only, not on the physics
        bad: list[int] = []
        for af in sensor:
            i = af.tag_index
            if af.record.kind == "stuck_sensor":
                if math.isnan(af.frozen):
                    af.frozen = self._stuck_last.get(i, row[i])
                row[i] = af.frozen
            else:
                row[i] = math.nan
                bad.append(i)
        # remember the last sampled value of tags a stuck sensor will freeze
        for af in self._faults:
            if af.record.kind == "stuck_sensor" and t_ns < af.record.start_ns and k % af.period_ticks == 0:
                self._stuck_last[af.tag_index] = row[af.tag_index]
        self._row = row
        return row, bad

    def _line_state(self) -> int:
        states = [st.state for st in self._stations]
        if STATE_DOWN in states:
            return STATE_DOWN
        if self.in_changeover:
            return STATE_CHANGEOVER
        if all(s == STATE_STOPPED for s in states):
            return STATE_STOPPED
        if STATE_MICROSTOP in states:
            return STATE_MICROSTOP
        if STATE_RUNNING in states:
            return STATE_RUNNING
        return STATE_IDLE

    def write(self, path: str, value: float) -> None:
        """Write a writable tag (furnace setpoints, ``diverter``); anything else is a ValueError."""
        i = self._index.get(path)
        if i is None or not self.tags[i].writable:
            what = "unknown tag" if i is None else "tag is read-only"
            raise ValueError(f"cannot write {path!r}: {what}; writable tags are {self.writable_paths}")
        tag = self.tags[i]
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"value for {path!r} must be a number, got {value!r}") from None
        if tag.kind == "bool":
            if v not in (0.0, 1.0):
                raise ValueError(f"value for {path!r} must be 0 or 1, got {value!r}")
            if path.endswith("/result_ok"):
                self._vision.result_ok = v
            else:
                self._vision.diverter = v
        else:
            if not (math.isfinite(v) and tag.lo <= v <= tag.hi):
                raise ValueError(
                    f"value for {path!r} must be in {tag.lo:g} .. {tag.hi:g} {tag.unit}, got {value!r}")
            self._furnace.write(path.rsplit("/", 1)[-1], v)

    def drain_parts(self) -> list[PartRecord]:
        """Parts finished (packed or in the reject bin) since the last call."""
        out, self._parts_done = self._parts_done, []
        return out

    def drain_images(self) -> list[tuple[PartRecord, np.ndarray, np.ndarray]]:
        """(part, image, mask) of each part imaged since the last call (empty if not rendering)."""
        out, self._images = self._images, []
        return out

    def active_faults(self) -> list[FaultRecord]:
        """Faults whose effect is present at the current simulated time."""
        t = self.start_ns + self._k * _TICK_NS
        return [f for f in self.faults if f.start_ns <= t < f.end_ns]

    def current_values(self) -> dict[str, float]:
        """Value of every tag at the last simulated tick (sensor faults applied; NaN on dropout)."""
        return dict(zip(self._paths, self._row, strict=True))
