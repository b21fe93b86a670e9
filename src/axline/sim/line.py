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
"""

from __future__ import annotations

import math
import numbers
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from axline.batch import BAD_SENSOR, GOOD, NS_PER_S, Batch
from axline.sim import furnace as fphys
from axline.sim.camera import DEFECT_KINDS, render_part

# -- public constants --------------------------------------------------------------------------
STATE_STOPPED, STATE_RUNNING, STATE_IDLE, STATE_MICROSTOP, STATE_CHANGEOVER, STATE_DOWN = range(6)
STATE_NAMES: dict[int, str] = {
    STATE_STOPPED: "stopped",
    STATE_RUNNING: "running",
    STATE_IDLE: "idle",
    STATE_MICROSTOP: "microstop",
    STATE_CHANGEOVER: "changeover",
    STATE_DOWN: "down",
}
STATE_NAMES_KO: dict[int, str] = {
    STATE_STOPPED: "정지",
    STATE_RUNNING: "가동",
    STATE_IDLE: "대기",
    STATE_MICROSTOP: "순간정지",
    STATE_CHANGEOVER: "교체",
    STATE_DOWN: "고장",
}

FAULT_KINDS: tuple[str, ...] = (
    "bearing_wear",
    "coolant_loss",
    "clogged_filter",
    "stuck_sensor",
    "sensor_dropout",
    "tool_wear",
    "burner_fouling",
)
# physical faults live on one asset; sensor faults may hit any analog tag of any asset
FAULT_ASSETS: dict[str, str] = {
    "bearing_wear": "cnc1",
    "coolant_loss": "cnc1",
    "clogged_filter": "cnc1",
    "tool_wear": "cnc1",
    "burner_fouling": "furnace1",
}
FAULT_TAGS: dict[str, tuple[str, ...]] = {
    "bearing_wear": ("vibration_rms", "spindle_temp"),
    "coolant_loss": ("coolant_flow", "coolant_pressure", "spindle_temp", "coolant_temp"),
    "clogged_filter": ("filter_dp", "coolant_flow", "coolant_pressure"),
    "tool_wear": ("part_dimension", "tool_wear", "spindle_current"),
    "burner_fouling": ("fuel_flow", "o2", "exhaust_temp", "air_flow"),
}
# default signal of a sensor fault per asset, when FaultSpec.signal is not given
SENSOR_FAULT_DEFAULTS: dict[str, dict[str, str]] = {
    "stuck_sensor": {"furnace1": "zone1_temp", "cnc1": "coolant_temp", "press1": "oil_temp",
                     "camera1": "power", "packer1": "power", "totals": "power"},
    "sensor_dropout": {"press1": "hydraulic_pressure", "cnc1": "spindle_current", "furnace1": "o2",
                       "camera1": "power", "packer1": "power", "totals": "power"},
}

#: how far ahead ``faults="auto"`` schedules faults (simulated seconds)
AUTO_FAULT_HORIZON_S = 48 * 3600.0
DIMENSION_NOMINAL_MM = 25.000
DIMENSION_TOLERANCE_MM = 0.020
TICK_S = 0.2
_TICK_NS = 200_000_000
_GAS_KWH_PER_NM3 = 10.5

# stream keys of the random generators (fixed so that adding one does not reshuffle the others)
_S_PRESS, _S_CNC, _S_FURNACE, _S_VISION, _S_PACKER, _S_FAULTS, _S_CHANGEOVER, _S_IMAGES = range(8)
_S_FURNACE_QUALITY = 8  # hardness and CO readings, apart so the older streams keep their draws


@dataclass(slots=True)
class SimTag:
    """One simulated tag: path, unit, physical range, sampling period and labels."""

    path: str
    unit: str
    lo: float
    hi: float
    period_s: float
    writable: bool = False
    kind: str = "analog"  # analog | counter | state | bool | setpoint
    name_en: str = ""
    name_ko: str = ""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault to inject: ``asset`` is an asset name (``cnc1``) or full asset path; times in seconds
    after the simulation start; ``signal`` picks the tag of a sensor fault (default per asset)."""

    kind: str
    asset: str
    start_s: float
    duration_s: float
    severity: float = 1.0
    signal: str | None = None


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """Ground truth of one injected fault: its effect is present for ``start_ns <= t < end_ns``."""

    kind: str
    asset: str  # asset path
    tags: tuple[str, ...]  # affected tag paths
    start_ns: int
    end_ns: int
    severity: float


@dataclass(slots=True)
class PartRecord:
    """One part. ``good`` is what the counters say (not diverted); ``defect`` is the visual truth.

    Image records (``drain_images``) are the same objects: ``end_ns``, ``good``, ``diverted`` and
    ``reject_reason`` are final once the part is returned by ``drain_parts``.
    """

    part_id: int
    start_ns: int
    end_ns: int
    good: bool
    defect: str | None
    reject_reason: str | None
    dimension_mm: float
    diverted: bool
    image_ns: int = 0

    @property
    def in_tolerance(self) -> bool:
        return abs(self.dimension_mm - DIMENSION_NOMINAL_MM) <= DIMENSION_TOLERANCE_MM


class _Stream:
    """A random stream with buffered normals and uniforms (scalar draws without NumPy overhead)."""

    __slots__ = ("rng", "_n", "_ni", "_u", "_ui")
    _BLOCK = 1024

    def __init__(self, seed: int, key: int) -> None:
        self.rng = np.random.default_rng([seed, key])
        self._n: list[float] = []
        self._ni = 0
        self._u: list[float] = []
        self._ui = 0

    def n(self) -> float:
        """Standard normal draw."""
        i = self._ni
        if i >= len(self._n):
            self._n = self.rng.standard_normal(self._BLOCK).tolist()
            i = 0
        self._ni = i + 1
        return self._n[i]

    def u(self) -> float:
        """Uniform draw in [0, 1)."""
        i = self._ui
        if i >= len(self._u):
            self._u = self.rng.random(self._BLOCK).tolist()
            i = 0
        self._ui = i + 1
        return self._u[i]

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.u()


def _lag(alpha_per_s: float, dt: float) -> float:
    """Blend factor of a first-order lag with time constant ``1 / alpha_per_s`` over ``dt``."""
    return 1.0 - math.exp(-alpha_per_s * dt)


# ================================================================================================
# stations
# ================================================================================================
class _Station:
    """Part flow common to all stations: take a part, work it for one cycle, hand it on."""

    CELL = ""
    ASSET = ""
    SIGNALS: tuple[tuple, ...] = ()  # (signal, unit, lo, hi, period_s, kind, writable, en, ko)
    MICROSTOP_MTBF_S = 1800.0
    DOWN_MTBF_S = 0.0  # 0: never breaks down

    def __init__(self, line: VirtualLine, stream: _Stream) -> None:
        self.line = line
        self.r = stream
        self.state = STATE_IDLE
        self.part: PartRecord | None = None
        self.progress = 0.0
        self.cycle_len = line.cycle_s
        self.cycle_start = 0.0
        self.last_cycle_s = line.cycle_s
        self.microstop_until = -1.0
        self.down_until = -1.0
        self.in_buf: deque[PartRecord] | None = None
        self.out_buf: deque[PartRecord] | None = None
        self.stops_for_changeover = False

    # -- flow -----------------------------------------------------------------------------------
    def take_part(self, t: float) -> PartRecord | None:
        return self.in_buf.popleft() if self.in_buf else None

    def advance(self, t: float, dt: float) -> None:
        """Move the part flow on by one tick ending at ``t``."""
        line = self.line
        if self.down_until > t:
            self.state = STATE_DOWN
            return
        if self.part is None:
            if self.stops_for_changeover and line.in_changeover:
                if self.state != STATE_CHANGEOVER:
                    self.on_changeover()
                self.state = STATE_CHANGEOVER
                return
            part = self.take_part(t)
            if part is None:
                self.state = STATE_IDLE
                return
            self.part = part
            self.progress = 0.0
            self.cycle_start = t - dt
            self.cycle_len = line.cycle_s * (1.0 + 0.012 * self.r.n())
            self.on_start(t)
        if self.microstop_until > t:
            self.state = STATE_MICROSTOP
            return
        if self.progress < self.cycle_len:
            before = self.progress
            self.progress = before + dt
            self.state = STATE_RUNNING
            self.on_progress(t, before, self.progress)
            if self.r.u() < dt / self.MICROSTOP_MTBF_S:
                self.microstop_until = t + self.r.uniform(5.0, 40.0)
            if self.DOWN_MTBF_S and t > line.warmup_s and self.r.u() < dt / self.DOWN_MTBF_S:
                self.down_until = t + self.r.uniform(120.0, 480.0)
            if self.progress >= self.cycle_len:
                self.last_cycle_s = t - self.cycle_start
                self.on_complete(t)
        if self.progress >= self.cycle_len and self.part is not None:
            if self.hand_over(self.part, t):
                self.part = None
            else:
                self.state = STATE_IDLE  # blocked

    def hand_over(self, part: PartRecord, t: float) -> bool:
        if self.out_buf is None:
            return True
        if len(self.out_buf) >= self.line.buffer_size:
            return False
        self.out_buf.append(part)
        return True

    @property
    def phase(self) -> float | None:
        """Fraction of the current cycle while running, else None."""
        if self.state == STATE_RUNNING and self.part is not None and self.progress < self.cycle_len:
            return self.progress / self.cycle_len
        return None

    # hooks ---------------------------------------------------------------------------------
    def on_start(self, t: float) -> None:
        pass

    def on_progress(self, t: float, before: float, after: float) -> None:
        pass

    def on_complete(self, t: float) -> None:
        pass

    def on_changeover(self) -> None:
        pass

    def add_defect(self, kind: str, prob: float) -> None:
        part = self.part
        if part is not None and part.defect is None and self.r.u() < prob:
            part.defect = kind

    # physics -------------------------------------------------------------------------------
    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        raise NotImplementedError

    def electric_kw(self) -> float:
        return 0.0


class _Press(_Station):
    CELL, ASSET = "press", "press1"
    SIGNALS = (
        ("ram_force", "kN", 0.0, 1200.0, 0.2, "analog", False, "Ram force", "램 가압력"),
        ("ram_position", "mm", 0.0, 300.0, 0.2, "analog", False, "Ram position", "램 위치"),
        ("hydraulic_pressure", "bar", 0.0, 250.0, 0.2, "analog", False, "Hydraulic pressure", "유압"),
        ("oil_temp", "degC", 0.0, 90.0, 1.0, "analog", False, "Hydraulic oil temperature", "작동유 온도"),
        ("motor_power", "kW", 0.0, 60.0, 0.2, "analog", False, "Pump motor power", "펌프 모터 전력"),
        ("stroke_count", "count", 0.0, 1e12, 1.0, "counter", False, "Stroke count", "타수"),
        ("cycle_time", "s", 0.0, 3600.0, 1.0, "analog", False, "Cycle time", "사이클 타임"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "State", "상태"),
    )
    DOWN_MTBF_S = 8 * 3600.0
    PEAK_KN = 800.0

    def __init__(self, line: VirtualLine, stream: _Stream) -> None:
        super().__init__(line, stream)
        self.stops_for_changeover = True
        self.next_release = 0.0
        self.peak = self.PEAK_KN
        self.oil_temp = 35.5 + 0.5 * self.r.n()
        self.power_avg = 14.5
        self.strokes = 0
        self.power = 7.0

    def take_part(self, t: float) -> PartRecord | None:
        if t < self.next_release:
            return None
        line = self.line
        if t - self.next_release > line.takt_s:
            self.next_release = t  # long stop: restart the takt grid instead of catching up
        self.next_release += line.takt_s
        return line._new_part(t)

    def on_start(self, t: float) -> None:
        self.peak = self.PEAK_KN * (1.0 + 0.015 * self.r.n())

    def on_complete(self, t: float) -> None:
        self.strokes += 1
        self.add_defect("dent", 0.004)
        self.add_defect("crack", 0.003)

    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        r = self.r
        ph = self.phase
        force = 0.0
        pos = 0.0
        pressure = 18.0
        if ph is not None:
            if ph < 0.3:
                pos = 0.0
            elif ph < 0.5:
                pos = 200.0 * (ph - 0.3) / 0.2
                pressure = 52.0
            elif ph < 0.65:
                x = (ph - 0.5) / 0.15
                pos = 200.0 + 50.0 * math.sin(0.5 * math.pi * x) if x < 1 else 250.0
                force = self.peak * math.sin(math.pi * x) ** 1.5
                pressure = 30.0 + 190.0 * force / self.PEAK_KN
            elif ph < 0.8:
                pos = 250.0 * (1.0 - (ph - 0.65) / 0.15)
                pressure = 48.0
        elif self.state in (STATE_MICROSTOP, STATE_DOWN) and self.part is not None:
            pos = 0.0 if self.progress < 0.3 * self.cycle_len else 120.0
        pressure = max(0.0, pressure + 1.2 * r.n())
        force = max(0.0, force + 2.5 * r.n())
        base_kw = 3.0 if self.state == STATE_DOWN else 7.0
        self.power = max(0.5, base_kw + 0.16 * (pressure - 18.0) + 0.35 * r.n())
        self.power_avg += (self.power - self.power_avg) * _lag(1 / 60.0, dt)
        target = 22.0 + 1.2 * self.power_avg
        self.oil_temp += (target - self.oil_temp) * _lag(1 / 1200.0, dt)
        return [
            force,
            max(0.0, pos + 0.3 * r.n()),
            pressure,
            self.oil_temp + 0.15 * r.n(),
            self.power,
            float(self.strokes),
            round(self.last_cycle_s, 2),
            float(self.state),
        ]

    def electric_kw(self) -> float:
        return self.power


class _Cnc(_Station):
    CELL, ASSET = "cnc", "cnc1"
    SIGNALS = (
        ("spindle_speed", "rpm", 0.0, 6000.0, 0.2, "analog", False, "Spindle speed", "주축 회전수"),
        ("spindle_current", "A", 0.0, 60.0, 0.2, "analog", False, "Spindle current", "주축 전류"),
        ("spindle_temp", "degC", 0.0, 100.0, 1.0, "analog", False, "Spindle temperature", "주축 온도"),
        ("vibration_rms", "mm/s", 0.0, 40.0, 0.2, "analog", False, "Spindle vibration (RMS)",
         "주축 진동(RMS)"),
        ("coolant_flow", "L/min", 0.0, 40.0, 0.2, "analog", False, "Coolant flow", "절삭유 유량"),
        ("coolant_pressure", "bar", 0.0, 10.0, 0.2, "analog", False, "Coolant pressure", "절삭유 압력"),
        ("coolant_temp", "degC", 0.0, 70.0, 1.0, "analog", False, "Coolant temperature", "절삭유 온도"),
        ("filter_dp", "bar", 0.0, 4.0, 0.2, "analog", False, "Coolant filter differential pressure",
         "절삭유 필터 차압"),
        ("part_dimension", "mm", 24.8, 25.2, 1.0, "analog", False, "Bore diameter", "보어 직경"),
        ("tool_wear", "%", 0.0, 200.0, 1.0, "analog", False, "Tool wear", "공구 마모"),
        ("power", "kW", 0.0, 40.0, 0.2, "analog", False, "Power", "소비 전력"),
        ("cycle_time", "s", 0.0, 3600.0, 1.0, "analog", False, "Cycle time", "사이클 타임"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "State", "상태"),
    )
    SPEED_RPM = 3200.0
    TOOL_LIFE_PARTS = 1300.0
    FLOW_NOMINAL = 22.0

    def __init__(self, line: VirtualLine, stream: _Stream) -> None:
        super().__init__(line, stream)
        self.stops_for_changeover = True
        self.tool_wear = self.r.uniform(5.0, 30.0)
        self.tool_level = 0.0
        self.load_factor = 1.0
        self.current = 1.0
        self.current_avg = 9.0
        self.spindle_temp = 38.0 + 0.5 * self.r.n()
        self.coolant_temp = 25.5 + 0.3 * self.r.n()
        self.filter_natural = 0.0
        self.dimension = DIMENSION_NOMINAL_MM
        self.power = 2.0
        self.heat_avg = 8.0

    def on_start(self, t: float) -> None:
        self.load_factor = 1.0 + 0.04 * self.r.n()

    def on_changeover(self) -> None:
        self.tool_wear = self.r.uniform(0.0, 2.0)  # new tool

    def on_complete(self, t: float) -> None:
        r = self.r
        lvl = self.tool_level
        self.tool_wear += 100.0 / self.TOOL_LIFE_PARTS * (1.0 + 6.0 * lvl)
        dim = (DIMENSION_NOMINAL_MM + 0.004 - 0.010 * self.tool_wear / 100.0 - 0.034 * lvl
               + 0.0004 * (self.spindle_temp - 38.0) + 0.0035 * r.n())
        if r.u() < 0.003:  # chatter or a chip in the bore: a gross dimension error
            dim += (1.0 if r.u() < 0.5 else -1.0) * r.uniform(0.022, 0.04)
        self.dimension = dim
        if self.part is not None:
            self.part.dimension_mm = dim
        self.add_defect("scratch", 0.005)
        self.add_defect("missing_feature", 0.002)

    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        r = self.r
        bw = faults.get("bearing_wear", 0.0)
        cl = faults.get("coolant_loss", 0.0)
        cf = faults.get("clogged_filter", 0.0)
        level = faults.get("tool_wear", 0.0)
        if self.tool_level > 0.0 and level == 0.0:
            self.tool_wear = self.r.uniform(0.0, 2.0)  # the worn tool is replaced when the fault ends
        self.tool_level = level
        ph = self.phase
        speed = 0.0
        load = 0.0
        if ph is not None:
            if 0.1 <= ph < 0.16:
                speed = self.SPEED_RPM * (ph - 0.1) / 0.06
            elif 0.16 <= ph < 0.86:
                speed = self.SPEED_RPM
                if 0.2 <= ph < 0.5:
                    load = 1.0
                elif 0.55 <= ph < 0.84:
                    load = 0.45
            elif 0.86 <= ph < 0.92:
                speed = self.SPEED_RPM * (0.92 - ph) / 0.06
            load *= self.load_factor * (1.0 + 0.5 * self.tool_wear / 100.0 + 0.5 * self.tool_level)
        sf = speed / self.SPEED_RPM
        target_i = (2.5 + 3.5 * sf if speed > 0 else 1.0) + 13.0 * load
        self.current += (target_i - self.current) * _lag(1 / 0.3, dt)
        current = max(0.0, self.current + 0.25 * r.n())
        self.current_avg += (self.current - self.current_avg) * _lag(1 / 120.0, dt)
        vib = 0.2 + sf * (1.1 + 0.9 * load + 5.0 * bw + 1.5 * bw * abs(r.n()))
        vib = max(0.02, vib * (1.0 + 0.06 * r.n()))
        # coolant circuit: the filter loads slowly on its own, a clog adds fast
        self.filter_natural += dt * 0.02 / 3600.0
        dp = (0.25 + self.filter_natural + 1.5 * cf) * (1.0 - 0.75 * cl) ** 2
        flow = self.FLOW_NOMINAL * (1.0 - 0.38 * cf) * (1.0 - 0.75 * cl)
        flow = max(0.0, flow * (1.0 + 0.015 * r.n()))
        cpress = max(0.0, 4.6 * (flow / self.FLOW_NOMINAL) ** 1.5 + 0.05 * r.n())
        dp = max(0.0, dp + 0.01 * r.n())
        self.power = max(0.3, 1.8 + 0.45 * current + 0.12 * r.n())
        self.heat_avg += (0.45 * self.current - self.heat_avg) * _lag(1 / 120.0, dt)
        ct_target = 22.0 + 0.45 * self.heat_avg * (self.FLOW_NOMINAL / max(flow, 2.0)) ** 0.7 + 8.0 * cl
        self.coolant_temp += (ct_target - self.coolant_temp) * _lag(1 / 300.0, dt)
        st_target = 24.0 + 1.6 * self.current_avg + 12.0 * cl + 4.0 * bw + 2.0 * cf
        self.spindle_temp += (st_target - self.spindle_temp) * _lag(1 / 400.0, dt)
        return [
            max(0.0, speed * (1.0 + 0.002 * r.n())) if speed > 0 else 0.0,
            current,
            self.spindle_temp + 0.1 * r.n(),
            vib,
            flow,
            cpress,
            self.coolant_temp + 0.08 * r.n(),
            dp,
            round(self.dimension, 4),
            round(self.tool_wear, 2),
            self.power,
            round(self.last_cycle_s, 2),
            float(self.state),
        ]

    def electric_kw(self) -> float:
        return self.power


class _Furnace(_Station):
    CELL, ASSET = "furnace", "furnace1"
    SIGNALS = (
        ("zone1_temp", "degC", 0.0, 1100.0, 1.0, "analog", False, "Zone 1 temperature", "1존 온도"),
        ("zone2_temp", "degC", 0.0, 1100.0, 1.0, "analog", False, "Zone 2 temperature", "2존 온도"),
        ("temp_setpoint", "degC", 700.0, 950.0, 1.0, "setpoint", True, "Temperature setpoint", "온도 설정값"),
        ("fuel_flow", "Nm3/h", 0.0, 150.0, 0.2, "analog", False, "Gas flow", "가스 유량"),
        ("air_flow", "Nm3/h", 0.0, 2000.0, 0.2, "analog", False, "Combustion air flow", "연소 공기 유량"),
        ("o2", "%", 0.0, 21.0, 1.0, "analog", False, "Flue gas O2", "배기 산소 농도"),
        ("exhaust_temp", "degC", 0.0, 800.0, 1.0, "analog", False, "Exhaust temperature", "배기 온도"),
        ("power", "kW", 0.0, 40.0, 0.2, "analog", False, "Power", "소비 전력"),
        ("parts_treated", "count", 0.0, 1e12, 1.0, "counter", False, "Parts treated", "열처리 수량"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "State", "상태"),
        ("o2_setpoint", "%", 0.5, 8.0, 1.0, "setpoint", True, "Flue O2 setpoint (excess air)",
         "배기 산소 설정값(공기비)"),
        ("belt_speed", "%", 60.0, 130.0, 1.0, "setpoint", True, "Belt speed", "벨트 속도"),
        ("co", "ppm", 0.0, 5000.0, 1.0, "analog", False, "Flue gas CO", "배기 일산화탄소"),
        ("hardness", "HRC", 20.0, 70.0, 1.0, "analog", False, "Part hardness", "부품 경도"),
    )
    ETA = 0.55  # fraction of the gas energy that reaches the load and walls
    LOSS_KW_PER_K = 0.15  # wall loss per zone
    CAP_KJ_PER_K = 360.0  # heat capacity per zone (time constant 40 min)
    PART_KJ_PER_K = 0.9  # 1.5 kg steel x 0.6 kJ/(kg K)
    SHARE = (0.7, 0.3)  # part heating done in zone 1 and zone 2
    KP, KI = 4.0, 4.0 / 150.0
    FUEL_MAX = 70.0  # per burner, Nm3/h

    def __init__(self, line: VirtualLine, stream: _Stream) -> None:
        super().__init__(line, stream)
        self.setpoint = 850.0
        self.temps = [850.0 + 0.3 * self.r.n(), 850.0 + 0.3 * self.r.n()]
        duty = min(1.0, line.cycle_s / line.takt_s)
        self.fuel = []
        self.integ = []
        for share in self.SHARE:
            need = (self.LOSS_KW_PER_K * 825.0 + share * self.PART_KJ_PER_K * 825.0 / line.cycle_s * duty)
            u = need / (self.ETA * _GAS_KWH_PER_NM3)
            self.fuel.append(u)
            self.integ.append(u / self.KI)
        self.o2_wander = 0.0
        self.exhaust = 330.0
        self.treated = 0
        self.power = 11.0
        self.gas_nm3_h = sum(self.fuel)
        self.stain_prob = 0.003
        # setpoints and state of the combustion and hardening physics (axline.sim.furnace)
        self.o2_setpoint = fphys.O2_NOMINAL
        self.belt_speed = fphys.BELT_NOMINAL
        self.fouling = 0.0  # natural burner fouling, grows with time
        self.co = fphys.co_ppm(self.o2_setpoint, 0.0)
        self.q = _Stream(line.seed, _S_FURNACE_QUALITY)
        self.hardness = self._hardness(line.cycle_s)

    def _hardness(self, soak_s: float) -> float:
        zone = 0.5 * (self.temps[0] + self.temps[1])
        return fphys.hardness_hrc(fphys.core_temperature(zone, soak_s))

    def on_start(self, t: float) -> None:
        self.cycle_len *= fphys.soak_factor(self.belt_speed)  # the belt sets the time in the furnace

    def on_complete(self, t: float) -> None:
        self.treated += 1
        self.add_defect("stain", self.stain_prob)
        self.hardness = self._hardness(self.cycle_len)

    def write(self, signal: str, value: float) -> None:
        if signal == "o2_setpoint":
            self.o2_setpoint = value
        elif signal == "belt_speed":
            self.belt_speed = value
        else:
            self.setpoint = value

    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        r = self.r
        bf = faults.get("burner_fouling", 0.0)
        fouling = self.fouling + bf
        o2 = min(20.0, max(0.2, self.o2_setpoint + 1.3 * bf + self.o2_wander))
        self.co = fphys.co_ppm(o2, fouling)
        self.fouling += fphys.fouling_rate_per_s(self.co) * dt
        self.stain_prob = 0.003 * (1.0 + 3.0 * bf) * fphys.stain_factor(self.co)
        eta = fphys.available_heat(self.ETA, self.o2_setpoint, fouling, self.co)
        soak_s = self.line.cycle_s * fphys.soak_factor(self.belt_speed)
        loading = self.state == STATE_RUNNING and self.part is not None
        valve = _lag(1 / 2.0, dt)
        for z in range(2):
            temp = self.temps[z]
            err = self.setpoint - temp
            u = self.KP * err + self.KI * self.integ[z]
            if 0.0 < u < self.FUEL_MAX or (u >= self.FUEL_MAX and err < 0) or (u <= 0.0 and err > 0):
                self.integ[z] += err * dt
            u = min(self.FUEL_MAX, max(0.0, u))
            self.fuel[z] += (u - self.fuel[z]) * valve
            q_in = eta * self.fuel[z] * _GAS_KWH_PER_NM3
            loss = self.LOSS_KW_PER_K * (temp - 25.0)
            part = self.SHARE[z] * self.PART_KJ_PER_K * (temp - 25.0) / soak_s if loading else 0.0
            self.temps[z] = temp + (q_in - loss - part) / self.CAP_KJ_PER_K * dt
        fuel = self.fuel[0] + self.fuel[1]
        self.gas_nm3_h = fuel
        self.o2_wander += -self.o2_wander * _lag(1 / 300.0, dt) + 0.02 * math.sqrt(dt) * r.n()
        o2 = min(20.0, max(0.2, self.o2_setpoint + 1.3 * bf + self.o2_wander + 0.06 * r.n()))
        air = 9.52 * fuel * 21.0 / (21.0 - o2)
        ex_target = 330.0 + 1.6 * (fuel - 54.0) + 45.0 * bf
        self.exhaust += (ex_target - self.exhaust) * _lag(1 / 60.0, dt)
        self.power = max(0.5, 6.0 + 0.006 * air + (1.5 if loading else 0.0) + 0.15 * r.n())
        return [
            self.temps[0] + 0.35 * r.n(),
            self.temps[1] + 0.35 * r.n(),
            self.setpoint,
            max(0.0, fuel * (1.0 + 0.008 * r.n())),
            max(0.0, air * (1.0 + 0.008 * r.n())),
            o2,
            self.exhaust + 1.5 * r.n(),
            self.power,
            float(self.treated),
            float(self.state),
            self.o2_setpoint,
            self.belt_speed,
            max(0.0, self.co * (1.0 + 0.05 * self.q.n())),
            round(self.hardness + 0.3 * self.q.n(), 2),
        ]

    def electric_kw(self) -> float:
        return self.power


# probability that the built-in legacy check catches a visual defect of each kind
_LEGACY_CATCH = {"scratch": 0.55, "dent": 0.7, "crack": 0.5, "stain": 0.85, "missing_feature": 0.95}
assert set(_LEGACY_CATCH) == set(DEFECT_KINDS)


class _Vision(_Station):
    CELL, ASSET = "vision", "camera1"
    SIGNALS = (
        ("parts_inspected", "count", 0.0, 1e12, 1.0, "counter", False, "Parts inspected", "검사 수량"),
        ("parts_rejected", "count", 0.0, 1e12, 1.0, "counter", False, "Parts rejected", "불량 배출 수량"),
        ("diverter", "", 0.0, 1.0, 0.2, "bool", True, "Reject diverter", "불량 배출기"),
        ("result_ok", "", 0.0, 1.0, 0.2, "bool", True, "Inspection OK", "검사 합격"),
        ("power", "kW", 0.0, 5.0, 0.2, "analog", False, "Power", "소비 전력"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "State", "상태"),
    )
    IMAGE_AT_S = 1.0
    DIVERTER_AT_S = 2.5

    def __init__(self, line: VirtualLine, stream: _Stream) -> None:
        super().__init__(line, stream)
        self.inspected = 0
        self.rejected = 0
        self.diverter = 0.0
        self.result_ok = 0.0
        self.wait_started: float | None = None
        self.timeouts = 0
        self.legacy_flag = False
        self.power = 0.4

    def on_progress(self, t: float, before: float, after: float) -> None:
        part = self.part
        assert part is not None
        line = self.line
        if before < self.IMAGE_AT_S <= after:
            self.inspected += 1
            self.diverter = 0.0  # a new part: an earlier request no longer applies
            self.result_ok = 0.0
            self.wait_started = None
            part.image_ns = line._time_ns(t)
            caught = part.defect is not None and self.r.u() < _LEGACY_CATCH[part.defect]
            self.legacy_flag = caught or not part.in_tolerance
            line._on_image(part)
        if before < self.DIVERTER_AT_S <= after:
            answered = self.diverter >= 0.5 or self.result_ok >= 0.5
            if line.vision_wait_s > 0 and not answered:
                # handshake: hold the part at the diverter until the vision system answers OK or NG
                self.wait_started = t if self.wait_started is None else self.wait_started
                if t - self.wait_started < line.vision_wait_s:
                    self.progress = self.DIVERTER_AT_S - 1e-9
                    return
                self.timeouts += 1
            divert = self.diverter >= 0.5 or (line.auto_divert and self.legacy_flag and self.result_ok < 0.5)
            if divert:
                self.diverter = 1.0
                self.rejected += 1
                part.diverted = True

    def hand_over(self, part: PartRecord, t: float) -> bool:
        if part.diverted:
            self.line._finish_part(part, t)
            return True
        return super().hand_over(part, t)

    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        self.power = max(0.05, 0.4 + (0.5 if self.state == STATE_RUNNING else 0.0) + 0.03 * self.r.n())
        return [float(self.inspected), float(self.rejected), self.diverter, self.result_ok, self.power,
                float(self.state)]

    def electric_kw(self) -> float:
        return self.power


class _Packer(_Station):
    CELL, ASSET = "packing", "packer1"
    SIGNALS = (
        ("parts_packed", "count", 0.0, 1e12, 1.0, "counter", False, "Parts packed", "포장 수량"),
        ("power", "kW", 0.0, 15.0, 0.2, "analog", False, "Power", "소비 전력"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "State", "상태"),
    )
    DOWN_MTBF_S = 8 * 3600.0

    def __init__(self, line: VirtualLine, stream: _Stream) -> None:
        super().__init__(line, stream)
        self.packed = 0
        self.power = 1.2

    def hand_over(self, part: PartRecord, t: float) -> bool:
        self.packed += 1
        self.line._finish_part(part, t)
        return True

    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        ph = self.phase
        move = 2.5 * abs(math.sin(3.0 * math.pi * ph)) if ph is not None else 0.0
        self.power = max(0.1, 1.2 + move + 0.08 * self.r.n())
        return [float(self.packed), self.power, float(self.state)]

    def electric_kw(self) -> float:
        return self.power


_TOTALS_SIGNALS = (
    ("parts_total", "count", 0.0, 1e12, 1.0, "counter", False, "Parts produced", "총 생산 수량"),
    ("parts_good", "count", 0.0, 1e12, 1.0, "counter", False, "Good parts", "양품 수량"),
    ("parts_rejected", "count", 0.0, 1e12, 1.0, "counter", False, "Rejected parts", "불량 수량"),
    ("energy", "kWh", 0.0, 1e12, 1.0, "counter", False, "Electric energy", "전력량"),
    ("gas", "Nm3", 0.0, 1e12, 1.0, "counter", False, "Gas consumed", "가스 사용량"),
    ("power", "kW", 0.0, 300.0, 0.2, "analog", False, "Line power", "라인 전력"),
    ("state", "", 0.0, 5.0, 1.0, "state", False, "Line state", "라인 상태"),
)


# ================================================================================================
# faults
# ================================================================================================
def _fault_ramp(kind: str, elapsed_s: float, duration_s: float) -> float:
    """Fraction (0..1) of a fault's full effect ``elapsed_s`` after its start."""
    u = min(1.0, max(0.0, elapsed_s / duration_s))
    if kind == "bearing_wear":
        return u**1.5
    if kind == "coolant_loss":
        return min(1.0, elapsed_s / 60.0)
    if kind == "clogged_filter":
        return u**1.3
    if kind == "burner_fouling":
        return min(1.0, u / 0.3)
    if kind == "tool_wear":
        return u
    return 1.0


@dataclass(slots=True)
class _ActiveFault:
    record: FaultRecord
    asset_name: str
    tag_index: int = -1  # sensor faults: index of the tag
    frozen: float = math.nan
    period_ticks: int = 1


# ================================================================================================
# the line
# ================================================================================================
class VirtualLine:
    """A deterministic simulated auto-parts line (see the module docstring).

    Parameters: ``seed`` (>= 0) picks every random stream; ``start_ns`` is the simulated start
    (UTC ns; None: now, rounded down to the second); ``faults`` is ``"auto"`` (every kind recurring
    at random severities after ``warmup_s``, separated by quiet gaps), None or a list of ``FaultSpec``; ``prefix`` is
    ``site/area/line``; ``takt_s`` paces the press and ``cycle_s`` is each station's ideal cycle;
    ``buffer_size`` parts fit between two stations; ``render_images`` renders an ``image_size``
    image per part (``color_images`` for RGB); ``auto_divert`` turns the built-in legacy reject
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
        self.image_size = image_size
        self.render_images = bool(render_images)
        self.auto_divert = bool(auto_divert)
        if not (isinstance(vision_wait_s, int | float) and 0.0 <= vision_wait_s <= 60.0):
            raise ValueError(f"vision_wait_s must be in 0 .. 60 seconds, got {vision_wait_s!r}")
        self.vision_wait_s = float(vision_wait_s)
        self.color_images = bool(color_images)
        self.now_ns = self.start_ns
        self._k = 0  # index of the last simulated tick

        self._press = _Press(self, _Stream(self.seed, _S_PRESS))
        self._cnc = _Cnc(self, _Stream(self.seed, _S_CNC))
        self._furnace = _Furnace(self, _Stream(self.seed, _S_FURNACE))
        self._vision = _Vision(self, _Stream(self.seed, _S_VISION))
        self._packer = _Packer(self, _Stream(self.seed, _S_PACKER))
        self._stations: list[_Station] = [self._press, self._cnc, self._furnace, self._vision, self._packer]
        for up, down in zip(self._stations[:-1], self._stations[1:], strict=True):
            buf: deque[PartRecord] = deque()
            up.out_buf = buf
            down.in_buf = buf
        self._image_rng = np.random.default_rng([self.seed, _S_IMAGES])
        self._co_stream = _Stream(self.seed, _S_CHANGEOVER)
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
        self._add_tags(f"{self.prefix}/line/totals", _TOTALS_SIGNALS)
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

    def _make_fault(self, spec: FaultSpec) -> _ActiveFault:
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
            return _ActiveFault(rec, name)
        signal = spec.signal or SENSOR_FAULT_DEFAULTS[spec.kind][name]
        path = f"{asset_path}/{signal}"
        i = self._index.get(path)
        if i is None or self.tags[i].kind not in ("analog",):
            choices = [t.path.rsplit("/", 1)[-1] for t in self.tags
                       if t.path.startswith(asset_path + "/") and t.kind == "analog"]
            raise ValueError(
                f"sensor fault signal {signal!r} is not an analog tag of {name}; use one of {choices}")
        rec = FaultRecord(spec.kind, asset_path, (path,), start_ns, end_ns, float(spec.severity))
        return _ActiveFault(rec, name, i, math.nan, int(self._period_ticks[i]))

    def _auto_faults(self) -> list[FaultSpec]:
        """Faults of every kind recurring at random severities through two simulated days
        (``axline.sim.faults.recurring_schedule``), drawn from the seed."""
        from axline.sim.faults import recurring_schedule

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
        return self._paths

    @property
    def writable_paths(self) -> list[str]:
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
        sensor: list[_ActiveFault] = []
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
                lv = rec.severity * _fault_ramp(rec.kind, elapsed, dur)
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
