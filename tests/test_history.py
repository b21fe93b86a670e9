"""History export for Excel / Power BI: CSV and .xlsx, buckets keep peaks, raw joins on time."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import numpy as np
import pytest

from _auth import add_user, client_as, login, make_security
from _fake_service import LINE, NS, T0, FakeService, open_test_historian
from axline.app.server import create_app
from axline.batch import Batch
from axline.history.export import ExportError, history_table, to_csv, to_xlsx

A, B = f"{LINE}/cnc/cnc1/spindle_temp", f"{LINE}/cnc/cnc1/power"


@pytest.fixture
def hist(tmp_path):
    h = open_test_historian(tmp_path)
    ts = T0 + np.arange(600, dtype=np.int64) * NS
    v = np.full(600, 20.0)
    v[333] = 95.0  # a one-second peak
    h.append(Batch.from_readings([(A, int(t), float(x), 0) for t, x in zip(ts, v, strict=True)]))
    h.append(Batch.from_readings([(B, int(t), 5.0, 0) for t in ts[::10]]))
    yield h
    h.close()


def test_buckets_keep_the_peak_and_csv_opens_in_excel(hist):
    tab = history_table(hist, [A, B], T0, T0 + 600 * NS, 60 * NS, "all", "Asia/Seoul", {A: "스핀들 온도"})
    assert tab.header[:5] == ["time", "time_utc", "스핀들 온도 (min)", "스핀들 온도 (mean)", "스핀들 온도 (max)"]
    assert len(tab) == 10 and np.nanmax(tab.columns[2]) == 95.0  # the max column kept the 1 s peak
    raw = to_csv(tab)
    assert raw.startswith("\ufeff".encode()) and b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][2] == "스핀들 온도 (min)" and len(rows) == 11
    assert rows[1][0] == "2026-05-29 05:26:40.000" and rows[1][1] == "2026-05-28T20:26:40.000Z"  # KST = UTC+9


def test_raw_export_joins_tags_on_time(hist):
    tab = history_table(hist, [A, B], T0, T0 + 20 * NS, None)
    assert len(tab) == 20
    assert np.isfinite(tab.columns[1]).sum() == 2  # B every 10 s, empty cells between
    with pytest.raises(ExportError, match="agg must be one of"):
        history_table(hist, [A], T0, T0 + NS, None, "median")


def test_xlsx_is_a_valid_workbook_with_date_cells(hist):
    tab = history_table(hist, [A], T0, T0 + 600 * NS, 300 * NS, "max", "UTC")
    data = to_xlsx(tab)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        assert {"[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml", "xl/styles.xml"} <= set(
            z.namelist())
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    # row 2: a date serial styled as a date, then the ISO time, then the bucket's max
    serial = float(re.search(r'<c r="A2" s="1"><v>([0-9.]+)</v>', sheet).group(1))
    assert serial == pytest.approx((T0 / NS) / 86400 + 25569, abs=1e-6)  # days since 1899-12-30
    assert re.search(r'<c r="C3"><v>95\.0</v>', sheet)


async def test_export_api_checks_input_and_is_audited(tmp_path):
    h = open_test_historian(tmp_path)
    svc = FakeService(h, tick_s=10, history_s=120)
    sec = make_security()
    add_user(sec, "park", "viewer")
    client = await client_as(create_app(svc, security=sec), None)
    await login(client, "park")
    try:
        base = f"/api/history/export?tags={A}&from={T0 - 120 * NS}&to={T0 + NS}"
        resp = await client.get(base + "&step=10000000000&format=xlsx")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
        assert "attachment" in resp.headers["Content-Disposition"]
        zipfile.ZipFile(io.BytesIO(await resp.read())).testzip()
        resp = await client.get(base + "&lang=ko")
        text = (await resp.read()).decode("utf-8-sig")
        assert resp.status == 200 and "CNC 가공 주축 온도 [degC]" in text.splitlines()[0]
        assert len(text.splitlines()) == 122  # raw: header + 121 readings
        audits = h.events(kinds=["audit"])
        assert [(e.code, e.data["user"], e.data["format"]) for e in reversed(audits)] == [
            ("history.export", "park", "xlsx"), ("history.export", "park", "csv")]
        for bad, status in ((f"/api/history/export?tags={A}", 400), (base + "&format=pdf", 400),
                            ("/api/history/export?tags=no/such&from=1&to=2", 404), (base + "&step=1", 400)):
            resp = await client.get(bad)
            assert resp.status == status, (bad, await resp.text())
            assert (await resp.json())["hint"]
        tags = await (await client.get("/api/history/tags")).json()
        assert any(t["path"] == A and t["stored"] for t in tags["tags"])
        # the explorer's series: buckets with min / max, sized by the readings they would read
        resp = await client.get(f"/api/history/series?tags={A},{B}&from={T0 - 120 * NS}&to={T0 + NS}"
                                f"&step={30 * NS}")
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert len(body["tags"][A]["t"]) == 5 and body["estimated_readings"] == 2 * 121
        assert all(lo <= m <= hi for lo, m, hi in zip(body["tags"][A]["min"], body["tags"][A]["mean"],
                                                       body["tags"][A]["max"], strict=True))
        year = 365 * 86400 * NS  # a year of two 1 s tags: about 63 million readings, refused before reading
        resp = await client.get(f"/api/history/series?tags={A},{B}&from={T0 - year}&to={T0}&step={86400 * NS}")
        assert resp.status == 400 and "readings" in (await resp.json())["error"]
        many = ",".join([A] * 1 + [f"{LINE}/cnc/cnc1/x{i}" for i in range(12)])
        assert (await client.get(f"/api/history/series?tags={many}&from=1&to=2")).status == 400
    finally:
        await client.close()
        h.close()
