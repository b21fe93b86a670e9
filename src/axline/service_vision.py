"""The vision stations of the running service: each camera with a model gets a station that inspects
its images, writes the pass or reject signal back to the machine, keeps heat maps, watches image
health and whether the camera still sends, and learns defect types from reviewed rejects.

:class:`VisionStations` is a part of :class:`axline.service.Service`; it uses the service's plant,
event writes, tag writes and historian.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from axline.historian import Event, Historian
from axline.plant import Plant

log = logging.getLogger(__name__)


class VisionStations:
    """Cameras, their inspectors and their health, for the service that holds them (which also gives
    ``emit_event``, ``update_event``, ``now_ns``, ``write_tag`` and ``_path``)."""

    plant: Plant
    historian: Historian
    vision: dict[str, Any]  # camera id -> axline.vision.VisionStation
    inspect_hooks: dict[str, Any]  # camera id -> (camera id, image path, image) -> result
    images_received: int

    def _setup_vision(self) -> None:
        """A vision station for each camera that names a model (the model file must exist)."""
        for i, cam in enumerate(self.plant.cameras):
            if not cam.model:
                continue
            path = self._path(cam.model)
            if not os.path.exists(path):
                raise FileNotFoundError(f"cameras[{i}].model: {path} does not exist; train one with "
                                        f"`axline train inspector --images GOOD_IMAGES_DIR --out {cam.model}`")
            from axline.vision import VisionStation

            station = VisionStation(cam, path, self._path(os.path.join("data", "heatmaps")))
            self.vision[cam.id] = station
            self.inspect_hooks[cam.id] = lambda _cam, p, img, st=station: st.inspect(p, img)


    async def _on_image(self, camera_id: str, path: Path, image: np.ndarray | None, error: str | None) -> None:
        cam = next(c for c in self.plant.cameras if c.id == camera_id)
        if error is not None:
            self.emit_event(Event(ts=self.now_ns(), kind="info", source=cam.asset, code="camera.bad_image",
                                  severity="warning", message=error, data={"camera": camera_id, "path": str(path)}))
            return
        self.images_received += 1
        hook = self.inspect_hooks.get(camera_id)
        if hook is None:
            return
        result = await asyncio.get_running_loop().run_in_executor(None, hook, camera_id, path, image)
        station = self.vision.get(camera_id)
        signal = cam.reject_tag if result.get("verdict") == "reject" else cam.pass_tag
        if signal is not None:
            try:
                await self.write_tag(signal, 1.0, f"inspector:{camera_id}")
                result["signal"] = signal
            except Exception as e:  # noqa: BLE001 - the verdict stands; the failed write is audited
                result["signal_error"] = f"{type(e).__name__}: {e}"
        if station is not None:
            result["latency_ms"] = station.record_latency(path)
            await asyncio.get_running_loop().run_in_executor(None, station.write_heatmap, path, image, result)
        result.pop("_map", None)
        result.pop("_verdict", None)
        for change in result.pop("_health_events", []):
            self._camera_health_event(cam, change)
        kind = "defect" if result.get("verdict") == "reject" else "inspection"
        self.emit_event(Event(ts=self.now_ns(), kind=kind, source=cam.asset, code=f"inspection.{result['verdict']}",
                              severity="warning" if kind == "defect" else "info",
                              message=f"{camera_id}: {path.name} {result['verdict']} (score {result['score']:.3f})",
                              data={"camera": camera_id, "path": str(path), **result}))

    def _camera_health_event(self, cam: Any, change: dict[str, Any]) -> None:
        """A system event when an image-health check of a camera starts warning (with its advice) or clears."""
        from axline.inspect.health import ADVICE, NAMES

        kind, warn = change["kind"], change["state"] == "warn"
        name = NAMES.get(kind, {"en": kind, "ko": kind})
        message = (f"{cam.id}: image health, {name['en']}: {ADVICE[kind]['en']}" if warn
                   else f"{cam.id}: image health, {name['en']} back to normal")
        self.emit_event(Event(ts=self.now_ns(), kind="system", source=cam.asset,
                              code=f"camera.health.{kind}" + ("" if warn else ".cleared"),
                              severity="warning" if warn else "info", message=message,
                              data={"camera": cam.id, "check": kind, "state": change["state"], "name": name,
                                    **({"advice": ADVICE[kind], "detail": change.get("check")} if warn else {})}))

    async def _camera_watchdog(self) -> None:
        """Every few seconds: has a camera stopped sending images?"""
        while True:
            await asyncio.sleep(2.0)
            for cid, station in list(self.vision.items()):
                try:
                    change = station.check_stopped()
                    if change is not None:
                        cam = next(c for c in self.plant.cameras if c.id == cid)
                        self._camera_health_event(cam, change)
                except Exception:  # noqa: BLE001 - counted and logged; the watchdog keeps watching
                    self.camera_watchdog_errors = getattr(self, "camera_watchdog_errors", 0) + 1
                    log.exception("camera watchdog failed for %s", cid)

    async def label_defect_type(self, event_id: int, type_id: str, names: dict[str, str] | None,
                                user: str) -> dict[str, Any]:
        """Teach the defect type of a confirmed reject (or an escape) to its camera's model."""
        ev = await asyncio.get_running_loop().run_in_executor(None, self.historian.event, event_id)
        if ev is None:
            raise KeyError(f"event {event_id} does not exist")
        station = self.vision.get(ev.data.get("camera", "")) if ev.kind in ("inspection", "defect") else None
        if station is None:
            raise ValueError(f"event {event_id} is not an inspection of a vision station")
        is_defect = (ev.kind == "defect" and ev.ack == "confirmed") or (ev.kind == "inspection" and ev.ack == "overruled")
        if not is_defect:
            raise ValueError("only a confirmed reject (or an overruled pass) can be given a defect type; review it first")
        stats = await asyncio.get_running_loop().run_in_executor(None, station.teach_type, ev.data, type_id, names, user)
        self.update_event(event_id, data={"defect_type_label": {"type": type_id, "names": stats["names"], "user": user,
                                                                "ts": time.time_ns()}})
        self._model_event("model.inspector_type_taught", station, user, event_id,
                          f"learnt defect type {stats['names']['en']} from a part labelled by {user}",
                          {"type": type_id, "type_en": stats["names"]["en"], "type_ko": stats["names"]["ko"],
                           "examples": stats["examples"].get(type_id, 0)})
        return {"id": event_id, **stats}

    def _model_event(self, code: str, station: Any, user: str, event_id: int, what: str, data: dict[str, Any]) -> None:
        """A system event when a station swaps in a model updated from a review (a ``model.*`` code: the
        value report lists it among what changed)."""
        cam = station.camera
        self.emit_event(Event(ts=self.now_ns(), kind="system", source=cam.asset, code=code, severity="info",
                              message=f"{cam.id}: the inspection model {what}; now version {station.model_version}",
                              data={"camera": cam.id, "user": user, "version": station.model_version,
                                    "model": os.path.basename(station.model_path), "event_id": event_id, **data}))

    def inspector_learnt(self, station: Any, learned: dict[str, Any], user: str, event_id: int) -> None:
        """The model-change event of a review the station learnt from (see ``VisionStation.feedback``)."""
        if not learned.get("learned"):
            return
        stats = learned.get("stats") or {}
        extra = {k: round(float(stats[k]), 5) for k in ("threshold_before", "threshold_after")
                 if isinstance(stats.get(k), int | float)}
        self._model_event("model.inspector_updated", station, user, event_id,
                          f"learnt from a part reviewed by {user} ({learned['kind'].replace('_', ' ')})",
                          {"learnt": learned["kind"], **extra})

    def vision_json(self) -> dict:
        """Counts, latency and reviews of each camera for ``/api/vision``."""
        return {"cameras": {cid: st.status() for cid, st in self.vision.items()}}
