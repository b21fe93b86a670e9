"""The vision station on the line: camera image -> inspector -> verdict event with heat map ->
reject (or pass) signal to the PLC; operator feedback improves the model without retraining.

Runs inside `axline serve` for every camera with a ``model`` in the plant file. Inference uses
only onnxruntime and NumPy (no torch). Latency is measured from the image landing in the camera
folder (its modification time) to the reject/pass signal acknowledged by the PLC.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from axline.plant import Camera

log = logging.getLogger(__name__)
MAX_REVIEW_ITEMS = 500  # reviewed parts the rates are computed on (the newest)
MAX_TILES_SHOWN = 64  # a verdict keeps each tile's box and score up to this many tiles (the grid on the review page)


class VisionStation:
    """One camera's inspection: model, heat maps, PLC signals, feedback, statistics."""

    def __init__(self, camera: Camera, model_path: str, heatmap_dir: str) -> None:
        from axline.inspect.inferencer import Inspector

        self.camera = camera
        self.model_path = model_path
        self.heatmap_dir = Path(heatmap_dir) / camera.id
        self.heatmap_dir.mkdir(parents=True, exist_ok=True)
        settings = getattr(camera, "inspection", None) or {}
        self.ignore = [tuple(r) for r in settings.get("ignore", [])]
        self.inspector = Inspector.load(model_path, ignore=self.ignore)
        roi = settings.get("roi")
        if roi is not None and tuple(roi) != self.inspector.prep.roi:
            raise ValueError(f"cameras {camera.id}: inspection.roi {list(roi)} differs from the model's region "
                             f"{self.inspector.prep.roi}; retrain with --roi {','.join(map(str, roi))}")
        self.health = self.inspector.health_monitor()
        if self.health is not None:
            from axline.inspect.health import spot_limit

            self.health.spots = spot_limit(self.inspector.model.good_scores)
        self.health_warnings: set[str] = set()
        self.expected_interval_s = settings.get("expected_interval_s")
        self.last_image_at: float | None = None
        self.intervals: deque[float] = deque(maxlen=50)
        self.stopped = False
        self.type_labels: deque[dict[str, Any]] = deque(maxlen=100)
        self._lock = threading.Lock()  # swapping the model while an image is being inspected
        self.latencies_ms: deque[float] = deque(maxlen=5000)
        self.inspect_ms: deque[float] = deque(maxlen=5000)
        self.counts = {"pass": 0, "reject": 0}
        self.reviewed = {"confirmed_reject": 0, "false_reject": 0, "confirmed_pass": 0, "escape": 0}
        self.updates: deque[dict[str, Any]] = deque(maxlen=100)
        # truth (good|defect), the verdict given when the part was inspected, and the model version
        # that gave it (0 = as trained; +1 at every feedback update); the newest reviews
        self.review_items: deque[dict[str, Any]] = deque(maxlen=MAX_REVIEW_ITEMS)
        self.model_version = 0
        self.rates: dict[str, Any] | None = None
        self.last_type: dict[str, Any] | None = None  # the newest reject's defect type (the dashboard's station card)

    def inspect(self, path: Path, image: np.ndarray) -> dict[str, Any]:
        """Runs in a worker thread: score the image (the heat map is written later, after the PLC
        has its signal: the conveyor does not wait for a picture)."""
        t0 = time.perf_counter()
        with self._lock:
            v = self.inspector.inspect(image, defect_type=False)
            version = self.model_version
        ms = (time.perf_counter() - t0) * 1000
        self.inspect_ms.append(ms)
        self.counts[v.verdict] = self.counts.get(v.verdict, 0) + 1
        heat = self.heatmap_dir / (path.stem + ".png")
        out = {"score": round(float(v.score), 5), "verdict": v.verdict, "threshold": round(float(v.threshold), 5),
               "inspect_ms": round(ms, 1), "model_version": version, "heatmap_url": f"/heatmaps/{self.camera.id}/{heat.name}",
               "image_url": f"/camera/{self.camera.id}/{path.name}", "_map": v.anomaly_map}
        if v.tile_scores is not None and len(v.tile_scores) > 0:  # the tile grid, also of a part seen whole in one tile (the review page draws it)
            worst = int(np.argmax(v.tile_scores))
            out["tiles"] = len(v.tile_scores)
            out["worst_tile"] = {"box": list(v.tile_boxes[worst]), "score": round(float(v.tile_scores[worst]), 5)}
            if len(v.tile_scores) <= MAX_TILES_SHOWN:
                out["tile_grid"] = {"size": [int(image.shape[1]), int(image.shape[0])],
                                    "boxes": [list(map(int, b)) for b in v.tile_boxes],
                                    "scores": [round(float(x), 5) for x in v.tile_scores]}
        if v.verdict == "reject":
            out["_verdict"] = v  # its type is told after the PLC has its signal (see write_heatmap)
        out["_health_events"] = self._health(image, v.patch_scores)
        return out

    def _health(self, image: np.ndarray, patch_scores: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Feed the health window; the warnings that start or clear with this image."""
        from axline.inspect.inferencer import crop_roi

        now = time.time()
        if self.last_image_at is not None:
            self.intervals.append(now - self.last_image_at)
        self.last_image_at = now
        changes: list[dict[str, Any]] = []
        if self.stopped:
            self.stopped = False
            changes.append({"kind": "stopped", "state": "cleared"})
        if self.health is None:
            return changes
        state = self.health.add(crop_roi(image, self.inspector.prep.roi), patch_scores)
        if state is None:
            return changes
        now_warn = set(state["warnings"])
        for kind in sorted(now_warn - self.health_warnings):
            changes.append({"kind": kind, "state": "warn", "check": state["checks"][kind]})
        for kind in sorted(self.health_warnings - now_warn):
            changes.append({"kind": kind, "state": "cleared"})
        self.health_warnings = now_warn
        return changes

    def check_stopped(self, now: float | None = None) -> dict[str, Any] | None:
        """The camera-stopped warning when no image came for ``expected_interval_s`` (default: ten
        times the usual interval, at least 30 s); None otherwise or when already raised."""
        if self.last_image_at is None or self.stopped:
            return None
        now = time.time() if now is None else now
        limit = self.expected_interval_s
        if limit is None:
            if len(self.intervals) < 5:
                return None
            limit = max(30.0, 10.0 * float(np.median(self.intervals)))
        if now - self.last_image_at <= limit:
            return None
        self.stopped = True
        return {"kind": "stopped", "state": "warn", "check": {"value": round(now - self.last_image_at, 1),
                                                               "high": round(float(limit), 1), "status": "warn"}}

    def health_json(self) -> dict[str, Any]:
        """The health strip: every check's state (ok / warn / waiting) with its advice in Korean and English."""
        from axline.inspect.health import ADVICE, KINDS, NAMES

        state = self.health.state if self.health is not None else None
        checks = {}
        for kind in KINDS:
            if kind == "stopped":
                status = "warn" if self.stopped else ("ok" if self.last_image_at is not None else "waiting")
                detail = None
            elif state is None:
                status, detail = ("waiting" if self.health is not None else "off"), None
            else:
                detail = state["checks"].get(kind)
                status = detail["status"] if detail else "off"
            checks[kind] = {"status": status, "name": NAMES[kind], "detail": detail,
                            **({"advice": ADVICE[kind]} if status == "warn" else {})}
        return {"checks": checks, "window": self.health.window if self.health is not None else None,
                "images": len(self.health.recent) if self.health is not None else 0}

    def teach_type(self, event_data: dict[str, Any], type_id: str, names: dict[str, str] | None,
                   user: str) -> dict[str, Any]:
        """Runs in a worker thread: keep a confirmed defect image as an example of ``type_id``; the
        model file is updated in place (atomically) and reloaded."""
        from axline.inspect.inferencer import Inspector, one_blas_thread
        from axline.inspect.train import teach_defect_type

        path = event_data.get("path")
        if not path or not os.path.exists(path):
            raise ValueError("the image of this inspection is no longer on disk; label a newer reject")
        tmp = self.model_path + ".tmp"
        _, stats = teach_defect_type(self.model_path, path, type_id, names, out=tmp, source=Path(path).name)
        os.replace(tmp, self.model_path)
        new = Inspector.load(self.model_path, ignore=self.ignore)
        new.types.adopt_unlabelled(self.inspector.types)  # the rejects seen so far still teach
        with one_blas_thread():
            new.types.fit()  # here, not on the next reject while inspections wait
        with self._lock:
            self.inspector = new
        self.type_labels.append({"ts": time.time_ns(), "type": type_id, "user": user})
        return stats

    def write_heatmap(self, path: Path, image: np.ndarray, result: dict[str, Any]) -> None:
        """Runs in a worker thread once the PLC has its signal: a reject's defect type (when types are
        taught), then the anomaly heat map of ``image`` beside the camera's images."""
        from axline.inspect.inferencer import one_blas_thread, save_heatmap_overlay

        v = result.pop("_verdict", None)
        if v is not None:
            with self._lock:
                inspector = self.inspector
                dtype = inspector.type_of(image, v)
            if dtype is not None:
                result["defect_type"] = dtype
                self.last_type = {"type": dtype.get("type"), "label": dtype.get("label"), "known": dtype.get("known"),
                                  "ts": time.time_ns()}
            # the self-training refit with the rejects seen (every few dozen) runs without the lock, so
            # the next inspection does not wait for it (one BLAS thread: many are several times slower here)
            with one_blas_thread():
                inspector.types.refresh()
        save_heatmap_overlay(image, result.pop("_map"), self.heatmap_dir / (path.stem + ".png"), result["threshold"])

    def record_latency(self, path: Path) -> float | None:
        """Milliseconds from the image landing on disk to now (kept for the p50/p99), or ``None``."""
        try:
            landed = path.stat().st_mtime
        except OSError:
            return None
        ms = (time.time() - landed) * 1000
        self.latencies_ms.append(ms)
        return round(ms, 1)

    def feedback(self, event_data: dict[str, Any], verdict: str) -> dict[str, Any]:
        """Runs in a worker thread. ``overruled`` on a reject: a false reject, its patches join the
        memory bank; ``confirmed`` on a reject or ``overruled`` on a pass: a real defect, it refines
        the threshold. The model file is updated in place (atomically) and reloaded."""
        from axline.inspect.inferencer import Inspector, one_blas_thread
        from axline.inspect.train import update_with_feedback

        path = event_data.get("path")
        was = event_data.get("verdict")
        if was == "reject":
            key = "false_reject" if verdict == "overruled" else "confirmed_reject"
        else:
            key = "escape" if verdict == "overruled" else "confirmed_pass"
        self.reviewed[key] += 1
        truth = "good" if key in ("false_reject", "confirmed_pass") else "defect"
        self.review_items.append({"truth": truth, "verdict": was,
                                  "model_version": int(event_data.get("model_version", 0) or 0)})
        good = [path] if key == "false_reject" else []
        defects = [path] if key in ("escape", "confirmed_reject") else []
        if not (good or defects) or not path or not os.path.exists(path):
            self.rates = self._rates()
            return {"learned": False, "reviewed": dict(self.reviewed), "rates": self.rates}
        tmp = self.model_path + ".tmp"
        _, stats = update_with_feedback(self.model_path, good_images=good, defect_images=defects, out=tmp)
        os.replace(tmp, self.model_path)
        new = Inspector.load(self.model_path, ignore=self.ignore)
        new.types.adopt_unlabelled(self.inspector.types)  # the rejects seen so far still teach
        with one_blas_thread():
            new.types.fit()  # here, not on the next reject while inspections wait
        with self._lock:
            self.inspector = new
            self.model_version += 1
        stats = {k: v for k, v in stats.items() if isinstance(v, int | float | str | bool | dict | list | None)}
        self.updates.append({"ts": time.time_ns(), "kind": key, **stats})
        self.rates = self._rates()
        return {"learned": True, "kind": key, "stats": stats, "reviewed": dict(self.reviewed), "rates": self.rates}

    def _rates(self) -> dict[str, Any]:
        """False-reject and escape rates of the reviewed parts, each counted with the verdict it got
        when it was inspected: *before* = parts inspected by the model as trained, *after* = parts
        inspected after at least one feedback update. No image is scored again (re-scoring the very
        images an update learnt from would make "after" right by construction)."""

        def rate(items: list[dict[str, Any]], truth: str, bad: str) -> float | None:
            judged = [r for r in items if r["truth"] == truth]
            return round(sum(r["verdict"] == bad for r in judged) / len(judged), 3) if judged else None

        out: dict[str, Any] = {"n_good": sum(r["truth"] == "good" for r in self.review_items),
                               "n_defect": sum(r["truth"] == "defect" for r in self.review_items),
                               "model_version": self.model_version}
        for name, items in (("before", [r for r in self.review_items if r["model_version"] == 0]),
                            ("after", [r for r in self.review_items if r["model_version"] > 0])):
            out[name] = {"parts": len(items), "false_reject_rate": rate(items, "good", "reject"),
                         "escape_rate": rate(items, "defect", "pass")}
        return out

    def card(self) -> dict[str, Any]:
        """What the dashboard's station card shows: tiles, each health check's state, the newest defect type."""
        return {"camera": self.camera.id, "tiles": len(self.inspector.offsets),
                "health": {k: c["status"] for k, c in self.health_json()["checks"].items()},
                "last_type": self.last_type}

    def status(self) -> dict[str, Any]:
        """Counts, reviews, rates and latency of the camera for health and the review page."""
        lat = np.array(self.latencies_ms) if self.latencies_ms else None
        ins = np.array(self.inspect_ms) if self.inspect_ms else None
        total_rej = self.reviewed["confirmed_reject"] + self.reviewed["false_reject"]
        total_pass = self.reviewed["confirmed_pass"] + self.reviewed["escape"]
        return {
            "camera": self.camera.id, "counts": dict(self.counts), "reviewed": dict(self.reviewed),
            "false_reject_share_of_reviewed_rejects": round(self.reviewed["false_reject"] / total_rej, 3) if total_rej else None,
            "escape_share_of_reviewed_passes": round(self.reviewed["escape"] / total_pass, 3) if total_pass else None,
            "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1), "p99": round(float(np.percentile(lat, 99)), 1),
                           "n": int(len(lat))} if lat is not None else None,
            "inspect_ms": {"p50": round(float(np.percentile(ins, 50)), 1), "p99": round(float(np.percentile(ins, 99)), 1)}
            if ins is not None else None,
            "updates": list(self.updates)[-10:],
            "rates": self.rates,
            "tiles": len(self.inspector.offsets),
            "types": {"names": self.inspector.types.names, "examples": self.inspector.types.counts()},
            "health": self.health_json(),
        }


async def run_in_thread(fn, *args):
    """Run ``fn(*args)`` in the default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
