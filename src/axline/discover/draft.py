"""The draft plant file that discovery writes: one asset per machine, one tag per signal."""

from __future__ import annotations

import json
import re

from axline.discover.signal import Signal, guess_unit, ident, runs

_BARE = re.compile(r"[a-z][a-z0-9_\-]*")
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "none"}


def _yaml(value) -> str:
    """A YAML flow scalar for an option value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    text = str(value)
    if _BARE.fullmatch(text) and text not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def _quoted(text: str) -> str:
    return json.dumps(str(text), ensure_ascii=False)


_MODBUS_ADDR = re.compile(r"(hr|ir|co|di):(\d+)(:\w+)?")


def _zero_summary(signals: list[Signal]) -> list[str]:
    """Comment lines naming the Modbus addresses that answered but stayed 0 (listed in the inventory)."""
    import textwrap

    by_table: dict[str, list[int]] = {}
    for s in signals:
        m = _MODBUS_ADDR.fullmatch(s.address)
        by_table.setdefault(m.group(1), []).append(int(m.group(2)))
    text = "; ".join(
        f"{t} " + ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs(sorted(addrs)))
        for t, addrs in by_table.items()
    )
    return textwrap.wrap(
        f"answered but stayed 0 while polled (see the inventory): {text}",
        width=108,
        initial_indent="          # ",
        subsequent_indent="          #   ",
    )


def draft_plant(signals: list[Signal], info: dict, connector: str = "plc1") -> str:
    """A plant file to start from: one asset per machine, one tag per signal, the address filled in.

    ``info["connectors"]`` (Modbus, MQTT) lists the connector entries to write; without it one
    connector named ``connector`` with ``info['endpoint']`` is written (OPC UA).
    """
    lines = [
        "# Draft plant file written by `axline discover`. Review it: pick the signals you need,",
        "# fix units marked 'check', set ranges and periods, then `axline check` it.",
    ]
    if any(s.guess for s in signals):
        lines.append(
            "# Types marked '# guess:' were inferred from the values seen; confirm them in the device manual."
        )
    header_end, commented_note = len(lines), False
    lines += ["plant: {site: site1, area: area1, timezone: Asia/Seoul}", "connectors:"]
    conns = info.get("connectors")
    if conns:
        default = conns[0]["name"]
        if info.get("needs_password"):
            lines.append("  # add 'password: ...' to the connector entries below (not written here)")
        for c in conns:
            lines.append(f"  - {{{', '.join(f'{k}: {_yaml(v)}' for k, v in c.items())}}}")
    else:
        default = connector
        lines.append(f'  - {{name: {connector}, type: {info["protocol"]}, endpoint: "{info["endpoint"]}"}}')
    lines += ["lines:", "  - id: line1", "    assets:"]
    machines: dict[tuple[str, str], list[Signal]] = {}
    for s in signals:
        machines.setdefault((s.connector or default, s.machine), []).append(s)
    used: set[str] = set()
    for (conn, machine), sigs in machines.items():
        parts = machine.split("/")
        aid = ident(parts[-1])
        cell = ident(parts[-2]) if len(parts) >= 2 else aid
        while f"{cell}/{aid}" in used:
            aid += "_2"
        used.add(f"{cell}/{aid}")
        lines += [
            f"      - id: {aid}",
            f"        cell: {cell}",
            f"        connector: {conn}",
            "        tags:",
        ]
        all_commented = all(s.commented for s in sigs)
        zeros = (
            [] if all_commented else [s for s in sigs if s.commented and _MODBUS_ADDR.fullmatch(s.address)]
        )
        if zeros:
            lines += _zero_summary(zeros)
        names: set[str] = set()
        for s in sigs:
            if zeros and s in zeros:
                continue
            sig = ident(s.name)
            while sig in names:
                sig += "_2"
            names.add(sig)
            unit = guess_unit(s.unit)
            parts = [f"signal: {sig}", f'unit: "{unit}"']
            if s.lo is not None and s.hi is not None and s.lo < s.hi:
                parts.append(f"range: [{s.lo:g}, {s.hi:g}]")
            if s.dtype == "Boolean" or s.kind == "bool":
                parts.append("kind: bool")
            if s.writable:
                parts.append("writable: true")
            if s.period_s is not None:
                parts.append(f"period_s: {s.period_s:g}")
            parts.append(f"source: {{address: {_quoted(s.address)}}}")
            notes = [f"check unit: device says {s.unit!r}"] if s.unit and not unit else []
            if s.guess:
                notes.append(f"guess: {s.guess}")
            note = f"  # {'; '.join(notes)}" if notes else ""
            bullet = "# - " if s.commented and not all_commented else "- "
            if bullet != "- " and not commented_note:
                commented_note = True
                lines.insert(
                    header_end,
                    "# Commented-out tags are not numbers (or stayed 0); uncomment those you need.",
                )
            lines.append(f"          {bullet}{{{', '.join(parts)}}}{note}")
    return "\n".join(lines) + "\n"
