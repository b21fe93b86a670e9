"""Defect types taught by operators: a nearest-prototype classifier on pooled anomaly-region features.

When an operator confirms a reject and names what it is (the plant's own names, in Korean and
English), the features of the image's most anomalous patches are averaged into one vector and kept
as an example of that type. A new reject is given the type whose examples' mean (prototype) is
most similar (cosine), with a confidence from a softmax over the similarities; below
``min_confidence`` it is reported as an unknown type. No backbone is retrained.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from axline import i18n

MAX_EXAMPLES_PER_TYPE = 50
TEMPERATURE = 0.05  # softmax temperature on cosine similarities
MIN_CONFIDENCE = 0.5
REGION_PATCHES = 4  # patches averaged into the region feature
UNKNOWN = i18n.both("inspect.type.unknown")  # the label of a defect no known type fits
TYPE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def region_feature(features: np.ndarray, scores: np.ndarray, patches: int = REGION_PATCHES) -> np.ndarray:
    """Mean feature ``(D,)`` of the ``patches`` highest-scoring patches of tile features ``(T, D, g, g)``
    with patch scores ``(T, g, g)``, L2-normalised."""
    if features.ndim == 3:
        features = features[None]
        scores = scores[None] if scores.ndim == 2 else scores
    t, d, h, w = features.shape
    if scores.shape != (t, h, w):
        raise ValueError(f"scores must be {(t, h, w)}, got {scores.shape}")
    flat = scores.ravel()
    k = min(max(1, patches), flat.size)
    top = np.argpartition(flat, flat.size - k)[flat.size - k:]
    q = features.transpose(0, 2, 3, 1).reshape(-1, d)[top].mean(axis=0).astype(np.float64)
    n = np.linalg.norm(q)
    return (q / n if n > 0 else q).astype(np.float32)


class DefectTypes:
    """Named defect types and their labelled examples (bounded per type)."""

    def __init__(self, names: dict[str, dict[str, str]] | None = None,
                 examples: list[dict[str, Any]] | None = None, min_confidence: float = MIN_CONFIDENCE,
                 max_per_type: int = MAX_EXAMPLES_PER_TYPE) -> None:
        self.names: dict[str, dict[str, str]] = dict(names or {})
        self.examples: list[dict[str, Any]] = list(examples or [])
        self.min_confidence = float(min_confidence)
        self.max_per_type = int(max_per_type)
        self._protos: tuple[list[str], np.ndarray] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> DefectTypes:
        """Inverse of :meth:`to_json` (``None``: no types yet)."""
        if not data:
            return cls()
        return cls(data.get("names"), data.get("examples"), float(data.get("min_confidence", MIN_CONFIDENCE)),
                   int(data.get("max_per_type", MAX_EXAMPLES_PER_TYPE)))

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the model's ``types.json``."""
        return {"what": "defect types taught by operators: mean pooled anomaly-region feature per type",
                "names": self.names, "examples": self.examples, "min_confidence": self.min_confidence,
                "max_per_type": self.max_per_type}

    def add(self, type_id: str, feature: np.ndarray, names: dict[str, str] | None = None,
            source: str | None = None) -> None:
        """Keep one labelled example of ``type_id`` (the oldest of that type goes past the bound)."""
        if not TYPE_ID.match(type_id):
            raise ValueError(f"a defect type id is 1-40 lower-case letters, digits, '-' or '_', got {type_id!r}")
        if type_id not in self.names:
            if not names or not names.get("en") or not names.get("ko"):
                raise ValueError(f"a new defect type {type_id!r} needs its names in English and Korean")
            self.names[type_id] = {"en": str(names["en"])[:60], "ko": str(names["ko"])[:60]}
        elif names and names.get("en") and names.get("ko"):
            self.names[type_id] = {"en": str(names["en"])[:60], "ko": str(names["ko"])[:60]}
        self.examples.append({"type": type_id, "feature": [round(float(v), 6) for v in feature],
                              "source": source})
        same = [i for i, e in enumerate(self.examples) if e["type"] == type_id]
        for i in reversed(same[: max(0, len(same) - self.max_per_type)]):
            del self.examples[i]
        self._protos = None

    def counts(self) -> dict[str, int]:
        """Labelled examples per type."""
        out = dict.fromkeys(self.names, 0)
        for e in self.examples:
            out[e["type"]] = out.get(e["type"], 0) + 1
        return out

    def _prototypes(self) -> tuple[list[str], np.ndarray]:
        if self._protos is None:
            ids = [t for t in self.names if any(e["type"] == t for e in self.examples)]
            protos = []
            for t in ids:
                m = np.mean([e["feature"] for e in self.examples if e["type"] == t], axis=0)
                protos.append(m / (np.linalg.norm(m) or 1.0))
            self._protos = (ids, np.asarray(protos, np.float32).reshape(len(ids), -1))
        return self._protos

    def predict(self, feature: np.ndarray) -> dict[str, Any] | None:
        """``{"type", "confidence", "label": {"en", "ko"}, "known"}`` (``None`` when no type is taught)."""
        ids, protos = self._prototypes()
        if not ids:
            return None
        sims = protos @ np.asarray(feature, np.float32)
        z = (sims - sims.max()) / TEMPERATURE
        p = np.exp(z) / np.exp(z).sum()
        best = int(np.argmax(p))
        conf = float(p[best])
        if len(ids) > 1 and conf < self.min_confidence:
            return {"type": None, "confidence": round(conf, 3), "label": dict(UNKNOWN), "known": False,
                    "nearest": ids[best]}
        return {"type": ids[best], "confidence": round(conf, 3), "label": dict(self.names[ids[best]]), "known": True}
