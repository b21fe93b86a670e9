"""The proof-of-value report: what changed between a baseline period and a later period, in PQCD
figures and in money, computed from the historian and the event log only.

``axline report value --config plant.yaml --baseline FROM..TO --period FROM..TO --out report.html``
(or ``.pdf``). Per line and per period, each figure is computed hour by hour from counter increases
and state durations (so that the 95 % confidence interval of its mean comes from the hour-to-hour
spread, Student's t), then before vs after:

* productivity: good parts per hour, OEE with availability, performance and quality;
* quality: defect rate, first-pass yield, escapes (parts passed by the inspector that an operator
  marked defective);
* cost: electric energy and gas per good part, and in money at the tariffs given;
* delivery: throughput (good parts per planned hour).

What changed comes from the event log (setpoint changes kept by the optimiser, writes, model and
case events). Money per month and per year uses the period's production rate at the plant's
utilisation (its shifts' hours), and the payback divides the investment by the monthly saving.
Every figure carries the query it came from (tags, window, aggregation), so anyone can recompute it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from axline import i18n
from axline.historian import Historian
from axline.kpi import RUN_STATES, state_durations
from axline.plant import Line, Plant

NS = 1_000_000_000
HOUR = 3600 * NS
DAYS_PER_MONTH = 365.25 / 12
MAX_WINDOW_DAYS = 366  # a longer window is refused: the report reads every hour of it


class ValueReportError(ValueError):
    """A request the report cannot honour; the message says what to do."""


@dataclass(frozen=True)
class Tariffs:
    """Energy prices for the value report (per kWh of electricity, per Nm³ of gas) and their currency."""
    electricity_per_kwh: float | None = None
    gas_per_nm3: float | None = None
    currency: str = "KRW"


def parse_window(text: str, tz: str) -> tuple[int, int]:
    """``FROM..TO`` with ISO dates or date-times (plant-local unless they carry an offset) -> ns."""
    if not isinstance(text, str) or ".." not in text:
        raise i18n.error(ValueReportError, "err.value.window_form", got=repr(text)[:60])
    a, b = text.split("..", 1)
    zone = ZoneInfo(tz)

    def ts(s: str) -> int:
        try:
            d = datetime.fromisoformat(s.strip())
        except ValueError:
            raise i18n.error(ValueReportError, "err.value.not_iso", got=repr(s)[:40]) from None
        if d.tzinfo is None:
            d = d.replace(tzinfo=zone)
        return int(d.timestamp()) * NS + d.microsecond * 1000

    start, end = ts(a), ts(b)
    if end <= start:
        raise i18n.error(ValueReportError, "err.value.ends_before", got=repr(text)[:60])
    if end - start < HOUR:
        raise i18n.error(ValueReportError, "err.value.short", got=repr(text)[:60])
    if end - start > MAX_WINDOW_DAYS * 24 * HOUR:
        raise i18n.error(ValueReportError, "err.value.long", got=repr(text)[:60], days=MAX_WINDOW_DAYS)
    return start, end


def value_options(values: Mapping[str, Any], said: Callable[[str], str] = str) -> tuple[Tariffs, float | None]:
    """Tariffs and investment from ``electricity_price``, ``gas_price``, ``currency`` and ``investment``: the
    command line's options or the web route's query parameters. A price left out (or empty) is not priced and
    its money is not shown; the currency defaults to KRW; without an investment there is no payback.
    ``said(name)`` is how the caller spells an option in an error (``--gas-price`` on the command line)."""

    def number(name: str) -> float | None:
        raw = values.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        try:
            x = float(raw)
        except (TypeError, ValueError):
            raise i18n.error(ValueReportError, "err.value.bad_number", name=said(name), got=repr(raw)[:30]) from None
        if not math.isfinite(x) or x < 0:
            raise i18n.error(ValueReportError, "err.value.bad_number", name=said(name), got=repr(raw)[:30])
        return x

    currency = str(values.get("currency") or "KRW").strip()
    if not (1 <= len(currency) <= 8 and currency.isalpha()):
        raise i18n.error(ValueReportError, "err.value.bad_currency", got=repr(currency)[:20])
    return Tariffs(number("electricity_price"), number("gas_price"), currency.upper()), number("investment")


def _increase(ts: np.ndarray, v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counter increase per bucket (resets ignored: a drop starts a new run)."""
    out = np.zeros(len(edges) - 1)
    if len(v) < 2:
        return out
    d = np.diff(v)
    d[d < 0] = 0.0
    k = np.searchsorted(edges, ts[1:], side="right") - 1
    ok = (k >= 0) & (k < len(out))
    np.add.at(out, k[ok], d[ok])
    return out


def _ci(x: np.ndarray) -> dict[str, float | None]:
    """Mean and 95 % confidence interval (Student's t) of hourly values."""
    from scipy import stats

    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    m = float(x.mean())
    if len(x) < 2:
        return {"mean": m, "lo": None, "hi": None, "n": 1}
    h = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return {"mean": m, "lo": m - h, "hi": m + h, "n": int(len(x))}


def _diff_ci(a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    """After minus before, with Welch's 95 % interval."""
    from scipy import stats

    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return {"diff": None, "lo": None, "hi": None}
    d = float(b.mean() - a.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"diff": d, "lo": d, "hi": d}
    dof = (va + vb) ** 2 / ((va**2) / (len(a) - 1) + (vb**2) / (len(b) - 1)) if va + vb > 0 else 1
    h = float(stats.t.ppf(0.975, dof) * se)
    return {"diff": d, "lo": d - h, "hi": d + h}


def hourly(historian: Historian, line: Line, start: int, end: int) -> dict[str, np.ndarray]:
    """Per planned hour of [start, end): counts, energy, gas, run time and the figures made of them."""
    kpi = line.kpi
    n = int((end - start) // HOUR)
    if n < 1:
        raise i18n.error(ValueReportError, "err.value.short", got=f"{start}..{end}")
    edges = start + np.arange(n + 1, dtype=np.int64) * HOUR
    totals = kpi.get("parts_total", "").rsplit("/", 1)[0]
    tags = {k: kpi.get(k) for k in ("state", "parts_total", "parts_good", "parts_rejected", "energy")}
    tags["gas"] = f"{totals}/gas" if totals else None
    want = [t for t in tags.values() if t]
    # an hour before the window too: a counter's first increase is counted from its last reading before it
    series = historian.query(want, int(edges[0]) - HOUR, int(edges[-1]))
    out: dict[str, np.ndarray] = {}
    for key, tag in tags.items():
        if key == "state":
            continue
        s = series.get(tag) if tag else None
        if s is None or len(s) == 0:
            out[key] = np.full(n, np.nan)
            continue
        good = s.quality == 0
        out[key] = _increase(s.ts[good], s.value[good], edges)
    run = np.full(n, np.nan)
    st = series.get(tags["state"]) if tags["state"] else None
    if st is not None and len(st):
        for i in range(n):
            m = (st.ts >= edges[i]) & (st.ts < edges[i + 1]) & (st.quality == 0)
            durs = state_durations(st.ts[m], st.value[m], int(edges[i + 1]))
            run[i] = sum(durs.get(s, 0) for s in RUN_STATES) / NS
    out["run_s"] = run
    total, good, rej = out["parts_total"], out["parts_good"], out["parts_rejected"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["good_per_hour"] = good.copy()
        out["availability"] = run / 3600.0
        out["performance"] = np.minimum(1.0, line.ideal_cycle_s * total / run)
        out["quality"] = good / total
        out["oee"] = out["availability"] * out["performance"] * out["quality"]
        out["defect_rate"] = rej / total
        out["fpy"] = good / total
        out["energy_per_good"] = out["energy"] / good
        out["gas_per_good"] = out["gas"] / good
    out["edges"] = edges
    return out


FIGURES = (  # key, group, unit, better ("up" / "down"), query text
    ("good_per_hour", "P", "parts/h", "up", "increase of {parts_good} per hour"),
    ("oee", "P", "", "up", "availability x performance x quality per hour ({state}, {parts_total}, {parts_good})"),
    ("availability", "P", "", "up", "time in running states of {state} / planned hour"),
    ("performance", "P", "", "up", "ideal cycle x increase of {parts_total} / running time"),
    ("defect_rate", "Q", "", "down", "increase of {parts_rejected} / increase of {parts_total} per hour"),
    ("fpy", "Q", "", "up", "increase of {parts_good} / increase of {parts_total} per hour"),
    ("energy_per_good", "C", "kWh/part", "down", "increase of {energy} / increase of {parts_good} per hour"),
    ("gas_per_good", "C", "Nm3/part", "down", "increase of {gas} / increase of {parts_good} per hour"),
)


def _escapes(historian: Historian, start: int, end: int) -> int:
    """Parts the inspector passed that an operator then marked defective (feedback 'overruled' on a pass)."""
    n = 0
    for e in historian.events(start=start, end=end, kinds=["inspection"], limit=100_000):
        if e.code == "inspection.pass" and e.ack == "overruled":
            n += 1
    return n


KNOWHOW_CHANGES = ("knowhow.approved", "knowhow.helped")  # not knowhow.error: a failure is no change


def _changes(historian: Historian, start: int, end: int) -> list[dict[str, Any]]:
    """What changed between the periods and during the later one: kept setpoint changes, writes, models, cases."""
    out = []  # (plant time, event id, change): two events between readings share a plant time
    for e in historian.events(start=start, end=end, limit=100_000):
        if e.kind == "optimize" and e.code in ("optimize.kept", "optimize.rolled_back"):
            out.append((e.ts, e.id or 0, {"ts": e.ts, "what": e.code, "by": e.data.get("user"), "detail": e.message}))
        elif e.kind == "write" and e.code == "write.setpoint" and e.data.get("result") == "ok" \
                and not str(e.data.get("user", "")).startswith("inspector:"):
            out.append((e.ts, e.id or 0, {"ts": e.ts, "what": "setpoint", "by": e.data.get("user"), "detail": e.message}))
        elif e.kind in ("model", "case") or e.code.startswith(("model.", "case.")) or e.code in KNOWHOW_CHANGES:
            out.append((e.ts, e.id or 0, {"ts": e.ts, "what": e.code, "by": e.data.get("user"), "detail": e.message}))
    return [c for _, _, c in sorted(out, key=lambda t: t[:2])][-200:]


def _utilisation_hours_per_month(line: Line) -> float:
    return sum(s.hours for s in line.shifts) * DAYS_PER_MONTH if line.shifts else 24 * DAYS_PER_MONTH


def build_value_report(historian: Historian, plant: Plant, baseline: tuple[int, int], period: tuple[int, int],
                       tariffs: Tariffs | None = None, investment: float | None = None) -> dict[str, Any]:
    """The report as a dict (figures, intervals, queries, money); rendering is separate."""
    tariffs = tariffs or Tariffs()
    lines = []
    for line in plant.lines:
        if not line.kpi.get("parts_good"):
            continue
        a = hourly(historian, line, *baseline)
        b = hourly(historian, line, *period)
        names = {k: line.kpi.get(k, "-") for k in ("state", "parts_total", "parts_good", "parts_rejected", "energy")}
        names["gas"] = f"{line.kpi.get('parts_total', '').rsplit('/', 1)[0]}/gas"
        figs = []
        for key, group, unit, better, query in FIGURES:
            before, after = _ci(a[key]), _ci(b[key])
            diff = _diff_ci(a[key], b[key])
            figs.append({"key": key, "group": group, "unit": unit, "better": better, "before": before, "after": after,
                         "change": diff, "query": query.format(**names) + " over each hour of the period",
                         "hourly_before": [None if not math.isfinite(x) else float(x) for x in a[key]],
                         "hourly_after": [None if not math.isfinite(x) else float(x) for x in b[key]]})
        sums = {p: {k: float(np.nansum(h[k])) for k in ("parts_total", "parts_good", "parts_rejected", "energy", "gas")}
                for p, h in (("before", a), ("after", b))}
        for p, h in (("before", a), ("after", b)):
            hours = len(h["good_per_hour"])
            sums[p]["throughput_per_h"] = sums[p]["parts_good"] / hours if hours else None
            sums[p]["hours"] = hours
        # money: the saving per good part at the tariffs, at the later period's output and the plant's utilisation
        money: dict[str, Any] = {"currency": tariffs.currency, "per_good_part": None, "per_month": None,
                                 "per_year": None, "payback_months": None, "investment": investment}
        per_part = 0.0
        priced = False
        for key, price in (("energy_per_good", tariffs.electricity_per_kwh), ("gas_per_good", tariffs.gas_per_nm3)):
            f = next(x for x in figs if x["key"] == key)
            if price is not None and f["before"]["mean"] is not None and f["after"]["mean"] is not None:
                per_part += (f["before"]["mean"] - f["after"]["mean"]) * price
                priced = True
        if priced:
            rate = sums["after"]["throughput_per_h"] or 0.0
            month_parts = rate * _utilisation_hours_per_month(line)
            money.update(per_good_part=per_part, per_month=per_part * month_parts, per_year=per_part * month_parts * 12,
                         good_parts_per_month=month_parts, utilisation_h_per_month=_utilisation_hours_per_month(line))
            if investment and per_part * month_parts > 0:
                money["payback_months"] = investment / (per_part * month_parts)
        lines.append({"id": line.id, "name": line.name, "figures": figs, "totals": sums, "money": money,
                      "escapes": {"before": _escapes(historian, *baseline), "after": _escapes(historian, *period),
                                  "query": "inspection.pass events with operator feedback 'overruled'"},
                      "lead_time": None,
                      "lead_time_note": "not measured: the historian keeps counters, not each part's route"})
    if not lines:
        raise i18n.error(ValueReportError, "err.value.no_kpi")
    return {"plant": {"site": plant.site, "area": plant.area, "name": plant.name, "timezone": plant.timezone},
            "baseline": list(baseline), "period": list(period), "tariffs": tariffs.__dict__,
            "changes": _changes(historian, baseline[0], period[1]), "lines": lines}


# ================================================================================================
# rendering
# ================================================================================================
TEXT = {lang: {k[len("value."):]: v for k, v in i18n.catalog(lang).items() if k.startswith("value.")}
        for lang in i18n.LANGS}  # the value report's texts, from the catalog (keys value.*)


def _fmt(x: Any, unit: str = "", digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if unit == "":
        return f"{100 * x:.2f} %"
    return f"{x:.{digits}g} {unit}".strip()


def _local(ts: int, tz: str) -> str:
    return datetime.fromtimestamp(ts / NS, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _bars(before: float | None, after: float | None) -> str:
    """A tiny before/after bar chart as inline SVG (printable, no script)."""
    if before is None or after is None or not (math.isfinite(before) and math.isfinite(after)):
        return ""
    top = max(abs(before), abs(after)) or 1.0
    w1, w2 = 120 * abs(before) / top, 120 * abs(after) / top
    return (f'<svg class="bars" width="124" height="22" viewBox="0 0 124 22" role="img">'
            f'<rect x="0" y="1" width="{w1:.1f}" height="9" fill="#94a3b8"/>'
            f'<rect x="0" y="12" width="{w2:.1f}" height="9" fill="#1d4ed8"/></svg>')


def value_to_html(rep: dict[str, Any], lang: str = "en") -> str:
    """The value report as a standalone HTML page in ``lang``."""
    if lang not in TEXT:
        raise i18n.error(ValueReportError, "err.report.bad_lang", lang=repr(lang)[:10])
    tx = TEXT[lang]
    tz = rep["plant"]["timezone"]
    e = html.escape
    name = rep["plant"]["name"].get(lang) or rep["plant"]["name"].get("en") or rep["plant"]["site"]
    out = [f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'><title>{e(tx['title'])} — {e(name)}</title>",
           "<style>body{font-family:system-ui,'Noto Sans KR','NanumGothic',sans-serif;margin:2em;color:#111}"
           "table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}td,th{border:1px solid #cbd5e1;"
           "padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f1f5f9}.q{color:#64748b;"
           "font-size:.8em}.good{color:#15803d}.bad{color:#b91c1c}@media print{body{margin:1cm}}</style></head><body>",
           f"<h1>{e(tx['title'])} — {e(name)}</h1>",
           f"<p>{e(tx['baseline'])}: {_local(rep['baseline'][0], tz)} – {_local(rep['baseline'][1], tz)} · "
           f"{e(tx['period'])}: {_local(rep['period'][0], tz)} – {_local(rep['period'][1], tz)} ({e(tz)})</p>",
           f"<p class='q'>{e(tx['traceable'])}</p>"]
    for ln in rep["lines"]:
        out.append(f"<h2>{e(ln['name'].get(lang) or ln['id'])}</h2>")
        for group in ("P", "Q", "C"):
            out.append(f"<h3>{e(tx[group])}</h3><table><tr><th>{e(tx['figure'])}</th><th>{e(tx['before'])}</th>"
                       f"<th>{e(tx['after'])}</th><th>{e(tx['change'])}</th><th></th><th>{e(tx['query'])}</th></tr>")
            for f in (x for x in ln["figures"] if x["group"] == group):
                c = f["change"]
                cls = ""
                if c["lo"] is not None and (c["lo"] > 0 or c["hi"] < 0):
                    up = c["lo"] > 0
                    cls = "good" if (up == (f["better"] == "up")) else "bad"
                ci = "–" if c["diff"] is None else (f"{_fmt(c['diff'], f['unit'])} "
                                                     f"[{_fmt(c['lo'], f['unit'])}, {_fmt(c['hi'], f['unit'])}]")
                b, a = f["before"], f["after"]
                out.append(f"<tr data-figure='{f['key']}'><td>{e(tx[f['key']])}</td><td>{_fmt(b['mean'], f['unit'])}</td>"
                           f"<td>{_fmt(a['mean'], f['unit'])}</td><td class='{cls}'>{e(ci)}</td>"
                           f"<td>{_bars(b['mean'], a['mean'])}</td><td class='q'>{e(f['query'])}</td></tr>")
            if group == "Q":
                out.append(f"<tr><td>{e(tx['escapes'])}</td><td>{ln['escapes']['before']}</td><td>{ln['escapes']['after']}"
                           f"</td><td></td><td></td><td class='q'>{e(ln['escapes']['query'])}</td></tr>")
            out.append("</table>")
        t = ln["totals"]
        out.append(f"<h3>{e(tx['D'])}</h3><table><tr><th>{e(tx['figure'])}</th><th>{e(tx['before'])}</th>"
                   f"<th>{e(tx['after'])}</th></tr><tr><td>{e(tx['throughput'])}</td>"
                   f"<td>{_fmt(t['before']['throughput_per_h'], 'parts/h')}</td>"
                   f"<td>{_fmt(t['after']['throughput_per_h'], 'parts/h')}</td></tr>"
                   f"<tr><td>{e(tx['lead_time'])}</td><td colspan='2' class='q'>{e(ln['lead_time_note'])}</td></tr></table>")
        m = ln["money"]
        out.append(f"<h3>{e(tx['money'])}</h3>")
        if m["per_good_part"] is None:
            out.append(f"<p>{e(tx['no_tariffs'])}</p>")
        else:
            cur = e(m["currency"])
            out.append(f"<table><tr><td>{e(tx['per_part'])}</td><td data-money='per_part'>{m['per_good_part']:,.2f} {cur}"
                       f"</td></tr><tr><td>{e(tx['per_month'])}</td><td data-money='per_month'>{m['per_month']:,.0f} {cur} "
                       f"({e(tx['utilisation'].format(h=m['utilisation_h_per_month'], parts=m['good_parts_per_month']))})"
                       f"</td></tr><tr><td>{e(tx['per_year'])}</td><td data-money='per_year'>{m['per_year']:,.0f} {cur}"
                       "</td></tr>")
            if m["payback_months"] is not None:
                out.append(f"<tr><td>{e(tx['payback'])}</td><td data-money='payback'>{m['payback_months']:.1f} "
                           f"{e(tx['months'])} ({m['investment']:,.0f} {cur})</td></tr>")
            out.append("</table>")
    out.append(f"<h2>{e(tx['changes'])}</h2>")
    if rep["changes"]:
        out.append("<table>" + "".join(f"<tr><td>{_local(c['ts'], tz)}</td><td>{e(str(c['what']))}</td>"
                                       f"<td>{e(str(c['by'] or ''))}</td><td>{e(str(c['detail']))}</td></tr>"
                                       for c in rep["changes"]) + "</table>")
    else:
        out.append(f"<p>{e(tx['no_changes'])}</p>")
    out.append("</body></html>")
    return "\n".join(out)


def value_to_pdf(rep: dict[str, Any], lang: str = "en") -> bytes:
    """The report as an A4 PDF (tables; the HTML has the charts)."""
    from fpdf import FPDF

    from axline.report.render import report_font

    tx = TEXT[lang]
    tz = rep["plant"]["timezone"]
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=14)
    pdf.add_font("report", "", report_font())
    pdf.add_page()
    pdf.set_font("report", size=15)
    name = rep["plant"]["name"].get(lang) or rep["plant"]["site"]
    pdf.multi_cell(0, 8, f"{tx['title']} — {name}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("report", size=9)
    pdf.multi_cell(0, 5, f"{tx['baseline']}: {_local(rep['baseline'][0], tz)} – {_local(rep['baseline'][1], tz)}   "
                         f"{tx['period']}: {_local(rep['period'][0], tz)} – {_local(rep['period'][1], tz)}",
                   new_x="LMARGIN", new_y="NEXT")
    for ln in rep["lines"]:
        pdf.set_font("report", size=12)
        pdf.multi_cell(0, 8, ln["name"].get(lang) or ln["id"], new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("report", size=8)
        with pdf.table(col_widths=(50, 30, 30, 60), first_row_as_headings=False) as table:
            table.row([tx["figure"], tx["before"], tx["after"], tx["change"]])
            for f in ln["figures"]:
                c = f["change"]
                ci = "–" if c["diff"] is None else f"{_fmt(c['diff'], f['unit'])} [{_fmt(c['lo'], f['unit'])}, " \
                                                   f"{_fmt(c['hi'], f['unit'])}]"
                table.row([tx[f["key"]], _fmt(f["before"]["mean"], f["unit"]), _fmt(f["after"]["mean"], f["unit"]), ci])
        m = ln["money"]
        pdf.ln(2)
        if m["per_good_part"] is not None:
            pdf.multi_cell(0, 5, f"{tx['per_part']}: {m['per_good_part']:,.2f} {m['currency']}; {tx['per_month']}: "
                                 f"{m['per_month']:,.0f}; {tx['per_year']}: {m['per_year']:,.0f}"
                           + (f"; {tx['payback']}: {m['payback_months']:.1f} {tx['months']}"
                              if m["payback_months"] is not None else ""), new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.multi_cell(0, 5, tx["no_tariffs"], new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def run_cli(args) -> int:
    """``axline report value``: build the report and write .html or .pdf."""
    from pathlib import Path

    from axline.historian import open_historian
    from axline.plant import load_plant

    plant = load_plant(args.config)
    baseline = parse_window(args.baseline, plant.timezone)
    period = parse_window(args.period, plant.timezone)
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".pdf"):
        raise i18n.error(ValueReportError, "err.value.bad_out", got=out.name)
    tariffs, investment = value_options(vars(args), lambda name: "--" + name.replace("_", "-"))
    with open_historian(plant.historian, base_dir=plant.base_dir) as h:
        rep = build_value_report(h, plant, baseline, period, tariffs, investment)
    lang = args.lang or ("ko" if plant.timezone == "Asia/Seoul" else "en")
    if out.suffix.lower() == ".pdf":
        out.write_bytes(value_to_pdf(rep, lang))
    else:
        out.write_text(value_to_html(rep, lang), encoding="utf-8")
    print(i18n.say("value.cli.written", file=out))
    return 0


def add_arguments(p) -> None:
    """Add the options of ``axline report value`` to ``p``."""
    p.add_argument("--config", required=True, help="plant file")
    p.add_argument("--baseline", required=True, help="FROM..TO, ISO dates or date-times (plant-local)")
    p.add_argument("--period", required=True, help="FROM..TO, the period to compare with the baseline")
    p.add_argument("--out", required=True, help="report.html or report.pdf")
    p.add_argument("--lang", choices=("ko", "en"), default=None, help="language (default: the plant's)")
    p.add_argument("--electricity-price", type=float, default=None, help="price per kWh")
    p.add_argument("--gas-price", type=float, default=None, help="price per Nm3 of gas")
    p.add_argument("--currency", default="KRW", help="currency of the prices (default KRW)")
    p.add_argument("--investment", type=float, default=None, help="what the kit and its rollout cost, for the payback")
