"""Benchmark of the visual inspector on the magnetic-tile dataset (``axline bench inspect``).

Protocol: sort the MT_Free file names; every fifth (index % 5 == 0) is a test image, the rest are
training images; all defect images are test images; masks are binarised at > 127. Reports image and
pixel AUROC, F1 and false-reject rate at the calibrated threshold, a few-shot curve (10 / 50 / 100
training images), latency of the torch-free ONNX path at 256 x 256 (measured in a separate process
that blocks torch), training time and peak memory, and every scorer (nearest-neighbour memory bank,
per-position Gaussian, their combination) on the same features: the shipped one is chosen by
validation on held-out *training* goods with synthetic defects drawn on them (no test image and no
real defect takes part in the choice); and the same training with each larger EfficientNet-Lite
backbone (its validation and test AUROC and latency beside the shipped one's).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from axline.bench.inspect.accuracy import DEFECT_CLASSES as DEFECT_CLASSES
from axline.bench.inspect.accuracy import FEWSHOT_SIZES as FEWSHOT_SIZES
from axline.bench.inspect.accuracy import GOALS as GOALS
from axline.bench.inspect.accuracy import (
    _compare_scorers,
    _evenly,
    _mask,
    _peak_rss_mb,
    _pixel_auroc,
    _score_cached,
)
from axline.bench.inspect.accuracy import auroc as auroc
from axline.bench.inspect.accuracy import split_magnetic_tile as split_magnetic_tile
from axline.bench.inspect.backbones import _compare_backbones
from axline.bench.inspect.defect_types import _defect_types
from axline.bench.inspect.health import _health
from axline.bench.inspect.health import perturb as perturb
from axline.bench.inspect.latency import _latency, _latency_by_size
from axline.bench.inspect.long_parts import _long_parts
from axline.bench.inspect.page import render as render
from axline.bench.inspect.page import render_health as render_health
from axline.bench.inspect.page import render_latency as render_latency
from axline.bench.inspect.page import render_latency_by_size as render_latency_by_size
from axline.bench.inspect.page import render_long_parts as render_long_parts
from axline.bench.inspect.page import render_scorers as render_scorers
from axline.bench.inspect.page import render_types as render_types


def run_benchmark(
    data: Path,
    *,
    coreset_ratio: float = 0.05,
    max_bank: int = 8000,
    target_frr: float = 0.01,
    normalize_brightness: bool = True,
    latency_runs: int = 200,
    pixel_stride: int = 1,
    fewshot: bool = True,
    long_parts: bool = True,
    types: bool = True,
    health: bool = True,
    backbones: bool = True,
    workdir: Path | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Run the whole protocol; returns the result dict (the JSON)."""
    from axline.inspect.inferencer import Inspector, load_image
    from axline.inspect.train import train_inspector

    train, test_good, defects = split_magnetic_tile(data)
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="axline-bench-inspect-"))
    tmp.mkdir(parents=True, exist_ok=True)
    model_path = tmp / "magnetic_tile.axi"
    log(f"training on {len(train)} good images ...")
    report = train_inspector(train, model_path, coreset_ratio=coreset_ratio, max_bank=max_bank,
                             target_frr=target_frr, normalize_brightness=normalize_brightness, progress=True,
                             scorer="auto", keep_all_scorers=True)
    train_peak = _peak_rss_mb()
    log(f"trained in {report['train_seconds']:.1f} s, bank {report['bank_size']}, peak RSS {train_peak:.0f} MB; "
        f"scorer {report['scorer']} (validation AUROC {report['scorer_validation_auroc']})")

    inspector = Inspector.load(model_path)
    prep = inspector.prep
    test = test_good + defects
    labels = np.r_[np.zeros(len(test_good), bool), np.ones(len(defects), bool)]
    scores, maps, masks, feats = [], [], [], []
    t0 = time.perf_counter()
    for i, p in enumerate(test):
        img = load_image(p)
        f = inspector.image_features(img)
        v = inspector.verdict_from_features(img, f)
        if i < 5 and abs(inspector.inspect(p).score - v.score) > 1e-6:
            raise RuntimeError(f"{p}: inspect() and the cached-feature path disagree")
        feats.append(f)
        scores.append(v.score)
        maps.append(v.anomaly_map)
        masks.append(_mask(p, img.shape[:2]))
    log(f"scored {len(test)} test images in {time.perf_counter() - t0:.1f} s")
    scores_a = np.asarray(scores)
    rejected = scores_a > inspector.threshold
    tp = int(np.sum(rejected & labels))
    fp = int(np.sum(rejected & ~labels))
    fn = int(np.sum(~rejected & labels))
    from axline.inspect.train import calibrate_threshold

    t5 = calibrate_threshold(inspector.model.good_scores, 0.05)
    rej5 = scores_a > t5
    tp5, fp5, fn5 = int(np.sum(rej5 & labels)), int(np.sum(rej5 & ~labels)), int(np.sum(~rej5 & labels))
    result: dict[str, Any] = {
        "image_auroc": auroc(labels, scores_a),
        "at_target_frr_0.05": {"threshold": t5, "f1": 2 * tp5 / max(2 * tp5 + fp5 + fn5, 1),
                               "false_reject_rate": fp5 / len(test_good), "defect_recall": tp5 / len(defects)},
        "pixel_auroc": _pixel_auroc(maps, masks, pixel_stride),
        "f1": 2 * tp / max(2 * tp + fp + fn, 1),
        "false_reject_rate": fp / len(test_good),
        "defect_recall": tp / len(defects),
        "threshold": inspector.threshold,
        "train_s": report["train_seconds"],
        "peak_rss_mb": train_peak,
        "bank_size": report["bank_size"],
        "feature_dim": report["feature_dim"],
        "model_bytes": model_path.stat().st_size,
        "scorer": report["scorer"],
    }
    del maps
    log(f"image AUROC {result['image_auroc']:.4f}, pixel AUROC {result['pixel_auroc']:.4f}")

    lat_imgs = test[:: max(1, len(test) // 50)]
    result.update(_latency(model_path, lat_imgs, latency_runs, warmup=10))
    log(f"latency p50 {result['latency_ms_p50']:.1f} ms, p99 {result['latency_ms_p99']:.1f} ms")

    feats_a = np.stack(feats)
    del feats
    curve: dict[str, float] = {}
    fewshot_train_s: dict[str, float] = {}
    if fewshot:
        for k in FEWSHOT_SIZES:
            sub = _evenly(train, k)
            fs_path = tmp / f"fewshot_{k}.axi"
            fs_report = train_inspector(sub, fs_path, coreset_ratio=coreset_ratio, max_bank=max_bank,
                                        target_frr=target_frr, normalize_brightness=normalize_brightness,
                                        progress=False)
            fewshot_train_s[str(k)] = fs_report["train_seconds"]
            fs_model = Inspector.load(fs_path)
            fs_scores = _score_cached(feats_a, fs_model)
            curve[str(k)] = auroc(labels, fs_scores)
            log(f"few-shot {k}: image AUROC {curve[str(k)]:.4f}")
    curve[str(len(train))] = result["image_auroc"]
    result["fewshot"] = curve
    result["fewshot_train_s"] = fewshot_train_s

    baselines: dict[str, Any] = {"anomalib_patchcore": _anomalib_anchor()}
    result["scorers"] = _compare_scorers(inspector.model, feats_a, test, labels, masks, pixel_stride,
                                         report["scorer_validation_auroc"], log)
    if backbones:
        shipped = {"shipped": True, "scorer": report["scorer"], "validation_auroc": report["scorer_validation_auroc"][report["scorer"]],
                   "image_auroc": result["image_auroc"], "pixel_auroc": result["pixel_auroc"],
                   "feature_dim": report["feature_dim"], "train_s": report["train_seconds"],
                   "latency_ms_p50": result["latency_ms_p50"], "latency_ms_p99": result["latency_ms_p99"]}
        result["backbones"] = _compare_backbones(
            train, test, labels, shipped, tmp, latency_runs, pixel_stride, log, coreset_ratio=coreset_ratio,
            max_bank=max_bank, target_frr=target_frr, normalize_brightness=normalize_brightness)
    if types:
        result["defect_types"] = _defect_types(inspector, feats_a, test, len(test_good), log)
        result["defect_type_accuracy"] = result["defect_types"]["accuracy"]
        result["defect_type_macro_f1"] = result["defect_types"]["macro_f1"]
    if health and inspector.model.health is not None:
        result["health"] = _health(inspector, test_good, log)
    if long_parts:
        result["long_parts"] = _long_parts(train, test_good, defects, tmp, "auto", log)
        result["latency_by_size"] = _latency_by_size(train, test, tmp, report["scorer"], latency_runs, log)
        result["latency_ms_p99_1024x256"] = result["latency_by_size"]["1024x256"]["p99"]
        result["latency_ms_p50_1024x256"] = result["latency_by_size"]["1024x256"]["p50"]
    result["baselines"] = baselines
    result["goals"] = GOALS
    result["settings"] = {
        "coreset_ratio": coreset_ratio, "max_bank": max_bank, "target_frr": target_frr,
        "normalize_brightness": normalize_brightness, "input_size": prep.size,
        "pixel_auroc_stride": pixel_stride, "n_train": len(train), "n_test_good": len(test_good),
        "n_test_defect": len(defects), "scorer": "auto",
    }
    return result


def _anomalib_anchor() -> dict[str, Any]:
    """Whether anomalib's PatchCore (the published anchor) can run beside this install, and why not."""
    import importlib.util

    if importlib.util.find_spec("anomalib") is None:
        return {"run": False, "reason": "anomalib is not installed: anomalib and timm import torchvision, whose PyPI "
                                        "wheel is a CUDA build that fails to import beside the CPU torch 2.13.0 "
                                        "('operator torchvision::nms does not exist'), its default backbone's weights "
                                        "are fetched at run time, and its greedy coreset at the default 10 % of this "
                                        "split's 779,264 training patches takes hours on two cores"}
    return {"run": False, "reason": "anomalib is installed, but its PatchCore fetches its backbone's ImageNet "
                                    "weights at run time, which this harness never does"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``axline bench inspect``."""
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/magnetic_tile"),
                        help="the magnetic_tile dataset folder")
    parser.add_argument("--json", type=Path, default=None,
                        help="write the results here (default benchmarks/inspect.json; with --latency-only: "
                             "stdout unless given)")
    parser.add_argument("--markdown", "--table", dest="markdown", type=Path, default=Path("benchmarks/inspect.md"),
                        help="benchmark page to write (default benchmarks/inspect.md)")
    parser.add_argument("--coreset-ratio", type=float, default=0.05)
    parser.add_argument("--max-bank", type=int, default=8000)
    parser.add_argument("--target-frr", type=float, default=0.01)
    parser.add_argument("--normalize-brightness", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--pixel-stride", type=int, default=1,
                        help="use every n-th pixel for pixel AUROC (1 = all)")
    parser.add_argument("--no-fewshot", action="store_true")
    parser.add_argument("--no-long-parts", action="store_true", help="skip the long-part and image-size runs")
    parser.add_argument("--no-types", action="store_true", help="skip the defect-type runs")
    parser.add_argument("--no-health", action="store_true", help="skip the image-health runs")
    parser.add_argument("--no-backbones", action="store_true",
                        help="skip training with the larger EfficientNet-Lite backbones")
    parser.add_argument("--workdir", type=Path, default=None, help="where models are written (default: temp)")
    parser.add_argument("--latency-only", type=Path, default=None, metavar="MODEL",
                        help="only measure the latency of this trained .axi on the dataset's images")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, write JSON and markdown; return an exit code."""
    if args.latency_runs < 10 or args.pixel_stride < 1:
        print("error: --latency-runs must be >= 10 and --pixel-stride >= 1", file=sys.stderr)
        return 1
    from axline.bench.common import bench_header, publish

    t_start = time.perf_counter()
    header = bench_header("inspect")
    if args.latency_only is not None:
        try:
            _, test_good, defects = split_magnetic_tile(args.data)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        test = test_good + defects
        out = {**header, "mode": "latency-only", "model": str(args.latency_only),
               **_latency(args.latency_only, test[:: max(1, len(test) // 50)], args.latency_runs, 10)}
        out["wall_s"] = round(time.perf_counter() - t_start, 2)
        text = json.dumps(out, indent=2)
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text + "\n", encoding="utf-8")
        print(text)
        return 0
    try:
        result = run_benchmark(
            args.data, coreset_ratio=args.coreset_ratio, max_bank=args.max_bank, target_frr=args.target_frr,
            normalize_brightness=args.normalize_brightness, latency_runs=args.latency_runs,
            pixel_stride=args.pixel_stride, fewshot=not args.no_fewshot, long_parts=not args.no_long_parts,
            types=not args.no_types, health=not args.no_health, backbones=not args.no_backbones,
            workdir=args.workdir, log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result = {**header, **result, "wall_s": round(time.perf_counter() - t_start, 2)}
    publish(result, args.json or Path("benchmarks/inspect.json"), args.markdown, render)
    print(json.dumps({k: result[k] for k in ("image_auroc", "pixel_auroc", "f1", "false_reject_rate",
                                             "latency_ms_p50", "latency_ms_p99", "train_s", "peak_rss_mb")}))
    return 0
