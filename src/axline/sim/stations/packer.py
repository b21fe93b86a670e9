"""The packing station: packs the good parts."""

from __future__ import annotations

import math
from typing import Any

from axline.sim.signals import ASSET_SIGNALS
from axline.sim.stations.base import PartRecord, Station, Stream


class Packer(Station):
    """The packing station (asset ``packer1``)."""

    CELL, ASSET = "packing", "packer1"
    SIGNALS = ASSET_SIGNALS[ASSET]
    DOWN_MTBF_S = 8 * 3600.0

    def __init__(self, line: Any, stream: Stream) -> None:
        super().__init__(line, stream)
        self.packed = 0
        self.power = 1.2

    def hand_over(self, part: PartRecord, t: float) -> bool:
        """Pack the part: it leaves the line."""
        self.packed += 1
        self.line._finish_part(part, t)
        return True

    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        """Packed count, power and state for one step."""
        ph = self.phase
        move = 2.5 * abs(math.sin(3.0 * math.pi * ph)) if ph is not None else 0.0
        self.power = max(0.1, 1.2 + move + 0.08 * self.r.n())
        return [float(self.packed), self.power, float(self.state)]

    def electric_kw(self) -> float:
        """The packer's power draw, in kW."""
        return self.power
