"""The data-readiness inventory (Markdown and HTML): signals, their types, units, update rates and
gaps, the Modbus scan and the MQTT topics."""

from __future__ import annotations

import html

from axline.discover.modbus import EXCEPTION_NAMES, TABLE_NAMES
from axline.discover.signal import Signal


def _fmt(x) -> str:
    return "-" if x is None else str(x)


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


def _scan_lines(info: dict) -> list[str]:
    """Markdown lines on the Modbus scan: answering and refused ranges per table."""
    if "scan" not in info:
        return []

    def spans(rs) -> str:
        return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b, *_ in rs) or "none"

    out = [
        "## Scan",
        "",
        f"{info['requests']} read requests to scan; polled {info['polls']} times every "
        f"{info['poll_interval_s']:g} s. "
        "A refused range answered with the Modbus exception shown (illegal data address: the device has no "
        "such address).",
        "",
        "| table | scanned | answering | refused |",
        "|---|---|---|---|",
    ]
    for t in info["scan"]:
        refused = refused_text(t["refused"])
        out.append(
            f"| {t['table']} ({TABLE_NAMES[t['table']]}) | {spans(t['scanned'])} | "
            f"{spans(t['answered'])} | {refused} |"
        )
    return [*out, ""]


def _topic_lines(topics: list[dict]) -> list[str]:
    if not topics:
        return []
    out = [
        "| topic | payload | messages (retained) | msg/s | max gap (s) | signals | problems |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in topics:
        out.append(
            f"| `{r['topic']}` | {r['kind']} | {r['messages']} ({r['retained']}) | {_fmt(r['per_s'])} | "
            f"{_fmt(r['max_gap_s'])} | {r['signals']} | {r['problems'] or '-'} |"
        )
    return [*out, ""]


def inventory_markdown(signals: list[Signal], info: dict) -> str:
    """The inventory as Markdown: per machine its topics and a table of its signals."""
    rows = inventory_rows(signals, info)
    topics = info.get("topics", [])
    machines = sorted({r["machine"] for r in rows} | {t["machine"] for t in topics})
    notes = any(r["note"] for r in rows)
    out = [
        f"# Data-readiness inventory — {info['endpoint']}",
        "",
        f"{len(rows)} signals on {len(machines)} machine(s); listened {info.get('listened_s', 0):g} s.",
        "A signal that did not update while listening has `max gap` equal to the window: it may be static "
        "(a setting) or not wired.",
        "",
    ]
    if "topics" in info:
        out += [
            f"{len(topics)} topic(s) seen on {', '.join(info.get('subscribed', ['#']))}; machines are topic "
            "prefixes (Sparkplug B: group/edge/device).",
            "",
        ]
    out += _scan_lines(info)
    for m in machines:
        mine = [r for r in rows if r["machine"] == m]
        live = sum(1 for r in mine if r["updates_per_s"])
        out += [f"## {m}", "", f"{len(mine)} signals, {live} updating.", ""]
        out += _topic_lines([t for t in topics if t["machine"] == m])
        if not mine:
            continue
        out += [
            "| signal | type | unit | range | writable | updates/s | max gap (s) | address |"
            + (" note |" if notes else ""),
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
    """The inventory as one self-contained HTML page (Korean and English headings)."""
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
            f"<td>{e(', '.join(f'{a}-{b}' for a, b in t['answered']) or 'none')}</td>"
            f"<td>{e(refused_text(t['refused']))}"
            f"</td></tr>"
            for t in info["scan"]
        )
        extra += (
            f"<h2>Scan / 주소 탐색</h2><p>{info['requests']} requests, {info['polls']} polls</p>"
            f"<table><tr><th>table / 영역</th><th>answering / 응답</th><th>refused / 거부</th></tr>{trs}</table>"
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
            f"<h2>Topics / 토픽</h2><table><tr><th>machine / 설비</th><th>topic / 토픽</th>"
            f"<th>payload / 형식</th><th>messages (retained) / 메시지 (보존)</th><th>msg/s</th>"
            f"<th>max gap (s) / 최대 공백</th><th>signals / 신호</th><th>problems / 문제</th></tr>{trs}</table>"
        )
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>axline inventory</title>"
        f"<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}"
        f"td,th{{border:1px solid #ccc;padding:4px 8px}}th{{background:#eee}}</style>"
        f"<h1>Data-readiness inventory / 데이터 준비도 목록</h1><p>{e(info['endpoint'])}: {len(rows)} signals</p>"
        f"{extra + '<h2>Signals / 신호</h2>' if extra else ''}"
        f"<table><tr><th>machine / 설비</th><th>signal / 신호</th><th>type</th><th>unit / 단위</th><th>range</th>"
        f"<th>writable / 쓰기</th><th>updates/s</th><th>max gap (s)</th><th>address</th>"
        + ("<th>note / 비고</th>" if notes else "")
        + f"</tr>{body}</table></html>"
    )
