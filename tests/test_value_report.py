"""The proof-of-value report: figures from the historian that match an independent recomputation."""

from __future__ import annotations

import numpy as np
import pytest

from axline.demo import demo_plant
from axline.historian import Event, open_historian
from axline.report.value import (
    Tariffs,
    ValueReportError,
    build_value_report,
    parse_window,
    value_options,
    value_to_html,
    value_to_pdf,
)
from axline.sim.line import VirtualLine

P = "changwon/plant1/line1"
O2 = f"{P}/furnace/furnace1/o2_setpoint"
T0 = 1_767_225_600 * 1_000_000_000
H = 3600 * 1_000_000_000


@pytest.fixture(scope="module")
def plant_and_history(tmp_path_factory):
    folder = tmp_path_factory.mktemp("value")
    plant = demo_plant(folder, "opc.tcp://127.0.0.1:1/unused")
    h = open_historian(plant.historian, base_dir=plant.base_dir)
    line = VirtualLine(seed=31, start_ns=T0, faults=None, render_images=False, changeover_interval_s=None)
    for _ in range(3 * 60):  # 3 h at the commissioning setpoints
        h.append(line.step(60.0))
    line.write(O2, 3.4)
    h.add_event(Event(ts=line.now_ns, kind="optimize", source=f"{P}/furnace/furnace1", code="optimize.kept",
                      message="proposal 1: kept", data={"user": "lee"}))
    for _ in range(3 * 60):  # 3 h with less excess air
        h.append(line.step(60.0))
    h.flush()
    yield plant, h
    h.close()


def _counter_at_edges(h, tag, edges):
    s = h.query([tag], int(edges[0]) - H, int(edges[-1]))[tag]
    k = np.searchsorted(s.ts, edges, side="left") - 1  # last reading before each edge
    return s.value[k]


def test_figures_match_an_independent_recomputation(plant_and_history):
    plant, h = plant_and_history
    base, period = (T0 + H, T0 + 3 * H), (T0 + 4 * H, T0 + 6 * H)
    rep = build_value_report(h, plant, base, period, Tariffs(electricity_per_kwh=150.0, gas_per_nm3=900.0),
                             investment=20_000_000.0)
    ln = rep["lines"][0]
    figs = {f["key"]: f for f in ln["figures"]}
    for (lo, hi), side in ((base, "before"), (period, "after")):
        edges = np.arange(lo, hi + 1, H)
        gas = np.diff(_counter_at_edges(h, f"{P}/line/totals/gas", edges))
        good = np.diff(_counter_at_edges(h, f"{P}/line/totals/parts_good", edges))
        total = np.diff(_counter_at_edges(h, f"{P}/line/totals/parts_total", edges))
        assert figs["gas_per_good"][side]["mean"] == pytest.approx(np.mean(gas / good), rel=1e-9)
        assert figs["good_per_hour"][side]["mean"] == pytest.approx(np.mean(good), rel=1e-9)
        assert figs["fpy"][side]["mean"] == pytest.approx(np.mean(good / total), rel=1e-9)
        assert ln["totals"][side]["parts_good"] == pytest.approx(good.sum())
    g = figs["gas_per_good"]
    assert g["after"]["mean"] < g["before"]["mean"]  # less excess air, less gas per part
    assert g["before"]["lo"] < g["before"]["mean"] < g["before"]["hi"]
    c = g["change"]
    assert c["diff"] == pytest.approx(g["after"]["mean"] - g["before"]["mean"]) and c["lo"] < c["diff"] < c["hi"]
    m = ln["money"]
    gas_saving = (g["before"]["mean"] - g["after"]["mean"]) * 900.0
    kwh = figs["energy_per_good"]
    per_part = gas_saving + (kwh["before"]["mean"] - kwh["after"]["mean"]) * 150.0
    assert m["per_good_part"] == pytest.approx(per_part)
    month_parts = ln["totals"]["after"]["throughput_per_h"] * 24 * 365.25 / 12  # three 8-hour shifts
    assert m["per_month"] == pytest.approx(per_part * month_parts)
    assert m["per_year"] == pytest.approx(12 * m["per_month"])
    assert m["payback_months"] == pytest.approx(20_000_000.0 / m["per_month"])
    assert [c["what"] for c in rep["changes"]] == ["optimize.kept"]


def test_renders_in_korean_and_english_html_and_pdf(plant_and_history):
    plant, h = plant_and_history
    rep = build_value_report(h, plant, (T0 + H, T0 + 3 * H), (T0 + 4 * H, T0 + 6 * H), Tariffs(gas_per_nm3=900.0))
    en, ko = value_to_html(rep, "en"), value_to_html(rep, "ko")
    assert "Gas per good part" in en and "increase of" in en and "<svg" in en
    assert "양품당 가스" in ko and "성과 보고서" in ko
    pdf = value_to_pdf(rep, "ko")
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


def test_bad_windows_say_what_to_do():
    with pytest.raises(ValueReportError, match="FROM..TO"):
        parse_window("2026-01-01", "Asia/Seoul")
    with pytest.raises(ValueReportError, match="ends before"):
        parse_window("2026-01-02..2026-01-01", "Asia/Seoul")
    a, b = parse_window("2026-01-01..2026-01-01T09:00", "Asia/Seoul")
    assert (b - a) == 9 * H


def test_money_options_read_alike_from_the_command_and_a_query():
    assert value_options({"gas_price": "900", "electricity_price": "", "currency": "usd"}) == \
        (Tariffs(None, 900.0, "USD"), None)
    assert value_options({"electricity_price": 150.0, "investment": 2e7, "currency": None}) == \
        (Tariffs(150.0, None, "KRW"), 2e7)
    with pytest.raises(ValueReportError, match="--gas-price must be a number") as e:
        value_options({"gas_price": -1.0}, lambda n: "--" + n.replace("_", "-"))
    assert e.value.key == "err.value.bad_number"
    for bad in ({"investment": "nan"}, {"gas_price": "lots"}, {"currency": "₩1"}):
        with pytest.raises(ValueReportError):
            value_options(bad)
    with pytest.raises(ValueReportError, match="shorter than one hour"):
        parse_window("2026-01-01T09:00..2026-01-01T09:30", "Asia/Seoul")
    with pytest.raises(ValueReportError, match="longer than 366 days"):
        parse_window("2024-01-01..2026-01-01", "Asia/Seoul")
