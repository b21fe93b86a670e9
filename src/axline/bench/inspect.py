"""Benchmark of the visual inspector on the magnetic-tile dataset (``axline bench inspect``).

Protocol: sort the MT_Free file names; every fifth (index % 5 == 0) is a test image, the rest are
training images; all defect images are test images; masks are binarised at > 127. Reports image and
pixel AUROC, F1 and false-reject rate at the calibrated threshold, a few-shot curve (10 / 50 / 100
training images), latency of the torch-free ONNX path at 256 x 256 (measured in a separate process
that blocks torch), training time and peak memory, and every scorer (nearest-neighbour memory bank,
per-position Gaussian, their combination) on the same features: the shipped one is chosen by
validation on held-out *training* goods with synthetic defects drawn on them (no test image and no
real defect takes part in the choice).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFECT_CLASSES = ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")
FEWSHOT_SIZES = (10, 50, 100, 200)
GOALS = {"image_auroc": 0.985, "pixel_auroc": 0.97, "latency_ms_p50": 20.0, "latency_ms_p99": 50.0}
LATENCY_SCRIPT = r"""
import json, os, resource, sys, time
sys.modules["torch"] = None  # the deployable path must not need torch
import numpy as np
from PIL import Image
from axline.inspect.inferencer import Inspector
model, n, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
paths = sys.argv[4:]
imgs = [np.asarray(Image.open(p).convert("L").resize((256, 256), Image.BILINEAR)) for p in paths]
ins = Inspector.load(model, threads=2)
for i in range(warm):
    ins.inspect(imgs[i % len(imgs)])
load_before = [round(v, 2) for v in os.getloadavg()]
times = []
for i in range(n):
    t = time.perf_counter()
    ins.inspect(imgs[i % len(imgs)])
    times.append((time.perf_counter() - t) * 1000.0)
# VmHWM is this process's own peak (ru_maxrss would include the parent's size at fork)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
peak = float(hwm[0].split()[1]) / 1024.0 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"times_ms": times, "peak_rss_mb": peak,
                  "load_avg_before": load_before, "load_avg_after": [round(v, 2) for v in os.getloadavg()]}))
"""


def split_magnetic_tile(data: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(training goods, test goods, test defects) by the benchmark protocol."""
    free_dir = data / "MT_Free" / "Imgs"
    if not free_dir.is_dir():
        raise FileNotFoundError(
            f"{free_dir} not found: --data must be the magnetic_tile folder (with MT_Free/Imgs inside)"
        )
    free = sorted(free_dir.glob("*.jpg"))
    train = [p for i, p in enumerate(free) if i % 5 != 0]
    test_good = [p for i, p in enumerate(free) if i % 5 == 0]
    defects = sorted(p for c in DEFECT_CLASSES for p in (data / c / "Imgs").glob("*.jpg"))
    return train, test_good, defects


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half), via ranks."""
    labels = np.asarray(labels, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auroc needs both positive and negative labels")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(labels.size, np.float64)
    # average ranks over ties
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [labels.size]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _mask(image_path: Path, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    mask_path = image_path.with_suffix(".png")
    if not mask_path.exists():
        return np.zeros(shape, bool)
    m = np.asarray(Image.open(mask_path).convert("L"))
    if m.shape != shape:
        m = np.asarray(Image.open(mask_path).convert("L").resize((shape[1], shape[0]), Image.NEAREST))
    return m > 127


def _score_cached(feats: np.ndarray, inspector: Any) -> np.ndarray:
    """Image scores of cached backbone features under another model with the same backbone."""
    from axline.inspect.inferencer import image_score

    return np.array([max(image_score(t, inspector.model.top_k) for t in inspector.patch_scores(f)) for f in feats])


def _pixel_auroc(maps: list[np.ndarray], masks: list[np.ndarray], stride: int) -> float:
    scores = np.concatenate([m.ravel()[::stride] for m in maps])
    labels = np.concatenate([k.ravel()[::stride] for k in masks])
    return auroc(labels, scores)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _latency(model_path: Path, images: list[Path], n: int, warmup: int) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-c", LATENCY_SCRIPT, str(model_path), str(n), str(warmup), *map(str, images)],
        capture_output=True, text=True, env=env, check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"latency subprocess failed:\n{res.stderr[-2000:]}")
    data = json.loads(res.stdout.strip().splitlines()[-1])
    t = np.asarray(data["times_ms"])
    return {
        "latency_ms_p50": round(float(np.percentile(t, 50)), 2),
        "latency_ms_p99": round(float(np.percentile(t, 99)), 2),
        "latency_ms_mean": round(float(t.mean()), 2),
        "latency_ms_min": round(float(t.min()), 2),
        "inference_peak_rss_mb": round(float(data["peak_rss_mb"]), 1),
        "latency_runs": int(len(t)),
        "latency_warmup_runs": int(warmup),
        "latency_load_avg_before": data["load_avg_before"],
        "latency_load_avg_after": data["load_avg_after"],
    }


def _compare_scorers(model: Any, feats: np.ndarray, test: list[Path], labels: np.ndarray,
                     masks: list[np.ndarray], pixel_stride: int, validation: dict[str, float],
                     log: Any) -> dict[str, dict[str, float]]:
    """Image and pixel AUROC of every scorer on the same cached test features (test labels only score)."""
    import copy

    from axline.inspect.inferencer import Inspector, load_image

    out: dict[str, dict[str, float]] = {}
    for name in ("nn", "gaussian", "combined"):
        m = copy.copy(model)
        m.scorer = name
        ins = Inspector(m, batch=1)
        scores, maps = [], []
        for f, p in zip(feats, test, strict=True):
            v = ins.verdict_from_features(load_image(p), f)
            scores.append(v.score)
            maps.append(v.anomaly_map)
        out[name] = {"validation_auroc": validation.get(name), "image_auroc": auroc(labels, np.asarray(scores)),
                     "pixel_auroc": _pixel_auroc(maps, masks, pixel_stride)}
        log(f"scorer {name}: {out[name]}")
    return out


def _evenly(items: list[Path], k: int) -> list[Path]:
    idx = np.unique(np.linspace(0, len(items) - 1, k).round().astype(int))
    return [items[i] for i in idx]


def run_benchmark(
    data: Path,
    *,
    coreset_ratio: float = 0.05,
    max_bank: int = 8000,
    target_frr: float = 0.01,
    normalize_brightness: bool = False,
    latency_runs: int = 200,
    pixel_stride: int = 1,
    fewshot: bool = True,
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

    baselines: dict[str, Any] = {}
    result["scorers"] = _compare_scorers(inspector.model, feats_a, test, labels, masks, pixel_stride,
                                         report["scorer_validation_auroc"], log)
    result["baselines"] = baselines
    result["goals"] = GOALS
    result["settings"] = {
        "coreset_ratio": coreset_ratio, "max_bank": max_bank, "target_frr": target_frr,
        "normalize_brightness": normalize_brightness, "input_size": prep.size,
        "pixel_auroc_stride": pixel_stride, "n_train": len(train), "n_test_good": len(test_good),
        "n_test_defect": len(defects), "scorer": "auto",
    }
    return result


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
    return "\n".join(rows) + (
        "\n\nValidation AUROC: held-out *training* goods (20 %, kept out of the statistics) against the same "
        "images with one synthetic defect each (a blob, a thin crack or a pasted patch); no test image and no "
        "real defect is used. Training with `scorer=\"auto\"` (the default) keeps the scorer with the highest "
        "validation AUROC; test AUROCs are measured on the same cached test features for every scorer.")


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
        "was run.",
    ])
    few = ["| training images | image AUROC | training time (s) |", "|---|---|---|"]
    train_times = {**result.get("fewshot_train_s", {}), str(st.get("n_train", "")): result["train_s"]}
    for k, v in result["fewshot"].items():
        few.append(f"| {k} | {v:.3f} | {_fmt(train_times.get(k), 1)} |")
    sections = [("Results", "\n".join(table) + "\n\nGoals: " + goals)]
    if "scorers" in result:
        sections.append(("Scorers (same features, same split, this run)", render_scorers(result)))
    return page("Visual inspection benchmark: magnetic tile", [
        *sections,
        ("Latency", render_latency(result)),
        ("Few-shot curve (image AUROC by number of training images; 20 % of them held out to calibrate)",
         "\n".join(few)),
        ("Protocol", protocol),
    ], result)


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
    parser.add_argument("--normalize-brightness", action="store_true")
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--pixel-stride", type=int, default=1,
                        help="use every n-th pixel for pixel AUROC (1 = all)")
    parser.add_argument("--no-fewshot", action="store_true")
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
            pixel_stride=args.pixel_stride, fewshot=not args.no_fewshot,
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

if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="axline bench inspect", description=__doc__)
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
