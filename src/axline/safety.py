"""The plant file's ``safety`` section: limits that keep the data path honest under faults.

::

    safety:
      timestamp_future_s: 600       # readings stamped later than arrival + this are marked bad_timestamp (0: off)
      timestamp_past_s: 86400       # optional: also mark readings older than arrival - this
      disk_warn_percent: [80, 90]   # system events and health warnings per data folder
      disk_check_s: 5               # how often free space is measured
      retention_on_disk_full: true  # at the last threshold, apply the historian's retention (data time) first
      camera_keep_pass_h: 24        # inspected images of passed parts are deleted after this (0: keep)
      camera_keep_reject_h: 720     # images of rejected parts are kept this long (0: keep)
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "timestamp_future_s": 600.0,
    "timestamp_past_s": None,
    "disk_warn_percent": [80.0, 90.0],
    "disk_check_s": 5.0,
    "retention_on_disk_full": True,
    "camera_keep_pass_h": 24.0,
    "camera_keep_reject_h": 720.0,
}


def parse_safety(v: Any, raw: Any) -> dict[str, Any]:
    """Validate the ``safety`` mapping with the plant file's validator ``v``; fill in defaults."""
    out = dict(DEFAULTS)
    if raw is None:
        return out
    m = v.mapping(raw, "safety", tuple(DEFAULTS))
    for key in ("timestamp_future_s", "camera_keep_pass_h", "camera_keep_reject_h"):
        if key in m:
            out[key] = float(v.number(m[key], f"safety.{key}", 0))
    if m.get("timestamp_past_s") is not None:
        out["timestamp_past_s"] = float(v.number(m["timestamp_past_s"], "safety.timestamp_past_s", 0, strict_lo=True))
    if "disk_check_s" in m:
        out["disk_check_s"] = float(v.number(m["disk_check_s"], "safety.disk_check_s", 0.1))
    if "retention_on_disk_full" in m:
        if not isinstance(m["retention_on_disk_full"], bool):
            raise v.fail("safety.retention_on_disk_full", "expected true or false")
        out["retention_on_disk_full"] = m["retention_on_disk_full"]
    if "disk_warn_percent" in m:
        w = m["disk_warn_percent"]
        if not isinstance(w, list) or not w or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                                       and 0 < x < 100 for x in w) or sorted(w) != w:
            raise v.fail("safety.disk_warn_percent", "expected a rising list of percentages within (0, 100), "
                         "e.g. [80, 90]")
        out["disk_warn_percent"] = [float(x) for x in w]
    return out
