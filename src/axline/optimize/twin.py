"""The twin: the virtual factory's own simulation, started from the plant's current state and run
ahead in simulated time to answer "what if the setpoints were X?".

:meth:`FurnaceTwin.from_values` builds a :class:`axline.sim.line.VirtualLine` (the same code the
virtual factory runs) and sets its furnace to what the readings say now: zone temperatures, the
burners' gas flow (the PI controllers' state), the setpoints, and the burner fouling, which no
sensor shows and is estimated from how much gas the measured heat demand takes. Each question
runs on a copy, so one twin answers many. The twin knows the plant, not its future: no faults are
scheduled on it and its random streams are its own.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from axline.batch import NS_PER_S
from axline.optimize.metrics import Series, unit_metrics
from axline.optimize.spec import UnitSpec
from axline.sim import furnace as fphys
from axline.sim.line import _GAS_KWH_PER_NM3, VirtualLine

MAX_TWIN_HOURS = 48.0
CHUNK_S = 60.0


def estimate_fouling(eta_nominal: float, loss_kw_per_k: float, part_kj_per_k: float, zone_c: list[float],
                     fuel_nm3_h: float, o2_setpoint: float, co: float, takt_s: float) -> float:
    """Burner fouling from the heat balance: the heat the zones and parts take over the gas burnt."""
    need_kw = sum(loss_kw_per_k * (t - fphys.AMBIENT_C) for t in zone_c)
    need_kw += part_kj_per_k * (float(np.mean(zone_c)) - fphys.AMBIENT_C) / takt_s
    if not (fuel_nm3_h > 0 and need_kw > 0):
        return 0.0
    eta_measured = need_kw / (fuel_nm3_h * _GAS_KWH_PER_NM3)
    clean = fphys.available_heat(eta_nominal, o2_setpoint, 0.0, co)
    return float(min(3.0, max(0.0, (clean / eta_measured - 1.0) / fphys.FOULING_ETA_LOSS)))


class FurnaceTwin:
    """A virtual line positioned at the plant's current state; :meth:`run` answers a what-if."""

    def __init__(self, line: VirtualLine, asset_path: str, totals_path: str) -> None:
        self.line = line
        self.asset = asset_path
        self.totals = totals_path

    @classmethod
    def from_values(cls, values: Mapping[str, float], asset_path: str, totals_path: str, *, start_ns: int,
                    fuel_mean: float | None = None, seed: int = 9001, takt_s: float = 12.0,
                    cycle_s: float = 10.0) -> FurnaceTwin:
        """A twin started from the plant's current values (setpoints, fouling, fuel) at ``start_ns``."""
        prefix = "/".join(asset_path.split("/")[:3])
        line = VirtualLine(seed=seed, start_ns=int(start_ns), faults=None, prefix=prefix, warmup_s=0.0,
                           takt_s=takt_s, cycle_s=cycle_s, render_images=False, changeover_interval_s=None)
        f = line._furnace

        def v(signal: str, default: float) -> float:
            x = values.get(f"{asset_path}/{signal}")
            return float(x) if x is not None and math.isfinite(float(x)) else default

        f.setpoint = v("temp_setpoint", f.setpoint)
        f.o2_setpoint = v("o2_setpoint", f.o2_setpoint)
        f.belt_speed = v("belt_speed", f.belt_speed)
        f.temps = [v("zone1_temp", f.setpoint), v("zone2_temp", f.setpoint)]
        fuel = fuel_mean if fuel_mean is not None and math.isfinite(fuel_mean) else v("fuel_flow", sum(f.fuel))
        total0 = sum(f.fuel)
        f.fuel = [fuel * u / total0 for u in f.fuel]
        f.integ = [(u - f.KP * (f.setpoint - t)) / f.KI for u, t in zip(f.fuel, f.temps, strict=True)]
        f.gas_nm3_h = fuel
        f.fouling = estimate_fouling(f.ETA, f.LOSS_KW_PER_K, f.PART_KJ_PER_K, f.temps, fuel, f.o2_setpoint,
                                     v("co", f.co), takt_s)
        f.co = fphys.co_ppm(f.o2_setpoint, f.fouling)
        return cls(line, asset_path, totals_path)

    @property
    def fouling(self) -> float:
        """The twin's burner fouling now."""
        return float(self.line._furnace.fouling)

    def run(self, setpoints: Mapping[str, float], hours: float, tags: list[str],
            sample_s: float = 60.0) -> tuple[dict[str, Series], dict[str, list]]:
        """Run a copy ``hours`` ahead with ``setpoints`` written at the start; return the raw series
        of ``tags`` and per-``sample_s`` mean trajectories (for plotting)."""
        if not (0 < hours <= MAX_TWIN_HOURS):
            raise ValueError(f"a twin runs 0 .. {MAX_TWIN_HOURS:g} simulated hours ahead, got {hours!r}")
        line = copy.deepcopy(self.line)
        for path, value in setpoints.items():
            line.write(path, float(value))
        want = {line.paths.index(t): t for t in tags if t in line.paths}
        ts_parts: dict[str, list[np.ndarray]] = {t: [] for t in want.values()}
        v_parts: dict[str, list[np.ndarray]] = {t: [] for t in want.values()}
        steps = int(math.ceil(hours * 3600.0 / CHUNK_S))
        for _ in range(steps):
            b = line.step(CHUNK_S)
            good = b.quality == 0
            for i, t in want.items():
                m = (b.idx == i) & good
                ts_parts[t].append(b.ts[m])
                v_parts[t].append(b.value[m])
        series = {t: (np.concatenate(ts_parts[t]), np.concatenate(v_parts[t])) for t in want.values()}
        start = self.line.now_ns
        traj: dict[str, list] = {"t_s": []}
        n = int(math.ceil(hours * 3600.0 / sample_s))
        edges = start + (np.arange(n + 1) * sample_s * NS_PER_S).astype(np.int64)
        traj["t_s"] = [float((e - start) / NS_PER_S) for e in edges[1:]]
        for t, (ts, val) in series.items():
            k = np.searchsorted(edges, ts, side="right") - 1
            sums = np.bincount(k.clip(0, n - 1), weights=val, minlength=n)[:n]
            cnt = np.bincount(k.clip(0, n - 1), minlength=n)[:n]
            traj[t] = [float(s / c) if c else None for s, c in zip(sums, cnt, strict=True)]
        return series, traj

    def evaluate(self, spec: UnitSpec, x: Mapping[str, float]) -> dict[str, float]:
        """The unit's metrics over the verification window after the settling time, at setpoints x."""
        hours = (spec.settle_s + spec.verify_s) / 3600.0
        series, _ = self.run(x, hours, spec.tags(), sample_s=600.0)
        start = self.line.now_ns + int(spec.settle_s * NS_PER_S)
        end = start + int(spec.verify_s * NS_PER_S)
        return unit_metrics(spec, series, start, end)


def furnace_twin_factory(io: Any, asset_path: str, totals_path: str, *, takt_s: float = 12.0,
                         cycle_s: float = 10.0, seed: int = 9001):
    """An async factory of twins positioned at ``io``'s current state (values and the last
    10 minutes' mean gas flow)."""

    async def make() -> FurnaceTwin:
        now = io.now_ns()
        tags = [f"{asset_path}/{s}" for s in ("temp_setpoint", "o2_setpoint", "belt_speed", "zone1_temp",
                                               "zone2_temp", "fuel_flow", "co")]
        values = io.latest(tags)
        fuel = await io.series([f"{asset_path}/fuel_flow"], now - 600 * NS_PER_S, now + 1)
        ts, v = fuel.get(f"{asset_path}/fuel_flow", (np.zeros(0), np.zeros(0)))
        fuel_mean = float(v.mean()) if len(v) else None
        return FurnaceTwin.from_values(values, asset_path, totals_path, start_ns=now, fuel_mean=fuel_mean,
                                       seed=seed, takt_s=takt_s, cycle_s=cycle_s)

    return make
