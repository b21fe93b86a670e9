"""History as a table for Excel, Power BI and friends: CSV (UTF-8 with BOM, CRLF, so Excel opens
Korean text and columns right) and a minimal Office Open XML workbook (.xlsx) with real date cells.

A table is one row per time: ``time`` (plant-local), ``time_utc`` (ISO 8601), then one column per
tag and aggregate. Bucketed exports keep the decimation of the explorer (min / mean / max per
bucket); raw exports join every tag's readings on their timestamps.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import numpy as np

from axline import i18n
from axline.historian.base import Historian

AGGREGATES = ("mean", "min", "max", "last", "all")
MAX_ROWS = 200_000
MAX_CELLS = 2_000_000
# the most readings one history request may make the historian read (estimated from the tags'
# sampling periods before anything is read): 30 days of 10 tags at one reading a second fits
MAX_READINGS = 30_000_000


def estimate_readings(plant: dict, tags: Sequence[str], start: int, end: int) -> int:
    """Readings ``tags`` hold over [start, end) by their sampling periods in the plant (1 s if unknown)."""
    period = {t["path"]: float(t.get("period_s") or 1.0) for ln in plant.get("lines", [])
              for a in ln.get("assets", []) for t in a.get("tags", [])}
    span_s = (end - start) / 1e9
    return int(sum(span_s / max(period.get(p, 1.0), 1e-3) for p in tags))


def check_size(plant: dict, tags: Sequence[str], start: int, end: int) -> int:
    """The estimated readings, or ExportError when the request would read too many."""
    n = estimate_readings(plant, tags, start, end)
    if n > MAX_READINGS:
        raise i18n.error(ExportError, "export.too_many_readings", n=len(tags), readings=f"{n:,}", max=f"{MAX_READINGS:,}")
    return n


def bucket_series(historian: Historian, tags: Sequence[str], start: int, end: int, step: int) -> dict[str, Any]:
    """min / max / mean / last per bucket for each tag, read one tag at a time (memory stays that of
    one tag's readings), as lists ready for JSON (None for NaN)."""
    out: dict[str, Any] = {}
    for p in tags:
        b = historian.query_buckets([p], start, end, step).get(p)
        if b is None or len(b) == 0:
            out[p] = {"t": [], "min": [], "max": [], "mean": [], "last": []}
            continue

        def col(a: np.ndarray) -> list:
            a = np.asarray(a, dtype=np.float64)
            o = a.astype(object)
            o[~np.isfinite(a)] = None
            return o.tolist()

        out[p] = {"t": (np.asarray(b.start, dtype=np.int64) // 1_000_000).tolist(), "min": col(b.min),
                  "max": col(b.max), "mean": col(b.mean), "last": col(b.last)}
    return out
EXCEL_EPOCH = datetime(1899, 12, 30)


class ExportError(ValueError):
    """The export cannot be made as asked; the message says what to change."""


@dataclass
class Table:
    """Readings of several tags on one time axis: header, timestamps, one column per tag, time zone."""
    header: list[str]
    ts: np.ndarray  # int64 ns, UTC
    columns: list[np.ndarray]  # float64, NaN = empty
    tz: str

    def __len__(self) -> int:
        return len(self.ts)


def history_table(historian: Historian, tags: Sequence[str], start: int, end: int, step: int | None,
                  agg: str = "mean", tz: str = "UTC", names: dict[str, str] | None = None) -> Table:
    """The table of ``tags`` over [start, end): buckets of ``step`` ns (``agg`` per bucket, ``all``
    for min / mean / max), or raw readings joined on time when ``step`` is None."""
    if agg not in AGGREGATES:
        raise i18n.error(ExportError, "export.bad_agg", aggregates=", ".join(AGGREGATES), agg=repr(agg))
    if not tags:
        raise i18n.error(ExportError, "export.no_tags")
    names = names or {}
    header: list[str] = []
    if step is None:
        series = historian.query(list(tags), start, end)
        total = sum(len(s) for s in series.values())
        if total > MAX_ROWS:
            raise i18n.error(ExportError, "export.too_many_raw", total=total, max=MAX_ROWS)
        all_ts = np.unique(np.concatenate([np.asarray(s.ts, dtype=np.int64) for s in series.values()]
                                          or [np.zeros(0, np.int64)]))
        cols = []
        for p in tags:
            s = series.get(p)
            col = np.full(len(all_ts), np.nan)
            if s is not None and len(s):
                good = np.asarray(s.quality) == 0
                col[np.searchsorted(all_ts, np.asarray(s.ts)[good])] = np.asarray(s.value)[good]
            cols.append(col)
            header.append(names.get(p, p))
        return Table(["time", "time_utc", *header], all_ts, cols, tz)
    n_buckets = -(-(end - start) // step)
    per_tag = 3 if agg == "all" else 1
    if n_buckets > MAX_ROWS or n_buckets * len(tags) * per_tag > MAX_CELLS:
        raise i18n.error(ExportError, "export.too_many_buckets", buckets=n_buckets, n=len(tags),
                         min_step=-(-(end - start) // MAX_ROWS))
    buckets = {p: historian.query_buckets([p], start, end, step).get(p) for p in tags}  # one tag at a time
    grid = start + np.arange(n_buckets, dtype=np.int64) * step
    cols = []
    for p in tags:
        b = buckets.get(p)
        wanted = ("min", "mean", "max") if agg == "all" else (agg,)
        for a in wanted:
            col = np.full(n_buckets, np.nan)
            if b is not None and len(b):
                col[(np.asarray(b.start, dtype=np.int64) - start) // step] = np.asarray(getattr(b, a), dtype=float)
            cols.append(col)
            label = names.get(p, p)
            header.append(f"{label} ({a})" if agg == "all" else label)
    keep = np.zeros(n_buckets, dtype=bool)
    for c in cols:
        keep |= np.isfinite(c)
    return Table(["time", "time_utc", *header], grid[keep], [c[keep] for c in cols], tz)


def _times(table: Table) -> tuple[list[str], list[str], list[datetime]]:
    zone = ZoneInfo(table.tz)
    local, utc, naive = [], [], []
    for t in table.ts.tolist():
        d = datetime.fromtimestamp(t / 1e9, tz=UTC)
        loc = d.astimezone(zone)
        local.append(loc.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
        utc.append(d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
        naive.append(loc.replace(tzinfo=None))
    return local, utc, naive


def _fmt(v: float) -> str:
    return "" if not math.isfinite(v) else repr(float(v))


def to_csv(table: Table) -> bytes:
    """CSV for Excel: UTF-8 with a byte-order mark, CRLF line ends, empty cells for missing values."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(table.header)
    local, utc, _ = _times(table)
    rows = zip(*[c.tolist() for c in table.columns], strict=True) if table.columns else [()] * len(table)
    for i, vals in enumerate(rows):
        w.writerow([local[i], utc[i], *(_fmt(v) for v in vals)])
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


def _col(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def to_xlsx(table: Table, sheet: str = "history") -> bytes:
    """A one-sheet workbook: a header row, plant-local times as Excel date cells, numbers as numbers."""
    local, utc, naive = _times(table)
    rows = [f'<row r="1">{"".join(_inline(0, j, h) for j, h in enumerate(table.header))}</row>']
    cols = [c.tolist() for c in table.columns]
    for i in range(len(table)):
        r = i + 2
        serial = (naive[i] - EXCEL_EPOCH).total_seconds() / 86400.0
        cells = [f'<c r="A{r}" s="1"><v>{serial!r}</v></c>', _inline(i + 1, 1, utc[i])]
        for j, c in enumerate(cols):
            v = c[i]
            if math.isfinite(v):
                cells.append(f'<c r="{_col(j + 2)}{r}"><v>{float(v)!r}</v></c>')
        rows.append(f'<row r="{r}">{"".join(cells)}</row>')
    sheet_xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" '
        'state="frozen"/></sheetView></sheetViews>'
        '<cols><col min="1" max="1" width="22" customWidth="1"/><col min="2" max="2" width="26" customWidth="1"/>'
        '</cols>'
        f'<sheetData>{"".join(rows)}</sheetData></worksheet>')
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '</Types>'),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="xl/workbook.xml"/></Relationships>'),
        "xl/workbook.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            f'<sheets><sheet name="{escape(sheet[:31])}" sheetId="1" r:id="rId1"/></sheets></workbook>'),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'worksheet" Target="worksheets/sheet1.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'styles" Target="styles.xml"/></Relationships>'),
        "xl/styles.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>'
            '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
            '<fills count="2"><fill><patternFill patternType="none"/></fill>'
            '<fill><patternFill patternType="gray125"/></fill></fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
            '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
            '</styleSheet>'),
        "xl/worksheets/sheet1.xml": sheet_xml,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return out.getvalue()


def _inline(row0: int, col0: int, text: Any) -> str:
    return (f'<c r="{_col(col0)}{row0 + 1}" t="inlineStr"><is><t xml:space="preserve">'
            f'{escape(str(text))}</t></is></c>')
