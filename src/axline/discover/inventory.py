"""The data-readiness inventory (Markdown and HTML): signals, their types, units, update rates and
gaps, the Modbus scan and the MQTT topics."""

from __future__ import annotations

import html

from axline import i18n
from axline.discover.modbus import EXCEPTION_NAMES, TABLE_NAMES
from axline.discover.signal import Signal


def _fmt(x) -> str:
    return "-" if x is None else str(x)


def _both(key: str) -> str:
    """A heading in English and Korean: ``"Scan / 주소 탐색"``."""
    return i18n.pair(key)


def _cols(keys: list[str], lang: str) -> list[str]:
    return [i18n.text(f"inventory.col.{k}", lang) for k in keys]


def _th(keys: list[str]) -> str:
    return "".join(f"<th>{html.escape(i18n.pair(f'inventory.col.{k}'))}</th>" for k in keys)


def inventory_rows(signals: list[Signal], info: dict) -> list[dict]:
    """One row per signal with what the inventory shows of it."""
    window = info.get("listened_s", 0)
    rows = []
    for s in signals:
        rows.append(
            {
                "machine": s.machine,
                "signal": s.name,
                "address": s.address,
                "type": s.dtype,
                "unit": s.unit or "-",
                "range": f"{s.lo:g} .. {s.hi:g}" if s.lo is not None else "-",
                "writable": "yes" if s.writable else "no",
                "updates_per_s": round(s.rate_hz(window), 2) if window else None,
                "max_gap_s": round(s.max_gap_s(window, 0.0), 1) if window else None,
                "value": s.value,
                "note": s.note,
            }
        )
    return rows


def refused_text(refused: list[tuple[int, int, int]]) -> str:
    """``[(20, 49, 2)]`` -> ``"20-49: illegal data address"`` ("none" when empty)."""
    return (
        "; ".join(
            f"{a if a == b else f'{a}-{b}'}: {EXCEPTION_NAMES.get(c, f'exception {c}')}"
            for a, b, c in refused
        )
        or "none"
    )


def _scan_lines(info: dict, lang: str = "en") -> list[str]:
    """Markdown lines on the Modbus scan: answering and refused ranges per table."""
    if "scan" not in info:
        return []
    none = i18n.text("inventory.none", lang)

    def spans(rs) -> str:
        return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b, *_ in rs) or none

    out = [
        "## " + i18n.text("inventory.scan", lang),
        "",
        i18n.text("inventory.scan_text", lang, requests=info["requests"], polls=info["polls"],
                  interval=f"{info['poll_interval_s']:g}"),
        "",
        "| " + " | ".join(_cols(["table", "scanned", "answering", "refused"], lang)) + " |",
        "|---|---|---|---|",
    ]
    for t in info["scan"]:
        refused = refused_text(t["refused"])
        out.append(
            f"| {t['table']} ({TABLE_NAMES[t['table']]}) | {spans(t['scanned'])} | "
            f"{spans(t['answered'])} | {refused} |"
        )
    return [*out, ""]


def _topic_lines(topics: list[dict], lang: str = "en") -> list[str]:
    if not topics:
        return []
    out = [
        "| " + " | ".join(_cols(["topic", "payload", "messages", "per_s", "max_gap", "signals", "problems"], lang))
        + " |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in topics:
        out.append(
            f"| `{r['topic']}` | {r['kind']} | {r['messages']} ({r['retained']}) | {_fmt(r['per_s'])} | "
            f"{_fmt(r['max_gap_s'])} | {r['signals']} | {r['problems'] or '-'} |"
        )
    return [*out, ""]


def inventory_markdown(signals: list[Signal], info: dict, lang: str = "en") -> str:
    """The inventory as Markdown in ``lang``: per machine its topics and a table of its signals."""
    rows = inventory_rows(signals, info)
    topics = info.get("topics", [])
    machines = sorted({r["machine"] for r in rows} | {t["machine"] for t in topics})
    notes = any(r["note"] for r in rows)
    out = [
        "# " + i18n.text("inventory.title_md", lang, endpoint=info["endpoint"]),
        "",
        i18n.text("inventory.summary", lang, signals=len(rows), machines=len(machines),
                  seconds=f"{info.get('listened_s', 0):g}"),
        i18n.text("inventory.static_hint", lang),
        "",
    ]
    if "topics" in info:
        out += [
            i18n.text("inventory.topics_seen", lang, topics=len(topics),
                      subscribed=", ".join(info.get("subscribed", ["#"]))),
            "",
        ]
    out += _scan_lines(info, lang)
    for m in machines:
        mine = [r for r in rows if r["machine"] == m]
        live = sum(1 for r in mine if r["updates_per_s"])
        out += [f"## {m}", "", i18n.text("inventory.machine_summary", lang, signals=len(mine), live=live), ""]
        out += _topic_lines([t for t in topics if t["machine"] == m], lang)
        if not mine:
            continue
        cols = ["signal", "type", "unit", "range", "writable", "updates", "max_gap", "address"] + (
            ["note"] if notes else [])
        out += [
            "| " + " | ".join(_cols(cols, lang)) + " |",
            "|---|---|---|---|---|---:|---:|---|" + ("---|" if notes else ""),
        ]
        for r in mine:
            out.append(
                f"| {r['signal']} | {r['type']} | {r['unit']} | {r['range']} | {r['writable']} | "
                f"{r['updates_per_s'] if r['updates_per_s'] is not None else '-'} | "
                f"{r['max_gap_s'] if r['max_gap_s'] is not None else '-'} | `{r['address']}` |"
                + (f" {r['note'] or '-'} |" if notes else "")
            )
        out.append("")
    return "\n".join(out)


def inventory_html(signals: list[Signal], info: dict) -> str:
    """The inventory as one self-contained HTML page (Korean and English headings from the catalog)."""
    rows = inventory_rows(signals, info)
    e = html.escape
    notes = any(r["note"] for r in rows)
    body = "".join(
        f"<tr><td>{e(r['machine'])}</td><td>{e(r['signal'])}</td><td>{e(r['type'])}</td>"
        f"<td>{e(r['unit'])}</td><td>{e(r['range'])}</td><td>{e(r['writable'])}</td>"
        f"<td>{_fmt(r['updates_per_s'])}</td><td>{_fmt(r['max_gap_s'])}</td>"
        f"<td><code>{e(r['address'])}</code></td>"
        + (f"<td>{e(r['note'] or '-')}</td>" if notes else "")
        + "</tr>"
        for r in rows
    )
    extra = ""
    if "scan" in info:
        trs = "".join(
            f"<tr><td>{e(t['table'])} ({e(TABLE_NAMES[t['table']])})</td>"
            f"<td>{e(', '.join(f'{a}-{b}' for a, b in t['answered']) or i18n.text('inventory.none'))}</td>"
            f"<td>{e(refused_text(t['refused']))}"
            f"</td></tr>"
            for t in info["scan"]
        )
        extra += (
            f"<h2>{e(_both('inventory.scan'))}</h2>"
            f"<p>{e(i18n.pair('inventory.scan_counts', requests=info['requests'], polls=info['polls']))}</p>"
            f"<table><tr>{_th(['table', 'answering', 'refused'])}</tr>{trs}</table>"
        )
    if info.get("topics"):
        trs = "".join(
            f"<tr><td>{e(t['machine'])}</td><td><code>{e(t['topic'])}</code></td><td>{e(t['kind'])}</td>"
            f"<td>{t['messages']} ({t['retained']})</td><td>{_fmt(t['per_s'])}</td>"
            f"<td>{_fmt(t['max_gap_s'])}</td>"
            f"<td>{t['signals']}</td><td>{e(t['problems'] or '-')}</td></tr>"
            for t in info["topics"]
        )
        extra += (
            f"<h2>{e(_both('inventory.topics'))}</h2><table><tr>"
            f"{_th(['machine', 'topic', 'payload', 'messages', 'per_s', 'max_gap', 'signals', 'problems'])}"
            f"</tr>{trs}</table>"
        )
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>axline inventory</title>"
        f"<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}"
        f"td,th{{border:1px solid #ccc;padding:4px 8px}}th{{background:#eee}}</style>"
        f"<h1>{e(_both('inventory.title'))}</h1>"
        f"<p>{e(i18n.pair('inventory.signals_count', endpoint=info['endpoint'], signals=len(rows)))}</p>"
        f"{extra + '<h2>' + e(_both('inventory.signals')) + '</h2>' if extra else ''}"
        f"<table><tr>{_th(['machine', 'signal', 'type', 'unit', 'range', 'writable', 'updates', 'max_gap', 'address'] + (['note'] if notes else []))}"
        + f"</tr>{body}</table></html>"
    )
