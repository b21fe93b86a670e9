"""The Markdown page of `axline bench inspect`, rendered from its JSON."""

from __future__ import annotations

import json
from typing import Any


def _anchor_reason(result: dict[str, Any]) -> str:
    return result.get("baselines", {}).get("anomalib_patchcore", {}).get("reason", "not installed with this run")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _loads(v: Any) -> str:
    return " / ".join(f"{x:.2f}" for x in v) if v else "unknown"


def render_latency(r: dict[str, Any]) -> str:
    """One paragraph on the latency measurement, from the result's latency keys."""
    if "latency_threads" in r:
        return (f"The torch-free path (`Inspector.inspect`: preprocessing, ONNX backbone, the {r.get('scorer')} "
                f"scorer, stitched anomaly map) on 256 x 256 grey images, {r['latency_tiles']} tile, "
                f"{r['latency_threads']} threads (chosen by the inspector), in a separate process with torch "
                f"blocked: {r['latency_runs']} runs after {r.get('latency_warmup_runs', 10)} warm-up runs; p50 "
                f"{r['latency_ms_p50']:.1f} ms, p99 {r['latency_ms_p99']:.1f} ms, mean {r['latency_ms_mean']:.1f} "
                f"ms, fastest {r['latency_ms_min']:.1f} ms; inference process peak RSS "
                f"{r['inference_peak_rss_mb']:.0f} MB. Load average (1 / 5 / 15 min) just before the runs "
                f"{_loads(r.get('latency_load_avg_before'))}, just after {_loads(r.get('latency_load_avg_after'))}.")
    return (f"The torch-free ONNX path (`Inspector.inspect`: preprocessing, backbone, nearest-neighbour "
            f"search, anomaly map) on 256 x 256 grey images, batch 1, 2 threads, in a separate process "
            f"with torch blocked: {r['latency_runs']} runs after {r.get('latency_warmup_runs', 10)} warm-up "
            f"runs; p50 {r['latency_ms_p50']:.1f} ms, p99 {r['latency_ms_p99']:.1f} ms, mean "
            f"{r['latency_ms_mean']:.1f} ms, fastest {r['latency_ms_min']:.1f} ms; inference process peak RSS "
            f"{r['inference_peak_rss_mb']:.0f} MB. Load average (1 / 5 / 15 min) just before the runs "
            f"{_loads(r.get('latency_load_avg_before'))}, just after {_loads(r.get('latency_load_avg_after'))}.")


SCORER_NAMES = {"nn": "nearest-neighbour memory bank (PatchCore-style)",
                "gaussian": "Gaussian per patch position (PaDiM-style)",
                "combined": "mean of both (each divided by its held-out good scale)"}


def render_scorers(r: dict[str, Any]) -> str:
    """The scorer comparison table and how the shipped one was chosen."""
    rows = ["| scorer | validation AUROC | test image AUROC | test pixel AUROC |", "|---|---|---|---|"]
    for name, v in r["scorers"].items():
        mark = " (shipped)" if name == r.get("scorer") else ""
        rows.append(f"| {SCORER_NAMES.get(name, name)}{mark} | {_fmt(v.get('validation_auroc'))} | "
                    f"{_fmt(v.get('image_auroc'))} | {_fmt(v.get('pixel_auroc'))} |")
    text = "\n".join(rows) + (
        "\n\nValidation AUROC: held-out *training* goods (20 %, kept out of the statistics) against the same "
        "images with one synthetic defect each (a blob, a thin crack or a pasted patch); no test image and no "
        "real defect is used. Training with `scorer=\"auto\"` (the default) keeps the scorer with the highest "
        "validation AUROC; test AUROCs are measured on the same cached test features for every scorer.")
    if "backbones" in r:
        text += "\n\n" + render_backbones(r["backbones"])
    return text


BACKBONE_NAMES = {"lite0": "EfficientNet-Lite0", "lite1": "EfficientNet-Lite1 (deeper)",
                  "lite2": "EfficientNet-Lite2 (deeper and wider)"}


def render_backbones(b: dict[str, Any]) -> str:
    """One row per ImageNet backbone, each trained with the same settings on the same split."""
    rows = ["| backbone | dims | scorer chosen | validation AUROC | test image AUROC | test pixel AUROC | "
            "p50 (ms) | p99 (ms) | training (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, v in b.items():
        mark = " (shipped)" if v.get("shipped") else ""
        rows.append(f"| {BACKBONE_NAMES.get(name, name)}{mark} | {_fmt(v.get('feature_dim'))} | {v.get('scorer')} | "
                    f"{_fmt(v.get('validation_auroc'))} | {_fmt(v.get('image_auroc'))} | "
                    f"{_fmt(v.get('pixel_auroc'))} | {_fmt(v.get('latency_ms_p50'), 1)} | "
                    f"{_fmt(v.get('latency_ms_p99'), 1)} | {_fmt(v.get('train_s'), 1)} |")
    return "\n".join(rows) + (
        "\n\nBackbones: each ImageNet EfficientNet-Lite variant trained on the same training goods with the same "
        "settings, its scorer chosen on its own validation (the validation AUROC shown is the chosen scorer's); "
        "the default backbone stays unless a larger one wins on validation with the latency goals kept. Latency "
        "at 256 x 256 as above, each in its own process one after another (a shared machine makes them noisy).")


def render_long_parts(lp: dict[str, Any]) -> str:
    """Squashed against tiled on long parts."""
    rows = ["| inspection | canvas | tiles | scorer | image AUROC | training (s) |", "|---|---|---|---|---|---|"]
    for name, label in (("squashed", "whole part squashed to 256 x 256"),
                        ("tiled", "native aspect, tiles of 256 overlapping by 64 (smallest defect 16 px)")):
        v = lp[name]
        if name == "tiled" and v.get("tile_overlap") is not None:
            label = (f"native aspect, tiles of 256 {'overlapping by ' + str(v['tile_overlap']) if v['tile_overlap'] else 'abutting'}"
                     f" (smallest defect 16 px){', Gaussian ' + v['gaussian'] if v.get('gaussian') else ''}")
        rows.append(f"| {label} | {v['canvas'][0]} x {v['canvas'][1]} | {v['tiles']} | {v.get('scorer', lp['scorer'])} "
                    f"| {v['image_auroc']:.3f} | {_fmt(v.get('train_s'), 1)} |")
    if lp["scorer"] == "auto":
        how = ("scorer chosen by each model on its own validation (held-out training parts against the same parts "
               "with one synthetic defect each; validation AUROC " + "; ".join(
                   f"{n}: " + ", ".join(f"{k} {x:.3f}" for k, x in lp[n].get("validation_auroc", {}).items())
                   for n in ("squashed", "tiled")) + ")")
    else:
        how = f"scorer {lp['scorer']} (the one chosen on validation above)"
    tiling = ""
    rows_val = [r for r in lp["tiled"].get("tiling_validation") or [] if r.get("auroc") is not None]
    if rows_val:
        best: dict[str, float] = {}
        for r in rows_val:
            key = (f"{r['tiles']} tiles {'overlapping by ' + str(r['tile_overlap']) if r['tile_overlap'] else 'abutting'}"
                   f", {r['scorer']}" + (f" (Gaussian {r['gaussian']})" if r.get("gaussian") else ""))
            best[key] = r["auroc"]
        tiling = (" The tiled model's layout and Gaussian were chosen with the scorer on the same validation "
                  "(validation AUROC " + "; ".join(f"{k} {x:.3f}" for k, x in best.items()) + ").")
        if lp["tiled"].get("tile_overlap") == 0:
            tiling += (" Abutting tiles of 256 fall exactly on the seams between a part's images, so no tile "
                       "straddles two images; a part without such seams need not choose them.")
    return "\n".join(rows) + (f"\n\nParts: {lp['what']}. {lp['n_train']} training parts, {lp['n_test_good']} good "
                              f"and {lp['n_test_defect']} defective test parts; {how}. Image score: the worst "
                              f"tile's.{tiling}")


def render_latency_by_size(r: dict[str, Any]) -> str:
    """Latency per image as a function of image size and tiles."""
    rows = ["| image (w x h) | tiles | tiles per run | threads | p50 (ms) | p99 (ms) | mean (ms) | load before |",
            "|---|---|---|---|---|---|---|---|"]
    rows.append(f"| 256 x 256 | {r.get('latency_tiles', 1)} | {r.get('latency_batch', 1)} | "
                f"{r.get('latency_threads', 2)} | {r['latency_ms_p50']:.1f} | {r['latency_ms_p99']:.1f} | "
                f"{r['latency_ms_mean']:.1f} | {_loads(r.get('latency_load_avg_before'))} |")
    for size, v in r["latency_by_size"].items():
        w, h = size.split("x")
        rows.append(f"| {w} x {h} | {v['tiles']} | {v['batch']} | {v['threads']} | {v['p50']:.1f} | {v['p99']:.1f} | "
                    f"{v['mean']:.1f} | {_loads(v.get('load_avg_before'))} |")
    return "\n".join(rows) + (
        "\n\nEach size: a model trained on 24 training goods resized to it (tiles of 256 overlapping by 64, the "
        "shipped scorer), timed in a separate process with torch blocked; the inspector picks its threads (the "
        "machine's cores, at most 4) and runs all tiles of an image through the backbone together "
        "(\"tiles per run\", as the inspector reported it).")


def render_types(r: dict[str, Any]) -> str:
    """Accuracy and macro-F1 by labels per type (runs before the logistic classifier lack
    ``accuracy_answered``, runs before ``method`` are described as they ran)."""
    t = r["defect_types"]
    counts = ", ".join(f"{c} {n}" for c, n in t["per_type"].items())
    if "accuracy_answered" not in t:
        rows = ["| labelled images per type | accuracy (mean ± sd over draws) | macro-F1 | answered \"unknown type\" |",
                "|---|---|---|---|"]
        for k, acc in t["accuracy"].items():
            rows.append(f"| {k} | {acc:.3f} ± {t['accuracy_sd'][k]:.3f} | {t['macro_f1'][k]:.3f} | "
                        f"{t['unknown_rate'][k]:.3f} |")
        return "\n".join(rows) + (
            f"\n\nTypes: the magnetic-tile defect folders ({counts} images). Each of {t['draws']} random draws teaches "
            "k images per type and classifies every other defect image; no backbone is retrained: a type's prototype "
            "is the mean of its examples' pooled features at their most anomalous patches, the answer the most similar "
            "prototype (cosine) with a softmax confidence, \"unknown type\" below 0.5 (counted as wrong).")
    rows = ["| labelled images per type | accuracy (mean ± sd over draws) | macro-F1 | answered \"unknown type\" | "
            "accuracy of the typed answers |", "|---|---|---|---|---|"]
    for k, acc in t["accuracy"].items():
        rows.append(f"| {k} | {acc:.3f} ± {t['accuracy_sd'][k]:.3f} | {t['macro_f1'][k]:.3f} | "
                    f"{t['unknown_rate'][k]:.3f} | {_fmt(t['accuracy_answered'].get(k))} |")
    held = t.get("accuracy_held_out_half")
    held_text = ("" if not held else " Accuracy on the test images of the held-out half alone: "
                 + ", ".join(f"{v:.3f} at k = {k}" for k, v in held.items()) + ".")
    if "method" in t:  # the run says what it did
        return "\n".join(rows) + (
            f"\n\nTypes: the magnetic-tile defect folders ({counts} images). Each of {t['draws']} random draws "
            "teaches k images per type (each with its three mirrored views) and classifies every other defect "
            f"image. {t['method']}{held_text}")
    return "\n".join(rows) + (
        f"\n\nTypes: the magnetic-tile defect folders ({counts} images). Each of {t['draws']} random draws teaches k "
        "images per type (each with its three mirrored views) and classifies every other defect image; no backbone "
        "is retrained. A defect is described by the features of its most anomalous patches and their difference "
        "from the part's surface; the answer is the nearest type mean (cosine) while a type has fewer than three "
        "descriptors, then a logistic regression. \"Unknown type\" (counted as wrong in the accuracy) is answered "
        "at or below a confidence chosen by cross-validation on the labelled images alone.")


HEALTH_UNITS = {"brightness": "grey levels added", "blur": "Gaussian blur sigma, px",
                "shift": "% of the width", "rotation": "degrees", "occlusion": "% of the image under a smear"}


def render_health(h: dict[str, Any]) -> str:
    """Per perturbation kind: strength where health warns, where false rejects start."""
    rows = ["| disturbance (unit) | health warns at | false rejects from | health first | warned checks |",
            "|---|---|---|---|---|"]
    for kind, v in h["kinds"].items():
        warned = sorted({w for r in v["rows"] for w in r["warned_kinds"]})
        rows.append(f"| {kind} ({HEALTH_UNITS.get(kind, '')}) | {_fmt(v['warn_at'])} | {_fmt(v['false_rejects_from'])} | "
                    f"{'yes' if v['health_first'] else 'no'} | {', '.join(warned) or '—'} |")
    return "\n".join(rows) + (
        f"\n\n{h['n_images']} held-out good test images, disturbed at graded strengths (the same disturbance on "
        f"every image). Health is judged as the station judges it, on windows of {h['window']} consecutive images "
        f"({h['n_windows']} windows); it \"warns at\" the first strength where at least half the windows warn. "
        "False rejects \"start\" at the first strength where at least 5 % of the disturbed good images are "
        f"rejected. Undisturbed: windows warned {h['warn_rate_unperturbed']:.2f}, false-reject rate "
        f"{h['false_reject_rate_unperturbed']:.3f}."
        + (f" The spot check (a patch anomalous at the same place in most images of a window) uses the median "
           f"score of held-out good training images, {h['spot_limit']:.3f}." if h.get("spot_limit") is not None else ""))


def render(result: dict[str, Any]) -> str:
    """The benchmark page ``benchmarks/inspect.md`` (from the JSON alone)."""
    from axline.bench.common import page

    pd = result["baselines"].get("padim_same_features", {})
    g = result["goals"]
    rows = [
        ("image AUROC", "image_auroc", 3, g["image_auroc"]),
        ("pixel AUROC", "pixel_auroc", 3, g["pixel_auroc"]),
        ("F1 at threshold", "f1", 3, None),
        ("false-reject rate at threshold", "false_reject_rate", 3, None),
        ("latency p50 (ms)", "latency_ms_p50", 1, g["latency_ms_p50"]),
        ("latency p99 (ms)", "latency_ms_p99", 1, g["latency_ms_p99"]),
        ("training time (s)", "train_s", 1, None),
        ("peak memory, training (MB)", "peak_rss_mb", 0, None),
    ]
    if pd or "scorers" not in result:
        table = ["| figure | axline | goal | PaDiM-style (same features, this run) |", "|---|---|---|---|"]
    else:
        table = ["| figure | axline | goal |", "|---|---|---|"]
    for label, key, digits, goal in rows:
        if key not in result:
            continue
        line = f"| {label} | {_fmt(result.get(key), digits)} | {_fmt(goal, digits) if goal is not None else ''} |"
        if pd or "scorers" not in result:
            line += f" {_fmt(pd.get(key), digits) if key in pd else ''} |"
        table.append(line)
    checks = [
        (f"image AUROC ≥ {g['image_auroc']}", result["image_auroc"] >= g["image_auroc"]),
        (f"pixel AUROC ≥ {g['pixel_auroc']}", result["pixel_auroc"] >= g["pixel_auroc"]),
        (f"latency p50 ≤ {g['latency_ms_p50']} ms", result["latency_ms_p50"] <= g["latency_ms_p50"]),
        (f"latency p99 ≤ {g['latency_ms_p99']} ms", result["latency_ms_p99"] <= g["latency_ms_p99"]),
    ]
    if "latency_ms_p99_1024x256" in result and "latency_ms_p99_1024x256" in g:
        checks.append((f"latency p99 at 1024 x 256 (tiled) ≤ {g['latency_ms_p99_1024x256']} ms",
                       result["latency_ms_p99_1024x256"] <= g["latency_ms_p99_1024x256"]))
    if "long_parts" in result and "long_parts_image_auroc" in g:
        checks.append((f"long parts image AUROC ≥ {g['long_parts_image_auroc']}",
                       result["long_parts"]["tiled"]["image_auroc"] >= g["long_parts_image_auroc"]))
    for k, goal in g.get("defect_type_accuracy", {}).items() if "defect_type_accuracy" in result else ():
        checks.append((f"defect-type accuracy with {k} labels ≥ {goal}", result["defect_type_accuracy"][k] >= goal))
    if "health" in result:
        checks.append(("health warns before false rejects, every kind",
                       all(v["health_first"] for v in result["health"]["kinds"].values())))
    goals = "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks) + "."
    st = result["settings"]
    protocol = "\n".join([
        "- MT_Free sorted, index % 5 == 0 → test, the rest train; all defect images are test; masks > 127.",
        f"- axline settings: {json.dumps(st)}",
        f"- Memory bank {result['bank_size']} patches × {result['feature_dim']} dims; model file "
        f"{result['model_bytes'] / 1e6:.1f} MB.",
        f"- Threshold set for a {100 * st['target_frr']:g} % false-reject rate on held-out good *training* images "
        f"(test images only score): defect recall {result['defect_recall']:.3f}. Set for 5 % instead (same "
        f"model): F1 {result['at_target_frr_0.05']['f1']:.3f}, false-reject rate "
        f"{result['at_target_frr_0.05']['false_reject_rate']:.3f}, defect recall "
        f"{result['at_target_frr_0.05']['defect_recall']:.3f}.",
        "- The PaDiM-style column is measured in this run on the same features and split; no other peer "
        "was run." if pd or "scorers" not in result else
        "- Every scorer row is measured in this run on the same features and split; anomalib PatchCore was "
        f"not run ({_anchor_reason(result)}).",
    ])
    few = ["| training images | image AUROC | training time (s) |", "|---|---|---|"]
    train_times = {**result.get("fewshot_train_s", {}), str(st.get("n_train", "")): result["train_s"]}
    for k, v in result["fewshot"].items():
        few.append(f"| {k} | {v:.3f} | {_fmt(train_times.get(k), 1)} |")
    sections = [("Results", "\n".join(table) + "\n\nGoals: " + goals)]
    if "scorers" in result:
        sections.append(("Scorers (same features, same split, this run)", render_scorers(result)))
    if "long_parts" in result:
        sections.append(("Native resolution: long parts", render_long_parts(result["long_parts"])))
    if "latency_by_size" in result:
        sections.append(("Latency by image size (tiled)", render_latency_by_size(result)))
    if "defect_types" in result:
        sections.append(("Defect types from operator labels", render_types(result)))
    if "health" in result:
        sections.append(("Image health", render_health(result["health"])))
    return page("Visual inspection benchmark: magnetic tile", [
        *sections,
        ("Latency", render_latency(result)),
        ("Few-shot curve (image AUROC by number of training images; 20 % of them held out to calibrate)",
         "\n".join(few)),
        ("Protocol", protocol),
    ], result)
