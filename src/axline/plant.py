"""The plant model: ISA-95 hierarchy, tags with units and limits, sources, cameras, products.

A plant file is YAML. Loading validates every key and value; the first mistake raises
``PlantConfigError`` naming the file, the key path and what is allowed, for example::

    plant.yaml: lines[0].assets[2].tags[1].unit: 'degc' is not a known unit (did you mean 'degC'?)
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_EXP_RE = re.compile(r"^[-+]?\d+(\.\d*)?[eE][-+]?\d+$")
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


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


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------
def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> i18n.Phrase:
    """" (did you mean 'x'?)" for the closest of ``choices``, or an empty phrase."""
    lower = {c.lower(): c for c in choices}
    if word.lower() in lower:
        return i18n.Phrase("plant.did_you_mean", name=repr(lower[word.lower()]))
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return i18n.Phrase("plant.did_you_mean", name=repr(close[0])) if close else i18n.Phrase(None)


class _V:
    """Walks one plant file, raising PlantConfigError with the key path of the first mistake."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, key: str, /, **params: Any) -> PlantConfigError:
        """The error at key path ``path``: catalog text ``key`` with ``params``."""
        return PlantConfigError(self.file, path, key, **params)

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, "plant.not_mapping", type=type(value).__name__)
        for k in value:
            if not isinstance(k, str) or k not in allowed:
                raise self.fail(f"{path}.{k}" if path else str(k), "plant.unknown_key",
                                suggest=_suggest(str(k), allowed), allowed=", ".join(allowed))
        for k in required:
            if k not in value:
                raise self.fail(path or "(top level)", "plant.missing_key", key=k)
        return value

    def seq(self, value: Any, path: str, min_len: int = 0) -> list:
        if value is None:
            value = []
        if not isinstance(value, list):
            raise self.fail(path, "plant.not_list", type=type(value).__name__)
        if len(value) < min_len:
            raise self.fail(path, "plant.too_few", n=min_len)
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, "plant.not_text", value=repr(value))
        return value

    def ident(self, value: Any, path: str) -> str:
        s = self.string(value, path)
        if not _ID_RE.match(s):
            raise self.fail(path, "plant.bad_id", value=repr(s))
        return s

    def number(self, value: Any, path: str, lo: float | None = None, hi: float | None = None,
               strict_lo: bool = False) -> float:
        if isinstance(value, str) and _EXP_RE.match(value.strip()):
            value = float(value)  # PyYAML reads 1e6 (no dot) as text; people write it as a number
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, "plant.not_number", value=repr(value))
        v = float(value)
        if lo is not None and (v < lo or (strict_lo and v <= lo)):
            raise self.fail(path, "plant.out_of_range", value=repr(value), op=">" if strict_lo else ">=", bound=f"{lo:g}")
        if hi is not None and v > hi:
            raise self.fail(path, "plant.out_of_range", value=repr(value), op="<=", bound=f"{hi:g}")
        return v

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, "plant.not_bool", value=repr(value))
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...] | list[str], what: str) -> str:
        """``value`` if it is one of ``choices``; ``what`` is the catalog key naming the kind of value."""
        if not isinstance(value, str) or value not in choices:
            raise self.fail(path, "plant.unknown_choice", value=repr(value), what=i18n.Phrase(what),
                            suggest=_suggest(str(value), choices), allowed=", ".join(choices))
        return value

    def names(self, value: Any, path: str, default: str) -> dict[str, str]:
        """A display name: a text, or {en: ..., ko: ...}."""
        if value is None:
            return {"en": default, "ko": default}
        if isinstance(value, str):
            return {"en": value, "ko": value}
        m = self.mapping(value, path, ("en", "ko"))
        en = self.string(m.get("en", default), f"{path}.en")
        return {"en": en, "ko": self.string(m.get("ko", en), f"{path}.ko")}


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def load_plant(path: str | os.PathLike) -> Plant:
    """Read and validate a plant file."""
    p = Path(path)
    fname = p.name
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlantConfigError(str(p), "", "plant.no_file") from None
    except UnicodeDecodeError as e:
        raise PlantConfigError(str(p), "", "plant.not_utf8", error=e) from None
    return parse_plant(text, fname, base_dir=str(p.resolve().parent))


def parse_plant(text: str, file: str = "plant.yaml", base_dir: str = ".") -> Plant:
    """Validate plant-file text; ``file`` names it in errors, ``base_dir`` anchors relative paths."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = i18n.Phrase("plant.yaml_where", line=mark.line + 1, column=mark.column + 1) if mark else i18n.Phrase(None)
        raise PlantConfigError(file, "", "plant.bad_yaml", where=where, problem=getattr(e, "problem", e)) from None
    v = _V(file)
    top = v.mapping(doc, "", ("plant", "historian", "connectors", "lines", "cameras", "monitors", "sim", "safety"),
                    required=("plant", "lines"))
    pl = v.mapping(top["plant"], "plant", ("site", "area", "name", "timezone", "language"),
                   required=("site", "area"))
    site = v.ident(pl["site"], "plant.site")
    area = v.ident(pl["area"], "plant.area")
    tz = v.string(pl.get("timezone", "UTC"), "plant.timezone")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(tz)
    except Exception:
        raise v.fail("plant.timezone", "plant.bad_timezone", value=repr(tz)) from None
    historian = top.get("historian", {"backend": "embedded", "path": "data/historian"})
    if isinstance(historian, str):
        if not historian.strip():
            raise v.fail("historian", "plant.historian_empty")
        if historian == "embedded":
            historian = {"backend": "embedded", "path": "data/historian"}
    else:
        h = v.mapping(historian, "historian", ("backend", "path", "dsn", "fsync", "retention_days", "schema",
                                               "partition"))
        if h.get("backend") == "postgresql" and "dsn" not in h:
            raise v.fail("historian", "plant.historian_dsn")
        if "partition" in h:
            v.choice(h["partition"], "historian.partition", ("hour", "day", "week", "month"), "plant.what.partition")
        if "retention_days" in h:
            v.number(h["retention_days"], "historian.retention_days", 0, strict_lo=True)
        if "backend" in h:
            v.choice(h["backend"], "historian.backend", ("embedded", "postgresql"), "plant.what.backend")
        if "fsync" in h:
            v.choice(h["fsync"], "historian.fsync", ("batch", "interval", "none"), "plant.what.fsync")

    connectors = _parse_connectors(v, top.get("connectors"))
    cnames = [c.name for c in connectors]
    lines = []
    seen_lines: set[str] = set()
    for i, raw in enumerate(v.seq(top["lines"], "lines", 1)):
        ln = _parse_line(v, raw, f"lines[{i}]", f"{site}/{area}", cnames)
        if ln.id in seen_lines:
            raise v.fail(f"lines[{i}].id", "plant.duplicate_line", id=repr(ln.id))
        seen_lines.add(ln.id)
        lines.append(ln)
    asset_paths = [a.path for ln in lines for a in ln.assets]
    all_tags = {t.path: t for ln in lines for a in ln.assets for t in a.tags}

    cameras = []
    for i, raw in enumerate(v.seq(top.get("cameras"), "cameras")):
        kp = f"cameras[{i}]"
        c = v.mapping(raw, kp, ("id", "asset", "source", "path", "device", "pattern", "model", "reject_tag",
                                "pass_tag", "trigger_tag", "interval_s"), required=("id", "asset", "source"))
        asset = _resolve_asset(v, c["asset"], f"{kp}.asset", asset_paths, f"{site}/{area}")
        src = v.choice(c["source"], f"{kp}.source", CAMERA_SOURCES, "plant.what.camera_source")
        if src == "folder" and "path" not in c:
            raise v.fail(kp, "plant.camera_folder")
        if src == "opencv" and "device" not in c:
            raise v.fail(kp, "plant.camera_device")
        if src == "opencv" and "trigger_tag" not in c and "interval_s" not in c:
            raise v.fail(kp, "plant.camera_trigger")
        trigger = _resolve_tag(v, c["trigger_tag"], f"{kp}.trigger_tag", all_tags, asset) if "trigger_tag" in c else None
        signal_tags = {}
        for key in ("reject_tag", "pass_tag"):
            if key in c:
                path = _resolve_tag(v, c[key], f"{kp}.{key}", all_tags, asset)
                if not all_tags[path].writable:
                    raise v.fail(f"{kp}.{key}", "plant.not_writable", tag=repr(path))
                signal_tags[key] = path
        cameras.append(Camera(
            id=v.ident(c["id"], f"{kp}.id"), asset=asset, source=src,
            path=v.string(c["path"], f"{kp}.path") if "path" in c else None,
            device=(c["device"] if isinstance(c.get("device"), str) else int(v.number(c["device"], f"{kp}.device", 0)))
            if "device" in c else None,
            pattern=v.string(c.get("pattern", "*.png"), f"{kp}.pattern"),
            model=v.string(c["model"], f"{kp}.model") if "model" in c else None,
            reject_tag=signal_tags.get("reject_tag"), pass_tag=signal_tags.get("pass_tag"), trigger_tag=trigger,
            interval_s=v.number(c["interval_s"], f"{kp}.interval_s", 0, strict_lo=True) if "interval_s" in c else None,
        ))

    monitors = []
    for i, raw in enumerate(v.seq(top.get("monitors"), "monitors")):
        kp = f"monitors[{i}]"
        m = v.mapping(raw, kp, ("asset", "detector", "tags", "params"), required=("asset",))
        asset = _resolve_asset(v, m["asset"], f"{kp}.asset", asset_paths, f"{site}/{area}")
        tags = [_resolve_tag(v, t, f"{kp}.tags[{j}]", all_tags, asset) for j, t in enumerate(v.seq(m.get("tags"), f"{kp}.tags"))]
        params = m.get("params") or {}
        if not isinstance(params, dict):
            raise v.fail(f"{kp}.params", "plant.detector_params")
        monitors.append(MonitorConfig(asset=asset, detector=v.string(m.get("detector", "robust"), f"{kp}.detector"),
                                      tags=tags, params=params))

    sim = top.get("sim")
    if sim is not None:
        sim = v.mapping(sim, "sim", ("seed", "speed", "faults", "warmup_s", "camera_dir", "endpoint", "start"))

    plant = Plant(site=site, area=area, name=v.names(pl.get("name"), "plant.name", f"{site} {area}"),
                  timezone=tz, historian=historian, connectors=connectors, lines=lines, cameras=cameras,
                  monitors=monitors, base_dir=base_dir, file=file, sim=sim,
                  safety=parse_safety(v, top.get("safety")),
                  language=v.choice(pl.get("language", "en"), "plant.language", LANGUAGES, "plant.what.language"))
    return plant


def _parse_connectors(v: _V, raw: Any) -> list[ConnectorConfig]:
    from axline.connect import registry

    out = []
    names: set[str] = set()
    for i, c in enumerate(v.seq(raw, "connectors")):
        kp = f"connectors[{i}]"
        if not isinstance(c, dict):
            raise v.fail(kp, "plant.connector_mapping")
        name = v.ident(c.get("name", ""), f"{kp}.name")
        if name in names:
            raise v.fail(f"{kp}.name", "plant.duplicate_connector", name=repr(name))
        names.add(name)
        ctype = v.choice(c.get("type"), f"{kp}.type", registry.names(), "plant.what.connector_type")
        schema = registry.schema(ctype)
        opts = {k: val for k, val in c.items() if k not in ("name", "type")}
        try:
            opts = schema.validate(opts)
        except registry.OptionError as e:
            raise v.fail(f"{kp}.{e.key}" if e.key else kp, "plant.connector_option", problem=e.problem) from None
        out.append(ConnectorConfig(name=name, type=ctype, options=opts))
    return out


def _parse_line(v: _V, raw: Any, kp: str, prefix: str, connectors: list[str]) -> Line:
    m = v.mapping(raw, kp, ("id", "name", "takt_s", "ideal_cycle_s", "shifts", "assets", "kpi", "product"),
                  required=("id", "assets"))
    lid = v.ident(m["id"], f"{kp}.id")
    lpath = f"{prefix}/{lid}"
    takt = v.number(m.get("takt_s", 60.0), f"{kp}.takt_s", 0, strict_lo=True)
    ideal = v.number(m.get("ideal_cycle_s", takt), f"{kp}.ideal_cycle_s", 0, strict_lo=True)
    shifts = []
    for j, s in enumerate(v.seq(m.get("shifts") or [{"name": "A", "start": "00:00", "hours": 24}], f"{kp}.shifts")):
        sp = f"{kp}.shifts[{j}]"
        sm = v.mapping(s, sp, ("name", "start", "hours"), required=("name", "start", "hours"))
        start = str(sm["start"])
        if not _TIME_RE.match(start):
            raise v.fail(f"{sp}.start", "plant.bad_time", value=repr(sm["start"]))
        shifts.append(Shift(name=v.string(str(sm["name"]), f"{sp}.name"), start=start,
                            hours=v.number(sm["hours"], f"{sp}.hours", 0, 24, strict_lo=True)))
    assets = []
    seen: set[str] = set()
    for j, a in enumerate(v.seq(m["assets"], f"{kp}.assets", 1)):
        asset = _parse_asset(v, a, f"{kp}.assets[{j}]", lpath, connectors)
        if asset.path in seen:
            raise v.fail(f"{kp}.assets[{j}].id", "plant.duplicate_asset", asset=f"{asset.cell}/{asset.id}", line=repr(lid))
        seen.add(asset.path)
        assets.append(asset)
    tags = {t.path: t for a in assets for t in a.tags}
    kpi = {}
    km = v.mapping(m.get("kpi") or {}, f"{kp}.kpi", KPI_KEYS)
    for k, t in km.items():
        kpi[k] = _resolve_tag(v, t, f"{kp}.kpi.{k}", tags, lpath)
    return Line(id=lid, path=lpath, name=v.names(m.get("name"), f"{kp}.name", lid), takt_s=takt,
                ideal_cycle_s=ideal, shifts=shifts, assets=assets, kpi=kpi,
                product=v.string(m["product"], f"{kp}.product") if "product" in m else None)


def _parse_asset(v: _V, raw: Any, kp: str, lpath: str, connectors: list[str]) -> Asset:
    m = v.mapping(raw, kp, ("id", "cell", "kind", "name", "tags", "connector"), required=("id", "tags"))
    aid = v.ident(m["id"], f"{kp}.id")
    cell = v.ident(m.get("cell", aid), f"{kp}.cell")
    kind = v.choice(m.get("kind", "other"), f"{kp}.kind", ASSET_KINDS, "plant.what.asset_kind")
    apath = f"{lpath}/{cell}/{aid}"
    default_conn = m.get("connector")
    if default_conn is not None:
        v.choice(default_conn, f"{kp}.connector", connectors or ["(none declared)"], "plant.what.connector_name")
    tags = []
    seen: set[str] = set()
    for k, t in enumerate(v.seq(m["tags"], f"{kp}.tags", 1)):
        tag = _parse_tag(v, t, f"{kp}.tags[{k}]", apath, connectors, default_conn)
        if tag.signal in seen:
            raise v.fail(f"{kp}.tags[{k}].signal", "plant.duplicate_signal", signal=repr(tag.signal), asset=repr(aid))
        seen.add(tag.signal)
        tags.append(tag)
    return Asset(id=aid, cell=cell, kind=kind, path=apath, name=v.names(m.get("name"), f"{kp}.name", aid), tags=tags)


def _parse_tag(v: _V, raw: Any, kp: str, apath: str, connectors: list[str], default_conn: str | None) -> Tag:
    m = v.mapping(raw, kp, ("signal", "unit", "range", "period_s", "writable", "kind", "name", "trend", "source",
                            "spec"), required=("signal",))
    sig = v.ident(m["signal"], f"{kp}.signal")
    unit = m.get("unit", "")
    if not isinstance(unit, str) or unit not in UNITS:
        raise v.fail(f"{kp}.unit", "plant.unknown_unit", value=repr(unit), suggest=_suggest(str(unit), list(UNITS)))
    lo, hi = float("-inf"), float("inf")
    if "range" in m:
        r = v.seq(m["range"], f"{kp}.range")
        if len(r) != 2:
            raise v.fail(f"{kp}.range", "plant.range_pair")
        lo, hi = v.number(r[0], f"{kp}.range[0]"), v.number(r[1], f"{kp}.range[1]")
        if not lo < hi:
            raise v.fail(f"{kp}.range", "plant.range_order", low=f"{lo:g}", high=f"{hi:g}")
    period = v.number(m.get("period_s", 1.0), f"{kp}.period_s", 0.001, 86400)
    source = None
    src = m.get("source")
    if src is not None or default_conn:
        if isinstance(src, str):
            src = {"address": src}
        sm = v.mapping(src or {}, f"{kp}.source", ("connector", "address"))
        conn = sm.get("connector", default_conn)
        if conn is None:
            raise v.fail(f"{kp}.source.connector", "plant.source_connector")
        v.choice(conn, f"{kp}.source.connector", connectors or ["(none declared)"], "plant.what.connector_name")
        address = v.string(sm.get("address", f"{apath}/{sig}"), f"{kp}.source.address")
        source = Source(connector=conn, address=address)
    return Tag(path=f"{apath}/{sig}", signal=sig, unit=unit, lo=lo, hi=hi, period_s=period,
               writable=v.boolean(m.get("writable", False), f"{kp}.writable"),
               kind=v.choice(m.get("kind", "analog"), f"{kp}.kind", TAG_KINDS, "plant.what.tag_kind"),
               name=v.names(m.get("name"), f"{kp}.name", sig), trend=v.boolean(m.get("trend", False), f"{kp}.trend"),
               source=source, spec=_parse_spec(v, m["spec"], f"{kp}.spec") if "spec" in m else None)


def _parse_spec(v: _V, raw: Any, kp: str) -> dict[str, float]:
    """Quality specification limits of a measured tag: ``{lsl, usl, target}``, at least one limit."""
    m = v.mapping(raw, kp, ("lsl", "usl", "target"))
    spec = {k: v.number(m[k], f"{kp}.{k}") for k in ("lsl", "usl", "target") if k in m}
    if "lsl" not in spec and "usl" not in spec:
        raise v.fail(kp, "plant.spec_missing")
    if "lsl" in spec and "usl" in spec and not spec["lsl"] < spec["usl"]:
        raise v.fail(kp, "plant.spec_order", lsl=f"{spec['lsl']:g}", usl=f"{spec['usl']:g}")
    return spec


def _resolve_asset(v: _V, value: Any, kp: str, asset_paths: list[str], prefix: str) -> str:
    s = v.string(value, kp)
    for cand in (s, f"{prefix}/{s}"):
        if cand in asset_paths:
            return cand
    matches = [a for a in asset_paths if a.endswith("/" + s)]
    if len(matches) == 1:
        return matches[0]
    raise v.fail(kp, "plant.unknown_asset", value=repr(s), suggest=_suggest(s, asset_paths))


def _resolve_tag(v: _V, value: Any, kp: str, tags: dict[str, Tag], scope: str) -> str:
    s = v.string(value, kp)
    for cand in (s, f"{scope}/{s}"):
        if cand in tags:
            return cand
    matches = [t for t in tags if t.endswith("/" + s)]
    if len(matches) == 1:
        return matches[0]
    raise v.fail(kp, "plant.unknown_tag", value=repr(s), suggest=_suggest(s, list(tags)))


def example_plant_text() -> str:
    """The commented example that `axline init` writes (the demo's plant file)."""
    from importlib.resources import files

    return files("axline.data").joinpath("demo_plant.yaml").read_text(encoding="utf-8")


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


def parse_safety(v: _V, raw: Any) -> dict[str, Any]:
    """Validate the ``safety`` mapping with the plant file's validator ``v``; fill in defaults."""
    out = dict(SAFETY_DEFAULTS)
    if raw is None:
        return out
    m = v.mapping(raw, "safety", tuple(SAFETY_DEFAULTS))
    for key in ("timestamp_future_s", "camera_keep_pass_h", "camera_keep_reject_h"):
        if key in m:
            out[key] = float(v.number(m[key], f"safety.{key}", 0))
    if m.get("timestamp_past_s") is not None:
        out["timestamp_past_s"] = float(v.number(m["timestamp_past_s"], "safety.timestamp_past_s", 0, strict_lo=True))
    if "disk_check_s" in m:
        out["disk_check_s"] = float(v.number(m["disk_check_s"], "safety.disk_check_s", 0.1))
    if "retention_on_disk_full" in m:
        if not isinstance(m["retention_on_disk_full"], bool):
            raise v.fail("safety.retention_on_disk_full", "plant.bool")
        out["retention_on_disk_full"] = m["retention_on_disk_full"]
    if "disk_warn_percent" in m:
        w = m["disk_warn_percent"]
        if not isinstance(w, list) or not w or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                                       and 0 < x < 100 for x in w) or sorted(w) != w:
            raise v.fail("safety.disk_warn_percent", "plant.disk_warn")
        out["disk_warn_percent"] = [float(x) for x in w]
    return out
