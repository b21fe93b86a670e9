"""The ``.axi`` inspector artifact: one zip file with the backbone, the memory bank and metadata.

Layout of the zip:

* ``backbone.onnx`` - the patch-feature graph (float32 pixels 0..255 in, ``(N, D, h, w)`` out);
* ``bank.npy`` - the memory bank of good patch features ``(M, D)`` (float16 or float32);
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
FORMAT_VERSION = 1
MEMBERS = ("meta.json", "backbone.onnx", "bank.npy")
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
    input pixels.
    """

    size: int = 256
    roi: tuple[int, int, int, int] | None = None
    normalize_brightness: bool = True
    color: str = "grey"
    scaling: str = "(x - 127.5) / 127.5 inside the graph"
    smoothing_sigma: float = 8.0

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

    def to_json(self) -> dict[str, Any]:
        """Plain dict for ``meta.json``."""
        return {
            "size": self.size,
            "roi": list(self.roi) if self.roi is not None else None,
            "normalize_brightness": self.normalize_brightness,
            "color": self.color,
            "scaling": self.scaling,
            "smoothing_sigma": self.smoothing_sigma,
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

    def __post_init__(self) -> None:
        if self.bank.ndim != 2 or len(self.bank) == 0:
            raise ValueError(f"bank must be a non-empty (M, D) array, got shape {self.bank.shape}")
        if self.position_scale is not None:
            self.position_scale = np.asarray(self.position_scale, dtype=np.float32)
            if self.position_scale.ndim != 2 or not np.all(self.position_scale > 0):
                raise ValueError("position_scale must be a 2-D array of positive numbers")
        if not 1 <= self.top_k <= 4096:
            raise ValueError(f"top_k must be between 1 and 4096, got {self.top_k}")
        if not np.isfinite(self.threshold):
            raise ValueError(f"threshold must be finite, got {self.threshold!r}")

    @property
    def feature_dim(self) -> int:
        """Dimension of one patch feature."""
        return int(self.bank.shape[1])

    def meta(self, backbone_sha: str, bank_sha: str) -> dict[str, Any]:
        """The ``meta.json`` content."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "threshold": float(self.threshold),
            "target_frr": float(self.target_frr),
            "preprocessing": self.preprocessing.to_json(),
            "score": {
                "what": "mean of the top_k patch scores; a patch score is the distance to the nearest "
                "memory-bank patch divided by position_scale (mean held-out good distance there)",
                "top_k": int(self.top_k),
                "position_scale": None if self.position_scale is None else self.position_scale.round(6).tolist(),
            },
            "calibration": {
                "good_scores": [float(s) for s in self.good_scores],
                "defect_scores": [float(s) for s in self.defect_scores],
            },
            "bank_shape": list(self.bank.shape),
            "bank_dtype": str(self.bank.dtype),
            "sha256": {"backbone.onnx": backbone_sha, "bank.npy": bank_sha},
            "info": self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write the model as one ``.axi`` file (atomically: temp file, then rename)."""
        path = Path(path)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(self.bank), allow_pickle=False)
        bank_bytes = buf.getvalue()
        meta = self.meta(sha256_bytes(self.backbone_onnx), sha256_bytes(bank_bytes))
        tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("meta.json", json.dumps(meta, indent=1, ensure_ascii=False))
            zf.writestr("backbone.onnx", self.backbone_onnx)
            zf.writestr("bank.npy", bank_bytes)
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
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
            raise ModelFileError(f"{name} is not an axline inspector model (bad zip) — {RETRAIN_HINT}") from exc
        try:
            meta = json.loads(meta_bytes.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{name}: meta.json is corrupt — {RETRAIN_HINT}") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelFileError(f"{name} is not an axline inspector model (wrong format tag) — {RETRAIN_HINT}")
        if meta.get("version") != FORMAT_VERSION:
            raise ModelFileError(
                f"{name} has model format version {meta.get('version')!r}; this axline reads version "
                f"{FORMAT_VERSION} — {RETRAIN_HINT}"
            )
        hashes = meta.get("sha256", {})
        for member, data in (("backbone.onnx", backbone), ("bank.npy", bank_bytes)):
            if hashes.get(member) != sha256_bytes(data):
                raise ModelFileError(f"{name}: {member} fails its checksum (file corrupt) — {RETRAIN_HINT}")
        try:
            bank = np.load(io.BytesIO(bank_bytes), allow_pickle=False)
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
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{name}: meta.json or bank.npy is malformed ({exc}) — {RETRAIN_HINT}") from exc
