"""What every station of the virtual line shares: the part record, buffered random streams, the
first-order lag, and the part flow (take a part, work it for one cycle, hand it on).

A station is given the ``VirtualLine`` that owns it (``line``): it reads the line's settings
(``cycle_s``, ``takt_s``, ``buffer_size``, ``warmup_s``, ``in_changeover``) and calls back for new
parts, images and finished parts.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from axline.sim.signals import STATE_CHANGEOVER, STATE_DOWN, STATE_IDLE, STATE_MICROSTOP, STATE_RUNNING

DIMENSION_NOMINAL_MM = 25.000
DIMENSION_TOLERANCE_MM = 0.020

# stream keys of the random generators (fixed so that adding one does not reshuffle the others)
(STREAM_PRESS, STREAM_CNC, STREAM_FURNACE, STREAM_VISION, STREAM_PACKER, STREAM_FAULTS, STREAM_CHANGEOVER,
 STREAM_IMAGES) = range(8)
STREAM_FURNACE_QUALITY = 8  # hardness and CO readings, apart so the older streams keep their draws


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
        """Whether the bore is within the tolerance around the nominal diameter."""
        return abs(self.dimension_mm - DIMENSION_NOMINAL_MM) <= DIMENSION_TOLERANCE_MM


class Stream:
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
        """Uniform draw in [lo, hi)."""
        return lo + (hi - lo) * self.u()


def lag(alpha_per_s: float, dt: float) -> float:
    """Blend factor of a first-order lag with time constant ``1 / alpha_per_s`` over ``dt``."""
    return 1.0 - math.exp(-alpha_per_s * dt)


class Station(ABC):
    """Part flow common to all stations: take a part, work it for one cycle, hand it on."""

    CELL = ""
    ASSET = ""
    SIGNALS: tuple[tuple, ...] = ()  # its rows of signals.ASSET_SIGNALS
    MICROSTOP_MTBF_S = 1800.0
    DOWN_MTBF_S = 0.0  # 0: never breaks down

    def __init__(self, line: Any, stream: Stream) -> None:
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
        """The next part from the input buffer, or ``None`` when it is empty."""
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
        """Put the finished ``part`` into the output buffer; ``False`` when it is full (the station blocks)."""
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
    def on_start(self, t: float) -> None:  # noqa: B027 - an optional hook
        """Called when a cycle starts at ``t``; a station changes its cycle's conditions here."""
        pass

    def on_progress(self, t: float, before: float, after: float) -> None:  # noqa: B027 - an optional hook
        """Called as the cycle's progress goes from ``before`` to ``after`` (fractions of the cycle)."""
        pass

    def on_complete(self, t: float) -> None:  # noqa: B027 - an optional hook
        """Called when a cycle ends at ``t``, before the part is handed over."""
        pass

    def on_changeover(self) -> None:  # noqa: B027 - an optional hook
        """Called at a product changeover."""
        pass

    def add_defect(self, kind: str, prob: float) -> None:
        """Give the current part the defect ``kind`` with probability ``prob`` (one defect at most)."""
        part = self.part
        if part is not None and part.defect is None and self.r.u() < prob:
            part.defect = kind

    # physics -------------------------------------------------------------------------------
    @abstractmethod
    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        """The station's signal values at ``t`` (in the order of its rows in ``ASSET_SIGNALS``)."""

    def electric_kw(self) -> float:
        """The station's electric power draw now, in kW."""
        return 0.0
