"""Defect types taught by operators: a few-shot classifier on features of the defect region.

When an operator confirms a reject and names what it is (the plant's own names, in Korean and
English), the image's defect is described and kept as an example of that type. No backbone is
retrained. The description (``DESCRIPTOR``) runs the ImageNet EfficientNet-Lite0 (``TYPE_BACKBONE``,
whichever variant the inspector itself runs) once more on the part's tiles, tapping deeper stages
than the anomaly detector (blocks ``TYPE_BLOCKS``: what a defect *is* rather than that something
differs), on the detector's patch grid: the mean deep feature
of the ``REGION_PATCHES`` patches the detector scores highest (what the defect looks like), that
mean minus the mean of the patches scoring at most the median (the defect against the part's own
surface), each L2-normalised, and the spread of every feature over the whole part. It costs one
backbone run on a reject (the detector's features are not enough: its shallow stages tell the types
apart less well). Types taught before this description keep the older one (``region-v1``: the
detector's own features at the same patches), so a station's taught types go on working.

A new reject is given the type of

* the nearest type mean (cosine) while some type has fewer than ``LOGISTIC_FROM`` descriptors;
* a multinomial logistic regression on the standardised descriptors once every type has that many,
  its strength chosen among ``LOGISTIC_CS`` by cross-validation on the labelled images.

Each labelled image is kept with the descriptors of its mirrored views (a defect's type does not
depend on which way the part lies), so one image gives four descriptors.

Rejects the station has typed are kept, unlabelled (the last ``MAX_UNLABELLED``): the classifier
is refitted with those it types with a probability above ``SELF_TRAIN_FLOOR`` added under the type it
gives them (``SELF_TRAIN_ROUNDS`` rounds of self-training; the strength and the threshold stay those
of the labelled cross-validation), again after every ``REFIT_EVERY`` new rejects (:meth:`DefectTypes.refresh`,
which a station calls after typing a reject, outside its inspection lock). A plant's own rejects
show how its types vary, which a handful of labelled images cannot.

The confidence is the classifier's probability. "Unknown type" is answered at or below a threshold
chosen on the labelled examples alone, by the same cross-validation: the highest confidence up to
which the left-out examples were right no more often than a guess, one more right and one more wrong
answer counted (nothing is unknown while a type has a single example). The strength and the
threshold are kept with the types (``cv`` in :meth:`DefectTypes.to_json`) until an example is added.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import deque
from typing import Any

import numpy as np

from axline import i18n

MAX_EXAMPLES_PER_TYPE = 50
TEMPERATURE = 0.05  # softmax temperature on cosine similarities (nearest type mean)
REGION_PATCHES = 4  # patches averaged into the region feature
LOGISTIC_FROM = 3  # descriptors of every type (views included) before the logistic regression takes over
LOGISTIC_C = 0.1  # inverse L2 strength of the logistic regression when it cannot be cross-validated
LOGISTIC_CS = (0.01, 0.1, 1.0)  # the strengths cross-validation chooses among
DESCRIPTOR = "deep-v2"  # the description of new types (see the module doc)
LEGACY_DESCRIPTOR = "region-v1"  # the description of types taught before ``DESCRIPTOR`` existed
TYPE_BACKBONE = "lite0"  # the variant the description runs, whatever the inspector runs (stored descriptors depend on it)
TYPE_BLOCKS = (10, 14, 15)  # stages of ``TYPE_BACKBONE`` tapped for the description
CV_FOLDS = 5  # cross-validation folds for the "unknown type" threshold
UNKNOWN = i18n.both("inspect.type.unknown")  # the label of a defect no known type fits
MAX_UNLABELLED = 500  # unlabelled rejects kept for self-training (the oldest goes past the bound)
SELF_TRAIN_FLOOR = 0.5  # probability above which an unlabelled reject joins its predicted type's examples
SELF_TRAIN_ROUNDS = 2  # refits with the unlabelled rejects
REFIT_EVERY = 25  # unlabelled rejects seen between refits
TYPE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _top_and_surface(features: np.ndarray, scores: np.ndarray, patches: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patch rows ``(P, D)`` of tile features ``(T, D, g, g)``, the indices of the ``patches`` rows with the
    highest patch scores ``(T, g, g)``, and which rows are the part's surface (scoring at most the median)."""
    if features.ndim == 3:
        features = features[None]
        scores = scores[None] if scores.ndim == 2 else scores
    t, d, h, w = features.shape
    if scores.shape != (t, h, w):
        raise ValueError(f"scores must be {(t, h, w)}, got {scores.shape}")
    flat = scores.ravel()
    k = min(max(1, patches), flat.size)
    x = features.transpose(0, 2, 3, 1).reshape(-1, d)
    return x, np.argpartition(flat, flat.size - k)[flat.size - k:], flat <= np.median(flat)


def region_feature(features: np.ndarray, scores: np.ndarray, patches: int = REGION_PATCHES) -> np.ndarray:
    """Descriptor ``(2 D,)`` of the defect in tile features ``(T, D, g, g)`` with patch scores ``(T, g, g)``:
    the mean feature of the ``patches`` highest-scoring patches, and that mean minus the mean of the
    patches scoring at most the median (the part's own surface), each L2-normalised."""
    x, top_rows, surface_rows = _top_and_surface(features, scores, patches)
    top = x[top_rows].mean(axis=0).astype(np.float64)
    surface = x[surface_rows].mean(axis=0).astype(np.float64)
    return np.concatenate([_unit(top), _unit(top - surface)]).astype(np.float32)


def deep_feature(features: np.ndarray, scores: np.ndarray, patches: int = REGION_PATCHES) -> np.ndarray:
    """Descriptor ``(3 D,)`` from deep tile features ``(T, D, g, g)`` and the detector's patch scores
    ``(T, g, g)``: the L2-normalised mean of the ``patches`` highest-scoring patches, the
    L2-normalised difference of that mean from the surface (patches at most the median score), and
    each feature's standard deviation over all patches."""
    x, top_rows, surface_rows = _top_and_surface(features, scores, patches)
    x = x.astype(np.float64)
    top, surface = x[top_rows].mean(axis=0), x[surface_rows].mean(axis=0)
    return np.concatenate([_unit(top), _unit(top - surface), x.std(axis=0)]).astype(np.float32)


_TYPE_BACKBONES: dict[tuple[int, int, int], Any] = {}


def type_backbone(inspector: Any, size: int, grid_stride: int) -> Any:
    """The deep-stage graph (``TYPE_BLOCKS`` of ``TYPE_BACKBONE``, named rather than the graph builder's
    default, so that taught descriptors stay comparable) for backbone inputs of ``size`` on a grid of
    ``grid_stride``, run with ``inspector``'s threads; built once per process from the installed weights."""
    key = (size, grid_stride, int(inspector.threads))
    if key not in _TYPE_BACKBONES:
        from axline.inspect.features import build_backbone_onnx

        _TYPE_BACKBONES[key] = inspector.runner(build_backbone_onnx(size, TYPE_BLOCKS, None, 0, grid_stride,
                                                                    backbone=TYPE_BACKBONE))
    return _TYPE_BACKBONES[key]


def describe(inspector: Any, image: np.ndarray, features: np.ndarray, scores: np.ndarray,
             descriptor: str = DESCRIPTOR) -> np.ndarray:
    """Descriptor of the defect in ``image`` (the full image), given the detector's tile features
    ``(T, D, g, g)`` and patch scores ``(T, g, g)``, in the description ``descriptor``."""
    if descriptor == LEGACY_DESCRIPTOR:
        return region_feature(features, scores)
    if descriptor != DESCRIPTOR:
        raise ValueError(f"unknown defect description {descriptor!r}")
    tiles = inspector.tiles(inspector.region(image))
    g = scores.shape[-1]
    runner = type_backbone(inspector, int(tiles.shape[-1]), int(tiles.shape[-1]) // g)
    return deep_feature(runner.features(tiles), scores)


def flipped_views(inspector: Any, image: np.ndarray, descriptor: str = DESCRIPTOR) -> list[np.ndarray]:
    """Descriptors of ``image`` mirrored left-right, top-bottom and both (a defect's type does not
    depend on which way the part lies): more examples from each labelled image."""
    out = []
    for view in (image[:, ::-1], image[::-1], image[::-1, ::-1]):
        view = np.ascontiguousarray(view)
        f = inspector.image_features(view)
        out.append(describe(inspector, view, f, inspector.patch_scores(f, image_shape=view.shape), descriptor))
    return out


def _pack(v: np.ndarray) -> str:
    """A descriptor as compact text: base64 of its float16 values."""
    return "f16:" + base64.b64encode(np.asarray(v, "<f2").tobytes()).decode("ascii")


def _unpack(v: Any) -> list[float] | np.ndarray:
    """Inverse of :func:`_pack` (lists, as older types kept them, pass through)."""
    if isinstance(v, str):
        if not v.startswith("f16:"):
            raise ValueError("a stored defect descriptor is neither a list nor f16 text")
        return np.frombuffer(base64.b64decode(v[4:]), "<f2").astype(np.float64)
    return v


class _Fit:
    """A classifier fitted on labelled descriptors: nearest type mean or logistic regression."""

    def __init__(self, x: np.ndarray, y: np.ndarray, n_types: int, c: float = LOGISTIC_C) -> None:
        counts = np.bincount(y, minlength=n_types)
        self.n_types = n_types
        self.logistic = bool(counts.min() >= LOGISTIC_FROM and n_types > 1)
        if self.logistic:
            from sklearn.linear_model import LogisticRegression

            self.mu = x.mean(axis=0)
            self.sd = x.std(axis=0) + 1e-3 * float(np.abs(x).mean()) + 1e-9
            self.model = LogisticRegression(C=c, max_iter=2000)
            self.model.fit((x - self.mu) / self.sd, y)
        else:
            self.protos = np.stack([_unit(x[y == c].mean(axis=0)) if np.any(y == c) else np.zeros(x.shape[1])
                                    for c in range(n_types)])
            self.present = counts > 0

    def proba(self, q: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, n_types)`` of descriptors ``(n, dim)``."""
        if self.logistic:
            p = np.zeros((len(q), self.n_types))
            p[:, self.model.classes_] = self.model.predict_proba((q - self.mu) / self.sd)
            return p
        sims = q @ self.protos.T
        sims[:, ~self.present] = -np.inf
        z = (sims - sims.max(axis=1, keepdims=True)) / TEMPERATURE
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def cross_validate(x: np.ndarray, y: np.ndarray, n_types: int, folds: int = CV_FOLDS,
                   groups: np.ndarray | None = None, cs: tuple[float, ...] = LOGISTIC_CS) -> tuple[float, float]:
    """``(C, threshold)`` from the labelled examples only, by cross-validation: each labelled image
    (with its views, ``groups``: rows that are views of one image, left out together and only the
    first row of each scored) is left out in one of up to ``folds`` folds, taken round-robin within
    each type. ``C``: the logistic strength among ``cs`` whose left-out images were right most often
    (the first on a tie). The threshold: the highest confidence up to which that C's left-out images
    were right no more often than a guess among the types, counting one more right and one more wrong
    answer (so that two or three unlucky images are not taken for a guess; 0 when there is none).
    While a type has a single image nothing can be left out: ``(LOGISTIC_C, 0.0)``."""
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    first = np.r_[True, groups[1:] != groups[:-1]]
    gy = y[first]
    counts = np.bincount(gy, minlength=n_types)
    if n_types < 2 or counts.min() < 2:
        return LOGISTIC_C, 0.0
    gfold = np.zeros(len(gy), int)
    for c in range(n_types):
        idx = np.flatnonzero(gy == c)
        gfold[idx] = np.arange(len(idx)) % min(folds, int(counts.min()))
    fold = gfold[np.cumsum(first) - 1]
    if np.bincount(y, minlength=n_types).min() < LOGISTIC_FROM:
        cs = cs[:1]  # the nearest type mean has no strength to choose
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for c_value in cs:
        conf, right = [], []
        for f in np.unique(gfold):
            out = fold == f
            p = _Fit(x[~out], y[~out], n_types, c_value).proba(x[out & first])
            conf.extend(p.max(axis=1))
            right.extend(np.argmax(p, axis=1) == y[out & first])
        acc = float(np.mean(right))
        if best is None or acc > best[1]:
            best = (c_value, acc, np.asarray(conf), np.asarray(right, float))
    assert best is not None
    c_value, _, conf, right = best
    order = np.argsort(conf)
    # one right and one wrong answer added (Laplace): a few unlucky left-out images are no proof of a guess
    acc_upto = (np.cumsum(right[order]) + 1) / (np.arange(1, len(order) + 1) + 2)
    below = np.flatnonzero(acc_upto <= 1.0 / n_types)
    return c_value, (float(conf[order][below[-1]]) if below.size else 0.0)


def unknown_threshold(x: np.ndarray, y: np.ndarray, n_types: int, folds: int = CV_FOLDS,
                      groups: np.ndarray | None = None) -> float:
    """Confidence at or below which a prediction is "unknown type", from the labelled examples only
    (see :func:`cross_validate`)."""
    return cross_validate(x, y, n_types, folds, groups)[1]


class DefectTypes:
    """Named defect types and their labelled examples (bounded per type)."""

    def __init__(self, names: dict[str, dict[str, str]] | None = None,
                 examples: list[dict[str, Any]] | None = None, min_confidence: float | None = None,
                 max_per_type: int = MAX_EXAMPLES_PER_TYPE, descriptor: str = DESCRIPTOR) -> None:
        if descriptor not in (DESCRIPTOR, LEGACY_DESCRIPTOR):
            raise ValueError(f"unknown defect description {descriptor!r}")
        self.descriptor = descriptor  # how this station's examples were described (see describe)
        self.names: dict[str, dict[str, str]] = dict(names or {})
        self.examples: list[dict[str, Any]] = list(examples or [])
        # None: chosen by cross-validation on the examples (see cross_validate)
        self.min_confidence = None if min_confidence is None else float(min_confidence)
        self.max_per_type = int(max_per_type)
        self._fit: tuple[list[str], _Fit, float] | None = None
        self.logistic_c: float | None = None  # the strength cross-validation chose (None before a fit)
        # the cross-validation's choices for the examples as they are: {"examples", "c", "threshold"}
        self.cv: dict[str, Any] | None = None
        # descriptors of rejects typed here, unlabelled (bounded), for self-training; not saved with the types
        self.unlabelled: deque[np.ndarray] = deque(maxlen=MAX_UNLABELLED)
        self.observed = 0  # unlabelled rejects seen in all
        self._fit_observed = 0  # ``observed`` when the classifier was last fitted
        self.self_trained = 0  # unlabelled rejects the last fit took in under their predicted type
        self._refreshing = threading.Lock()  # one refit at a time (see refresh)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> DefectTypes:
        """Inverse of :meth:`to_json` (``None``: no types yet; types saved before descriptions were
        named keep the older one)."""
        if not data:
            return cls()
        mc = data.get("min_confidence")
        legacy = LEGACY_DESCRIPTOR if (data.get("names") or data.get("examples")) else DESCRIPTOR
        out = cls(data.get("names"), data.get("examples"), None if mc is None else float(mc),
                  int(data.get("max_per_type", MAX_EXAMPLES_PER_TYPE)), str(data.get("descriptor", legacy)))
        cv = data.get("cv")
        if isinstance(cv, dict) and cv.get("examples") == len(out.examples):
            out.cv = {"examples": int(cv["examples"]), "c": float(cv["c"]), "threshold": float(cv["threshold"])}
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the model's ``types.json``."""
        return {"what": "defect types taught by operators: descriptors of the defect region, labelled",
                "names": self.names, "examples": self.examples, "min_confidence": self.min_confidence,
                "max_per_type": self.max_per_type, "descriptor": self.descriptor, "cv": self.cv}

    def add(self, type_id: str, feature: np.ndarray, names: dict[str, str] | None = None,
            source: str | None = None, views: list[np.ndarray] | None = None) -> None:
        """Keep one labelled example of ``type_id`` (the oldest of that type goes past the bound);
        ``views``: descriptors of the same image mirrored (see :func:`flipped_views`), taught with it."""
        if not TYPE_ID.match(type_id):
            raise ValueError(f"a defect type id is 1-40 lower-case letters, digits, '-' or '_', got {type_id!r}")
        if type_id not in self.names:
            if not names or not names.get("en") or not names.get("ko"):
                raise ValueError(f"a new defect type {type_id!r} needs its names in English and Korean")
            self.names[type_id] = {"en": str(names["en"])[:60], "ko": str(names["ko"])[:60]}
        elif names and names.get("en") and names.get("ko"):
            self.names[type_id] = {"en": str(names["en"])[:60], "ko": str(names["ko"])[:60]}
        def keep(v: np.ndarray) -> Any:
            return _pack(v) if self.descriptor == DESCRIPTOR else [round(float(a), 6) for a in v]

        ex: dict[str, Any] = {"type": type_id, "feature": keep(feature), "source": source}
        if views:
            ex["views"] = [keep(f) for f in views if len(f) == len(feature)]
        self.examples.append(ex)
        same = [i for i, e in enumerate(self.examples) if e["type"] == type_id]
        for i in reversed(same[: max(0, len(same) - self.max_per_type)]):
            del self.examples[i]
        self._fit = None
        self.cv = None

    def counts(self) -> dict[str, int]:
        """Labelled examples per type."""
        out = dict.fromkeys(self.names, 0)
        for e in self.examples:
            out[e["type"]] = out.get(e["type"], 0) + 1
        return out

    def _fitted(self) -> tuple[list[str], _Fit, float] | None:
        if self._fit is None:
            self._fit = self._build()
        return self._fit

    def _build(self) -> tuple[list[str], _Fit, float] | None:
        ids = [t for t in self.names if any(e["type"] == t for e in self.examples)]
        if not ids:
            return None
        feats = [[_unpack(f) for f in [e["feature"], *e.get("views", [])]] for e in self.examples]
        dim = len(feats[-1][0])  # examples of another descriptor size are left out
        keep = [j for j, e in enumerate(self.examples) if e["type"] in ids and len(feats[j][0]) == dim]
        ids = [t for t in ids if any(self.examples[j]["type"] == t for j in keep)]
        rows = [(j, ids.index(self.examples[j]["type"]), f) for j in keep for f in feats[j] if len(f) == dim]
        x = np.asarray([r[2] for r in rows], np.float64)
        y = np.asarray([r[1] for r in rows])
        groups = np.asarray([r[0] for r in rows])
        if self.cv is None or self.cv["examples"] != len(self.examples):
            c_value, thr = cross_validate(x, y, len(ids), groups=groups)
            self.cv = {"examples": len(self.examples), "c": c_value, "threshold": thr}
        c_value, thr = self.cv["c"], self.cv["threshold"]
        if self.min_confidence is not None:
            thr = self.min_confidence
        self.logistic_c = c_value
        observed = self.observed
        pool = [u for u in list(self.unlabelled) if len(u) == dim]  # a copy: rejects may arrive meanwhile
        fit = _Fit(x, y, len(ids), c_value)
        taken = 0
        if pool and len(ids) > 1:
            u = np.asarray(pool, np.float64)
            for _ in range(SELF_TRAIN_ROUNDS):
                p = fit.proba(u)
                confident = p.max(axis=1) > SELF_TRAIN_FLOOR
                if not confident.any():
                    break
                fit = _Fit(np.concatenate([x, u[confident]]), np.concatenate([y, p[confident].argmax(axis=1)]),
                           len(ids), c_value)
                taken = int(confident.sum())
        self.self_trained = taken
        self._fit_observed = observed
        return (ids, fit, thr)

    def observe(self, feature: np.ndarray) -> None:
        """Keep the descriptor of a reject typed here, unlabelled, for self-training (see :meth:`refresh`)."""
        self.unlabelled.append(np.asarray(feature, np.float32))
        self.observed += 1

    @property
    def refit_due(self) -> bool:
        """Whether ``REFIT_EVERY`` rejects were seen since the classifier was fitted."""
        return self._fit is not None and self.observed - self._fit_observed >= REFIT_EVERY

    def refresh(self) -> bool:
        """Refit with the unlabelled rejects when due (:attr:`refit_due`); the classifier in use answers
        meanwhile and is swapped for the new one when it is ready, so a station calls this outside the
        lock its inspections wait on (a few hundred ms on two cores with hundreds of rejects kept).
        Returns whether it refitted (False also while another thread is refitting)."""
        if not self.refit_due or not self._refreshing.acquire(blocking=False):
            return False
        try:
            self._fit = self._build()
            return True
        finally:
            self._refreshing.release()

    def adopt_unlabelled(self, other: DefectTypes) -> None:
        """Take over the unlabelled rejects ``other`` kept (a station reloading its model after a new label)."""
        if other.descriptor == self.descriptor:
            self.unlabelled.extend(other.unlabelled)
            self.observed = len(self.unlabelled)
            self._fit = None

    def fit(self) -> None:
        """Fit now (cross-validation included, kept in :meth:`to_json`), so that a station loading
        these types does not cross-validate on its first reject."""
        self._fitted()

    def predict(self, feature: np.ndarray, observe: bool = False) -> dict[str, Any] | None:
        """``{"type", "confidence", "label": {"en", "ko"}, "known"}`` (``None`` when no type is taught);
        ``observe``: a reject of this station, kept unlabelled afterwards (see :meth:`observe`)."""
        fitted = self._fitted()
        if fitted is None:
            return None
        if observe:
            try:
                return self._predict(fitted, feature)
            finally:
                self.observe(feature)
        return self._predict(fitted, feature)

    def _predict(self, fitted: tuple[list[str], _Fit, float], feature: np.ndarray) -> dict[str, Any]:
        ids, fit, thr = fitted
        q = np.asarray(feature, np.float64)[None]
        if q.shape[1] != (fit.model.n_features_in_ if fit.logistic else fit.protos.shape[1]):
            raise ValueError(f"a defect descriptor of {q.shape[1]} values, the taught ones have another size")
        p = fit.proba(q)[0]
        best = int(np.argmax(p))
        conf = float(p[best])
        if len(ids) > 1 and conf <= thr:
            return {"type": None, "confidence": round(conf, 3), "label": dict(UNKNOWN), "known": False,
                    "nearest": ids[best]}
        return {"type": ids[best], "confidence": round(conf, 3), "label": dict(self.names[ids[best]]), "known": True}
