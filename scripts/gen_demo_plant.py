"""Regenerate src/axline/data/demo_plant.yaml from the virtual factory's tag list.

The bundled plant file is what `axline init` writes and what `axline demo` loads, so it must list
exactly the tags the simulator serves (tests/test_plant.py checks that). Run after changing the
simulator's tags:  .venv/bin/python scripts/gen_demo_plant.py
"""

from __future__ import annotations

import json
from pathlib import Path

from axline.sim.line import VirtualLine

TREND = {"ram_force", "hydraulic_pressure", "spindle_current", "spindle_temp", "vibration_rms", "coolant_flow",
         "filter_dp", "part_dimension", "zone1_temp", "zone2_temp", "fuel_flow", "o2", "power"}
# quality specification of measured characteristics (the bore is gauged 25.000 +- 0.020 mm)
SPEC = {"part_dimension": "{lsl: 24.98, usl: 25.02, target: 25}"}
# wear that only grows until the tool is changed: a counter, not a signal to judge against normal
WEAR_COUNTERS = {"tool_wear"}
ASSET_META = {
    "press1": ("press", {"en": "Hydraulic press", "ko": "유압 프레스"}),
    "cnc1": ("cnc", {"en": "CNC machining", "ko": "CNC 가공"}),
    "furnace1": ("furnace", {"en": "Heat-treatment furnace", "ko": "열처리로"}),
    "camera1": ("vision", {"en": "Vision station", "ko": "비전 검사"}),
    "packer1": ("packing", {"en": "Packing", "ko": "포장"}),
    "totals": ("line", {"en": "Line totals", "ko": "라인 합계"}),
}

HEADER = """\
# axline plant file: the demo's virtual factory (a five-station auto-parts line).
# `axline init` writes this file as an example; edit it to describe your own plant.
# Check it with `axline check plant.yaml`; every mistake is reported with its key path.
#
# Tag paths follow the ISA-95 unified namespace: site/area/line/cell/asset/signal.
# Units come from a fixed list (degC, bar, kW, mm/s, L/min, Nm3/h, count, enum, ...): a typo is an error.

plant:
  site: changwon            # lower-case ids: they become part of every tag path
  area: plant1
  name: {en: Changwon Plant 1, ko: 창원 1공장}
  timezone: Asia/Seoul      # shifts and the dashboard clock use plant-local time
  language: ko              # language of the reports the plant keeps (shift handover): ko or en

# Where readings and events are kept: the embedded file store (no server needed).
# For a central server use a PostgreSQL URL instead, e.g. postgresql://axline@central/axline
historian: {backend: embedded, path: data/historian, fsync: interval}

# How to reach the machines. One entry per PLC / gateway / server.
connectors:
  - name: sim
    type: opcua
    endpoint: opc.tcp://127.0.0.1:4840/axline/sim
    namespace: urn:axline:sim      # addresses below are string NodeIds in this namespace
    mode: subscribe                # or 'poll'
    publishing_interval_ms: 100
    trigger: status_value_timestamp  # report every sample, also when the value repeats
    queue_size: 1000               # keep every sample between two publishes

lines:
  - id: line1
    name: {en: Line 1, ko: 1라인}
    takt_s: 12                     # customer demand: one part every 12 s
    ideal_cycle_s: 10              # the fastest the bottleneck station can go
    shifts:
      - {name: A, start: "06:00", hours: 8}
      - {name: B, start: "14:00", hours: 8}
      - {name: C, start: "22:00", hours: 8}
    # the tags KPIs are computed from (paths relative to the line)
    kpi:
      state: line/totals/state
      parts_total: line/totals/parts_total
      parts_good: line/totals/parts_good
      parts_rejected: line/totals/parts_rejected
      energy: line/totals/energy
    assets:
"""

FOOTER = """\
# Cameras: a folder the camera writes images into (the virtual factory's camera does the same).
cameras:
  - id: cam1
    asset: vision/camera1
    source: folder
    path: data/camera
    pattern: "*.png"
    reject_tag: vision/camera1/diverter   # written to 1 to divert a rejected part
    pass_tag: vision/camera1/result_ok    # written to 1 to release a good part (handshake with the PLC)
    # model: models/inspector.axi         # a model from `axline train inspector` turns inspection on

# The virtual factory's own settings (used by `axline demo`).
sim: {seed: 1, speed: 20, warmup_s: 300}
"""


def num(x: float) -> str:
    s = f"{x:g}"
    if "e" in s and "." not in s:  # YAML 1.1 (PyYAML) reads 1e+12 as text, 1.0e+12 as a number
        s = s.replace("e", ".0e")
    return s


def flow(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"


def main() -> None:
    line = VirtualLine(seed=0, faults=None, render_images=False)
    by_asset: dict[str, list] = {}
    for t in line.tags:
        parts = t.path.split("/")
        by_asset.setdefault("/".join(parts[3:5]), []).append(t)
    out = [HEADER]
    for key, tags in by_asset.items():
        cell, asset = key.split("/")
        kind, name = ASSET_META.get(asset, ("other", {"en": asset, "ko": asset}))
        out.append(f"      - id: {asset}\n        cell: {cell}\n        kind: {kind}\n"
                   f"        name: {flow(name)}\n        connector: sim\n        tags:\n")
        for t in tags:
            sig = t.path.rsplit("/", 1)[1]
            fields = {"signal": sig, "unit": json.dumps(t.unit) if t.unit in ("", "%") or "/" in t.unit else t.unit}
            kind = "counter" if sig in WEAR_COUNTERS else t.kind
            if kind != "analog":
                fields["kind"] = kind
            fields["range"] = f"[{num(t.lo)}, {num(t.hi)}]"
            fields["period_s"] = num(t.period_s)
            if t.writable:
                fields["writable"] = "true"
            if sig in TREND and kind == "analog":
                fields["trend"] = "true"
            if sig in SPEC:
                fields["spec"] = SPEC[sig]
            if t.name_en:
                fields["name"] = "{en: " + json.dumps(t.name_en) + ", ko: " + json.dumps(t.name_ko or t.name_en,
                                                                                          ensure_ascii=False) + "}"
            out.append(f"          - {flow(fields)}\n")
    out.append("\n" + FOOTER)
    target = Path(__file__).resolve().parents[1] / "src/axline/data/demo_plant.yaml"
    target.write_text("".join(out), encoding="utf-8")
    print(f"wrote {target} ({len(line.tags)} tags)")


if __name__ == "__main__":
    main()
