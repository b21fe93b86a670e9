"""The CNC machining station: spindle speed, current and temperature, vibration, the coolant circuit
with its filter, tool wear and the gauged bore of each part."""

from __future__ import annotations

from typing import Any

from axline.sim.signals import ASSET_SIGNALS
from axline.sim.stations.base import DIMENSION_NOMINAL_MM, Station, Stream, lag


class Cnc(Station):
    """The CNC machining station (asset ``cnc1``)."""

    CELL, ASSET = "cnc", "cnc1"
    SIGNALS = ASSET_SIGNALS[ASSET]
    SPEED_RPM = 3200.0
    TOOL_LIFE_PARTS = 1300.0
    FLOW_NOMINAL = 22.0

    def __init__(self, line: Any, stream: Stream) -> None:
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
        """Draw this cycle's load factor."""
        self.load_factor = 1.0 + 0.04 * self.r.n()

    def on_changeover(self) -> None:
        """Fit a new tool."""
        self.tool_wear = self.r.uniform(0.0, 2.0)  # new tool

    def on_complete(self, t: float) -> None:
        """Wear the tool and measure the part's bore (tool wear, heat and chatter move it)."""
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
        """Spindle, vibration, coolant and power signals for one step of ``dt`` seconds under ``faults``."""
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
        self.current += (target_i - self.current) * lag(1 / 0.3, dt)
        current = max(0.0, self.current + 0.25 * r.n())
        self.current_avg += (self.current - self.current_avg) * lag(1 / 120.0, dt)
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
        self.heat_avg += (0.45 * self.current - self.heat_avg) * lag(1 / 120.0, dt)
        ct_target = 22.0 + 0.45 * self.heat_avg * (self.FLOW_NOMINAL / max(flow, 2.0)) ** 0.7 + 8.0 * cl
        self.coolant_temp += (ct_target - self.coolant_temp) * lag(1 / 300.0, dt)
        st_target = 24.0 + 1.6 * self.current_avg + 12.0 * cl + 4.0 * bw + 2.0 * cf
        self.spindle_temp += (st_target - self.spindle_temp) * lag(1 / 400.0, dt)
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
        """The spindle's power draw, in kW."""
        return self.power
