"""`axline discover`: list what a machine offers before anyone buys anything.

Browses (OPC UA) or listens to a machine, then writes a draft plant file and a data-readiness
inventory (which signals, their types and units, how often they change, gaps) as Markdown and
HTML.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from axline.plant import UNITS


@dataclass
class Signal:
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

    def rate_hz(self, window_s: float) -> float:
        return len(self.times) / window_s if window_s > 0 else 0.0

    def max_gap_s(self, window_s: float, t0: float) -> float:
        if not self.times:
            return window_s
        t = np.array([t0, *sorted(self.times), t0 + window_s])
        return float(np.diff(t).max())


_SAFE = re.compile(r"[^a-z0-9_]+")


def ident(text: str) -> str:
    s = _SAFE.sub("_", text.strip().lower()).strip("_")
    return s if s and s[0].isalnum() else f"x_{s}" if s else "x"


def guess_unit(raw: str) -> str:
    """Map a unit string a device reports to axline's unit list ('' when unknown)."""
    if not raw:
        return ""
    aliases = {"°c": "degC", "c": "degC", "celsius": "degC", "°f": "degF", "l/m": "L/min", "lpm": "L/min",
               "m³/h": "m3/h", "nm³/h": "Nm3/h", "kw·h": "kWh", "kw h": "kWh", "r/min": "rpm", "1/min": "rpm",
               "percent": "%", "pct": "%", "sec": "s", "µm": "um", "m/s²": "m/s2"}
    if raw in UNITS:
        return raw
    low = raw.lower()
    if low in aliases:
        return aliases[low]
    for u in UNITS:
        if u.lower() == low:
            return u
    return ""


# -- OPC UA ------------------------------------------------------------------------------------------
async def discover_opcua(url: str, listen_s: float = 10.0, max_nodes: int = 20000) -> tuple[list[Signal], dict]:
    from asyncua import Client, ua

    signals: list[Signal] = []
    async with Client(url, timeout=10) as client:
        objects = client.nodes.objects
        stack = [(objects, [])]
        seen = 0
        while stack and seen < max_nodes:
            node, trail = stack.pop()
            for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
                seen += 1
                if child.nodeid.NamespaceIndex == 0:
                    continue  # the server's own nodes
                nclass = await child.read_node_class()
                name = (await child.read_browse_name()).Name
                if nclass == ua.NodeClass.Object:
                    stack.append((child, [*trail, name]))
                elif nclass == ua.NodeClass.Variable:
                    if name in ("EngineeringUnits", "EURange") or "#" in str(child.nodeid.Identifier):
                        continue  # properties, read below with their variable
                    signals.append(await _describe_opcua(child, name, trail))
        t0 = time.monotonic()
        if listen_s > 0 and signals:
            by_id = {s.address: s for s in signals}

            class Handler:
                def datachange_notification(self, node, val, data):  # noqa: N802 - asyncua's name
                    s = by_id.get(node.nodeid.to_string())
                    if s is not None:
                        s.times.append(time.monotonic() - t0)

            sub = await client.create_subscription(100, Handler())
            nodes = [client.get_node(s.address) for s in signals]
            await sub.subscribe_data_change(nodes, queuesize=100, sampling_interval=0)
            t0 = time.monotonic()
            await asyncio.sleep(listen_s)
            await sub.delete()
        info = {"protocol": "opcua", "endpoint": url, "listened_s": listen_s,
                "namespaces": await client.get_namespace_array()}
    return signals, info


async def _describe_opcua(node, name: str, trail: list[str]) -> Signal:
    from asyncua import ua

    try:
        dv = await node.read_data_value()
        value = dv.Value.Value if dv.Value else None
        vtype = dv.Value.VariantType.name if dv.Value else "Null"
    except Exception:  # noqa: BLE001 - a node we may not read is still worth listing
        value, vtype = None, "unreadable"
    unit, lo, hi = "", None, None
    for prop in await node.get_properties():
        pname = (await prop.read_browse_name()).Name
        try:
            pval = await prop.read_value()
        except Exception:  # noqa: BLE001
            continue
        if pname == "EngineeringUnits":
            unit = pval if isinstance(pval, str) else getattr(pval, "DisplayName", None) and pval.DisplayName.Text or ""
        elif pname == "EURange":
            if isinstance(pval, list | tuple) and len(pval) == 2:
                lo, hi = float(pval[0]), float(pval[1])
            elif hasattr(pval, "Low"):
                lo, hi = float(pval.Low), float(pval.High)
    try:
        access = await node.read_attribute(ua.AttributeIds.UserAccessLevel)
        writable = bool(access.Value.Value & ua.AccessLevel.CurrentWrite.mask)
    except Exception:  # noqa: BLE001
        writable = False
    machine = "/".join(trail[-2:]) if len(trail) >= 2 else (trail[-1] if trail else "root")
    return Signal(machine=machine, name=name, address=node.nodeid.to_string(), dtype=vtype, unit=str(unit or ""),
                  lo=lo, hi=hi, writable=writable, value=value)


# -- outputs ------------------------------------------------------------------------------------------
def draft_plant(signals: list[Signal], info: dict, connector: str = "plc1") -> str:
    """A plant file to start from: one asset per machine, one tag per signal, the address filled in."""
    lines = [
        "# Draft plant file written by `axline discover`. Review it: pick the signals you need,",
        "# fix units marked 'check', set ranges and periods, then `axline check` it.",
        "plant: {site: site1, area: area1, timezone: Asia/Seoul}",
        "connectors:",
        f"  - {{name: {connector}, type: {info['protocol']}, endpoint: \"{info['endpoint']}\"}}",
        "lines:",
        "  - id: line1",
        "    assets:",
    ]
    machines: dict[str, list[Signal]] = {}
    for s in signals:
        machines.setdefault(s.machine, []).append(s)
    used: set[str] = set()
    for machine, sigs in machines.items():
        aid = ident(machine.split("/")[-1])
        cell = ident(machine.split("/")[0]) if "/" in machine else aid
        while f"{cell}/{aid}" in used:
            aid += "_2"
        used.add(f"{cell}/{aid}")
        lines += [f"      - id: {aid}", f"        cell: {cell}", f"        connector: {connector}", "        tags:"]
        names: set[str] = set()
        for s in sigs:
            sig = ident(s.name)
            while sig in names:
                sig += "_2"
            names.add(sig)
            unit = guess_unit(s.unit)
            parts = [f"signal: {sig}", f"unit: \"{unit}\""]
            if s.lo is not None and s.hi is not None and s.lo < s.hi:
                parts.append(f"range: [{s.lo:g}, {s.hi:g}]")
            if s.dtype == "Boolean":
                parts.append("kind: bool")
            if s.writable:
                parts.append("writable: true")
            parts.append(f"source: {{address: \"{s.address}\"}}")
            note = f"  # check unit: device says {s.unit!r}" if s.unit and not unit else ""
            lines.append(f"          - {{{', '.join(parts)}}}{note}")
    return "\n".join(lines) + "\n"


def inventory_rows(signals: list[Signal], info: dict) -> list[dict]:
    window = info.get("listened_s", 0)
    rows = []
    for s in signals:
        rows.append({"machine": s.machine, "signal": s.name, "address": s.address, "type": s.dtype,
                     "unit": s.unit or "-", "range": f"{s.lo:g} .. {s.hi:g}" if s.lo is not None else "-",
                     "writable": "yes" if s.writable else "no",
                     "updates_per_s": round(s.rate_hz(window), 2) if window else None,
                     "max_gap_s": round(s.max_gap_s(window, 0.0), 1) if window else None,
                     "value": s.value})
    return rows


def inventory_markdown(signals: list[Signal], info: dict) -> str:
    rows = inventory_rows(signals, info)
    machines = sorted({r["machine"] for r in rows})
    out = [f"# Data-readiness inventory — {info['endpoint']}", "",
           f"{len(rows)} signals on {len(machines)} machine(s); listened {info.get('listened_s', 0):g} s.",
           "A signal that did not update while listening has `max gap` equal to the window: it may be static "
           "(a setting) or not wired.", ""]
    for m in machines:
        mine = [r for r in rows if r["machine"] == m]
        live = sum(1 for r in mine if r["updates_per_s"])
        out += [f"## {m}", "", f"{len(mine)} signals, {live} updating.", "",
                "| signal | type | unit | range | writable | updates/s | max gap (s) | address |",
                "|---|---|---|---|---|---:|---:|---|"]
        for r in mine:
            out.append(f"| {r['signal']} | {r['type']} | {r['unit']} | {r['range']} | {r['writable']} | "
                       f"{r['updates_per_s'] if r['updates_per_s'] is not None else '-'} | "
                       f"{r['max_gap_s'] if r['max_gap_s'] is not None else '-'} | `{r['address']}` |")
        out.append("")
    return "\n".join(out)


def inventory_html(signals: list[Signal], info: dict) -> str:
    rows = inventory_rows(signals, info)
    e = html.escape
    body = "".join(
        f"<tr><td>{e(r['machine'])}</td><td>{e(r['signal'])}</td><td>{e(r['type'])}</td><td>{e(r['unit'])}</td>"
        f"<td>{e(r['range'])}</td><td>{e(r['writable'])}</td><td>{r['updates_per_s'] if r['updates_per_s'] is not None else '-'}</td>"
        f"<td>{r['max_gap_s'] if r['max_gap_s'] is not None else '-'}</td><td><code>{e(r['address'])}</code></td></tr>"
        for r in rows)
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>axline inventory</title>"
            f"<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}"
            f"td,th{{border:1px solid #ccc;padding:4px 8px}}th{{background:#eee}}</style>"
            f"<h1>Data-readiness inventory / 데이터 준비도 목록</h1><p>{e(info['endpoint'])}: {len(rows)} signals</p>"
            f"<table><tr><th>machine / 설비</th><th>signal / 신호</th><th>type</th><th>unit / 단위</th><th>range</th>"
            f"<th>writable / 쓰기</th><th>updates/s</th><th>max gap (s)</th><th>address</th></tr>{body}</table></html>")


def add_arguments(p) -> None:
    p.add_argument("url", help="opcua://host:4840[/path] (or opc.tcp://...)")
    p.add_argument("--listen", default="10s", help="how long to watch updates, e.g. 30s or 2m (default 10s)")
    p.add_argument("--out", default="discovery", help="folder for draft-plant.yaml and inventory.md/.html")


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*", text)
    if not m:
        raise ValueError(f"--listen: {text!r} is not a duration; use e.g. 30s, 2m, 500ms")
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


def run(args) -> int:
    u = urlparse(args.url)
    listen = parse_duration(args.listen)
    if u.scheme in ("opcua", "opc.tcp"):
        endpoint = args.url.replace("opcua://", "opc.tcp://", 1)
        signals, info = asyncio.run(discover_opcua(endpoint, listen))
    else:
        raise ValueError(f"{args.url}: discovery speaks opcua:// (opc.tcp://) in this version; "
                         f"got scheme {u.scheme!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "draft-plant.yaml").write_text(draft_plant(signals, info), encoding="utf-8")
    (out / "inventory.md").write_text(inventory_markdown(signals, info), encoding="utf-8")
    (out / "inventory.html").write_text(inventory_html(signals, info), encoding="utf-8")
    machines = len({s.machine for s in signals})
    print(f"{len(signals)} signals on {machines} machine(s) at {info['endpoint']}; wrote {out}/draft-plant.yaml, "
          f"{out}/inventory.md and {out}/inventory.html")
    return 0
