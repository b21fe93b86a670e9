"""The gas-fired heat-treatment furnace: two zones held at the setpoint by PI burners, parts taking
heat out, flue O2, CO and exhaust temperature, and the hardness each part reaches (the combustion and
hardening physics are in ``axline.sim.furnace``)."""

from __future__ import annotations

import math
from typing import Any

from axline.sim import furnace as fphys
from axline.sim.signals import ASSET_SIGNALS, STATE_RUNNING
from axline.sim.stations.base import STREAM_FURNACE_QUALITY, Station, Stream, lag

GAS_KWH_PER_NM3 = 10.5  # kWh of heat per Nm3 of natural gas


class Furnace(Station):
    """The heat-treatment furnace (asset ``furnace1``); its setpoints are writable."""

    CELL, ASSET = "furnace", "furnace1"
    SIGNALS = ASSET_SIGNALS[ASSET]
    ETA = 0.55  # fraction of the gas energy that reaches the load and walls
    LOSS_KW_PER_K = 0.15  # wall loss per zone
    CAP_KJ_PER_K = 360.0  # heat capacity per zone (time constant 40 min)
    PART_KJ_PER_K = 0.9  # 1.5 kg steel x 0.6 kJ/(kg K)
    SHARE = (0.7, 0.3)  # part heating done in zone 1 and zone 2
    KP, KI = 4.0, 4.0 / 150.0
    FUEL_MAX = 70.0  # per burner, Nm3/h

    def __init__(self, line: Any, stream: Stream) -> None:
        super().__init__(line, stream)
        self.setpoint = 850.0
        self.temps = [850.0 + 0.3 * self.r.n(), 850.0 + 0.3 * self.r.n()]
        duty = min(1.0, line.cycle_s / line.takt_s)
        self.fuel = []
        self.integ = []
        for share in self.SHARE:
            need = (self.LOSS_KW_PER_K * 825.0 + share * self.PART_KJ_PER_K * 825.0 / line.cycle_s * duty)
            u = need / (self.ETA * GAS_KWH_PER_NM3)
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
        self.q = Stream(line.seed, STREAM_FURNACE_QUALITY)
        self.hardness = self._hardness(line.cycle_s)

    def _hardness(self, soak_s: float) -> float:
        zone = 0.5 * (self.temps[0] + self.temps[1])
        return fphys.hardness_hrc(fphys.core_temperature(zone, soak_s))

    def on_start(self, t: float) -> None:
        """Set the time in the furnace from the belt speed."""
        self.cycle_len *= fphys.soak_factor(self.belt_speed)  # the belt sets the time in the furnace

    def on_complete(self, t: float) -> None:
        """Count the part, maybe stain it, and give it the hardness its soak made."""
        self.treated += 1
        self.add_defect("stain", self.stain_prob)
        self.hardness = self._hardness(self.cycle_len)

    def write(self, signal: str, value: float) -> None:
        """Take a written setpoint (temperature, O2 or belt speed)."""
        if signal == "o2_setpoint":
            self.o2_setpoint = value
        elif signal == "belt_speed":
            self.belt_speed = value
        else:
            self.setpoint = value

    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        """Temperature, O2, CO, fouling, gas and power for one step of ``dt`` seconds under ``faults``."""
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
        valve = lag(1 / 2.0, dt)
        for z in range(2):
            temp = self.temps[z]
            err = self.setpoint - temp
            u = self.KP * err + self.KI * self.integ[z]
            if 0.0 < u < self.FUEL_MAX or (u >= self.FUEL_MAX and err < 0) or (u <= 0.0 and err > 0):
                self.integ[z] += err * dt
            u = min(self.FUEL_MAX, max(0.0, u))
            self.fuel[z] += (u - self.fuel[z]) * valve
            q_in = eta * self.fuel[z] * GAS_KWH_PER_NM3
            loss = self.LOSS_KW_PER_K * (temp - 25.0)
            part = self.SHARE[z] * self.PART_KJ_PER_K * (temp - 25.0) / soak_s if loading else 0.0
            self.temps[z] = temp + (q_in - loss - part) / self.CAP_KJ_PER_K * dt
        fuel = self.fuel[0] + self.fuel[1]
        self.gas_nm3_h = fuel
        self.o2_wander += -self.o2_wander * lag(1 / 300.0, dt) + 0.02 * math.sqrt(dt) * r.n()
        o2 = min(20.0, max(0.2, self.o2_setpoint + 1.3 * bf + self.o2_wander + 0.06 * r.n()))
        air = 9.52 * fuel * 21.0 / (21.0 - o2)
        ex_target = 330.0 + 1.6 * (fuel - 54.0) + 45.0 * bf
        self.exhaust += (ex_target - self.exhaust) * lag(1 / 60.0, dt)
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
        """The furnace's electric power draw, in kW."""
        return self.power
