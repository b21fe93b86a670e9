"""The proof-of-value report from a 24-hour run of the demo's virtual factory (its plant file, its line,
changeovers included, no injected faults): 12 hours at the commissioning setpoints, then an approved
setpoint change, then 12 hours more. ``axline report value`` writes it as HTML and PDF, and every
figure the page shows matches an independent recomputation from the historian."""

from __future__ import annotations

import html
import re
from importlib.resources import files

import numpy as np
import pytest

from axline.cli import main as axline_main
from axline.historian import Event, open_historian
from axline.plant import load_plant
from axline.report.value import FIGURES, Tariffs, _fmt, build_value_report, parse_window
from axline.sim.line import VirtualLine

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a simulated day: minutes on a loaded machine

P = "changwon/plant1/line1"
A = f"{P}/furnace/furnace1"
T0 = 1_767_225_600 * 1_000_000_000  # 2026-01-01 09:00 Asia/Seoul
H = 3600 * 1_000_000_000
# plant-local windows: hours 1-12 before the change (the first hour warms up), hours 13-24 after it
BASELINE, PERIOD = "2026-01-01T10:00..2026-01-01T21:00", "2026-01-01T22:00..2026-01-02T09:00"


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory):
    folder = tmp_path_factory.mktemp("day")
    config = folder / "plant.yaml"
    config.write_text(files("axline.data").joinpath("demo_plant.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    plant = load_plant(config)
    kpi = plant.lines[0].kpi
    totals = kpi["parts_total"].rsplit("/", 1)[0]
    keep = {kpi[k] for k in ("state", "parts_total", "parts_good", "parts_rejected", "energy")} | {f"{totals}/gas"}
    keep |= {f"{A}/o2_setpoint", f"{A}/temp_setpoint"}
    line = VirtualLine(seed=7, start_ns=T0, faults=None, render_images=False)
    with open_historian(plant.historian, base_dir=plant.base_dir) as h:
        for minute in range(24 * 60):
            if minute == 12 * 60:  # the change an approver approved and the loop kept
                line.write(f"{A}/o2_setpoint", 3.2)
                line.write(f"{A}/temp_setpoint", 830.0)
                h.add_event(Event(ts=line.now_ns, kind="optimize", source=A, code="optimize.kept",
                                  message="proposal 1: kept", data={"user": "lee"}))
            b = line.step(60.0)
            mask = np.isin(np.asarray(b.paths, dtype=object)[b.idx], list(keep))  # what the report reads
            h.append(type(b)(b.paths, b.idx[mask], b.ts[mask], b.value[mask], b.quality[mask]))
        h.flush()
    return folder, config, plant


def _increase(h, tag, edges):
    """Per hour between ``edges``: the counter's last reading before each edge, differenced."""
    s = h.query([tag], int(edges[0]) - H, int(edges[-1]))[tag]
    k = np.searchsorted(s.ts, edges, side="left") - 1
    return np.diff(s.value[k])


def test_report_of_a_demo_day_matches_recomputation_in_html_and_pdf(demo_day):
    folder, config, plant = demo_day
    def report(out, lang: str) -> int:
        return axline_main(["report", "value", "--config", str(config), "--baseline", BASELINE, "--period", PERIOD,
                            "--out", str(out), "--lang", lang, "--gas-price", "900", "--electricity-price", "150",
                            "--investment", "20000000"])

    assert report(folder / "report.html", "en") == 0
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert report(folder / "report.pdf", "ko") == 0
    assert (folder / "report.pdf").read_bytes().startswith(b"%PDF")

    base, period = parse_window(BASELINE, plant.timezone), parse_window(PERIOD, plant.timezone)
    assert base == (T0 + H, T0 + 12 * H) and period == (T0 + 13 * H, T0 + 24 * H)
    kpi = plant.lines[0].kpi
    gas_tag = kpi["parts_total"].rsplit("/", 1)[0] + "/gas"
    with open_historian(plant.historian, base_dir=plant.base_dir) as h:
        rep = build_value_report(h, plant, base, period, Tariffs(150.0, 900.0), 20_000_000.0)
        recomputed = {}
        for (lo, hi), side in ((base, "before"), (period, "after")):
            edges = np.arange(lo, hi + 1, H)
            gas, good = _increase(h, gas_tag, edges), _increase(h, kpi["parts_good"], edges)
            total, kwh = _increase(h, kpi["parts_total"], edges), _increase(h, kpi["energy"], edges)
            recomputed[side] = {"gas_per_good": np.mean(gas / good), "good_per_hour": np.mean(good),
                                "fpy": np.mean(good / total), "energy_per_good": np.mean(kwh / good)}
    ln = rep["lines"][0]
    figs = {f["key"]: f for f in ln["figures"]}
    units = {key: unit for key, _group, unit, *_ in FIGURES}
    for side in ("before", "after"):
        for key, value in recomputed[side].items():
            assert figs[key][side]["mean"] == pytest.approx(value, rel=1e-9), (key, side)
    # the page shows exactly those figures, in the row of each
    for key in recomputed["before"]:
        row = re.search(rf"<tr data-figure='{key}'>(.*?)</tr>", page, re.S)
        assert row, key
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
        assert cells[1] == _fmt(recomputed["before"][key], units[key]), (key, cells)
        assert cells[2] == _fmt(recomputed["after"][key], units[key]), (key, cells)
    # less excess air and a cooler furnace: less gas per good part, and the change is listed
    assert recomputed["after"]["gas_per_good"] < recomputed["before"]["gas_per_good"]
    assert [c["what"] for c in rep["changes"]] == ["optimize.kept"]
    per_part = ((recomputed["before"]["gas_per_good"] - recomputed["after"]["gas_per_good"]) * 900.0
                + (recomputed["before"]["energy_per_good"] - recomputed["after"]["energy_per_good"]) * 150.0)
    assert ln["money"]["per_good_part"] == pytest.approx(per_part)
    assert ln["money"]["payback_months"] == pytest.approx(20_000_000.0 / ln["money"]["per_month"])
