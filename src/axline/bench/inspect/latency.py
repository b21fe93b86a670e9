"""Inspection latency, measured in a separate process per image size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from axline.bench.inspect.accuracy import _evenly, _grey

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


def _latency(model_path: Path, images: list[Path], n: int, warmup: int,
             size: tuple[int, int] = (256, 256)) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    src = str(Path(__file__).resolve().parents[3])
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


LATENCY_SIZES = ((512, 256), (1024, 256), (1024, 512))


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
