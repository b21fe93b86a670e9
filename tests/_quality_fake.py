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
        if not any(t["path"] == BORE for t in cnc["tags"]):
            cnc["tags"] += [bore, state]
            self.tags += [bore, state]
        super()._fill_history(history_s)

    def value(self, tag: dict, step: int) -> float:
        if tag["path"] == BORE:
            part = step // PART_STEPS
            v = 25.0 + float(np.random.default_rng(abs(part) + 17).normal(0, 0.004))
            if self.drift_step is not None and step >= self.drift_step:
                v -= self.drift_per_part * ((step - self.drift_step) // PART_STEPS + 1)
            return round(v, 5)
        if tag["path"] == STATE:
            return 4.0 if step % self.lot_steps < 10 else 1.0  # a changeover opens each lot
        return super().value(tag, step)
