"""Render a shift report (the JSON kept in the event log) as HTML or PDF, in Korean or English (texts
from the catalog, keys ``report.*``).

HTML is a standalone page (its style sheet from /static/report.css, so the dashboard's content
security policy holds). PDF is written with fpdf2 and a TrueType font that has Hangul (NanumGothic
from Debian's ``fonts-nanum``; ``AXLINE_REPORT_FONT`` names another .ttf).
"""

from __future__ import annotations

import html
import os
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from axline import i18n

NS = 1_000_000_000
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
    "/usr/share/fonts/truetype/nanum/NanumBarunGothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "C:/Windows/Fonts/malgun.ttf",
)

class Renderer:
    """Text, names, numbers and times of one report in one language."""

    def __init__(self, report: dict[str, Any], lang: str) -> None:
        if lang not in i18n.LANGS:
            raise ValueError(f"language must be one of {', '.join(i18n.LANGS)}, got {lang!r}")
        self.r = report
        self.lang = lang
        self.zone = ZoneInfo(report.get("timezone", "UTC"))

    def t(self, key: str, **kw: Any) -> str:
        """The report text ``key`` in the report's language, placeholders filled from ``kw``."""
        return i18n.text(f"report.{key}", self.lang, **kw) if i18n.has(f"report.{key}") else key

    def pick(self, names: Any, fallback: str = "") -> str:
        """A ``{en, ko}`` name in the report's language (``fallback`` when missing)."""
        if isinstance(names, dict):
            return names.get(self.lang) or names.get("en") or fallback
        return names or fallback

    def name(self, path: str) -> str:
        """The display name of a tag or asset path (asset name first for a tag)."""
        n = self.r.get("names", {}).get(path)
        if n is None:
            return path
        asset = path.rsplit("/", 1)[0]
        if asset in self.r.get("names", {}) and asset != path and path.count("/") > 4:
            return f"{self.pick(self.r['names'][asset], asset)} {self.pick(n, path)}"
        return self.pick(n, path)

    def time(self, ns: int | None, date: bool = False) -> str:
        """Plant-time ``HH:MM`` (with the date when ``date``) of ``ns``; a dash for ``None``."""
        if ns is None:
            return "–"
        d = datetime.fromtimestamp(ns / NS, tz=self.zone)
        return d.strftime("%Y-%m-%d %H:%M" if date else "%H:%M")

    @staticmethod
    def pct(x: float | None) -> str:
        """A fraction as a percentage with one decimal; a dash for ``None``."""
        return "–" if x is None else f"{100 * x:.1f}%"

    @staticmethod
    def num(x: float | None, d: int = 1) -> str:
        """A number with ``d`` decimals; a dash for ``None``."""
        return "–" if x is None else f"{x:.{d}f}"

    def alarm_text(self, a: dict[str, Any]) -> str:
        """What an alarm of the report was about, in words."""
        d = a.get("data") or {}
        what = a.get("message") or a.get("code")
        if a["code"].startswith("spc.rule"):
            rule = self.t(f"code.{a['code']}") if i18n.has(f"report.code.{a['code']}") else f"SPC {d.get('rule')}"
            value = f" ({self.num(d.get('value'), 4)})" if isinstance(d.get("value"), int | float) else ""
            what = f"{self.name(d['tag'])}: {rule}{value}" if d.get("tag") else f"{rule}{value}"
        elif i18n.has(f"report.code.{a['code']}"):
            top = d.get("top") or d.get("signal") or ""
            what = self.t(f"code.{a['code']}", top=self.pick(self.r.get("names", {}).get(f"{a['source']}/{top}"), top))
        return f"{self.name(a['source'])} — {what}"

    def action_text(self, a: dict[str, Any]) -> str:
        """What was done about an alarm: acknowledged, shelved, notes."""
        parts = []
        if a.get("ack"):
            ack = a["ack"]
            parts.append(self.t("acked", user=ack.get("user", "?")) + (f": {ack['note']}" if ack.get("note") else ""))
        if a.get("shelve") and a["shelve"].get("until"):
            sh = a["shelve"]
            parts.append(self.t("shelved", user=sh.get("user", "?"), until=self.time(sh["until"]),
                                reason=sh.get("reason", "")))
        parts += [f"{n.get('user', '?')}: {n.get('note', '')}" for n in a.get("notes") or []]
        return " · ".join(parts) or "–"

    # -- the sections as rows -------------------------------------------------------------------
    def header(self) -> list[tuple[str, str]]:
        """The report's header rows: line, shift, period, generated."""
        r = self.r
        period = f"{self.time(r['from'], True)} – {self.time(r['to'], True)}"
        if not r.get("complete"):
            period += f" ({self.t('in_progress')})"
        gen = self.time(r["generated"], True) + (f" · {self.t('by')} {r['user']}" if r.get("user") else "")
        return [(self.t("line"), self.pick(r.get("line_name"), r["line"])), (self.t("shift"), r.get("shift") or "–"),
                (self.t("period"), period), (self.t("generated"), gen)]

    def kpi_rows(self) -> list[tuple[str, str]]:
        """OEE, its three factors and the part counts."""
        k = self.r["kpi"]
        return [(self.t("oee"), self.pct(k.get("oee"))), (self.t("availability"), self.pct(k.get("availability"))),
                (self.t("performance"), self.pct(k.get("performance"))), (self.t("quality"), self.pct(k.get("quality"))),
                (self.t("parts"), f"{k.get('parts_total', 0)} ({self.t('good')} {k.get('parts_good', 0)}, "
                                  f"{self.t('rejected')} {k.get('parts_rejected', 0)})")]

    def loss_rows(self) -> list[list[str]]:
        """Minutes lost per loss kind."""
        losses = self.r["kpi"].get("losses_min") or {}
        return [[self.t(f"loss.{k}"), self.num(v)] for k, v in losses.items()]

    def downtime_rows(self) -> list[list[str]]:
        """Downtime per asset and state: minutes and stops."""
        return [[self.pick(d.get("asset_name"), d["asset"]), self.t(f"state.{d['state']}"), self.num(d["minutes"]),
                 str(d["stops"])] for d in self.r["downtime"]]

    def alarm_rows(self) -> list[list[str]]:
        """The shift's alarms: time, priority, what, what was done."""
        return [[self.time(a["ts"]), self.t(f"prio.{a['priority']}"), self.alarm_text(a), self.action_text(a)]
                for a in self.r["alarms"]["items"]]

    def reject_rows(self) -> list[list[str]]:
        """Rejected parts per kind and source."""
        return [[self.t("out_of_spec") if x["type"] == "out_of_spec" else x["type"], self.name(x["source"]),
                 str(x["count"])] for x in self.r["rejects"]]

    def quality_rows(self) -> list[list[str]]:
        """Per quality tag: count, mean, Cpk and out-of-spec readings."""
        return [[self.name(q["tag"]), str(q["n"]), self.num(q["mean"], 4), self.num(q["cpk"], 2), str(q["out_of_spec"])]
                for q in self.r["quality"]]

    def open_rows(self) -> list[list[str]]:
        """Alarms still open at the end of the shift."""
        return [[self.time(a["ts"], True), self.t(f"astate.{a['state']}"), self.alarm_text(a), self.action_text(a)]
                for a in self.r["open_items"]]

    def sections(self) -> list[tuple[str, list[str], list[list[str]], str]]:
        """(title, column heads, rows, note) of each table section after the KPIs."""
        t = self.t
        a = self.r["alarms"]
        return [
            (t("losses"), ["", t("minutes")], self.loss_rows(), ""),
            (t("downtime"), [t("station"), t("state"), t("minutes"), t("stops")], self.downtime_rows(), ""),
            (t("alarms"), [t("time"), t("priority"), t("alarm"), t("action")], self.alarm_rows(),
             t("alarms_summary", total=a["total"], ack=a["acknowledged"], sup=a["suppressed"])),
            (t("rejects"), [t("type"), t("source"), t("count")], self.reject_rows(), ""),
            (t("quality_h"), ["", "n", t("mean"), t("cpk"), t("oos")], self.quality_rows(), ""),
            (t("open"), [t("time"), t("state"), t("alarm"), t("action")], self.open_rows(), ""),
        ]


def to_html(report: dict[str, Any], lang: str) -> str:
    """The report as a standalone HTML page."""
    rd = Renderer(report, lang)
    e = html.escape
    out = [f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(rd.t('title'))} — {e(rd.pick(report.get('line_name'), report['line']))}</title>",
           '<link rel="stylesheet" href="/static/report.css"></head><body class="report">',
           f'<h1>{e(rd.t("title"))}</h1><p class="plant">{e(rd.pick(report.get("plant_name"), ""))}</p>',
           '<table class="meta">', *(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rd.header()), "</table>",
           f'<h2>{e(rd.t("kpi"))}</h2><div class="kpis">',
           *(f'<div class="kpi" data-kpi="{i}"><div class="k">{e(k)}</div><div class="v">{e(v)}</div></div>'
             for i, (k, v) in enumerate(rd.kpi_rows())), "</div>"]
    for i, (title, head, rows, note) in enumerate(rd.sections()):
        out.append(f'<section data-section="{i}"><h2>{e(title)}</h2>')
        if note:
            out.append(f'<p class="note">{e(note)}</p>')
        if rows:
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</table>")
        else:
            out.append(f'<p class="none">{e(rd.t("none"))}</p>')
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def report_font() -> str:
    """A TrueType font with Hangul for the PDF (``AXLINE_REPORT_FONT`` or a known system font)."""
    env = os.environ.get("AXLINE_REPORT_FONT")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"AXLINE_REPORT_FONT={env} does not exist; point it to a .ttf with Hangul")
        return env
    for p in FONT_CANDIDATES:
        if Path(p).is_file():
            return p
    raise FileNotFoundError("no font with Hangul for the PDF report: install fonts-nanum "
                            "(apt-get install fonts-nanum) or set AXLINE_REPORT_FONT to a .ttf file")


def to_pdf(report: dict[str, Any], lang: str) -> bytes:
    """The report as an A4 PDF."""
    import logging

    from fpdf import FPDF, FontFace
    from fpdf.enums import XPos, YPos

    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)  # tables it drops are not needed in a PDF
    rd = Renderer(report, lang)
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=14)
    pdf.add_font("report", "", report_font())
    pdf.set_title(rd.t("title"))
    pdf.set_creator("axline")
    pdf.alias_nb_pages()
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def heading(text: str, size: float = 12) -> None:
        pdf.ln(2)
        pdf.set_font("report", size=size)
        pdf.set_text_color(17, 24, 39)
        pdf.cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(209, 213, 219)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(1)

    heading(rd.t("title"), 16)
    pdf.set_font("report", size=9)
    for k, v in rd.header():
        pdf.cell(28, 5, k)
        pdf.cell(0, 5, v, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    heading(rd.t("kpi"))
    pdf.set_font("report", size=9)
    for k, v in rd.kpi_rows():
        pdf.cell(40, 5, k)
        pdf.cell(0, 5, v, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for title, head, rows, note in rd.sections():
        heading(title)
        pdf.set_font("report", size=8)
        if note:
            pdf.multi_cell(0, 4.5, note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if not rows:
            pdf.cell(0, 5, rd.t("none"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            continue
        n = len(head)
        if n == 4:
            widths = (0.14, 0.14, 0.42, 0.30)
        elif n == 5:
            widths = (0.44, 0.1, 0.16, 0.12, 0.18)
        else:
            widths = tuple(1 / n for _ in range(n))
        with pdf.table(col_widths=widths, width=width, text_align="LEFT", line_height=4.2,
                       first_row_as_headings=True,
                       headings_style=FontFace(emphasis=None, fill_color=(243, 244, 246))) as table:
            table.row(head)
            for r in rows:
                table.row(r)
    return bytes(pdf.output())
