"""The vision station: images each part, works the reject diverter (written by a controller, or the
built-in legacy check), optionally waiting for the controller's answer."""

from __future__ import annotations

from typing import Any

from axline.sim.camera import DEFECT_KINDS
from axline.sim.signals import ASSET_SIGNALS, STATE_RUNNING
from axline.sim.stations.base import PartRecord, Station, Stream

# probability that the built-in legacy check catches a visual defect of each kind
_LEGACY_CATCH = {"scratch": 0.55, "dent": 0.7, "crack": 0.5, "stain": 0.85, "missing_feature": 0.95}
assert set(_LEGACY_CATCH) == set(DEFECT_KINDS)


class Vision(Station):
    """The vision station (asset ``camera1``) with its reject diverter."""

    CELL, ASSET = "vision", "camera1"
    SIGNALS = ASSET_SIGNALS[ASSET]
    IMAGE_AT_S = 1.0
    DIVERTER_AT_S = 2.5

    def __init__(self, line: Any, stream: Stream) -> None:
        super().__init__(line, stream)
        self.inspected = 0
        self.rejected = 0
        self.diverter = 0.0
        self.result_ok = 0.0
        self.wait_started: float | None = None
        self.timeouts = 0
        self.legacy_flag = False
        self.power = 0.4

    def on_progress(self, t: float, before: float, after: float) -> None:
        """Take the part's image when the cycle passes the camera, then wait for the verdict."""
        part = self.part
        assert part is not None
        line = self.line
        if before < self.IMAGE_AT_S <= after:
            self.inspected += 1
            self.diverter = 0.0  # a new part: an earlier request no longer applies
            self.result_ok = 0.0
            self.wait_started = None
            part.image_ns = line._time_ns(t)
            caught = part.defect is not None and self.r.u() < _LEGACY_CATCH[part.defect]
            self.legacy_flag = caught or not part.in_tolerance
            line._on_image(part)
        if before < self.DIVERTER_AT_S <= after:
            answered = self.diverter >= 0.5 or self.result_ok >= 0.5
            if line.vision_wait_s > 0 and not answered:
                # handshake: hold the part at the diverter until the vision system answers OK or NG
                self.wait_started = t if self.wait_started is None else self.wait_started
                if t - self.wait_started < line.vision_wait_s:
                    self.progress = self.DIVERTER_AT_S - 1e-9
                    return
                self.timeouts += 1
            divert = self.diverter >= 0.5 or (line.auto_divert and self.legacy_flag and self.result_ok < 0.5)
            if divert:
                self.diverter = 1.0
                self.rejected += 1
                part.diverted = True

    def hand_over(self, part: PartRecord, t: float) -> bool:
        """A diverted part leaves the line; the others go on to the next station."""
        if part.diverted:
            self.line._finish_part(part, t)
            return True
        return super().hand_over(part, t)

    def physics(self, t: float, dt: float, faults: dict[str, float]) -> list[float]:
        """Inspected and rejected counts, diverter, result and power for one step."""
        self.power = max(0.05, 0.4 + (0.5 if self.state == STATE_RUNNING else 0.0) + 0.03 * self.r.n())
        return [float(self.inspected), float(self.rejected), self.diverter, self.result_ok, self.power,
                float(self.state)]

    def electric_kw(self) -> float:
        """The station's power draw, in kW."""
        return self.power
