"""A FakeService whose CNC also gauges a bore diameter (spec 25.000 +- 0.020 mm), held between parts
like a PLC holds a gauge reading, drifting down from ``drift_step`` on (a wearing tool); and the
CNC's state tag with a changeover every ``lot_steps`` steps."""

from __future__ import annotations

import numpy as np

from _fake_service import LINE, FakeService

CNC = f"{LINE}/cnc/cnc1"
BORE = f"{CNC}/bore_diameter"
STATE = f"{CNC}/state"
PART_STEPS = 10  # one part every 10 plant seconds


class QualityFakeService(FakeService):
    def __init__(self, historian, drift_step: int | None = None, drift_per_part: float = 0.006,
                 lot_steps: int = 300, **kw) -> None:
        self.drift_step = drift_step
        self.drift_per_part = drift_per_part
        self.lot_steps = lot_steps
        super().__init__(historian, **kw)

    def _fill_history(self, history_s: int) -> None:
        cnc = next(a for a in self.plant["lines"][0]["assets"] if a["path"] == CNC)
        bore = {"path": BORE, "signal": "bore_diameter", "unit": "mm", "range": [24.8, 25.2], "period_s": 1.0,
                "writable": False, "name": {"en": "Bore diameter", "ko": "보어 직경"}, "trend": False,
                "spec": {"lsl": 24.98, "usl": 25.02, "target": 25.0}}
        state = {"path": STATE, "signal": "state", "unit": "", "kind": "state", "range": [0, 5], "period_s": 1.0,
                 "writable": False, "name": {"en": "State", "ko": "상태"}, "trend": False}
        counters = [{"path": f"{CNC}/{sig}", "signal": sig, "unit": "count", "kind": "counter",
                     "range": [0, 1e12], "period_s": 1.0, "writable": False, "name": {"en": sig, "ko": sig},
                     "trend": False} for sig in ("parts_total", "parts_good", "parts_rejected")]
        if not any(t["path"] == BORE for t in cnc["tags"]):
            cnc["tags"] += [bore, state, *counters]
            self.tags += [bore, state, *counters]
            line = self.plant["lines"][0]
            line["kpi"] = {"state": STATE, "parts_total": f"{CNC}/parts_total", "parts_good": f"{CNC}/parts_good",
                           "parts_rejected": f"{CNC}/parts_rejected"}
            line["ideal_cycle_s"] = 9.0
            line["shifts"] = [{"name": "A", "start": "06:00", "hours": 8}, {"name": "B", "start": "14:00", "hours": 8},
                              {"name": "C", "start": "22:00", "hours": 8}]
        super()._fill_history(history_s)

    def value(self, tag: dict, step: int) -> float:
        if tag["path"] == BORE:
            part = step // PART_STEPS
            v = 25.0 + float(np.random.default_rng(abs(part) + 17).normal(0, 0.004))
            if self.drift_step is not None and step >= self.drift_step:
                v -= self.drift_per_part * ((step - self.drift_step) // PART_STEPS + 1)
            return round(v, 5)
        if tag["signal"] in ("parts_total", "parts_good", "parts_rejected"):
            total, rejected = (step + 100_000) // PART_STEPS, (step + 100_000) // (40 * PART_STEPS)
            return float({"parts_total": total, "parts_good": total - rejected, "parts_rejected": rejected}[tag["signal"]])
        if tag["path"] == STATE:
            return 4.0 if step % self.lot_steps < 10 else 1.0  # a changeover opens each lot
        return super().value(tag, step)
