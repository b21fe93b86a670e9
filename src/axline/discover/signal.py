"""What discovery finds: one ``Signal`` per value a machine offers, and the naming helpers the
protocols and the writers share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from axline.plant import UNITS


@dataclass
class Signal:
    """One value a machine offers, as discovery saw it (address, type, unit, updates)."""

    machine: str  # the asset the signal belongs to (browse parent)
    name: str
    address: str
    dtype: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    writable: bool = False
    value: object = None
    times: list[float] = field(default_factory=list)  # arrival times (s) while listening
    kind: str = ""  # plant tag kind to draft ("bool"), when known
    note: str = ""  # what was seen (constant/changing, payload kind), shown in the inventory
    guess: str = ""  # why the type is a guess; drafted as a '# guess:' comment
    period_s: float | None = None  # typical time between updates seen, drafted as period_s
    connector: str = ""  # connector name in the draft ('' = the first one)
    commented: bool = False  # drafted as a commented-out line (e.g. a register that stayed 0)

    def rate_hz(self, window_s: float) -> float:
        """Updates per second seen over a window of ``window_s`` seconds."""
        return len(self.times) / window_s if window_s > 0 else 0.0

    def max_gap_s(self, window_s: float, t0: float) -> float:
        """The longest time without an update within the window starting at ``t0``."""
        if not self.times:
            return window_s
        t = np.array([t0, *sorted(self.times), t0 + window_s])
        return float(np.diff(t).max())


_SAFE = re.compile(r"[^a-z0-9_]+")


def ident(text: str) -> str:
    """A text as a plant-file identifier: lower case, ``[a-z0-9_]``, starting with a letter or digit."""
    s = _SAFE.sub("_", text.strip().lower()).strip("_")
    return s if s and s[0].isalnum() else f"x_{s}" if s else "x"


def guess_unit(raw: str) -> str:
    """Map a unit string a device reports to axline's unit list ('' when unknown)."""
    if not raw:
        return ""
    aliases = {
        "°c": "degC",
        "c": "degC",
        "celsius": "degC",
        "°f": "degF",
        "l/m": "L/min",
        "lpm": "L/min",
        "m³/h": "m3/h",
        "nm³/h": "Nm3/h",
        "kw·h": "kWh",
        "kw h": "kWh",
        "r/min": "rpm",
        "1/min": "rpm",
        "percent": "%",
        "pct": "%",
        "sec": "s",
        "µm": "um",
        "m/s²": "m/s2",
    }
    if raw in UNITS:
        return raw
    low = raw.lower()
    if low in aliases:
        return aliases[low]
    for u in UNITS:
        if u.lower() == low:
            return u
    return ""


def runs(addresses: list[int] | np.ndarray) -> list[tuple[int, int]]:
    """Sorted addresses -> inclusive runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for a in addresses:
        a = int(a)
        if runs and a == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], a)
        else:
            runs.append((a, a))
    return runs
