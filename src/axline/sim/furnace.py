"""Combustion and heat-treatment physics of the virtual furnace: the trade-offs a setpoint optimiser meets.

The furnace station in :mod:`axline.sim.line` keeps its zones, PI burners and part flow; this module
supplies the parts of the physics that make its setpoints a real optimisation problem:

* **Excess air vs fuel.** The air trim holds the flue O2 at ``o2_setpoint``. More excess air carries
  more heat up the stack (the flue leaves near furnace temperature), so the share of the gas energy
  that reaches the load falls as the excess-air ratio ``lambda = 21 / (21 - O2)`` rises. Too little
  air burns incompletely: CO rises steeply below a minimum O2 that grows as the burners foul, wastes
  fuel and leaves soot (stains on parts). A CO limit is a safety limit.
* **Temperature vs hardness vs throughput.** A part is hardened when its core reaches austenitising
  temperature before the quench. It heats with a time constant ``PART_TAU_S`` towards the zone
  temperature for its time in the furnace, which the belt speed sets. A slower belt lets a cooler
  furnace (less wall loss, less fuel) harden the part just as well, until the furnace becomes the
  bottleneck of the line and throughput falls.
* **Burner fouling over time.** The burners foul slowly on their own (faster when they burn rich);
  fouling lowers the available heat and raises the minimum O2 for clean combustion, so the best
  excess air moves with time and must be tracked. (An injected ``burner_fouling`` fault adds to it.)

All functions are pure; the station keeps the state. With the default setpoints (850 degC, 4.5 % O2,
belt 100 %) and clean burners the available heat is exactly the station's nominal ``ETA``.
"""

from __future__ import annotations

import math

AMBIENT_C = 25.0
O2_NOMINAL = 4.5  # flue O2 the furnace was commissioned at (generous excess air, tuned by eye), %
BELT_NOMINAL = 100.0  # belt speed, % of the speed at which a part spends one ideal cycle in the furnace
STACK_LOSS_PER_LAMBDA = 0.40  # available-heat fraction lost per unit of excess-air ratio
CO_BASE_PPM = 15.0
CO_CLIFF_PPM = 3000.0
CO_MAX_PPM = 5000.0  # the analyser's range
CO_CLIFF_WIDTH = 0.35  # % O2 per e-fold of CO below the clean-combustion minimum
O2_MIN_CLEAN = 1.0  # % O2 below which clean burners burn incompletely
O2_MIN_PER_FOULING = 2.5  # % O2 the minimum rises per unit of fouling
FOULING_PER_H = 0.004  # natural fouling per hour at clean combustion
FOULING_RICH_PPM = 150.0  # CO at which fouling goes twice as fast
FOULING_ETA_LOSS = 0.18  # available heat is divided by (1 + this x fouling)
PART_TAU_S = 5.0  # a part's core heats towards the zone temperature with this time constant
HRC_MIN, HRC_SPAN = 30.0, 33.0  # hardness of an unhardened part, and what full hardening adds
AUSTENITE_C, AUSTENITE_WIDTH = 700.0, 15.0  # core temperature of half hardening, and its spread
OVERHEAT_C, OVERHEAT_HRC_PER_K = 790.0, 0.03  # grain growth above this core temperature costs hardness
HARDNESS_SPEC = (58.0, 64.0)  # HRC, the part's specification


def excess_air_ratio(o2_pct: float) -> float:
    """lambda = supplied air / stoichiometric air, from the flue O2 (dry, %)."""
    return 21.0 / (21.0 - min(20.0, max(0.0, o2_pct)))


def o2_min_clean(fouling: float) -> float:
    """The flue O2 below which combustion turns incomplete, for a burner fouling level."""
    return O2_MIN_CLEAN + O2_MIN_PER_FOULING * max(0.0, fouling)


def co_ppm(o2_pct: float, fouling: float) -> float:
    """Flue CO: a low floor, rising steeply as O2 falls towards and below the clean minimum."""
    x = (o2_pct - o2_min_clean(fouling)) / CO_CLIFF_WIDTH
    return min(CO_MAX_PPM, CO_BASE_PPM + CO_CLIFF_PPM * math.exp(-min(50.0, max(-50.0, x))))


def available_heat(eta_nominal: float, o2_setpoint: float, fouling: float, co: float) -> float:
    """Fraction of the gas energy that reaches the load and walls: the stack loss of the excess air
    the trim supplies for ``o2_setpoint``, the fuel left unburnt as ``co`` (ppm), and fouling."""
    eta = eta_nominal - STACK_LOSS_PER_LAMBDA * (excess_air_ratio(o2_setpoint) - excess_air_ratio(O2_NOMINAL))
    eta -= 1e-5 * max(0.0, co - co_ppm(O2_NOMINAL, 0.0))  # unburnt CO is fuel lost
    return max(0.05, eta) / (1.0 + FOULING_ETA_LOSS * max(0.0, fouling))


def fouling_rate_per_s(co: float) -> float:
    """How fast the burners foul on their own: faster when they burn rich (soot)."""
    return FOULING_PER_H / 3600.0 * (1.0 + max(0.0, co) / FOULING_RICH_PPM)


def soak_factor(belt_speed_pct: float) -> float:
    """A part's time in the furnace relative to the ideal cycle, for a belt speed in % of nominal."""
    return BELT_NOMINAL / max(1.0, belt_speed_pct)


def core_temperature(zone_c: float, soak_s: float) -> float:
    """The part's core temperature when it leaves a zone at ``zone_c`` after ``soak_s`` seconds."""
    return zone_c - (zone_c - AMBIENT_C) * math.exp(-max(0.0, soak_s) / PART_TAU_S)


def hardness_hrc(core_c: float) -> float:
    """Rockwell C hardness after the quench, from the core temperature the part reached."""
    x = (core_c - AUSTENITE_C) / AUSTENITE_WIDTH
    h = HRC_MIN + HRC_SPAN / (1.0 + math.exp(-min(50.0, max(-50.0, x))))
    if core_c > OVERHEAT_C:
        h -= OVERHEAT_HRC_PER_K * (core_c - OVERHEAT_C)
    return h


def stain_factor(co: float) -> float:
    """How much more often parts are stained, from soot at this CO level."""
    return 1.0 + max(0.0, co - CO_BASE_PPM) / 300.0
