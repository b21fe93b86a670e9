"""Every page in benchmarks/ is what its `axline bench NAME` run wrote: rendered from its JSON."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import pytest

from axline.cli import BENCHES

ROOT = Path(__file__).resolve().parents[1] / "benchmarks"
#: the benchmarks this installation has (a harness module that is missing is not offered by the CLI)
PRESENT = {name: mod for name, (mod, _) in BENCHES.items() if importlib.util.find_spec(mod) is not None}
#: harnesses that do not yet write their page from their JSON (no ``render``): shown as expected failures
NO_RENDER = sorted(n for n, m in PRESENT.items() if not hasattr(importlib.import_module(m), "render"))


def test_benchmarks_folder_holds_only_json_and_page_pairs_of_known_benchmarks() -> None:
    names = {p.stem for p in ROOT.iterdir() if p.is_file()}
    assert names <= set(PRESENT), f"benchmark files of no `axline bench` command: {sorted(names - set(PRESENT))}"
    for name in names | (set(PRESENT) - set(NO_RENDER)):
        assert (ROOT / f"{name}.json").is_file() and (ROOT / f"{name}.md").is_file(), name
    assert {p.suffix for p in ROOT.iterdir() if p.is_file()} == {".json", ".md"}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason="its harness has no render(result) yet", strict=True))
    if n in NO_RENDER else n for n in sorted(PRESENT)])
def test_page_is_rendered_from_its_json(name: str) -> None:
    mod = importlib.import_module(PRESENT[name])
    assert callable(getattr(mod, "render", None)), f"{PRESENT[name]} must offer render(result) -> page text"
    result = json.loads((ROOT / f"{name}.json").read_text(encoding="utf-8"))
    assert result.get("benchmark") == name
    assert result["command"].startswith(f"axline bench {name}"), result["command"]
    assert len(result["load_avg_start"]) == 3 and len(result["load_avg_end"]) == 3
    page = (ROOT / f"{name}.md").read_text(encoding="utf-8")
    assert mod.render(result) == page, f"benchmarks/{name}.md differs from what its JSON renders to"


def test_skab_default_is_the_product_default_chosen_without_test_labels() -> None:
    from axline.monitor.defaults import DEFAULT

    r = json.loads((ROOT / "skab.json").read_text(encoding="utf-8"))
    sel = r["default_selection"]
    assert r["default_detector"] == DEFAULT.label()
    assert r["default_config"] == DEFAULT.as_dict()
    assert sel["default_is_selected"] and sel["selected_config"] == DEFAULT.as_dict()
    assert r["selected_on"].startswith("valve1")
    assert not set(sel["select_files"]) & set(sel["test_files"])
    assert all(f.startswith("valve1/") for f in sel["select_files"])


def test_skab_default_was_checked_on_other_drifting_streams_than_the_alarm_page_reports() -> None:
    from axline.bench.skab import MIN_FAULTS_CAUGHT

    r = json.loads((ROOT / "skab.json").read_text(encoding="utf-8"))
    a = json.loads((ROOT / "alarms.json").read_text(encoding="utf-8"))
    sel = r["default_selection"]
    chosen = next(c for c in sel["candidates"] if c["config"] == sel["selected_config"])
    d = chosen["drifting_selection"]
    assert d["seeds"] == sel["selection_stream_seeds"]
    assert not set(d["seeds"]) & set(a["streams"]["seeds"])
    assert d["families_within_budget"] and d["faults_caught"] >= MIN_FAULTS_CAUGHT * d["faults"]
    assert a["default_config"] == r["default_config"]


def test_cwru_and_inspect_carry_the_figures_the_harness_measured() -> None:
    c = json.loads((ROOT / "cwru.json").read_text(encoding="utf-8"))
    for key in ("detection_48k_auroc", "far_at_train_threshold", "diagnosis_accuracy", "protocol"):
        assert key in c, key
    assert all(f.endswith("_DE48") for f in c["detection"]["per_file"])
    assert c["diagnosis_accuracy"] == c["diagnosis"]["held_out_size"]["accuracy"]
    i = json.loads((ROOT / "inspect.json").read_text(encoding="utf-8"))
    for key in ("latency_ms_p50", "latency_ms_p99", "latency_load_avg_before", "latency_load_avg_after"):
        assert key in i, key
    assert i["latency_ms_p50"] <= i["latency_ms_p99"]
