"""Detectors: find an injected shift, name the signal, calibrated FAR, streaming, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from axline.monitor.detectors import DETECTORS, Detector, make_detector

COLUMNS = ["temp", "current", "pressure", "flow"]
SHIFTED = 2  # "pressure"

# small, fast settings for the test; the registry defaults are exercised in the benchmarks
FAST = {
    "robust": {"alpha": 0.3},
    "pca": {},
    "mset": {"memory": 128},
    "iforest": {"n_trees": 30, "smooth": 10},
    "autoencoder": {"hidden": 8, "epochs": 60},
    "changepoint": {"drift": 0.5},
    "ewma": {"alpha": 0.2},
}


def normal_data(n: int, seed: int) -> np.ndarray:
    """Four correlated signals of a running machine."""
    rng = np.random.default_rng(seed)
    load = np.sin(np.arange(n) / 25.0) + 0.3 * rng.standard_normal(n)
    temp = 60 + 5 * load + 0.5 * rng.standard_normal(n)
    current = 10 + 2 * load + 0.2 * rng.standard_normal(n)
    pressure = 3 + 0.1 * rng.standard_normal(n)
    flow = 30 - 3 * load + 0.5 * rng.standard_normal(n)
    return np.column_stack([temp, current, pressure, flow])


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, slice]:
    train = normal_data(800, 1)
    test = normal_data(600, 2)
    bad = slice(300, 400)
    test[bad, SHIFTED] += 1.0  # 10 sigma of the pressure noise, inside the normal range of nothing else
    return train, test, bad


@pytest.fixture(scope="module")
def fitted(data: tuple[np.ndarray, np.ndarray, slice]) -> dict[str, Detector]:
    train = data[0]
    out = {}
    for name in DETECTORS:
        det = make_detector(name, **FAST[name]).fit(train, columns=COLUMNS)
        det.calibrate(train, far=0.01)
        out[name] = det
    return out


def test_registry_has_the_seven_detectors() -> None:
    assert set(DETECTORS) == {"robust", "pca", "mset", "iforest", "autoencoder", "changepoint", "ewma"}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_finds_shift_and_names_the_signal(name: str, fitted: dict[str, Detector], data) -> None:
    _, test, bad = data
    det = fitted[name]
    scores = det.score(test)
    inside = scores[bad]
    normal = np.r_[scores[:280], scores[450:]]
    # most of the shifted stretch is above threshold, most of the rest below
    assert det.threshold is not None
    assert np.mean(inside > det.threshold) > 0.8, name
    assert np.mean(normal > det.threshold) < 0.1, name
    share = det.contributions(test[bad])
    assert share.shape == (100, 4)
    np.testing.assert_allclose(share.sum(axis=1), 1.0, atol=1e-9)
    assert np.argmax(share.mean(axis=0)) == SHIFTED, (name, share.mean(axis=0))
    top = det.explain(test[350])
    assert top[0]["signal"] == "pressure"
    assert top[0]["z"] > 5  # how far from normal, in robust sigmas


@pytest.mark.parametrize("name", ["robust", "pca", "mset", "autoencoder", "ewma"])
def test_calibrated_false_alarm_rate_is_near_target(name: str) -> None:
    train = normal_data(3000, 3)
    det = make_detector(name, **FAST[name]).fit(train[:1500])
    det.calibrate(train[1500:], far=0.05)
    fresh = normal_data(3000, 4)
    rate = float(np.mean(det.score(fresh) > det.threshold))
    assert 0.01 < rate < 0.12, rate


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_score_one_equals_batch(name: str, fitted: dict[str, Detector], data) -> None:
    _, test, _ = data
    det = make_detector(name, **{**FAST[name], "smooth": 7}).fit(data[0])
    batch = det.score(test[250:420])
    det.reset()
    stream = np.array([det.score_one(x) for x in test[250:420]])
    np.testing.assert_allclose(stream, batch, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_save_load_round_trip(name: str, fitted: dict[str, Detector], data, tmp_path) -> None:
    _, test, _ = data
    det = fitted[name]
    path = det.save(tmp_path / f"{name}.npz")
    back = Detector.load(path)
    assert type(back) is type(det)
    assert back.columns == COLUMNS
    assert back.threshold == det.threshold
    np.testing.assert_array_equal(back.score(test), det.score(test))
    np.testing.assert_array_equal(back.contributions(test[:50]), det.contributions(test[:50]))
    # the file is plain arrays: loading must not need pickle
    with np.load(path, allow_pickle=False) as f:
        assert "meta" in f.files


def test_ewma_charts_are_as_wide_as_each_signal_wandered_while_fitting() -> None:
    rng = np.random.default_rng(7)
    n = 600
    slow = np.cumsum(rng.normal(0.0, 0.05, n))  # a temperature: little noise, slow wander
    noisy = rng.normal(0.0, 1.0, n)  # a flow meter: noisy but steady
    X = np.column_stack([slow + 0.01 * rng.normal(size=n), noisy])
    det = make_detector("ewma", alpha=0.1).fit(X[:400], columns=["temp", "flow"])
    det.calibrate(X[400:], far=0.01)
    # in units of each signal's own short-term noise, the wandering signal gets by far the wider chart
    spread = det._arrays["spread"]
    assert spread[0] > 3 * spread[1]
    # a steady drop of 2 noise sigmas on the flow is found within 40 samples and named
    later = np.column_stack([np.full(120, np.median(X[:400, 0])), rng.normal(0.0, 1.0, 120)])
    later[40:, 1] -= 2.0
    s = det.score(later)
    assert np.mean(s[:40] > det.threshold) < 0.1
    assert np.mean(s[80:] > det.threshold) > 0.9
    assert det.explain(later[-1], top=1)[0]["signal"] == "flow"
    with pytest.raises(ValueError, match="alpha"):
        make_detector("ewma", alpha=0.0)


def test_parameter_validation_names_parameter_and_range() -> None:
    with pytest.raises(ValueError, match=r"'variance' must be in \[0.0, 1.0\]"):
        make_detector("pca", variance=1.5)
    with pytest.raises(ValueError, match=r"'k' must be an integer"):
        make_detector("mset", k=2.5)
    with pytest.raises(ValueError, match="unknown parameter"):
        make_detector("robust", windw=3)
    with pytest.raises(ValueError, match="unknown detector 'lstm'"):
        make_detector("lstm")
    det = make_detector("pca").fit(normal_data(100, 5))
    with pytest.raises(ValueError, match="fitted on 4"):
        det.score(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        det.score(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="'far' must be in"):
        det.calibrate(normal_data(100, 6), far=0.9)
    with pytest.raises(RuntimeError, match="not fitted"):
        make_detector("mset").score(np.zeros((2, 4)))


def test_robust_seasonal_profile_removes_the_daily_pattern() -> None:
    rng = np.random.default_rng(7)
    period = 48
    t = np.arange(period * 20)
    X = np.column_stack([10 * np.sin(2 * np.pi * t / period) + rng.standard_normal(t.size)])
    plain = make_detector("robust").fit(X[: period * 10])
    seasonal = make_detector("robust", season=period).fit(X[: period * 10])
    rest = X[period * 10 :]
    assert np.median(seasonal.score(rest)) < 0.2 * np.median(plain.score(rest))


def test_latch_from_detector_releases_relative_to_the_normal_level(fitted: dict[str, Detector], tmp_path) -> None:
    det = fitted["iforest"]  # normal scores sit near 0.5, not 0
    assert det.threshold is not None and 0.3 < det.normal_level < det.threshold
    latch = det.latch(ratio=0.8)
    assert latch.off == pytest.approx(det.normal_level + 0.8 * (det.threshold - det.normal_level))
    assert Detector.load(det.save(tmp_path / "f.npz")).normal_level == det.normal_level
    with pytest.raises(RuntimeError, match="calibrate"):
        make_detector("pca").fit(normal_data(100, 8)).latch()


def test_every_detector_is_registered_and_lives_in_its_own_module() -> None:
    assert set(DETECTORS) == set(Detector.kinds())
    modules = {cls.__module__ for cls in DETECTORS.values()}
    assert len(modules) == len(DETECTORS), modules
    for name, cls in DETECTORS.items():
        assert cls.name == name
        assert cls.__module__.startswith("axline.monitor.detectors."), cls.__module__


def test_the_base_is_abstract_and_a_new_detector_must_implement_the_hooks() -> None:
    with pytest.raises(TypeError, match="abstract"):
        Detector()  # type: ignore[abstract]

    from axline.monitor.detectors.base import StatelessDetector

    class Half(StatelessDetector):  # no name: stays out of the registry
        def _fit(self, Z: np.ndarray) -> None:
            self._arrays = {}

        def _contrib(self, Z: np.ndarray) -> np.ndarray:
            return Z**2

    with pytest.raises(TypeError, match="_raw"):
        Half()
    assert "Half" not in {c.__name__ for c in Detector.kinds().values()}


def test_a_name_already_taken_is_refused() -> None:
    from axline.monitor.detectors.pca import PCADetector

    with pytest.raises(ValueError, match="'pca' is taken"):
        type("OtherPCA", (PCADetector,), {"name": "pca"})


def test_every_detector_has_a_doctest_example_collected_by_pytest() -> None:
    import doctest
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in config["addopts"]
    assert "src/axline/monitor/detectors" in config["testpaths"]
    finder = doctest.DocTestFinder()
    for name, cls in DETECTORS.items():
        own = [t for t in finder.find(cls) if t.name.endswith(cls.__qualname__) and t.examples]
        assert own, f"detector {name!r} has no example in its class docstring"
