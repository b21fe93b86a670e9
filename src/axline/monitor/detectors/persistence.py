"""The model file: NumPy arrays plus a JSON header in one ``.npz``, never a pickle.

A file holds ``meta`` (UTF-8 JSON: format version, detector name, parameters, columns, threshold,
normal level), ``center`` and ``scale`` (the robust standardisation) and the detector's own arrays
under ``a_<name>``. Loading passes ``allow_pickle=False``, so a model file is safe to open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1


def write_model(det: Any, path: str | Path) -> Path:
    """Write a fitted detector to ``path`` (suffix forced to ``.npz``); returns the path written."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    meta = {
        "format": FORMAT_VERSION,
        "detector": det.name,
        "params": det.params,
        "columns": det.columns,
        "threshold": det.threshold,
        "normal_level": det.normal_level,
    }
    arrays = {f"a_{k}": np.asarray(v) for k, v in det._state_arrays().items()}
    arrays["center"] = np.asarray(det.center_)
    arrays["scale"] = np.asarray(det.scale_)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def read_model(path: str | Path, kinds: Mapping[str, type], expect: type | None = None) -> Any:
    """Load a model written by ``write_model``; ``kinds`` maps detector names to classes.

    ``expect`` (a detector class) refuses a file that holds another kind.
    """
    with np.load(Path(path), allow_pickle=False) as f:
        meta = json.loads(bytes(f["meta"]).decode("utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported model format {meta.get('format')!r}")
        kind = meta["detector"]
        if kind not in kinds:
            raise ValueError(f"{path}: unknown detector {kind!r}; known: {sorted(kinds)}")
        klass = kinds[kind]
        if expect is not None and klass is not expect:
            raise ValueError(f"{path} holds a {kind!r} detector, not {expect.name!r}")  # type: ignore[attr-defined]
        det = klass(**meta["params"])
        det.columns = list(meta["columns"])
        det.threshold = meta["threshold"]
        det.normal_level = float(meta.get("normal_level", 0.0))
        det.center_ = np.array(f["center"])
        det.scale_ = np.array(f["scale"])
        det._load_arrays({k[2:]: np.array(f[k]) for k in f.files if k.startswith("a_")})
    det.reset()
    return det
