"""The ``.axi`` inspector artifact: one zip file with the backbone, the memory bank and metadata.

Layout of the zip:

* ``backbone.onnx`` - the patch-feature graph (float32 pixels 0..255 in, ``(N, D, h, w)`` out);
* ``bank.npy`` - the memory bank of good patch features ``(M, D)`` (float16 or float32; empty
  when the model scores with the per-position Gaussian only);
* ``gaussian.npz`` - optional: per-position mean and covariance of good patch features (count,
  mean ``(P, D)``, cov ``(P, D, D)``);
* ``health.json`` - optional: image-health reference of the good training images;
* ``types.json`` - optional: defect types taught by operators (names in Korean and English and
  one pooled feature per labelled example);
* ``meta.json`` - format version, preprocessing, threshold, calibration scores, training summary and
  the sha256 of the two other members (checked on load).

Loading needs only NumPy and the standard library (no torch).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "axline-inspector"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MEMBERS = ("meta.json", "backbone.onnx", "bank.npy")
OPTIONAL_MEMBERS = ("gaussian.npz", "types.json", "health.json")
SCORERS = ("gaussian", "nn", "combined")
RETRAIN_HINT = "retrain with `axline train inspector`"


class ModelFileError(ValueError):
    """The file is not a usable axline inspector model."""


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class Preprocessing:
    """How an image becomes the backbone input.

    ``size``: side of the square input; ``roi``: optional ``(x, y, width, height)`` crop in pixels
    of the original image; ``color``: ``"grey"`` (any input is converted to grey and repeated on
    three channels) or ``"rgb"`` (grey input is repeated); ``normalize_brightness``: rescale each
    image to a fixed mean and contrast (removes lighting changes between shots); ``scaling``:
    documents the in-graph input scaling; ``smoothing_sigma``: Gaussian sigma of the anomaly map in
    input pixels; ``canvas``: ``(width, height)`` of the working canvas the region is resized to
    and cut into overlapping ``size`` tiles (None: one square of ``size``, the image squashed);
    ``tile_overlap``: pixels shared by neighbouring tiles; ``scale``: canvas pixels per image pixel
    as planned from the smallest defect (informative); ``ignore``: ``(x, y, width, height)``
    rectangles of the image whose patches never count (edges, labels, holes).
    """

    size: int = 256
    roi: tuple[int, int, int, int] | None = None
    normalize_brightness: bool = True
    color: str = "grey"
    scaling: str = "(x - 127.5) / 127.5 inside the graph"
    smoothing_sigma: float = 8.0
    canvas: tuple[int, int] | None = None
    tile_overlap: int = 64
    scale: float | None = None
    ignore: list[tuple[int, int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or not 32 <= self.size <= 1024 or self.size % 16:
            raise ValueError(f"size must be a multiple of 16 between 32 and 1024, got {self.size!r}")
        if self.color not in ("grey", "rgb"):
            raise ValueError(f"color must be 'grey' or 'rgb', got {self.color!r}")
        if self.roi is not None:
            if len(self.roi) != 4 or self.roi[0] < 0 or self.roi[1] < 0 or self.roi[2] < 8 or self.roi[3] < 8:
                raise ValueError(
                    f"roi must be (x, y, width, height) with x, y >= 0 and width, height >= 8, got {self.roi!r}"
                )
        if not 0 <= self.smoothing_sigma <= 64:
            raise ValueError(f"smoothing_sigma must be between 0 and 64, got {self.smoothing_sigma!r}")
        if self.canvas is not None:
            self.canvas = (int(self.canvas[0]), int(self.canvas[1]))
            if min(self.canvas) < self.size or max(self.canvas) > 16384 or self.canvas[0] % 16 or self.canvas[1] % 16:
                raise ValueError(f"canvas must be (width, height), multiples of 16, each side between the tile size "
                                 f"{self.size} and 16384, got {self.canvas!r}")
        if self.tile_overlap < 0 or self.tile_overlap % 16 or (self.canvas is not None and self.tile_overlap >= self.size):
            raise ValueError(f"tile_overlap must be a multiple of 16 in [0, {self.size}), got {self.tile_overlap!r}")
        self.ignore = [tuple(int(v) for v in r) for r in self.ignore]  # type: ignore[misc]
        for r in self.ignore:
            if len(r) != 4 or r[2] <= 0 or r[3] <= 0:
                raise ValueError(f"ignore rectangles must be (x, y, width, height) with width, height > 0, got {r!r}")

    @property
    def canvas_size(self) -> tuple[int, int]:
        """The working canvas ``(width, height)`` (one tile when no canvas is set)."""
        return self.canvas if self.canvas is not None else (self.size, self.size)

    def tiles(self) -> list[tuple[int, int]]:
        """``(y, x)`` offsets of the tiles on the canvas."""
        from axline.inspect.tiling import tile_grid

        return tile_grid(self.canvas_size, self.size, self.tile_overlap)

    def to_json(self) -> dict[str, Any]:
        """Plain dict for ``meta.json``."""
        return {
            "size": self.size,
            "roi": list(self.roi) if self.roi is not None else None,
            "normalize_brightness": self.normalize_brightness,
            "color": self.color,
            "scaling": self.scaling,
            "smoothing_sigma": self.smoothing_sigma,
            "canvas": list(self.canvas) if self.canvas is not None else None,
            "tile_overlap": self.tile_overlap,
            "scale": self.scale,
            "ignore": [list(r) for r in self.ignore],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_json`."""
        roi = data.get("roi")
        return cls(
            size=int(data["size"]),
            roi=tuple(int(v) for v in roi) if roi is not None else None,  # type: ignore[arg-type]
            normalize_brightness=bool(data.get("normalize_brightness", True)),
            color=str(data.get("color", "grey")),
            scaling=str(data.get("scaling", "")),
            smoothing_sigma=float(data.get("smoothing_sigma", 8.0)),
            canvas=tuple(int(v) for v in data["canvas"]) if data.get("canvas") else None,  # type: ignore[arg-type]
            tile_overlap=int(data.get("tile_overlap", 64)),
            scale=None if data.get("scale") is None else float(data["scale"]),
            ignore=[tuple(int(v) for v in r) for r in data.get("ignore", [])],  # type: ignore[misc]
        )


@dataclass
class InspectorModel:
    """A trained inspector in memory: ONNX backbone bytes, memory bank and metadata."""

    backbone_onnx: bytes
    bank: np.ndarray
    threshold: float
    preprocessing: Preprocessing
    good_scores: list[float] = field(default_factory=list)
    defect_scores: list[float] = field(default_factory=list)
    target_frr: float = 0.01
    info: dict[str, Any] = field(default_factory=dict)
    position_scale: np.ndarray | None = None
    top_k: int = 1
    scorer: str = "nn"
    gaussian: Any = None  # axline.inspect.scoring.GaussianStats
    gaussian_scale: np.ndarray | None = None
    types: dict[str, Any] | None = None
    health: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {SCORERS}, got {self.scorer!r}")
        if self.bank.ndim != 2:
            raise ValueError(f"bank must be an (M, D) array, got shape {self.bank.shape}")
        if self.scorer in ("nn", "combined") and len(self.bank) == 0:
            raise ValueError(f"the {self.scorer!r} scorer needs a non-empty memory bank")
        if self.scorer in ("gaussian", "combined") and self.gaussian is None:
            raise ValueError(f"the {self.scorer!r} scorer needs the per-position Gaussian (gaussian.npz)")
        for name in ("position_scale", "gaussian_scale"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float32)
                if v.ndim == 2:  # one tile
                    v = v[None]
                if v.ndim != 3 or not np.all(v > 0):
                    raise ValueError(f"{name} must be a (tiles, h, w) array of positive numbers")
                setattr(self, name, v)
        if not 1 <= self.top_k <= 4096:
            raise ValueError(f"top_k must be between 1 and 4096, got {self.top_k}")
        if not np.isfinite(self.threshold):
            raise ValueError(f"threshold must be finite, got {self.threshold!r}")

    @property
    def feature_dim(self) -> int:
        """Dimension of one patch feature."""
        return int(self.bank.shape[1]) if len(self.bank) or self.gaussian is None else self.gaussian.input_dim

    def meta(self, hashes: dict[str, str]) -> dict[str, Any]:
        """The ``meta.json`` content (``hashes``: sha256 of every other member)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "threshold": float(self.threshold),
            "target_frr": float(self.target_frr),
            "preprocessing": self.preprocessing.to_json(),
            "score": {
                "what": "the largest tile score; a tile score is the mean of its top_k patch scores; a patch "
                "score is, by scorer, the distance to the nearest memory-bank patch (nn), the Mahalanobis "
                "distance to the position's Gaussian (gaussian) or the mean of both (combined), each "
                "divided by its scale (mean held-out good score at that position)",
                "scorer": self.scorer,
                "top_k": int(self.top_k),
                "position_scale": None if self.position_scale is None else self.position_scale.round(6).tolist(),
                "gaussian_scale": None if self.gaussian_scale is None else self.gaussian_scale.round(6).tolist(),
            },
            "calibration": {
                "good_scores": [float(s) for s in self.good_scores],
                "defect_scores": [float(s) for s in self.defect_scores],
            },
            "bank_shape": list(self.bank.shape),
            "bank_dtype": str(self.bank.dtype),
            "sha256": hashes,
            "info": self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write the model as one ``.axi`` file (atomically: temp file, then rename)."""
        path = Path(path)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(self.bank), allow_pickle=False)
        bank_bytes = buf.getvalue()
        members = {"backbone.onnx": self.backbone_onnx, "bank.npy": bank_bytes}
        if self.gaussian is not None:
            buf = io.BytesIO()
            extra = {} if self.gaussian.projection is None else {"projection": self.gaussian.projection}
            np.savez(buf, count=np.array(self.gaussian.count), mean=self.gaussian.mean, cov=self.gaussian.cov,
                     **extra)
            members["gaussian.npz"] = buf.getvalue()
        if self.health is not None:
            members["health.json"] = json.dumps(self.health).encode("utf-8")
        if self.types is not None:
            members["types.json"] = json.dumps(self.types, ensure_ascii=False).encode("utf-8")
        meta = self.meta({k: sha256_bytes(v) for k, v in members.items()})
        tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("meta.json", json.dumps(meta, indent=1, ensure_ascii=False))
            for k, v in members.items():
                zf.writestr(k, v)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> InspectorModel:
        """Read and verify a ``.axi`` file; raise :class:`ModelFileError` with a clear message."""
        path = Path(path)
        name = path.name
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file — {RETRAIN_HINT}")
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                missing = [m for m in MEMBERS if m not in names]
                if missing:
                    raise ModelFileError(
                        f"{name} is not an axline inspector model (missing {', '.join(missing)}) — "
                        f"{RETRAIN_HINT}"
                    )
                meta_bytes = zf.read("meta.json")
                backbone = zf.read("backbone.onnx")
                bank_bytes = zf.read("bank.npy")
                extra = {m: zf.read(m) for m in OPTIONAL_MEMBERS if m in names}
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
            raise ModelFileError(f"{name} is not an axline inspector model (bad zip) — {RETRAIN_HINT}") from exc
        try:
            meta = json.loads(meta_bytes.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{name}: meta.json is corrupt — {RETRAIN_HINT}") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelFileError(f"{name} is not an axline inspector model (wrong format tag) — {RETRAIN_HINT}")
        if meta.get("version") not in READABLE_VERSIONS:
            raise ModelFileError(
                f"{name} has model format version {meta.get('version')!r}; this axline reads version "
                f"{FORMAT_VERSION} — {RETRAIN_HINT}"
            )
        hashes = meta.get("sha256", {})
        for member, data in (("backbone.onnx", backbone), ("bank.npy", bank_bytes), *extra.items()):
            if hashes.get(member) != sha256_bytes(data):
                raise ModelFileError(f"{name}: {member} fails its checksum (file corrupt) — {RETRAIN_HINT}")
        try:
            bank = np.load(io.BytesIO(bank_bytes), allow_pickle=False)
            gaussian = None
            if "gaussian.npz" in extra:
                from axline.inspect.scoring import GaussianStats

                with np.load(io.BytesIO(extra["gaussian.npz"]), allow_pickle=False) as z:
                    gaussian = GaussianStats(float(z["count"]), z["mean"], z["cov"],
                                             z["projection"] if "projection" in z.files else None)
            types = json.loads(extra["types.json"].decode("utf-8")) if "types.json" in extra else None
            health = json.loads(extra["health.json"].decode("utf-8")) if "health.json" in extra else None
            calibration = meta.get("calibration", {})
            score = meta.get("score", {}) if isinstance(meta.get("score"), dict) else {}
            return cls(
                backbone_onnx=backbone,
                bank=bank,
                threshold=float(meta["threshold"]),
                preprocessing=Preprocessing.from_json(meta["preprocessing"]),
                good_scores=[float(s) for s in calibration.get("good_scores", [])],
                defect_scores=[float(s) for s in calibration.get("defect_scores", [])],
                target_frr=float(meta.get("target_frr", 0.01)),
                info=dict(meta.get("info", {})),
                position_scale=None if score.get("position_scale") is None else np.asarray(score["position_scale"]),
                top_k=int(score.get("top_k", 1)),
                scorer=str(score.get("scorer", "nn")),
                gaussian=gaussian,
                gaussian_scale=None if score.get("gaussian_scale") is None else np.asarray(score["gaussian_scale"]),
                types=types,
                health=health,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{name}: meta.json or bank.npy is malformed ({exc}) — {RETRAIN_HINT}") from exc
