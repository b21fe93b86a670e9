"""The inspection benchmark's protocol pieces: split, AUROC, scorer table, markdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from axline.bench.inspect import auroc, split_magnetic_tile


def test_split_follows_the_protocol(tmp_path: Path) -> None:
    free = tmp_path / "MT_Free" / "Imgs"
    free.mkdir(parents=True)
    names = [f"exp{i}_num_{n}.jpg" for i, n in enumerate([5, 3, 9, 1, 7, 2, 8, 4, 6, 0, 11])]
    for n in names:
        (free / n).write_bytes(b"x")
    crack = tmp_path / "MT_Crack" / "Imgs"
    crack.mkdir(parents=True)
    (crack / "c1.jpg").write_bytes(b"x")
    (crack / "c1.png").write_bytes(b"x")
    train, test_good, defects = split_magnetic_tile(tmp_path)
    ordered = sorted(names)
    assert [p.name for p in test_good] == [ordered[i] for i in range(0, len(ordered), 5)]
    assert [p.name for p in train] == [n for i, n in enumerate(ordered) if i % 5]
    assert [p.name for p in defects] == ["c1.jpg"]
    with pytest.raises(FileNotFoundError, match="MT_Free"):
        split_magnetic_tile(tmp_path / "nowhere")


def test_auroc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(2000) < 0.3
    scores = np.round(rng.normal(labels * 0.7, 1.0), 1)  # many ties
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="both positive and negative"):
        auroc([1, 1], [0.1, 0.2])


def test_page_lists_every_figure_against_goal_and_the_measured_baseline() -> None:
    from axline.bench.inspect import GOALS, render

    result = {
        "image_auroc": 0.9, "pixel_auroc": 0.8, "f1": 0.7, "false_reject_rate": 0.02,
        "latency_ms_p50": 12.0, "latency_ms_p99": 30.0, "latency_ms_mean": 13.0, "train_s": 40.0,
        "peak_rss_mb": 900.0, "bank_size": 100, "feature_dim": 152, "model_bytes": 3_000_000,
        "inference_peak_rss_mb": 200.0, "latency_runs": 50, "defect_recall": 0.5,
        "at_target_frr_0.05": {"f1": 0.8, "false_reject_rate": 0.05, "defect_recall": 0.7}, "latency_ms_min": 9.0,
        "latency_load_avg_before": [1.5, 1.0, 0.5], "latency_load_avg_after": [1.75, 1.0, 0.5],
        "fewshot": {"10": 0.6, "50": 0.7}, "goals": GOALS,
        "baselines": {"padim_same_features": {"image_auroc": 0.5, "pixel_auroc": 0.6}},
        "settings": {"target_frr": 0.01}, "machine": {"cpu": "x86_64", "cores": 2},
        "date": "2026-01-01T00:00:00+00:00", "command": "axline bench inspect", "wall_s": 1.0,
    }
    text = render(result)
    assert "| image AUROC | 0.900 | 0.985 | 0.500 |" in text
    assert "| latency p50 (ms) | 12.0 | 20.0 |  |" in text
    assert "| 50 | 0.700 | — |" in text
    assert "1.50 / 1.00 / 0.50" in text and "1.75 / 1.00 / 0.50" in text
    assert "latency p50 ≤ 20.0 ms: met" in text and "image AUROC ≥ 0.985: NOT met" in text


def test_page_shows_every_scorer_and_marks_the_shipped_one() -> None:
    from axline.bench.inspect import GOALS, render

    result = {
        "image_auroc": 0.96, "pixel_auroc": 0.8, "f1": 0.7, "false_reject_rate": 0.02,
        "latency_ms_p50": 12.0, "latency_ms_p99": 30.0, "latency_ms_mean": 13.0, "train_s": 40.0,
        "peak_rss_mb": 900.0, "bank_size": 0, "feature_dim": 152, "model_bytes": 3_000_000,
        "inference_peak_rss_mb": 200.0, "latency_runs": 50, "defect_recall": 0.5,
        "at_target_frr_0.05": {"f1": 0.8, "false_reject_rate": 0.05, "defect_recall": 0.7}, "latency_ms_min": 9.0,
        "fewshot": {"10": 0.6}, "goals": GOALS, "baselines": {}, "scorer": "gaussian",
        "scorers": {"nn": {"validation_auroc": 0.87, "image_auroc": 0.95, "pixel_auroc": 0.80},
                    "gaussian": {"validation_auroc": 0.89, "image_auroc": 0.965, "pixel_auroc": 0.81}},
        "settings": {"target_frr": 0.01}, "machine": {"cpu": "x86_64", "cores": 2},
        "date": "2026-01-01T00:00:00+00:00", "command": "axline bench inspect", "wall_s": 1.0,
    }
    text = render(result)
    assert "| Gaussian per patch position (PaDiM-style) (shipped) | 0.890 | 0.965 | 0.810 |" in text
    assert "| nearest-neighbour memory bank (PatchCore-style) | 0.870 | 0.950 | 0.800 |" in text
    assert "| image AUROC | 0.960 | 0.985 |" in text and "PaDiM-style (same features" not in text
    assert "| backbone |" not in text  # a run without the backbone comparison shows no such table
    result["backbones"] = {
        "lite0": {"shipped": True, "scorer": "gaussian", "validation_auroc": 0.89, "image_auroc": 0.965,
                  "pixel_auroc": 0.81, "feature_dim": 152, "train_s": 30.0, "latency_ms_p50": 12.0,
                  "latency_ms_p99": 30.0},
        "lite2": {"scorer": "combined", "validation_auroc": 0.91, "image_auroc": 0.97, "pixel_auroc": 0.82,
                  "feature_dim": 168, "train_s": 50.0, "latency_ms_p50": 21.5, "latency_ms_p99": 40.3},
    }
    text = render(result)
    assert "| EfficientNet-Lite0 (shipped) | 152 | gaussian | 0.890 | 0.965 | 0.810 | 12.0 | 30.0 | 30.0 |" in text
    assert ("| EfficientNet-Lite2 (deeper and wider) | 168 | combined | 0.910 | 0.970 | 0.820 | 21.5 | 40.3 | 50.0 |"
            in text)


def test_backbone_comparison_trains_every_other_variant(tmp_path: Path) -> None:
    from PIL import Image

    from axline.bench.inspect.backbones import _compare_backbones

    rng = np.random.default_rng(0)
    paths = []
    for i in range(8):
        img = np.clip(120 + rng.normal(0, 6, (64, 64)), 0, 255).astype(np.uint8)
        if i >= 6:  # the last two are defects, with their masks beside them
            img[20:28, 8:56] = 255
            mask = np.zeros((64, 64), np.uint8)
            mask[20:28, 8:56] = 255
            Image.fromarray(mask).save(tmp_path / f"{i}.png")
        Image.fromarray(img).save(tmp_path / f"{i}.jpg")
        paths.append(tmp_path / f"{i}.jpg")
    train, test = paths[:5], paths[5:]
    labels = np.array([False, True, True])
    shipped = {"shipped": True, "scorer": "nn", "validation_auroc": 1.0}
    out = _compare_backbones(train, test, labels, shipped, tmp_path, 10, 4, lambda m: None, size=64)
    assert list(out) == ["lite0", "lite1", "lite2"] and out["lite2"] is shipped  # the inspector's default
    for name, dims in (("lite0", 40 + 112), ("lite1", 40 + 112)):
        v = out[name]
        assert v["feature_dim"] == dims and v["scorer"] in ("nn", "gaussian", "combined")
        assert 0.0 <= v["validation_auroc"] <= 1.0 and v["image_auroc"] == 1.0
        assert 0.5 < v["pixel_auroc"] <= 1.0 and v["latency_ms_p99"] >= v["latency_ms_p50"] > 0


def test_the_defect_types_section_gives_the_held_out_half_after_the_method() -> None:
    from axline.bench.inspect.defect_types import method_text
    from axline.bench.inspect.page import render_types

    t = {"per_type": {"A": 3, "B": 2}, "draws": 2, "accuracy": {"1": 0.5, "5": 0.8},
         "accuracy_sd": {"1": 0.1, "5": 0.05}, "macro_f1": {"1": 0.4, "5": 0.7}, "unknown_rate": {"1": 0.0, "5": 0.1},
         "accuracy_answered": {"1": 0.5, "5": 0.85}, "accuracy_held_out_half": {"1": 0.45, "5": 0.75},
         "method": method_text()}
    text = render_types({"defect_types": t})
    table, rest = text.split("\n\n", 1)
    assert all(line.startswith("|") and line.endswith("|") for line in table.splitlines())
    assert "self-training" in rest and rest.endswith("0.450 at k = 1, 0.750 at k = 5.")
