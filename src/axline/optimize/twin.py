"""The twin: the virtual factory's own simulation, started from the plant's current state and run
ahead in simulated time to answer "what if the setpoints were X?".

:meth:`FurnaceTwin.from_values` builds a :class:`axline.sim.line.VirtualLine` (the same code the
virtual factory runs) and sets its furnace to what the readings say now: zone temperatures, the
burners' gas flow (the PI controllers' state), the setpoints, and the burner fouling, which no
sensor shows: it is read off the flue CO against the flue O2 once the burners run near their
clean-combustion limit (where CO tells it to a few hundredths of a per cent O2), and estimated
from how much gas the measured heat demand takes otherwise. Each question
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
TWIN_SETTLE_S = 600.0  # the zones reach a new setpoint within minutes (PI burners): the twin settles this long at most
TWIN_VERIFY_S = 1200.0  # then judges over this window at most (every question to one twin shares its random streams)
WORST_WINDOW_S = 600.0  # absolute limits are also judged over the worst window this long, as the plant's watch does
CO_INFORMATIVE_PPM = 40.0  # flue CO above which a reading tells how far O2 is above the clean minimum
MIN_CO_SAMPLES = 30


def fouling_from_co(o2: np.ndarray, co: np.ndarray) -> float | None:
    """Burner fouling from the flue readings where CO has left its floor: each such pair says how far
    the O2 was above the clean-combustion minimum (``axline.sim.furnace.co_ppm`` inverted), and the
    minimum says the fouling. None when too few readings are informative."""
    o2, co = np.asarray(o2, float), np.asarray(co, float)
    n = min(len(o2), len(co))
    o2, co = o2[-n:], co[-n:]
    m = np.isfinite(o2) & np.isfinite(co) & (co > CO_INFORMATIVE_PPM) & (co < 0.9 * fphys.CO_MAX_PPM)
    if int(m.sum()) < MIN_CO_SAMPLES:
        return None
    o2_min = o2[m] + fphys.CO_CLIFF_WIDTH * np.log((co[m] - fphys.CO_BASE_PPM) / fphys.CO_CLIFF_PPM)
    return float(min(3.0, max(0.0, (float(np.median(o2_min)) - fphys.O2_MIN_CLEAN) / fphys.O2_MIN_PER_FOULING)))


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
                    cycle_s: float = 10.0, fouling: float | None = None) -> FurnaceTwin:
        """A twin started from the plant's current values (setpoints, fuel) at ``start_ns``; its burner
        fouling is ``fouling`` when given (read off the flue CO), else estimated from the heat balance."""
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
        f.fouling = fouling if fouling is not None else estimate_fouling(
            f.ETA, f.LOSS_KW_PER_K, f.PART_KJ_PER_K, f.temps, fuel, f.o2_setpoint, v("co", f.co), takt_s)
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
        """The unit's metrics over a window after a settling time, at setpoints x. Both are shorter than the
        plant's (at most ``TWIN_SETTLE_S`` and ``TWIN_VERIFY_S``): the twin's zones settle as fast as the
        plant's, and every question to one twin shares its random streams, so its answers differ by the
        setpoints, not by chance. Each metric with an absolute limit is also given at its worst
        ``WORST_WINDOW_S`` window from the change on as ``"<metric>@worst"``, as the plant's watch judges it."""
        settle_s, verify_s = min(spec.settle_s, TWIN_SETTLE_S), min(spec.verify_s, TWIN_VERIFY_S)
        series, _ = self.run(x, (settle_s + verify_s) / 3600.0, spec.tags(), sample_s=600.0)
        start = self.line.now_ns + int(settle_s * NS_PER_S)
        end = start + int(verify_s * NS_PER_S)
        out = unit_metrics(spec, series, start, end)
        w = int(min(WORST_WINDOW_S, verify_s) * NS_PER_S)
        for c in spec.constraints:
            if c.kind not in ("max", "min"):
                continue
            vals = [unit_metrics(spec, series, t, t + w)[c.metric] for t in range(self.line.now_ns, end - w + 1, w // 2)]
            vals = [v for v in vals if math.isfinite(v)]
            if vals:
                out[f"{c.metric}@worst"] = max(vals) if c.kind == "max" else min(vals)
        return out


def furnace_twin_factory(io: Any, asset_path: str, totals_path: str, *, takt_s: float = 12.0,
                         cycle_s: float = 10.0, seed: int = 9001):
    """An async factory of twins positioned at ``io``'s current state (values, the last 10 minutes'
    mean gas flow, and the burner fouling read off the last 20 minutes' flue O2 and CO)."""

    async def make() -> FurnaceTwin:
        now = io.now_ns()
        tags = [f"{asset_path}/{s}" for s in ("temp_setpoint", "o2_setpoint", "belt_speed", "zone1_temp",
                                               "zone2_temp", "fuel_flow", "co")]
        values = io.latest(tags)
        flue = [f"{asset_path}/{s}" for s in ("fuel_flow", "o2", "co")]
        got = await io.series(flue, now - 1200 * NS_PER_S, now + 1)
        empty = (np.zeros(0, np.int64), np.zeros(0))
        ts, v = got.get(flue[0], empty)
        recent = v[ts >= now - 600 * NS_PER_S]
        fuel_mean = float(recent.mean()) if len(recent) else None
        (o2_ts, o2), (co_ts, co) = (got.get(t, empty) for t in flue[1:])
        fouling = None
        if len(o2) and len(co):  # CO follows the O2 at once: any pair of readings tells
            k = np.searchsorted(co_ts, o2_ts).clip(0, len(co_ts) - 1)  # pair each O2 with its CO reading
            fouling = fouling_from_co(o2, co[k])
        return FurnaceTwin.from_values(values, asset_path, totals_path, start_ns=now, fuel_mean=fuel_mean,
                                       seed=seed, takt_s=takt_s, cycle_s=cycle_s, fouling=fouling)

    return make
