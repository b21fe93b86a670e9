"""The plant model: units and kinds a plant file may name, the error it raises, the defaults of its
``safety`` section, and the dataclasses it becomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from axline import i18n

# Units a tag may carry. Kept explicit so that a typo ('degc', 'Bar') is caught at load time.
UNITS: dict[str, str] = {
    "": "dimensionless",
    "1": "dimensionless",
    "%": "percent",
    "degC": "degree Celsius",
    "degF": "degree Fahrenheit",
    "K": "kelvin",
    "bar": "bar",
    "mbar": "millibar",
    "Pa": "pascal",
    "kPa": "kilopascal",
    "MPa": "megapascal",
    "psi": "pound per square inch",
    "mm": "millimetre",
    "um": "micrometre",
    "m": "metre",
    "mm/s": "millimetre per second",
    "m/s": "metre per second",
    "m/s2": "metre per second squared",
    "g": "standard gravity (acceleration)",
    "rpm": "revolutions per minute",
    "Hz": "hertz",
    "kHz": "kilohertz",
    "A": "ampere",
    "mA": "milliampere",
    "V": "volt",
    "kV": "kilovolt",
    "W": "watt",
    "kW": "kilowatt",
    "MW": "megawatt",
    "Wh": "watt hour",
    "kWh": "kilowatt hour",
    "MWh": "megawatt hour",
    "kVA": "kilovolt-ampere",
    "kvar": "kilovolt-ampere reactive",
    "N": "newton",
    "kN": "kilonewton",
    "Nm": "newton metre",
    "kg": "kilogram",
    "t": "tonne",
    "kg/h": "kilogram per hour",
    "t/h": "tonne per hour",
    "L/min": "litre per minute",
    "L/h": "litre per hour",
    "m3/h": "cubic metre per hour",
    "Nm3/h": "normal cubic metre per hour",
    "Nm3": "normal cubic metre",
    "L": "litre",
    "m3": "cubic metre",
    "s": "second",
    "ms": "millisecond",
    "min": "minute",
    "h": "hour",
    "count": "count",
    "bool": "boolean (0/1)",
    "enum": "enumerated state code",
    "ppm": "parts per million",
    "HRC": "Rockwell C hardness",
    "pH": "pH",
    "%RH": "relative humidity",
    "lux": "lux",
    "dB": "decibel",
}

TAG_KINDS = ("analog", "counter", "state", "bool", "setpoint")
ASSET_KINDS = ("press", "cnc", "furnace", "vision", "packing", "robot", "conveyor", "pump", "compressor",
               "oven", "injection_molding", "welding", "boiler", "chiller", "line", "other")
CAMERA_SOURCES = ("folder", "opencv", "sim")
LANGUAGES = ("ko", "en")
KPI_KEYS = ("state", "parts_total", "parts_good", "parts_rejected", "energy")

class PlantConfigError(ValueError):
    """A plant file is wrong. The message names the file, the key path and what is allowed, in English and
    Korean (catalog ``key`` with ``params``); ``problem`` is the English text, ``text(lang)`` either one."""

    def __init__(self, file: str, keypath: str, key: str, /, **params: Any) -> None:
        self.file, self.keypath, self.key, self.params = file, keypath, key, params
        self.problem = i18n.text(key, "en", **params)
        super().__init__(self._where() + i18n.pair(key, **params))

    def _where(self) -> str:
        return f"{self.file}: {self.keypath}: " if self.keypath else f"{self.file}: "

    def text(self, lang: str = "en") -> str:
        """The message in ``lang`` ("en" or "ko")."""
        return self._where() + i18n.text(self.key, lang, **self.params)


# -- the `safety` section ---------------------------------------------------------------------------
# The plant file's ``safety`` section: limits that keep the data path honest under faults.
#
# ::
#
#     safety:
#       timestamp_future_s: 600       # readings stamped later than arrival + this are marked bad_timestamp
#                                     # (0: off; e.g. against `axline sim --speed 20`, whose clock runs ahead)
#       timestamp_past_s: 86400       # optional: also mark readings older than arrival - this
#       disk_warn_percent: [80, 90]   # system events and health warnings per data folder
#       disk_check_s: 5               # how often free space is measured
#       retention_on_disk_full: true  # at the last threshold, apply the historian's retention (data time) first
#       camera_keep_pass_h: 24        # inspected images of passed parts are deleted after this (0: keep)
#       camera_keep_reject_h: 720     # images of rejected parts are kept this long (0: keep)
SAFETY_DEFAULTS: dict[str, Any] = {
    "timestamp_future_s": 600.0,
    "timestamp_past_s": None,
    "disk_warn_percent": [80.0, 90.0],
    "disk_check_s": 5.0,
    "retention_on_disk_full": True,
    "camera_keep_pass_h": 24.0,
    "camera_keep_reject_h": 720.0,
}



# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
@dataclass
class Source:
    """Where a tag's value comes from: the connector's name and the address in that connector."""
    connector: str
    address: str


@dataclass
class Tag:
    """One signal of an asset: path, unit, range, sampling period, kind, display name, limits and source."""
    path: str
    signal: str
    unit: str
    lo: float
    hi: float
    period_s: float
    writable: bool = False
    kind: str = "analog"
    name: dict[str, str] = field(default_factory=dict)
    trend: bool = False
    source: Source | None = None
    spec: dict[str, float] | None = None  # quality specification: lsl / usl / target (any subset)

    def to_json(self) -> dict[str, Any]:
        """The tag as the dashboard reads it (``/api/plant``)."""
        out = {
            "path": self.path, "signal": self.signal, "unit": self.unit, "range": [self.lo, self.hi],
            "period_s": self.period_s, "writable": self.writable, "kind": self.kind,
            "name": self.name or {"en": self.signal, "ko": self.signal}, "trend": self.trend,
        }
        if self.spec:
            out["spec"] = dict(self.spec)
        return out


@dataclass
class Asset:
    """A machine or station of a line with its tags."""
    id: str
    cell: str
    kind: str
    path: str
    name: dict[str, str]
    tags: list[Tag]

    def tag(self, signal: str) -> Tag | None:
        """The tag of this asset called ``signal``, or ``None``."""
        return next((t for t in self.tags if t.signal == signal), None)


@dataclass
class Shift:
    """A shift of a line: name, start ("HH:MM", plant time) and length in hours."""
    name: str
    start: str  # "HH:MM", plant local time
    hours: float


@dataclass
class Line:
    """A production line: its assets, takt and ideal cycle time, shifts and KPI tags."""
    id: str
    path: str
    name: dict[str, str]
    takt_s: float
    ideal_cycle_s: float
    shifts: list[Shift]
    assets: list[Asset]
    kpi: dict[str, str]  # KPI_KEYS -> tag path
    product: str | None = None


@dataclass
class Camera:
    """A camera that inspects the parts of one asset: its source, trigger and reject tags."""
    id: str
    asset: str  # asset path
    source: str  # folder | opencv | sim
    path: str | None = None  # folder to watch
    device: int | str | None = None  # OpenCV device index, stream URL or video file
    pattern: str = "*.png"
    model: str | None = None  # inspector model file (.axi)
    reject_tag: str | None = None  # writable tag set to 1 to divert a rejected part
    pass_tag: str | None = None  # writable tag set to 1 to release a good part (vision handshake)
    trigger_tag: str | None = None  # capture when this tag goes from 0 to 1 (part present)
    interval_s: float | None = None  # or capture every so many seconds
    # inspection settings: roi [x, y, w, h], ignore [[x, y, w, h], ...], smallest_defect_px or
    # smallest_defect_mm with mm_per_px, expected_interval_s (the camera-stopped check)
    inspection: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConnectorConfig:
    """A connector of the plant file: name, type and its validated options."""
    name: str
    type: str
    options: dict[str, Any]


@dataclass
class MonitorConfig:
    """An anomaly monitor: the asset, the detector and its tags and parameters."""
    asset: str  # asset path
    detector: str
    tags: list[str]
    params: dict[str, Any]


@dataclass
class Plant:
    """A validated plant file: the ISA-95 hierarchy, connectors, cameras, monitors and settings."""
    site: str
    area: str
    name: dict[str, str]
    timezone: str
    historian: str | dict[str, Any]
    connectors: list[ConnectorConfig]
    lines: list[Line]
    cameras: list[Camera]
    monitors: list[MonitorConfig]
    base_dir: str
    file: str
    sim: dict[str, Any] | None = None
    safety: dict[str, Any] = field(default_factory=lambda: dict(SAFETY_DEFAULTS))
    language: str = "en"  # language of reports the plant keeps (shift handover): "ko" or "en"

    # -- look-ups -------------------------------------------------------------------------------
    def all_tags(self) -> list[Tag]:
        """Every tag of every asset of every line."""
        return [t for ln in self.lines for a in ln.assets for t in a.tags]

    def tag(self, path: str) -> Tag | None:
        """The tag with path ``path``, or ``None``."""
        return self._tag_index().get(path)

    def _tag_index(self) -> dict[str, Tag]:
        idx = getattr(self, "_tag_idx", None)
        if idx is None:
            idx = {t.path: t for t in self.all_tags()}
            self._tag_idx = idx
        return idx

    def assets(self) -> list[Asset]:
        """Every asset of every line."""
        return [a for ln in self.lines for a in ln.assets]

    def asset_of(self, tag_path: str) -> Asset | None:
        """The asset that holds the tag ``tag_path``, or ``None``."""
        prefix = tag_path.rsplit("/", 1)[0]
        return next((a for a in self.assets() if a.path == prefix), None)

    def line_of(self, path: str) -> Line | None:
        """The line that ``path`` (a line, asset or tag path) belongs to, or ``None``."""
        return next((ln for ln in self.lines if path == ln.path or path.startswith(ln.path + "/")), None)

    def connector_tags(self, connector: str) -> list[Tag]:
        """The tags read through the connector named ``connector``."""
        return [t for t in self.all_tags() if t.source and t.source.connector == connector]

    def to_json(self) -> dict[str, Any]:
        """The plant as the dashboard reads it (``/api/plant``)."""
        return {
            "site": self.site,
            "area": self.area,
            "name": self.name,
            "timezone": self.timezone,
            "language": self.language,
            "lines": [
                {
                    "id": ln.id, "path": ln.path, "name": ln.name, "takt_s": ln.takt_s,
                    "ideal_cycle_s": ln.ideal_cycle_s, "kpi": ln.kpi,
                    "shifts": [{"name": s.name, "start": s.start, "hours": s.hours} for s in ln.shifts],
                    "assets": [
                        {"path": a.path, "id": a.id, "cell": a.cell, "kind": a.kind, "name": a.name,
                         "tags": [t.to_json() for t in a.tags]}
                        for a in ln.assets
                    ],
                }
                for ln in self.lines
            ],
            "cameras": [{"id": c.id, "asset": c.asset, "source": c.source} for c in self.cameras],
        }

