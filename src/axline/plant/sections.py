"""The plant file's sections beside the hierarchy: historian, cameras, monitors, simulation and safety.

Each ``parse_*`` takes the file's :class:`~axline.plant.checks.Validator` and the raw section; cameras
and monitors also take the asset paths and tags that the hierarchy declared, which they refer to.
"""

from __future__ import annotations

from typing import Any

from axline.plant.checks import Validator, resolve_asset, resolve_tag
from axline.plant.model import CAMERA_SOURCES, SAFETY_DEFAULTS, Camera, MonitorConfig, Tag

EMBEDDED_HISTORIAN = {"backend": "embedded", "path": "data/historian"}


def parse_historian(v: Validator, historian: Any) -> str | dict[str, Any]:
    """Validate the ``historian`` section: a backend's name or its mapping."""
    if isinstance(historian, str):
        if not historian.strip():
            raise v.fail("historian", "plant.historian_empty")
        if historian == "embedded":
            historian = dict(EMBEDDED_HISTORIAN)
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
    return historian


def parse_cameras(v: Validator, raw: Any, asset_paths: list[str], all_tags: dict[str, Tag],
                  prefix: str) -> list[Camera]:
    """Validate the ``cameras`` section against the declared assets and tags (``prefix``: site/area)."""
    cameras = []
    for i, raw_camera in enumerate(v.seq(raw, "cameras")):
        kp = f"cameras[{i}]"
        c = v.mapping(raw_camera, kp, ("id", "asset", "source", "path", "device", "pattern", "model", "reject_tag",
                                       "pass_tag", "trigger_tag", "interval_s", "inspection"),
                      required=("id", "asset", "source"))
        asset = resolve_asset(v, c["asset"], f"{kp}.asset", asset_paths, prefix)
        src = v.choice(c["source"], f"{kp}.source", CAMERA_SOURCES, "plant.what.camera_source")
        if src == "folder" and "path" not in c:
            raise v.fail(kp, "plant.camera_folder")
        if src == "opencv" and "device" not in c:
            raise v.fail(kp, "plant.camera_device")
        if src == "opencv" and "trigger_tag" not in c and "interval_s" not in c:
            raise v.fail(kp, "plant.camera_trigger")
        trigger = resolve_tag(v, c["trigger_tag"], f"{kp}.trigger_tag", all_tags, asset) if "trigger_tag" in c else None
        signal_tags = {}
        for key in ("reject_tag", "pass_tag"):
            if key in c:
                path = resolve_tag(v, c[key], f"{kp}.{key}", all_tags, asset)
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
            inspection=parse_inspection(v, c.get("inspection"), f"{kp}.inspection"),
        ))
    return cameras


def _rect(v: Validator, value: Any, path: str) -> list[int]:
    items = v.seq(value, path)
    if len(items) != 4:
        raise v.fail(path, "plant.inspection_rect")
    rect = [int(v.number(x, f"{path}[{j}]", 0)) for j, x in enumerate(items)]
    if rect[2] <= 0 or rect[3] <= 0:
        raise v.fail(path, "plant.inspection_rect")
    return rect


def parse_inspection(v: Validator, raw: Any, kp: str) -> dict[str, Any]:
    """A camera's ``inspection`` mapping: region of interest, ignored rectangles, defect scale, interval."""
    if raw is None:
        return {}
    c = v.mapping(raw, kp, ("roi", "ignore", "smallest_defect_px", "smallest_defect_mm", "mm_per_px",
                            "expected_interval_s"))
    out: dict[str, Any] = {}
    if "roi" in c:
        out["roi"] = _rect(v, c["roi"], f"{kp}.roi")
    out["ignore"] = [_rect(v, r, f"{kp}.ignore[{j}]") for j, r in enumerate(v.seq(c.get("ignore"), f"{kp}.ignore"))]
    for key in ("smallest_defect_px", "smallest_defect_mm", "mm_per_px", "expected_interval_s"):
        if key in c:
            out[key] = v.number(c[key], f"{kp}.{key}", 0, strict_lo=True)
    if "smallest_defect_mm" in out and "mm_per_px" not in out:
        raise v.fail(kp, "plant.inspection_mm")
    return out


def parse_monitors(v: Validator, raw: Any, asset_paths: list[str], all_tags: dict[str, Tag],
                   prefix: str) -> list[MonitorConfig]:
    """Validate the ``monitors`` section against the declared assets and tags (``prefix``: site/area)."""
    monitors = []
    for i, raw_monitor in enumerate(v.seq(raw, "monitors")):
        kp = f"monitors[{i}]"
        m = v.mapping(raw_monitor, kp, ("asset", "detector", "tags", "params"), required=("asset",))
        asset = resolve_asset(v, m["asset"], f"{kp}.asset", asset_paths, prefix)
        tags = [resolve_tag(v, t, f"{kp}.tags[{j}]", all_tags, asset) for j, t in enumerate(v.seq(m.get("tags"), f"{kp}.tags"))]
        params = m.get("params") or {}
        if not isinstance(params, dict):
            raise v.fail(f"{kp}.params", "plant.detector_params")
        monitors.append(MonitorConfig(asset=asset, detector=v.string(m.get("detector", "robust"), f"{kp}.detector"),
                                      tags=tags, params=params))
    return monitors


def parse_sim(v: Validator, sim: Any) -> dict[str, Any] | None:
    """Validate the ``sim`` section (the virtual factory's settings), or ``None`` without one."""
    if sim is None:
        return None
    return v.mapping(sim, "sim", ("seed", "speed", "faults", "warmup_s", "camera_dir", "endpoint", "start"))


def parse_safety(v: Validator, raw: Any) -> dict[str, Any]:
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
