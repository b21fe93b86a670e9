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
GOALS = {"image_auroc": 0.985, "pixel_auroc": 0.97, "latency_ms_p50": 20.0, "latency_ms_p99": 50.0,
         "latency_ms_p99_1024x256": 100.0, "long_parts_image_auroc": 0.95,
         "defect_type_accuracy": {"5": 0.75, "10": 0.90}}
LATENCY_SCRIPT = r"""
import json, os, resource, sys, time
sys.modules["torch"] = None  # the deployable path must not need torch
import numpy as np
from PIL import Image
from axline.inspect.inferencer import Inspector
model, n, warm, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
paths = sys.argv[6:]
imgs = [np.asarray(Image.open(p).convert("L").resize((width, height), Image.BILINEAR)) for p in paths]
ins = Inspector.load(model)  # threads and tiles per run chosen by the inspector itself
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
print(json.dumps({"times_ms": times, "peak_rss_mb": peak, "threads": ins.threads, "batch": ins.batch,
                  "tiles": len(ins.offsets),
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


def _latency(model_path: Path, images: list[Path], n: int, warmup: int,
             size: tuple[int, int] = (256, 256)) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-c", LATENCY_SCRIPT, str(model_path), str(n), str(warmup), str(size[0]), str(size[1]),
         *map(str, images)],
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
        "latency_threads": data["threads"],
        "latency_batch": data["batch"],
        "latency_tiles": data["tiles"],
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


LATENCY_SIZES = ((512, 256), (1024, 256), (1024, 512))
STRIP_PIECES = 4  # a long part: this many 256 x 256 tile images side by side


def _grey(path: Path, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize(size, Image.BILINEAR))


def _latency_by_size(train: list[Path], test: list[Path], tmp: Path, scorer: str, runs: int,
                     log: Any) -> dict[str, dict[str, Any]]:
    """Latency per image of tiled models (tiles of 256 overlapping by 64) at larger image sizes."""
    from axline.inspect.train import train_inspector

    out: dict[str, dict[str, Any]] = {}
    for w, h in LATENCY_SIZES:
        path = tmp / f"latency_{w}x{h}.axi"
        train_inspector([_grey(p, (w, h)) for p in _evenly(train, 24)], path, canvas=(w, h), tile_overlap=64,
                        scorer=scorer, progress=False)
        lat = _latency(path, test[:: max(1, len(test) // 20)], runs, 10, size=(w, h))
        out[f"{w}x{h}"] = {"tiles": lat["latency_tiles"], "batch": lat["latency_batch"],
                           "threads": lat["latency_threads"], "p50": lat["latency_ms_p50"],
                           "p99": lat["latency_ms_p99"], "mean": lat["latency_ms_mean"],
                           "peak_rss_mb": lat["inference_peak_rss_mb"],
                           "load_avg_before": lat["latency_load_avg_before"]}
        log(f"latency {w}x{h}: {out[f'{w}x{h}']}")
    return out


def _strips(goods: list[np.ndarray], n: int, rng: np.random.Generator,
            defects: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """``n`` long parts of ``STRIP_PIECES`` pieces side by side (one piece a defect when given)."""
    out = []
    for i in range(n):
        pick = [goods[j] for j in rng.choice(len(goods), STRIP_PIECES, replace=False)]
        if defects is not None:
            pick[int(rng.integers(STRIP_PIECES))] = defects[i]
        out.append(np.concatenate(pick, axis=1))
    return out


def _long_parts(train: list[Path], test_good: list[Path], defects: list[Path], tmp: Path, scorer: str,
                log: Any) -> dict[str, Any]:
    """Long parts built from the same split: squashed to one square against tiled at native aspect."""
    from axline.inspect.inferencer import Inspector
    from axline.inspect.train import train_inspector

    rng = np.random.default_rng(0)
    piece = (256, 256)
    tr = [_grey(p, piece) for p in train]
    order = rng.permutation(len(tr))
    train_strips = [np.concatenate([tr[j] for j in order[i:i + STRIP_PIECES]], axis=1)
                    for i in range(0, len(order) - STRIP_PIECES + 1, STRIP_PIECES)]
    del tr
    tg = [_grey(p, piece) for p in test_good]
    good_strips = _strips(tg, 100, rng)
    defect_strips = _strips(tg, len(defects), rng, [_grey(p, piece) for p in defects])
    labels = np.r_[np.zeros(len(good_strips), bool), np.ones(len(defect_strips), bool)]
    out: dict[str, Any] = {"what": f"{STRIP_PIECES} magnetic-tile images (each 256 x 256) side by side: "
                           f"{256 * STRIP_PIECES} x 256 parts; training parts from training goods only; "
                           "test parts from test goods, a defective part has one test defect image in a "
                           "random place",
                           "n_train": len(train_strips), "n_test_good": len(good_strips),
                           "n_test_defect": len(defect_strips), "scorer": scorer}
    for name, kw in (("squashed", {}), ("tiled", {"smallest_defect_px": 16.0, "tile_overlap": 64})):
        path = tmp / f"long_{name}.axi"
        t0 = time.perf_counter()
        rep = train_inspector(train_strips, path, scorer=scorer, progress=False, **kw)
        ins = Inspector.load(path)
        t1 = time.perf_counter()
        scores = [ins.inspect(s).score for s in good_strips + defect_strips]
        per_image = (time.perf_counter() - t1) / len(scores) * 1000
        out[name] = {"image_auroc": auroc(labels, np.asarray(scores)), "tiles": rep["tiles"],
                     "canvas": rep["canvas"], "train_s": round(time.perf_counter() - t0 - per_image * len(scores) / 1000, 1),
                     "mean_ms_in_loop": round(per_image, 1)}
        log(f"long parts, {name}: {out[name]}")
    return out


HEALTH_STRENGTHS: dict[str, tuple[float, ...]] = {
    "brightness": (4, 8, 16, 24, 32, 48, 64, 96),  # grey levels added
    "blur": (0.5, 1, 1.5, 2, 3, 4, 6),  # Gaussian sigma, pixels
    "shift": (1, 2, 4, 6, 8, 12, 16),  # % of the image width, to the right
    "rotation": (0.5, 1, 2, 3, 5, 8, 12),  # degrees
    "occlusion": (0.5, 1, 2, 4, 8, 12, 16),  # % of the image under a dark smear
}
HEALTH_WARN_SHARE = 0.5  # health "warns" at a strength where it warns on at least half the images
FALSE_REJECT_SHARE = 0.05  # false rejects "start" where at least 5 % of the good images are rejected


def perturb(image: np.ndarray, kind: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """A good image disturbed as a camera station would be: brighter, blurred, shifted, rotated, smeared."""
    from scipy import ndimage

    a = image.astype(np.float64)
    h, w = a.shape[:2]
    if kind == "brightness":
        a = a + strength
    elif kind == "blur":
        a = ndimage.gaussian_filter(a, strength)
    elif kind == "shift":
        a = ndimage.shift(a, (0, strength / 100.0 * w), order=1, mode="nearest")
    elif kind == "rotation":
        a = ndimage.rotate(a, strength, reshape=False, order=1, mode="nearest")
    elif kind == "occlusion":
        r = np.sqrt(strength / 100.0 * h * w / np.pi)
        cy, cx = rng.uniform(r, max(r + 1, h - r)), rng.uniform(r, max(r + 1, w - r))
        yy, xx = np.mgrid[0:h, 0:w]
        smear = ndimage.gaussian_filter((((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).astype(np.float64), 2.0)
        a = a * (1 - smear) + (0.35 * a.mean()) * smear
    else:
        raise ValueError(f"unknown perturbation {kind!r}")
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _health(inspector: Any, test_good: list[Path], log: Any) -> dict[str, Any]:
    """Graded perturbations of held-out good images: where health warns, where false rejects start.

    Health is judged as the station judges it, on windows of consecutive images (the perturbation
    lasts, like a drifting lamp); false rejects are counted image by image."""
    from axline.inspect.health import evaluate, measure
    from axline.inspect.inferencer import crop_roi, load_image

    ref = inspector.model.health
    goods = [load_image(p) for p in test_good[::3]]
    win = min(int(ref["window"]), len(goods))

    def run(images: list[np.ndarray]) -> tuple[float, float, list[str]]:
        ms = [measure(crop_roi(im, inspector.prep.roi), ref) for im in images]
        evals = [evaluate(ms[i:i + win], ref) for i in range(0, len(ms) - win + 1, win)]
        rejected = [inspector.inspect(im).rejected for im in images]
        return (float(np.mean([not e["ok"] for e in evals])), float(np.mean(rejected)),
                sorted({w for e in evals for w in e["warnings"]}))

    warn0, frr0, kinds0 = run(goods)
    out: dict[str, Any] = {"n_images": len(goods), "window": win, "n_windows": len(goods) // win,
                           "warn_rate_unperturbed": warn0, "false_reject_rate_unperturbed": frr0,
                           "warned_kinds_unperturbed": kinds0, "kinds": {}}
    for kind, strengths in HEALTH_STRENGTHS.items():
        rows = []
        for k, st in enumerate(strengths):
            # the same disturbance on every image (a smear sits where it sits on the lens)
            wr, fr, kinds = run([perturb(g, kind, st, np.random.default_rng(k)) for g in goods])
            rows.append({"strength": st, "warn_rate": wr, "false_reject_rate": fr, "warned_kinds": kinds})
        warn_at = next((r["strength"] for r in rows if r["warn_rate"] >= HEALTH_WARN_SHARE), None)
        fr_from = next((r["strength"] for r in rows if r["false_reject_rate"] >= FALSE_REJECT_SHARE), None)
        first = warn_at is not None and (fr_from is None or warn_at < fr_from)
        out["kinds"][kind] = {"warn_at": warn_at, "false_rejects_from": fr_from, "health_first": first, "rows": rows}
        log(f"health {kind}: warns at {warn_at}, false rejects from {fr_from}")
    return out


TYPE_KS = (1, 5, 10)
TYPE_DRAWS = 20


def _defect_types(inspector: Any, feats: np.ndarray, test: list[Path], n_good: int, log: Any) -> dict[str, Any]:
    """Defect types from k labelled images per type (k = 1, 5, 10), tested on the rest, many draws.

    Each defect image's region feature (its most anomalous patches, shipped scorer) is computed once;
    a draw picks k labelled images per type, teaches them and classifies every other defect image.
    An "unknown type" answer counts as wrong in the accuracy; macro-F1 is over the five types."""
    from axline.inspect.types import DefectTypes, region_feature

    cls = np.array([next(i for i, c in enumerate(DEFECT_CLASSES) if p.parent.parent.name == c) for p in test[n_good:]])
    x = np.stack([region_feature(f, inspector.patch_scores(f)) for f in feats[n_good:]])
    out: dict[str, Any] = {"types": list(DEFECT_CLASSES), "draws": TYPE_DRAWS,
                           "per_type": {c: int(np.sum(cls == i)) for i, c in enumerate(DEFECT_CLASSES)},
                           "accuracy": {}, "macro_f1": {}, "unknown_rate": {}, "accuracy_sd": {}}
    for k in TYPE_KS:
        accs, f1s, unk = [], [], []
        for draw in range(TYPE_DRAWS):
            rng = np.random.default_rng(1000 * k + draw)
            taught = np.concatenate([rng.choice(np.flatnonzero(cls == c), k, replace=False)
                                     for c in range(len(DEFECT_CLASSES))])
            rest = np.setdiff1d(np.arange(len(cls)), taught)
            types = DefectTypes()
            for i in taught:
                types.add(f"t{cls[i]}", x[i], {"en": DEFECT_CLASSES[cls[i]], "ko": DEFECT_CLASSES[cls[i]]})
            pred = []
            for i in rest:
                r = types.predict(x[i])
                pred.append(int(r["type"][1:]) if r and r["known"] else -1)
            pred_a, truth = np.asarray(pred), cls[rest]
            accs.append(float(np.mean(pred_a == truth)))
            unk.append(float(np.mean(pred_a == -1)))
            f1 = []
            for c in range(len(DEFECT_CLASSES)):
                tp = np.sum((pred_a == c) & (truth == c))
                f1.append(2 * tp / max(2 * tp + np.sum((pred_a == c) & (truth != c)) + np.sum((pred_a != c) & (truth == c)), 1))
            f1s.append(float(np.mean(f1)))
        out["accuracy"][str(k)] = float(np.mean(accs))
        out["accuracy_sd"][str(k)] = float(np.std(accs))
        out["macro_f1"][str(k)] = float(np.mean(f1s))
        out["unknown_rate"][str(k)] = float(np.mean(unk))
        log(f"defect types k={k}: accuracy {out['accuracy'][str(k)]:.3f}, macro-F1 {out['macro_f1'][str(k)]:.3f}")
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
    long_parts: bool = True,
    types: bool = True,
    health: bool = True,
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
    if types:
        result["defect_types"] = _defect_types(inspector, feats_a, test, len(test_good), log)
        result["defect_type_accuracy"] = result["defect_types"]["accuracy"]
        result["defect_type_macro_f1"] = result["defect_types"]["macro_f1"]
    if health and inspector.model.health is not None:
        result["health"] = _health(inspector, test_good, log)
    if long_parts:
        result["long_parts"] = _long_parts(train, test_good, defects, tmp, report["scorer"], log)
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
    return "\n".join(rows) + (
        "\n\nValidation AUROC: held-out *training* goods (20 %, kept out of the statistics) against the same "
        "images with one synthetic defect each (a blob, a thin crack or a pasted patch); no test image and no "
        "real defect is used. Training with `scorer=\"auto\"` (the default) keeps the scorer with the highest "
        "validation AUROC; test AUROCs are measured on the same cached test features for every scorer.")


def render_long_parts(lp: dict[str, Any]) -> str:
    """Squashed against tiled on long parts."""
    rows = ["| inspection | canvas | tiles | image AUROC | training (s) |", "|---|---|---|---|---|"]
    for name, label in (("squashed", "whole part squashed to 256 x 256"),
                        ("tiled", "native aspect, tiles of 256 overlapping by 64 (smallest defect 16 px)")):
        v = lp[name]
        rows.append(f"| {label} | {v['canvas'][0]} x {v['canvas'][1]} | {v['tiles']} | {v['image_auroc']:.3f} | "
                    f"{_fmt(v.get('train_s'), 1)} |")
    return "\n".join(rows) + (f"\n\nParts: {lp['what']}. {lp['n_train']} training parts, {lp['n_test_good']} good "
                              f"and {lp['n_test_defect']} defective test parts; scorer {lp['scorer']} (the one "
                              "chosen on validation above). Image score: the worst tile's.")


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
        "machine's cores, at most 4) and how many tiles go through the backbone per run (one, or all, whichever "
        "it timed faster at load).")


def render_types(r: dict[str, Any]) -> str:
    """Accuracy and macro-F1 by labels per type."""
    t = r["defect_types"]
    rows = ["| labelled images per type | accuracy (mean ± sd over draws) | macro-F1 | answered \"unknown type\" |",
            "|---|---|---|---|"]
    for k, acc in t["accuracy"].items():
        rows.append(f"| {k} | {acc:.3f} ± {t['accuracy_sd'][k]:.3f} | {t['macro_f1'][k]:.3f} | "
                    f"{t['unknown_rate'][k]:.3f} |")
    counts = ", ".join(f"{c} {n}" for c, n in t["per_type"].items())
    return "\n".join(rows) + (
        f"\n\nTypes: the magnetic-tile defect folders ({counts} images). Each of {t['draws']} random draws teaches k "
        "images per type and classifies every other defect image; no backbone is retrained: a type's prototype is "
        "the mean of its examples' pooled features at their most anomalous patches, the answer the most similar "
        "prototype (cosine) with a softmax confidence, \"unknown type\" below 0.5 (counted as wrong).")


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
        f"{h['false_reject_rate_unperturbed']:.3f}.")


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
        "not run (not installed with this run).",
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
    parser.add_argument("--no-long-parts", action="store_true", help="skip the long-part and image-size runs")
    parser.add_argument("--no-types", action="store_true", help="skip the defect-type runs")
    parser.add_argument("--no-health", action="store_true", help="skip the image-health runs")
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
            types=not args.no_types, health=not args.no_health,
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
