"""Reading a plant file: the YAML document, its connectors and the ISA-95 hierarchy (lines, assets,
tags); the other sections are validated in :mod:`axline.plant.sections`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from axline import i18n
from axline.plant.checks import TIME_RE, Validator, resolve_tag, suggest
from axline.plant.model import (
    ASSET_KINDS,
    KPI_KEYS,
    LANGUAGES,
    TAG_KINDS,
    UNITS,
    Asset,
    ConnectorConfig,
    Line,
    Plant,
    PlantConfigError,
    Shift,
    Source,
    Tag,
)
from axline.plant.sections import (
    EMBEDDED_HISTORIAN,
    parse_cameras,
    parse_historian,
    parse_monitors,
    parse_safety,
    parse_sim,
)


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
    v = Validator(file)
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
    historian = parse_historian(v, top["historian"]) if "historian" in top else dict(EMBEDDED_HISTORIAN)
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
    prefix = f"{site}/{area}"
    cameras = parse_cameras(v, top.get("cameras"), asset_paths, all_tags, prefix)
    monitors = parse_monitors(v, top.get("monitors"), asset_paths, all_tags, prefix)
    sim = parse_sim(v, top.get("sim"))

    plant = Plant(site=site, area=area, name=v.names(pl.get("name"), "plant.name", f"{site} {area}"),
                  timezone=tz, historian=historian, connectors=connectors, lines=lines, cameras=cameras,
                  monitors=monitors, base_dir=base_dir, file=file, sim=sim,
                  safety=parse_safety(v, top.get("safety")),
                  language=v.choice(pl.get("language", "en"), "plant.language", LANGUAGES, "plant.what.language"))
    return plant


def _parse_connectors(v: Validator, raw: Any) -> list[ConnectorConfig]:
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
            raise v.fail(f"{kp}.{e.key}" if e.key else kp, "plant.connector_option", problem=e.phrase) from None
        out.append(ConnectorConfig(name=name, type=ctype, options=opts))
    return out


def _parse_line(v: Validator, raw: Any, kp: str, prefix: str, connectors: list[str]) -> Line:
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
        if not TIME_RE.match(start):
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
        kpi[k] = resolve_tag(v, t, f"{kp}.kpi.{k}", tags, lpath)
    return Line(id=lid, path=lpath, name=v.names(m.get("name"), f"{kp}.name", lid), takt_s=takt,
                ideal_cycle_s=ideal, shifts=shifts, assets=assets, kpi=kpi,
                product=v.string(m["product"], f"{kp}.product") if "product" in m else None)


def _parse_asset(v: Validator, raw: Any, kp: str, lpath: str, connectors: list[str]) -> Asset:
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


def _parse_tag(v: Validator, raw: Any, kp: str, apath: str, connectors: list[str], default_conn: str | None) -> Tag:
    m = v.mapping(raw, kp, ("signal", "unit", "range", "period_s", "writable", "kind", "name", "trend", "source",
                            "spec"), required=("signal",))
    sig = v.ident(m["signal"], f"{kp}.signal")
    unit = m.get("unit", "")
    if not isinstance(unit, str) or unit not in UNITS:
        raise v.fail(f"{kp}.unit", "plant.unknown_unit", value=repr(unit), suggest=suggest(str(unit), list(UNITS)))
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


def _parse_spec(v: Validator, raw: Any, kp: str) -> dict[str, float]:
    """Quality specification limits of a measured tag: ``{lsl, usl, target}``, at least one limit."""
    m = v.mapping(raw, kp, ("lsl", "usl", "target"))
    spec = {k: v.number(m[k], f"{kp}.{k}") for k in ("lsl", "usl", "target") if k in m}
    if "lsl" not in spec and "usl" not in spec:
        raise v.fail(kp, "plant.spec_missing")
    if "lsl" in spec and "usl" in spec and not spec["lsl"] < spec["usl"]:
        raise v.fail(kp, "plant.spec_order", lsl=f"{spec['lsl']:g}", usl=f"{spec['usl']:g}")
    return spec


def example_plant_text() -> str:
    """The commented example that `axline init` writes (the demo's plant file)."""
    from importlib.resources import files

    return files("axline.data").joinpath("demo_plant.yaml").read_text(encoding="utf-8")
