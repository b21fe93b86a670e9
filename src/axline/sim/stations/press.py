"""The hydraulic press: ram force and position over each stroke, hydraulic pressure, pump power and
the oil temperature; it releases a blank every ``takt_s``."""

from __future__ import annotations

import math
from typing import Any

from axline.sim.signals import ASSET_SIGNALS, STATE_DOWN, STATE_MICROSTOP
from axline.sim.stations.base import PartRecord, Station, Stream, lag


class Press(Station):
    """The hydraulic press (asset ``press1``)."""

    CELL, ASSET = "press", "press1"
    SIGNALS = ASSET_SIGNALS[ASSET]
    DOWN_MTBF_S = 8 * 3600.0
    PEAK_KN = 800.0

    def __init__(self, line: Any, stream: Stream) -> None:
        super().__init__(line, stream)
        self.stops_for_changeover = True
        self.next_release = 0.0
        self.peak = self.PEAK_KN
        self.oil_temp = 35.5 + 0.5 * self.r.n()
        self.power_avg = 14.5
        self.strokes = 0
        self.power = 7.0

    def take_part(self, t: float) -> PartRecord | None:
        """Release a new blank on the takt grid (the press starts the line)."""
        if t < self.next_release:
            return None
        line = self.line
        if t - self.next_release > line.takt_s:
            self.next_release = t  # long stop: restart the takt grid instead of catching up
        self.next_release += line.takt_s
        return line._new_part(t)

    def on_start(self, t: float) -> None:
        """Draw this stroke's peak force."""
        self.peak = self.PEAK_KN * (1.0 + 0.015 * self.r.n())

    def on_complete(self, t: float) -> None:
        """Count the stroke and maybe dent or crack the part."""
        self.strokes += 1
        self.add_defect("dent", 0.004)
        self.add_defect("crack", 0.003)

    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        """Force, ram position, hydraulic pressure and power for one step of ``dt`` seconds under ``faults``."""
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
        self.power_avg += (self.power - self.power_avg) * lag(1 / 60.0, dt)
        target = 22.0 + 1.2 * self.power_avg
        self.oil_temp += (target - self.oil_temp) * lag(1 / 1200.0, dt)
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
        """The press's power draw, in kW."""
        return self.power
